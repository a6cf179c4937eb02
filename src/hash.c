/*
 * hash.c
 *		argon2id password hashes through libsodium: hash_password,
 *		verify_password, password_needs_rehash and hash_stats.
 *
 * Every argon2 computation allocates its memory cost (64 MiB by default)
 * outside PostgreSQL's memory contexts.  To keep a login flood from
 * exhausting memory, at most secpolicy.max_concurrent_hashes computations
 * run at once in the whole cluster: each takes one of that many advisory-lock
 * slots (database 0, key 0x534543, slot) first, and waits (interruptibly,
 * shown as wait event type Extension) when all are busy.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/lock.h"
#if PG_VERSION_NUM >= 140000
#include "utils/wait_event.h"
#endif
#include "utils/builtins.h"
#include "utils/guc.h"

#include <sodium.h>

#include "secpolicy.h"

PG_FUNCTION_INFO_V1(secpolicy_hash_password);
PG_FUNCTION_INFO_V1(secpolicy_verify_password);
PG_FUNCTION_INFO_V1(secpolicy_password_needs_rehash);
PG_FUNCTION_INFO_V1(secpolicy_password_match);
PG_FUNCTION_INFO_V1(secpolicy_hash_stats);

/* First key of the advisory locks used as hashing slots ("SEC" in ASCII). */
#define HASH_SLOT_LOCK_KEY	0x534543

static int	max_concurrent_hashes = 4;
static int	max_hash_work = 512;

/* Per-backend counters reported by hash_stats(). */
static int64 stat_hashes = 0;
static int64 stat_verifications = 0;
static int64 stat_slot_waits = 0;

/* Define the module's settings. */
void
sp_hash_init(void)
{
	DefineCustomIntVariable("secpolicy.max_concurrent_hashes",
							gettext_noop("Maximum number of argon2 computations running at once in the cluster."),
							gettext_noop("Each computation uses the policy's hash_memlimit of memory; "
										 "further ones wait for a free slot. 0 means no limit."),
							&max_concurrent_hashes,
							4, 0, 1024,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("secpolicy.max_hash_work",
							gettext_noop("Largest argon2 work (memory in MiB times passes) computed for a hash that a caller supplies or imports."),
							gettext_noop("argon2 cannot be interrupted: a costlier hash verifies false (verify_password, password_match) "
										 "or is refused (import_password_hash). The policy's own cost is always allowed."),
							&max_hash_work,
							512, 1, 16384,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
}

/* Fill in the lock tag of hashing slot `slot` (cluster-wide: database 0). */
static void
hash_slot_tag(LOCKTAG *tag, int slot)
{
	SET_LOCKTAG_ADVISORY(*tag, InvalidOid, HASH_SLOT_LOCK_KEY, (uint32) slot, 2);
}

/*
 * Take a hashing slot: the first free one; when all are busy, try them all
 * again every few milliseconds (a computation takes tens of milliseconds), so
 * that whichever slot frees first is taken.  Interruptible (statement_timeout,
 * cancel).  Returns the slot number, or -1 when there is no limit.  The lock
 * is held at transaction level, so an error between here and
 * hash_slot_release cannot leak it.
 */
static int
hash_slot_acquire(void)
{
	int			n = max_concurrent_hashes;
	int			start;
	bool		waited = false;
	LOCKTAG		tag;

	if (n <= 0)
		return -1;

	start = MyProcPid % n;
	for (;;)
	{
		for (int i = 0; i < n; i++)
		{
			int			slot = (start + i) % n;

			hash_slot_tag(&tag, slot);
			if (LockAcquire(&tag, ExclusiveLock, false, true) != LOCKACQUIRE_NOT_AVAIL)
			{
				if (waited)
					stat_slot_waits++;
				return slot;
			}
		}
		/* shows in pg_stat_activity as wait_event_type Extension */
		waited = true;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 2L,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* Give back a slot taken by hash_slot_acquire. */
static void
hash_slot_release(int slot)
{
	LOCKTAG		tag;

	if (slot < 0)
		return;
	hash_slot_tag(&tag, slot);
	LockRelease(&tag, ExclusiveLock, false);
}

/* Raise the standard error for a password longer than we ever hash. */
static void
check_password_bytes(size_t len)
{
	if (len > SP_MAX_PASSWORD_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("password is too long"),
				 errdetail("rule codes: too_long"),
				 errhint("Passwords are limited to %d bytes.", SP_MAX_PASSWORD_BYTES),
				 errhidestmt(true)));
}

/* Hash a password with argon2id at the given cost; returns a palloc'd PHC string. */
char *
sp_hash_password(const char *password, size_t len,
				 unsigned long long opslimit, size_t memlimit)
{
	char		out[crypto_pwhash_STRBYTES];
	int			rc;
	int			slot;
	size_t		nlen = 0;
	char	   *norm;

	check_password_bytes(len);

	/* normalised after the (interruptible) wait for a slot: no error comes between the copy and its wipe */
	slot = hash_slot_acquire();
	norm = sp_password_nfkc(password, len, &nlen);
	rc = crypto_pwhash_str_alg(out, norm ? norm : password, norm ? nlen : len,
							   opslimit, memlimit, crypto_pwhash_ALG_ARGON2ID13);
	hash_slot_release(slot);
	stat_hashes++;
	sp_password_nfkc_free(norm, nlen);

	if (rc != 0)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION),
				 errmsg("argon2id hashing failed"),
				 errdetail("libsodium could not compute the hash with opslimit %llu and memlimit %zu bytes.",
						   opslimit, memlimit),
				 errhint("Check hash_opslimit and hash_memlimit in secpolicy.policy and the server's free memory.")));

	return pstrdup(out);
}

/* Parse an unsigned decimal at *p, advancing it; false if there is none. */
static bool
parse_uint(const char **p, unsigned long *out)
{
	unsigned long v = 0;
	const char *s = *p;

	if (*s < '0' || *s > '9')
		return false;
	while (*s >= '0' && *s <= '9')
	{
		if (v > 100000000UL)
			return false;
		v = v * 10 + (unsigned long) (*s - '0');
		s++;
	}
	*p = s;
	*out = v;
	return true;
}

/*
 * Parse the cost of a "$argon2id$v=19$m=..,t=..,p=..$salt$hash" string: false
 * unless it is well formed and within the static bounds (SP_MAX_HASH_*),
 * which keep a hostile stored string from making us allocate or spin without
 * limit.
 */
static bool
argon2id_cost(const char *hash, size_t hashlen, unsigned long *m, unsigned long *t)
{
	static const char prefix[] = "$argon2id$v=19$m=";
	const char *p;
	unsigned long lanes;

	if (hashlen >= crypto_pwhash_STRBYTES || strlen(hash) != hashlen ||
		strncmp(hash, prefix, sizeof(prefix) - 1) != 0)
		return false;

	p = hash + sizeof(prefix) - 1;
	if (!parse_uint(&p, m) || strncmp(p, ",t=", 3) != 0)
		return false;
	p += 3;
	if (!parse_uint(&p, t) || strncmp(p, ",p=", 3) != 0)
		return false;
	p += 3;
	if (!parse_uint(&p, &lanes) || *p != '$')
		return false;

	return *m >= 8 && (size_t) *m <= SP_MAX_HASH_MEMLIMIT / 1024 &&
		*t >= 1 && *t <= SP_MAX_HASH_OPSLIMIT &&
		lanes >= 1 && lanes <= SP_MAX_HASH_LANES;
}

/* Is this a well-formed argon2id string whose cost we are willing to compute? */
bool
sp_hash_is_argon2id(const char *hash, size_t hashlen)
{
	unsigned long m,
				t;

	return argon2id_cost(hash, hashlen, &m, &t);
}

/* The value of secpolicy.max_hash_work (for messages). */
int
sp_max_hash_work(void)
{
	return max_hash_work;
}

/*
 * May a hash that a caller supplies (to verify against, or to import) be
 * computed?  Its work (memory in MiB times passes) must not exceed
 * secpolicy.max_hash_work, or the policy's own work if that is larger.
 */
bool
sp_hash_cost_allowed(const char *hash, size_t hashlen)
{
	unsigned long m,
				t;
	double		work;
	SpPolicy	policy;

	if (!argon2id_cost(hash, hashlen, &m, &t))
		return false;
	work = (double) m / 1024.0 * (double) t;
	if (work <= max_hash_work)
		return true;
	sp_policy_load(&policy);
	return work <= (double) policy.hash_memlimit / 1048576.0 * (double) policy.hash_opslimit;
}

/*
 * Verify a password against an argon2id PHC string in constant time.
 * Anything that is not an acceptable argon2id string verifies false.
 *
 * The password is tried in NFKC (the form sp_hash_password hashes) and,
 * when that differs and does not match, as received: a hash imported from a
 * system that did not normalise keeps verifying (SP_MATCH_RECEIVED tells the
 * caller to rehash).  For a wrong password, whether the second computation
 * runs depends only on the password, never on the hash, so a dummy
 * verification for an unknown account costs exactly the same.
 */
int
sp_verify_password_form(const char *hash, size_t hashlen, const char *password, size_t len)
{
	char		buf[crypto_pwhash_STRBYTES];
	int			result = SP_NO_MATCH;
	int			slot;
	size_t		nlen = 0;
	char	   *norm;

	if (len > SP_MAX_PASSWORD_BYTES || !sp_hash_is_argon2id(hash, hashlen))
		return SP_NO_MATCH;

	/* libsodium reads a full crypto_pwhash_STRBYTES buffer */
	memset(buf, 0, sizeof(buf));
	memcpy(buf, hash, hashlen);

	/* normalised after the (interruptible) wait for a slot: no error comes between the copy and its wipe */
	slot = hash_slot_acquire();
	norm = sp_password_nfkc(password, len, &nlen);
	if (norm != NULL)
	{
		stat_verifications++;
		if (crypto_pwhash_str_verify(buf, norm, nlen) == 0)
			result = SP_MATCH;
	}
	if (result == SP_NO_MATCH)
	{
		stat_verifications++;
		if (crypto_pwhash_str_verify(buf, password, len) == 0)
			result = norm != NULL ? SP_MATCH_RECEIVED : SP_MATCH;
	}
	hash_slot_release(slot);
	sp_password_nfkc_free(norm, nlen);

	return result;
}

/* Does the password verify against the hash (in either form)? */
bool
sp_verify_password(const char *hash, size_t hashlen, const char *password, size_t len)
{
	return sp_verify_password_form(hash, hashlen, password, len) != SP_NO_MATCH;
}

/* hash_password(password text) returns text */
Datum
secpolicy_hash_password(PG_FUNCTION_ARGS)
{
	text	   *password = PG_GETARG_TEXT_PP(0);
	size_t		len = VARSIZE_ANY_EXHDR(password);
	SpPolicy	policy;

	sp_logfilter_mark_statement();
	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("password must not be empty"),
				 errdetail("rule codes: too_short")));
	check_password_bytes(len);

	sp_policy_load(&policy);
	PG_RETURN_TEXT_P(cstring_to_text(sp_hash_password(VARDATA_ANY(password), len,
													  policy.hash_opslimit,
													  policy.hash_memlimit)));
}

/*
 * The (password text, hash text) arguments of verify_password and
 * password_match, verified: SP_NO_MATCH for NULLs, oversized hashes and
 * hashes costlier than secpolicy.max_hash_work.
 */
static int
verify_args(FunctionCallInfo fcinfo)
{
	text	   *password;
	text	   *hash;
	char	   *hashstr;
	size_t		hashlen;

	sp_logfilter_mark_statement();
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		return SP_NO_MATCH;

	password = PG_GETARG_TEXT_PP(0);
	hash = PG_GETARG_TEXT_PP(1);
	if (VARSIZE_ANY_EXHDR(hash) >= crypto_pwhash_STRBYTES)
		return SP_NO_MATCH;

	hashstr = sp_text_cstring(hash, &hashlen);
	if (!sp_hash_cost_allowed(hashstr, hashlen))
		return SP_NO_MATCH;
	return sp_verify_password_form(hashstr, hashlen, VARDATA_ANY(password),
								   VARSIZE_ANY_EXHDR(password));
}

/* verify_password(password text, hash text) returns boolean; NULLs verify false */
Datum
secpolicy_verify_password(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(verify_args(fcinfo) != SP_NO_MATCH);
}

/*
 * password_match(password text, hash text) returns text: NULL when the
 * password does not verify, 'nfkc' when the hash is of its NFKC form, and
 * 'as_received' when only the bytes as received match (a hash imported from
 * a system that did not normalise: the caller rehashes).
 */
Datum
secpolicy_password_match(PG_FUNCTION_ARGS)
{
	int			form = verify_args(fcinfo);

	if (form == SP_NO_MATCH)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(form == SP_MATCH ? "nfkc" : "as_received"));
}

/*
 * password_needs_rehash(hash text) returns boolean: true unless the hash is
 * a well-formed argon2id string at exactly the policy's cost.
 */
Datum
secpolicy_password_needs_rehash(PG_FUNCTION_ARGS)
{
	text	   *hash = PG_GETARG_TEXT_PP(0);
	char		buf[crypto_pwhash_STRBYTES];
	size_t		hashlen = VARSIZE_ANY_EXHDR(hash);
	SpPolicy	policy;

	if (hashlen >= crypto_pwhash_STRBYTES)
		PG_RETURN_BOOL(true);
	memset(buf, 0, sizeof(buf));
	memcpy(buf, VARDATA_ANY(hash), hashlen);
	if (!sp_hash_is_argon2id(buf, hashlen))
		PG_RETURN_BOOL(true);

	sp_policy_load(&policy);
	PG_RETURN_BOOL(crypto_pwhash_str_needs_rehash(buf, policy.hash_opslimit,
												  policy.hash_memlimit) != 0);
}

/* hash_stats() returns this backend's argon2 counters */
Datum
secpolicy_hash_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "hash_stats must return a composite type");
	tupdesc = BlessTupleDesc(tupdesc);

	values[0] = Int64GetDatum(stat_hashes);
	values[1] = Int64GetDatum(stat_verifications);
	values[2] = Int64GetDatum(stat_slot_waits);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
