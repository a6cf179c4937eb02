/*
 * session.c
 *		The session hot path: session_touch(), and the session proven in the
 *		current transaction (current_session_user(), current_session_id()).
 *
 * session_touch() is called on every request of a busy application, so it
 * does no SQL: it probes secpolicy.sessions through its unique index on the
 * token digest and reads the policy row directly.  It is not SECURITY
 * DEFINER and resolves nothing through search_path (relations are found by
 * schema and name), so the caller's search_path cannot influence it; only
 * secpolicy_app may execute it.  The rare writes (last_seen_at at most once
 * per session_touch_interval, and ending an expired session) go through
 * secpolicy.session_mark(), a SECURITY DEFINER SQL function with a pinned
 * search_path, called through fmgr.
 *
 * On a distributed installation (Citus) the session lives on the worker
 * that owns its account: session_touch() reads it there (one single-shard
 * statement, citus.c) and answers by the same rules; a write (an expiry, a
 * coalesced touch) is made by that worker, through
 * secpolicy.session_touch(account_key, token).  The session proved is
 * remembered here, where the caller's transaction runs.
 *
 * The proven session lives in backend memory and is forgotten when the
 * transaction that proved it ends (a transaction callback), so it cannot
 * outlive it, whatever the count of transactions, and cannot be forged with
 * SET (a custom setting could be).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include <sodium.h>

#include "secpolicy.h"

PG_FUNCTION_INFO_V1(secpolicy_session_touch);
PG_FUNCTION_INFO_V1(secpolicy_set_current_session);
PG_FUNCTION_INFO_V1(secpolicy_current_session_user);
PG_FUNCTION_INFO_V1(secpolicy_current_session_id);

/* Longest token accepted; real ones are 47 characters. */
#define MAX_TOKEN_LENGTH	128

static int64 current_user_id = 0;
static int64 current_session_id = 0;

/*
 * Statements (executor starts and utility commands, the log filter's hooks
 * count them) of the current transaction so far: 1 while its first
 * statement runs, which has done nothing before that another connection
 * could not see (a DO block or CALL counts 1, and each statement it runs
 * one more).
 */
uint64		sp_xact_statements = 0;

/* What session_touch reads of a session row. */
typedef struct SessionRow
{
	int64		user_id;
	int64		id;
	TimestampTz created_at;
	TimestampTz last_seen_at;
	bool		ended;
	char	   *end_reason;
} SessionRow;

/* The policy settings session_touch needs. */
typedef struct SessionPolicy
{
	Interval   *idle_timeout;
	Interval   *max_lifetime;
	Interval   *touch_interval;
} SessionPolicy;

/* Remember (or, with user_id 0, forget) the session proven in this transaction. */
static void
set_current(int64 user_id, int64 session_id)
{
	current_user_id = user_id;
	current_session_id = session_id;
}

/* The end of a transaction ends what it proved. */
static void
session_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PREPARE ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		set_current(0, 0);
		sp_xact_statements = 0;
	}
}

/* Register the transaction callback, once per backend. */
void
sp_session_init(void)
{
	RegisterXactCallback(session_xact_callback, NULL);
	/* loaded inside a transaction: what ran before was not counted */
	if (IsTransactionState())
		sp_xact_statements = 2;
}

/* OID of relation secpolicy.<name>; raises if the extension is not installed. */
static Oid
secpolicy_relid(const char *name)
{
	Oid			nsp = get_namespace_oid("secpolicy", false);
	Oid			relid = get_relname_relid(name, nsp);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation secpolicy.%s does not exist", name)));
	return relid;
}

/* Attribute number of column `name`, raising if absent. */
static AttrNumber
column(Relation rel, const char *name)
{
	AttrNumber	att = get_attnum(RelationGetRelid(rel), name);

	if (att == InvalidAttrNumber)
		elog(ERROR, "column %s.%s does not exist", RelationGetRelationName(rel), name);
	return att;
}

/*
 * Read the session settings from the policy row of relation `relid`:
 * secpolicy.policy, or on a distributed installation this node's placement
 * of it (a reference table).
 */
static void
read_policy(Oid relid, SessionPolicy *pol)
{
	Relation	rel = table_open(relid, AccessShareLock);
	TableScanDesc scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	HeapTuple	tup = heap_getnext(scan, ForwardScanDirection);
	TupleDesc	desc = RelationGetDescr(rel);
	bool		isnull;

	if (tup == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("secpolicy.policy has no row")));
	pol->idle_timeout = DatumGetIntervalP(datumCopy(heap_getattr(tup, column(rel, SP_COLUMN(SPC_POLICY_SESSION_IDLE_TIMEOUT)),
																 desc, &isnull), false, sizeof(Interval)));
	pol->max_lifetime = DatumGetIntervalP(datumCopy(heap_getattr(tup, column(rel, SP_COLUMN(SPC_POLICY_SESSION_MAX_LIFETIME)),
																 desc, &isnull), false, sizeof(Interval)));
	pol->touch_interval = DatumGetIntervalP(datumCopy(heap_getattr(tup, column(rel, SP_COLUMN(SPC_POLICY_SESSION_TOUCH_INTERVAL)),
																   desc, &isnull), false, sizeof(Interval)));
	table_endscan(scan);
	table_close(rel, NoLock);
}

/* Find a session by the digest of its token; false when there is none. */
static bool
find_session(bytea *digest, SessionRow *row)
{
	Relation	rel = table_open(secpolicy_relid(SP_RELATION(SPC_SESSIONS_ID)), AccessShareLock);
	Relation	idx = index_open(secpolicy_relid(SP_RELATION(SPC_SESSIONS_TOKEN_KEY)), AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	IndexScanDesc scan;
	ScanKeyData key;
	bool		found = false;

	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_BYTEAEQ, PointerGetDatum(digest));
	scan = index_beginscan(rel, idx, GetActiveSnapshot(), 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	if (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		reason;

		found = true;
		row->user_id = DatumGetInt64(slot_getattr(slot, column(rel, SP_COLUMN(SPC_SESSIONS_USER_ID)), &isnull));
		row->id = DatumGetInt64(slot_getattr(slot, column(rel, SP_COLUMN(SPC_SESSIONS_ID)), &isnull));
		row->created_at = DatumGetTimestampTz(slot_getattr(slot, column(rel, SP_COLUMN(SPC_SESSIONS_CREATED_AT)), &isnull));
		row->last_seen_at = DatumGetTimestampTz(slot_getattr(slot, column(rel, SP_COLUMN(SPC_SESSIONS_LAST_SEEN_AT)), &isnull));
		(void) slot_getattr(slot, column(rel, SP_COLUMN(SPC_SESSIONS_ENDED_AT)), &isnull);
		row->ended = !isnull;
		reason = slot_getattr(slot, column(rel, SP_COLUMN(SPC_SESSIONS_END_REASON)), &isnull);
		row->end_reason = isnull ? NULL : TextDatumGetCString(reason);
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, NoLock);
	table_close(rel, NoLock);
	return found;
}

/* timestamp + interval, with the calendar arithmetic SQL uses. */
static TimestampTz
plus(TimestampTz t, Interval *i)
{
	return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
												   TimestampTzGetDatum(t), IntervalPGetDatum(i)));
}

/*
 * Call secpolicy.session_mark(user_id, session_id, action, at): the SECURITY
 * DEFINER writer.  Returns its status ('active', 'expired' or 'revoked').
 */
static char *
session_mark(const SessionRow *row, const char *action, TimestampTz at)
{
	Oid			argtypes[4] = {INT8OID, INT8OID, TEXTOID, TIMESTAMPTZOID};
	Oid			mark_oid;
	Datum		result;

	/* looked up at each (rare) write: the extension may have been re-created */
	mark_oid = LookupFuncName(list_make2(makeString("secpolicy"), makeString("session_mark")),
							  4, argtypes, false);
	result = OidFunctionCall4(mark_oid, Int64GetDatum(row->user_id), Int64GetDatum(row->id),
							  CStringGetTextDatum(action), TimestampTzGetDatum(at));
	return TextDatumGetCString(result);
}

/* Build the (status, user_id, idle_expires_at) result. */
static Datum
touch_result(FunctionCallInfo fcinfo, const char *status, int64 user_id, TimestampTz idle_expires)
{
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, user_id == 0, idle_expires == 0};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "session_touch must return a composite type");
	tupdesc = BlessTupleDesc(tupdesc);
	values[0] = CStringGetTextDatum(status);
	values[1] = Int64GetDatum(user_id);
	values[2] = TimestampTzGetDatum(idle_expires);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * session_touch(session_token text) returns secpolicy.session_status:
 * active (and the idle deadline moves), expired, revoked or unknown.
 */
Datum
secpolicy_session_touch(PG_FUNCTION_ARGS)
{
	text	   *token;
	bytea	   *digest;
	SessionRow	row;
	SessionPolicy pol;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	TimestampTz idle_deadline,
				life_deadline;
	char	   *status;
	bool		found;
	bool		distributed = sp_distributed();

	/* only an active answer proves a session for this transaction */
	set_current(0, 0);
	sp_logfilter_mark_statement();
	if (PG_ARGISNULL(0))
		return touch_result(fcinfo, "unknown", 0, 0);
	token = PG_GETARG_TEXT_PP(0);
	if (VARSIZE_ANY_EXHDR(token) > MAX_TOKEN_LENGTH)
		return touch_result(fcinfo, "unknown", 0, 0);

	digest = palloc(VARHDRSZ + crypto_hash_sha256_BYTES);
	SET_VARSIZE(digest, VARHDRSZ + crypto_hash_sha256_BYTES);
	crypto_hash_sha256((unsigned char *) VARDATA(digest),
					   (const unsigned char *) VARDATA_ANY(token), VARSIZE_ANY_EXHDR(token));

	if (distributed)
	{
		/* distributed (Citus): read where the session lives, one round trip */
		SpSessionRead r = {0};
		Oid			placement = sp_citus_policy_placement();

		found = sp_citus_session_read(token, digest, !OidIsValid(placement), &r);
		row.user_id = r.user_id;
		row.id = r.id;
		row.created_at = r.created_at;
		row.last_seen_at = r.last_seen_at;
		row.ended = r.ended;
		row.end_reason = r.end_reason;
		pol.idle_timeout = r.idle_timeout;
		pol.max_lifetime = r.max_lifetime;
		pol.touch_interval = r.touch_interval;
		if (found && !row.ended && OidIsValid(placement))
		{
			/* the policy from this node's copy of the reference table */
			PushActiveSnapshot(GetTransactionSnapshot());
			read_policy(placement, &pol);
			PopActiveSnapshot();
		}
	}
	else
	{
		/*
		 * Read with a snapshot of our own that sees everything this
		 * transaction has done so far, as a volatile SQL function would (a
		 * session created by login() earlier in the same statement is found).
		 */
		CommandCounterIncrement();
		PushActiveSnapshot(GetTransactionSnapshot());
		UpdateActiveSnapshotCommandId();
		found = find_session(digest, &row);
		if (found && !row.ended)
			read_policy(secpolicy_relid(SP_RELATION(SPC_POLICY_SESSION_IDLE_TIMEOUT)), &pol);
		PopActiveSnapshot();
	}

	if (!found)
		return touch_result(fcinfo, "unknown", 0, 0);
	if (row.ended)
		return touch_result(fcinfo,
							row.end_reason && (strcmp(row.end_reason, "idle") == 0 ||
											   strcmp(row.end_reason, "lifetime") == 0)
							? "expired" : "revoked",
							row.user_id, 0);

	idle_deadline = plus(row.last_seen_at, pol.idle_timeout);
	life_deadline = plus(row.created_at, pol.max_lifetime);
	if (distributed &&
		(now > life_deadline || now > idle_deadline ||
		 (!XactReadOnly && now >= plus(row.last_seen_at, pol.touch_interval) && now > row.last_seen_at)))
	{
		/* a write (an expiry, a coalesced touch): the worker that owns the
		 * session makes it, by the same rules */
		SpTouchAnswer answer;

		sp_citus_session_touch(token, &answer);
		if (strcmp(answer.status, "active") == 0 && answer.user_id != 0 && answer.session_id != 0)
			set_current(answer.user_id, answer.session_id);
		return touch_result(fcinfo, answer.status, answer.user_id, answer.idle_expires_at);
	}
	if (now > life_deadline || now > idle_deadline)
	{
		/* ended when it really expired, for the reason that came first; a
		 * read-only transaction (a standby) only answers */
		if (!XactReadOnly)
			(void) session_mark(&row, life_deadline <= idle_deadline ? "lifetime" : "idle",
								Min(idle_deadline, life_deadline));
		return touch_result(fcinfo, "expired", row.user_id, 0);
	}

	/* coalesced write: at most once per session_touch_interval */
	if (!XactReadOnly && now >= plus(row.last_seen_at, pol.touch_interval) && now > row.last_seen_at)
	{
		status = session_mark(&row, "touch", now);
		if (strcmp(status, "active") != 0)
			return touch_result(fcinfo, status, row.user_id, 0);
		idle_deadline = plus(now, pol.idle_timeout);
	}

	set_current(row.user_id, row.id);
	return touch_result(fcinfo, "active", row.user_id, Min(idle_deadline, life_deadline));
}

/* set_current_session(user_id bigint, session_id bigint): internal; NULLs clear it */
Datum
secpolicy_set_current_session(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		set_current(0, 0);
	else
		set_current(PG_GETARG_INT64(0), PG_GETARG_INT64(1));
	PG_RETURN_VOID();
}

/* Has this transaction proven a session? */
static bool
current_valid(void)
{
	return current_user_id != 0;
}

/* current_session_user() returns bigint: the user of the session touched in this transaction */
Datum
secpolicy_current_session_user(PG_FUNCTION_ARGS)
{
	if (!current_valid())
		PG_RETURN_NULL();
	PG_RETURN_INT64(current_user_id);
}

/* current_session_id() returns bigint: the id of that session */
Datum
secpolicy_current_session_id(PG_FUNCTION_ARGS)
{
	if (!current_valid())
		PG_RETURN_NULL();
	PG_RETURN_INT64(current_session_id);
}
