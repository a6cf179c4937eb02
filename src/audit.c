/*
 * audit.c
 *		The audit chain's C side: sealing a transaction's audit rows just
 *		before it commits, and the UTF-8 bytes that the chain hashes.
 *
 * secpolicy.audit() writes a row at once, without its hashes, and calls
 * audit_pending().  Just before the transaction commits (or is prepared for
 * a two-phase commit), a transaction callback runs secpolicy.audit_seal(),
 * which takes the chain's lock and chains the rows; the lock is released by
 * the commit a moment later.  So the chain follows the order of the commits,
 * and no open transaction holds the lock: an application that keeps its
 * transaction open after writing audit rows (five wrong logins, then a
 * pause) stalls no one.  An error while sealing aborts the commit, like a
 * deferred constraint.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

#include "secpolicy.h"

PG_FUNCTION_INFO_V1(secpolicy_audit_pending);
PG_FUNCTION_INFO_V1(secpolicy_utf8_bytes);

/* Did this transaction write audit rows? */
static bool seal_at_commit = false;

/* audit_pending(): chain this transaction's audit rows when it commits. */
Datum
secpolicy_audit_pending(PG_FUNCTION_ARGS)
{
	seal_at_commit = true;
	PG_RETURN_VOID();
}

/* Run secpolicy.audit_seal(), if the extension is still there. */
static void
audit_seal(void)
{
	Oid			seal = LookupFuncName(list_make2(makeString("secpolicy"), makeString("audit_seal")),
									  0, NULL, true);

	if (!OidIsValid(seal))
		return;
	PushActiveSnapshot(GetTransactionSnapshot());
	(void) OidFunctionCall0(seal);
	PopActiveSnapshot();
}

/* Seal before a commit (or a PREPARE TRANSACTION); forget at the end. */
static void
audit_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			if (seal_at_commit)
			{
				seal_at_commit = false;
				audit_seal();
			}
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			seal_at_commit = false;
			break;
		default:
			break;
	}
}

/* Register the transaction callback, once per backend. */
void
sp_audit_init(void)
{
	RegisterXactCallback(audit_xact_callback, NULL);
}

/*
 * utf8_bytes(t text) returns bytea: the text's bytes in UTF-8, as
 * convert_to(t, 'UTF8') gives them; in a SQL_ASCII database, a byte that
 * does not belong to valid UTF-8 is written as the four characters \xNN
 * instead of raising.
 */
Datum
secpolicy_utf8_bytes(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	const char *s = VARDATA_ANY(t);
	int			len = VARSIZE_ANY_EXHDR(t);
	int			enc = GetDatabaseEncoding();
	StringInfoData buf;
	bytea	   *out;

	if (enc == PG_UTF8 || (enc == PG_SQL_ASCII && pg_verify_mbstr(PG_UTF8, s, len, true)))
		PG_RETURN_BYTEA_P(DatumGetByteaPP(PointerGetDatum(t)));
	if (enc != PG_SQL_ASCII)
	{
		char	   *conv = (char *) pg_do_encoding_conversion((unsigned char *) s, len, enc, PG_UTF8);
		int			n = conv == s ? len : (int) strlen(conv);

		out = palloc(VARHDRSZ + n);
		SET_VARSIZE(out, VARHDRSZ + n);
		memcpy(VARDATA(out), conv, n);
		PG_RETURN_BYTEA_P(out);
	}
	initStringInfo(&buf);
	while (len > 0)
	{
		int			l = pg_utf_mblen((const unsigned char *) s);

		if (l <= len && pg_utf8_islegal((const unsigned char *) s, l))
		{
			appendBinaryStringInfo(&buf, s, l);
			s += l;
			len -= l;
		}
		else
		{
			appendStringInfo(&buf, "\\x%02x", (unsigned char) *s);
			s++;
			len--;
		}
	}
	out = palloc(VARHDRSZ + buf.len);
	SET_VARSIZE(out, VARHDRSZ + buf.len);
	memcpy(VARDATA(out), buf.data, buf.len);
	PG_RETURN_BYTEA_P(out);
}
