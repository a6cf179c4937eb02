/*
 * citus.c
 *		What the C code needs to know of a distributed installation (Citus),
 *		without Citus headers: whether this database's secpolicy tables are
 *		distributed, the routing keys of usernames and tokens, and the routed
 *		session_touch() of a coordinator.
 *
 * A distributed installation (secpolicy.distribute(), src/sql/97_citus.sql)
 * keeps each account on the worker that owns the shard of its user id, and
 * a user id there is the account key of its lower-cased username, so that a
 * flow given a username can be sent to that worker.  Tokens issued there end
 * in ".<account key>" (covered by the token's digest, like the rest of it),
 * so that a flow given a token can be sent there too.
 *
 * Whether the installation is distributed is read from Citus's catalog
 * (pg_dist_partition) once per backend and remembered until the relation
 * cache entry of secpolicy.users is invalidated, which Citus does whenever
 * it distributes or undistributes the table.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include <sodium.h>

#include "secpolicy.h"

PG_FUNCTION_INFO_V1(secpolicy_distributed);
PG_FUNCTION_INFO_V1(secpolicy_account_key);
PG_FUNCTION_INFO_V1(secpolicy_route_key);

/* Usernames are keyed by their first 256 characters, lower-cased. */
#define KEY_CHARS	256

/* -1: not known yet; 0: a single node; 1: distributed. */
static int	distributed_state = -1;
static Oid	distributed_users = InvalidOid;

/*
 * This node's placement of the policy reference table (policy_<shardid>):
 * policy_state -1 not looked up yet, 0 none, 1 policy_placement.  Forgotten
 * with the distributed state, or when the shell or the placement changes.
 */
static int	policy_state = -1;
static Oid	policy_shell = InvalidOid;
static Oid	policy_placement = InvalidOid;

/* The routed session_touch: its prepared statement. */
static SPIPlanPtr touch_plan = NULL;

/* Forget what was read when secpolicy.users (or everything) is invalidated. */
static void
citus_relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == distributed_users)
		distributed_state = -1;
	if (relid == InvalidOid || relid == distributed_users || relid == policy_shell ||
		relid == policy_placement)
		policy_state = -1;
}

/* Register the invalidation callback, once per backend. */
void
sp_citus_init(void)
{
	CacheRegisterRelcacheCallback(citus_relcache_callback, (Datum) 0);
}

/*
 * Look relation `relid` up in Citus catalog `catalog` (pg_dist_partition,
 * pg_dist_shard: both keyed by logicalrelid); false when it is not listed
 * (or Citus is not installed).  With `column`, *value is that column of the
 * first row found (a by-value column).
 */
static bool
citus_catalog_row(const char *catalog, Oid relid, const char *column, Datum *value)
{
	Oid			catoid = get_relname_relid(catalog, PG_CATALOG_NAMESPACE);
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	AttrNumber	att,
				want = InvalidAttrNumber;
	HeapTuple	tup;
	bool		found = false;

	if (!OidIsValid(catoid))
		return false;
	rel = table_open(catoid, AccessShareLock);
	att = get_attnum(catoid, "logicalrelid");
	if (column != NULL)
		want = get_attnum(catoid, column);
	if (att == InvalidAttrNumber || (column != NULL && want == InvalidAttrNumber))
	{
		table_close(rel, AccessShareLock);
		return false;
	}
	ScanKeyInit(&key, att, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull = false;

		found = true;
		if (column != NULL)
		{
			*value = heap_getattr(tup, want, RelationGetDescr(rel), &isnull);
			found = !isnull;
		}
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/* Is secpolicy.users a Citus table in this database? */
bool
sp_distributed(void)
{
	if (distributed_state < 0)
	{
		Oid			nsp = get_namespace_oid("secpolicy", true);
		Oid			users = OidIsValid(nsp) ? get_relname_relid("users", nsp) : InvalidOid;

		distributed_users = users;
		distributed_state = OidIsValid(users) && citus_catalog_row("pg_dist_partition", users, NULL, NULL) ? 1 : 0;
	}
	return distributed_state == 1;
}

/*
 * The OID of this node's placement of the policy reference table, read
 * directly (as a single node reads secpolicy.policy) instead of through a
 * distributed statement; InvalidOid when this node holds none (the policy is
 * then read through Citus).
 */
Oid
sp_citus_policy_placement(void)
{
	if (policy_state < 0)
	{
		Oid			nsp = get_namespace_oid("secpolicy", true);
		const char *name = SP_RELATION(SPC_POLICY_SESSION_IDLE_TIMEOUT);
		Datum		shardid;

		policy_shell = OidIsValid(nsp) ? get_relname_relid(name, nsp) : InvalidOid;
		policy_placement = InvalidOid;
		if (OidIsValid(policy_shell) &&
			citus_catalog_row("pg_dist_shard", policy_shell, "shardid", &shardid))
		{
			char		shard[NAMEDATALEN];

			snprintf(shard, sizeof(shard), "%s_" INT64_FORMAT, name, DatumGetInt64(shardid));
			policy_placement = get_relname_relid(shard, nsp);
		}
		policy_state = OidIsValid(policy_placement) ? 1 : 0;
	}
	return policy_state == 1 ? policy_placement : InvalidOid;
}

/* distributed() returns boolean: are the secpolicy tables distributed (Citus)? */
Datum
secpolicy_distributed(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(sp_distributed());
}

/*
 * The account key of a username: the first 8 bytes of SHA-256 of its first
 * 256 characters lower-cased, as a positive bigint (never 0, which stands
 * for no username at all).
 */
int64
sp_account_key(text *username)
{
	int			len = VARSIZE_ANY_EXHDR(username);
	int			clip = pg_mbcharcliplen(VARDATA_ANY(username), len, KEY_CHARS * pg_database_encoding_max_length());
	int			chars = pg_mbstrlen_with_len(VARDATA_ANY(username), clip);
	text	   *lowered;
	unsigned char digest[crypto_hash_sha256_BYTES];
	uint64		v = 0;

	/* exactly the first KEY_CHARS characters, as left(username, 256) */
	if (chars > KEY_CHARS)
		clip = pg_mbcharcliplen(VARDATA_ANY(username), clip, KEY_CHARS);
	lowered = DatumGetTextPP(DirectFunctionCall1Coll(lower, DEFAULT_COLLATION_OID,
													 PointerGetDatum(cstring_to_text_with_len(VARDATA_ANY(username), clip))));
	crypto_hash_sha256(digest, (const unsigned char *) VARDATA_ANY(lowered), VARSIZE_ANY_EXHDR(lowered));
	for (int i = 0; i < 8; i++)
		v = (v << 8) | digest[i];
	v &= UINT64CONST(0x7FFFFFFFFFFFFFFF);
	return v == 0 ? 1 : (int64) v;
}

/* account_key(username text) returns bigint: 0 for NULL */
Datum
secpolicy_account_key(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_INT64(0);
	PG_RETURN_INT64(sp_account_key(PG_GETARG_TEXT_PP(0)));
}

/*
 * The account key a token names after its last '.', or 0 when it names
 * none (a token of a single node, or no token of ours): 1 to 19 digits, no
 * leading zero, at most the largest bigint.
 */
int64
sp_token_route(text *token)
{
	const char *s = VARDATA_ANY(token);
	int			len = VARSIZE_ANY_EXHDR(token);
	int			dot = len - 1;
	uint64		v = 0;

	while (dot >= 0 && s[dot] != '.')
		dot--;
	if (dot < 0 || len - dot - 1 < 1 || len - dot - 1 > 19 || s[dot + 1] == '0')
		return 0;
	for (int i = dot + 1; i < len; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return 0;
		if (v > (UINT64CONST(0x7FFFFFFFFFFFFFFF) - (s[i] - '0')) / 10)
			return 0;
		v = v * 10 + (s[i] - '0');
	}
	return (int64) v;
}

/*
 * route_key(suffix text) returns bigint: the account key written after the
 * last '.' of a token (callers pass only those digits, never the token);
 * 0 for NULL or anything else.
 */
Datum
secpolicy_route_key(PG_FUNCTION_ARGS)
{
	text	   *suffix;
	text	   *dotted;

	if (PG_ARGISNULL(0))
		PG_RETURN_INT64(0);
	suffix = PG_GETARG_TEXT_PP(0);
	if (VARSIZE_ANY_EXHDR(suffix) > 19)
		PG_RETURN_INT64(0);
	dotted = (text *) palloc(VARHDRSZ + 1 + VARSIZE_ANY_EXHDR(suffix));
	SET_VARSIZE(dotted, VARHDRSZ + 1 + VARSIZE_ANY_EXHDR(suffix));
	VARDATA(dotted)[0] = '.';
	memcpy(VARDATA(dotted) + 1, VARDATA_ANY(suffix), VARSIZE_ANY_EXHDR(suffix));
	PG_RETURN_INT64(sp_token_route(dotted));
}

/*
 * Run as the owner of function `fn` (the extension's owner), as the SECURITY
 * DEFINER flows do, so that nodes only ever connect to each other as that
 * owner.  With pin, also with the search path pinned and no remote
 * transaction block of its own for a call outside one (returns the GUC nest
 * level for AtEOXact_GUC); without, the caller runs only statements that
 * name every relation and operator by its schema (returns -1).  The user is
 * restored by as_owner_end, or by the abort of an error.
 */
static int
as_owner_begin(Oid fn, bool pin, Oid *save_uid, int *save_sec)
{
	HeapTuple	proc = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	Oid			owner;
	int			nest = -1;

	if (!HeapTupleIsValid(proc))
		elog(ERROR, "cache lookup failed for function %u", fn);
	owner = ((Form_pg_proc) GETSTRUCT(proc))->proowner;
	ReleaseSysCache(proc);
	GetUserIdAndSecContext(save_uid, save_sec);
	SetUserIdAndSecContext(owner, *save_sec | SECURITY_LOCAL_USERID_CHANGE);
	if (pin)
	{
		nest = NewGUCNestLevel();
		(void) set_config_option("search_path", "pg_catalog, pg_temp",
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
		(void) set_config_option("citus.function_opens_transaction_block", "off",
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	}
	return nest;
}

static void
as_owner_end(int nest, Oid save_uid, int save_sec)
{
	if (nest >= 0)
		AtEOXact_GUC(true, nest);
	SetUserIdAndSecContext(save_uid, save_sec);
}

/*
 * Read a session by its token's digest from the worker owning it (a
 * single-shard statement Citus plans on its fast path: one round trip) and,
 * for a session not ended and with_policy (this node holds no placement of
 * the policy to read directly), the policy's session settings through
 * Citus, so that session_touch() answers a session that needs no write as a
 * single-shard SELECT does.  False when there is none.  The statements see
 * what this transaction did before (a session login() just created).
 */
bool
sp_citus_session_read(text *token, bytea *digest, bool with_policy, SpSessionRead *out)
{
	static SPIPlanPtr read_plan = NULL;
	static SPIPlanPtr policy_plan = NULL;
	Oid			argtypes[2] = {INT8OID, BYTEAOID};
	Datum		args[2];
	Oid			save_uid;
	int			save_sec;
	int			nest;
	bool		found = false;
	MemoryContext caller = CurrentMemoryContext;

	args[0] = Int64GetDatum(sp_token_route(token));
	args[1] = PointerGetDatum(digest);
	nest = as_owner_begin(LookupFuncName(list_make2(makeString("secpolicy"), makeString("session_touch")),
										 2, (Oid[]) {INT8OID, TEXTOID}, false),
						  false, &save_uid, &save_sec);

	/* on this backend's own connection to the worker, where that answers the same */
	{
		int			direct = sp_citus_direct_read(DatumGetInt64(args[0]), digest,
												  GetUserNameFromId(GetUserId(), false), out);

		if (direct == 0 || (direct == 1 && (out->ended || !with_policy)))
		{
			as_owner_end(nest, save_uid, save_sec);
			return direct == 1;
		}
		memset(out, 0, sizeof(*out));
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (read_plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare("SELECT s.id, s.created_at, s.last_seen_at, s.ended_at IS NOT NULL, s.end_reason"
									   " FROM secpolicy.sessions s"
									   " WHERE s.user_id OPERATOR(pg_catalog.=) $1"
									   " AND s.token_digest OPERATOR(pg_catalog.=) $2", 2, argtypes);

		if (plan == NULL)
			elog(ERROR, "could not prepare the routed session read: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		read_plan = plan;
		plan = SPI_prepare("SELECT p.session_idle_timeout, p.session_max_lifetime, p.session_touch_interval"
						   " FROM secpolicy.policy p", 0, NULL);
		if (plan == NULL)
			elog(ERROR, "could not prepare the policy read: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		policy_plan = plan;
	}
	if (SPI_execute_plan(read_plan, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "the routed session read failed");
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		d;
		MemoryContext spi = MemoryContextSwitchTo(caller);

		found = true;
		/* the session's user is its account key: the statement found it by that */
		out->user_id = DatumGetInt64(args[0]);
		out->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		out->created_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 2, &isnull));
		out->last_seen_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 3, &isnull));
		out->ended = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
		d = SPI_getbinval(tup, desc, 5, &isnull);
		out->end_reason = isnull ? NULL : TextDatumGetCString(d);
		MemoryContextSwitchTo(spi);
	}
	if (found && !out->ended && with_policy)
	{
		/* the policy through Citus: this node holds no copy of the reference table */
		HeapTuple	tup;
		TupleDesc	desc;
		bool		isnull;
		MemoryContext spi;

		if (SPI_execute_plan(policy_plan, NULL, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("secpolicy.policy has no row")));
		tup = SPI_tuptable->vals[0];
		desc = SPI_tuptable->tupdesc;
		spi = MemoryContextSwitchTo(caller);
		out->idle_timeout = DatumGetIntervalP(datumCopy(SPI_getbinval(tup, desc, 1, &isnull), false, sizeof(Interval)));
		out->max_lifetime = DatumGetIntervalP(datumCopy(SPI_getbinval(tup, desc, 2, &isnull), false, sizeof(Interval)));
		out->touch_interval = DatumGetIntervalP(datumCopy(SPI_getbinval(tup, desc, 3, &isnull), false, sizeof(Interval)));
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	as_owner_end(nest, save_uid, save_sec);
	return found;
}

/*
 * session_touch() on a distributed installation: secpolicy.session_touch(
 * account_key, token) runs on the worker that owns the session (Citus
 * delegates the call by its first argument), as the extension's owner, as
 * the SECURITY DEFINER flows do, so that nodes only ever connect to each
 * other as that owner.  Outside a transaction block the call is sent as it
 * is, without a remote transaction of its own (Citus opens one for calls
 * made inside functions unless citus.function_opens_transaction_block is
 * off): one round trip, as for a single-shard SELECT.  Fills the answer;
 * *session_id is 0 unless the session is active.
 */
void
sp_citus_session_touch(text *token, SpTouchAnswer *answer)
{
	Oid			argtypes[2] = {INT8OID, TEXTOID};
	Datum		args[2];
	Oid			touch;
	Oid			save_uid;
	int			save_sec;
	int			nest;
	bool		isnull;
	Datum		d;
	MemoryContext caller = CurrentMemoryContext;

	touch = LookupFuncName(list_make2(makeString("secpolicy"), makeString("session_touch")),
						   2, argtypes, false);
	args[0] = Int64GetDatum(sp_token_route(token));
	args[1] = PointerGetDatum(token);

	nest = as_owner_begin(touch, true, &save_uid, &save_sec);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (touch_plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare("SELECT t.status, t.user_id, t.idle_expires_at, t.session_id"
									   " FROM secpolicy.session_touch($1, $2) t", 2, argtypes);

		if (plan == NULL)
			elog(ERROR, "could not prepare the routed session_touch: %s",
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		touch_plan = plan;
	}
	if (SPI_execute_plan(touch_plan, args, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "the routed session_touch returned no row");

	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	answer->status = isnull ? "unknown" : MemoryContextStrdup(caller, TextDatumGetCString(d));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	answer->user_id = isnull ? 0 : DatumGetInt64(d);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
	answer->idle_expires_at = isnull ? 0 : DatumGetTimestampTz(d);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull);
	answer->session_id = isnull ? 0 : DatumGetInt64(d);
	SPI_finish();
	as_owner_end(nest, save_uid, save_sec);
}
