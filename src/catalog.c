/*
 * catalog.c
 *		What the C code reads of the extension's tables by name: one list,
 *		used by the code that reads (session.c, trigger.c) and checked against
 *		the catalog by a test (test/c_sql_agreements.sql, through
 *		catalog_reads()), so that a renamed column fails a test instead of a
 *		login.  The columns that C code reads through SQL text (policy.c,
 *		trigger.c, blocklist.c) are listed too: those statements are prepared
 *		at first use, and the list lets the test see them all at once.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "secpolicy.h"

PG_FUNCTION_INFO_V1(secpolicy_catalog_reads);

const SpColumnRef sp_columns[SPC_COUNT] = {
	/* session.c reads these directly (no SQL) on every session_touch */
	[SPC_POLICY_SESSION_IDLE_TIMEOUT] = {"policy", "session_idle_timeout", "interval"},
	[SPC_POLICY_SESSION_MAX_LIFETIME] = {"policy", "session_max_lifetime", "interval"},
	[SPC_POLICY_SESSION_TOUCH_INTERVAL] = {"policy", "session_touch_interval", "interval"},
	[SPC_SESSIONS_USER_ID] = {"sessions", "user_id", "bigint"},
	[SPC_SESSIONS_ID] = {"sessions", "id", "bigint"},
	[SPC_SESSIONS_CREATED_AT] = {"sessions", "created_at", "timestamp with time zone"},
	[SPC_SESSIONS_LAST_SEEN_AT] = {"sessions", "last_seen_at", "timestamp with time zone"},
	[SPC_SESSIONS_ENDED_AT] = {"sessions", "ended_at", "timestamp with time zone"},
	[SPC_SESSIONS_END_REASON] = {"sessions", "end_reason", "text"},
	[SPC_SESSIONS_TOKEN_KEY] = {"sessions_token_key", NULL, "unique index on (token_digest)"},
	/* trigger.c's users trigger finds these by name in the row it is given */
	[SPC_USERS_ID] = {"users", "id", "bigint"},
	[SPC_USERS_USERNAME] = {"users", "username", "text"},
	[SPC_USERS_PASSWORD_HASH] = {"users", "password_hash", "text"},
	[SPC_USERS_PASSWORD_CHANGED_AT] = {"users", "password_changed_at", "timestamp with time zone"},
	[SPC_USERS_PASSWORD_CHECKED_AT] = {"users", "password_checked_at", "timestamp with time zone"},
	/* read through SQL text */
	[SPC_HISTORY_USER_ID] = {"password_history", "user_id", "bigint"},
	[SPC_HISTORY_ID] = {"password_history", "id", "bigint"},
	[SPC_HISTORY_PASSWORD_HASH] = {"password_history", "password_hash", "text"},
	[SPC_BLOCKLIST_WORD] = {"password_blocklist", "word", "text"},
	[SPC_POLICY_MIN_LENGTH] = {"policy", "min_length", "integer"},
	[SPC_POLICY_MAX_LENGTH] = {"policy", "max_length", "integer"},
	[SPC_POLICY_REQUIRE_UPPER] = {"policy", "require_upper", "boolean"},
	[SPC_POLICY_REQUIRE_LOWER] = {"policy", "require_lower", "boolean"},
	[SPC_POLICY_REQUIRE_DIGIT] = {"policy", "require_digit", "boolean"},
	[SPC_POLICY_REQUIRE_SYMBOL] = {"policy", "require_symbol", "boolean"},
	[SPC_POLICY_CHECK_USERNAME] = {"policy", "check_username", "boolean"},
	[SPC_POLICY_CHECK_BLOCKLIST] = {"policy", "check_blocklist", "boolean"},
	[SPC_POLICY_HISTORY_DEPTH] = {"policy", "history_depth", "integer"},
	[SPC_POLICY_HASH_OPSLIMIT] = {"policy", "hash_opslimit", "integer"},
	[SPC_POLICY_HASH_MEMLIMIT] = {"policy", "hash_memlimit", "bigint"},
	/* the role policy reads these through SQL text (roles_password.c, roles_worker.c) */
	[SPC_POLICY_MAX_FAILED_ATTEMPTS] = {"policy", "max_failed_attempts", "integer"},
	[SPC_ROLE_HISTORY_ROLE_NAME] = {"role_password_history", "role_name", "text"},
	[SPC_ROLE_HISTORY_ID] = {"role_password_history", "id", "bigint"},
	[SPC_ROLE_HISTORY_PASSWORD_HASH] = {"role_password_history", "password_hash", "text"},
	[SPC_ROLE_STATE_ROLE_NAME] = {"role_state", "role_name", "text"},
	[SPC_ROLE_STATE_FAILED_ATTEMPTS] = {"role_state", "failed_attempts", "integer"},
	[SPC_ROLE_STATE_LOCKED_AT] = {"role_state", "locked_at", "timestamp with time zone"},
	[SPC_ROLE_STATE_CLEARED_AT] = {"role_state", "cleared_at", "timestamp with time zone"},
	[SPC_ROLE_STATE_LAST_FAILED_AT] = {"role_state", "last_failed_at", "timestamp with time zone"},
	[SPC_ROLE_LINKS_ROLE_NAME] = {"role_links", "role_name", "text"},
	[SPC_ROLE_LINKS_USER_ID] = {"role_links", "user_id", "bigint"},
	[SPC_ROLE_LINKS_MFA_REQUIRED] = {"role_links", "mfa_required", "boolean"},
	[SPC_ACCESS_ID] = {"database_access", "id", "bigint"},
	[SPC_ACCESS_USER_ID] = {"database_access", "user_id", "bigint"},
	[SPC_ACCESS_ROLE_NAME] = {"database_access", "role_name", "text"},
	[SPC_ACCESS_OPENED_AT] = {"database_access", "opened_at", "timestamp with time zone"},
	[SPC_ACCESS_EXPIRES_AT] = {"database_access", "expires_at", "timestamp with time zone"},
	[SPC_ACCESS_CLIENT_ADDR] = {"database_access", "client_addr", "inet"},
	[SPC_ACCESS_CLOSED_AT] = {"database_access", "closed_at", "timestamp with time zone"},
	[SPC_ACCESS_CLOSE_REASON] = {"database_access", "close_reason", "text"},
};

/*
 * catalog_reads() returns table (relation text, column_name text, type text):
 * the list above (column_name NULL for a relation read as a whole: an index).
 */
Datum
secpolicy_catalog_reads(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleDesc	tupdesc;
	Tuplestorestate *store;
	MemoryContext old;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) || !(rsinfo->allowedModes & SFRM_Materialize))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("catalog_reads() must be called in the FROM clause")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "catalog_reads must return a composite type");
	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	tupdesc = CreateTupleDescCopy(tupdesc);
	store = tuplestore_begin_heap(true, false, work_mem);
	MemoryContextSwitchTo(old);

	for (int i = 0; i < SPC_COUNT; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, sp_columns[i].column == NULL, false};

		values[0] = CStringGetTextDatum(sp_columns[i].relation);
		values[1] = sp_columns[i].column ? CStringGetTextDatum(sp_columns[i].column) : (Datum) 0;
		values[2] = CStringGetTextDatum(sp_columns[i].type);
		tuplestore_putvalues(store, tupdesc, values, nulls);
	}
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = store;
	rsinfo->setDesc = tupdesc;
	return (Datum) 0;
}
