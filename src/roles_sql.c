/*
 * roles_sql.c
 *		The SQL-callable helpers of the role policy, and the changes of the
 *		shared state that commit with a transaction.
 *
 * The SQL functions of the policy database (unlock_role, link_role,
 * open_database_access, the offboarding triggers) change the tables in their
 * transaction and ask for the matching change of the shared state here; it
 * is applied, journaled and fsync'd when the transaction commits, and
 * forgotten when it (or the savepoint that asked) rolls back, so that the
 * shared state never holds what the tables do not.  PREPARE TRANSACTION of
 * such a transaction is refused: its changes could not follow it.
 *
 * One change is immediate: role_hold() refuses new connections of a role
 * being disabled from the moment it is called until the transaction ends,
 * and terminates the role's connections at once and again at commit, so
 * that none slips in between the call and the commit of NOLOGIN.
 */
#include "postgres.h"

#include <signal.h>
#include <sys/socket.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/inet.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "secpolicy.h"
#include "roles.h"

PG_FUNCTION_INFO_V1(secpolicy_role_policy_status);
PG_FUNCTION_INFO_V1(secpolicy_require_role_policy);
PG_FUNCTION_INFO_V1(secpolicy_role_state_live);
PG_FUNCTION_INFO_V1(secpolicy_role_unlock_at_commit);
PG_FUNCTION_INFO_V1(secpolicy_role_link_at_commit);
PG_FUNCTION_INFO_V1(secpolicy_role_window_at_commit);
PG_FUNCTION_INFO_V1(secpolicy_role_hold);
PG_FUNCTION_INFO_V1(secpolicy_role_may_connect);

typedef enum PendingKind
{
	PA_UNLOCK,
	PA_LINK,
	PA_WINDOW,
	PA_HOLD
} PendingKind;

/* A change of the shared state that waits for the commit. */
typedef struct PendingAction
{
	PendingKind kind;
	int			level;			/* transaction nesting level that asked */
	Oid			roleid;
	int64		user_id;
	bool		mfa;
	int64		window_id;
	TimestampTz expires_at;		/* 0: close the window */
	uint8		family;
	uint8		bits;
	uint8		addr[16];
} PendingAction;

static PendingAction *pending = NULL;
static int	npending = 0;
static int	maxpending = 0;

/* Raise 55000 unless the role policy works in this database. */
static void
require_active(void)
{
	if (sp_roles == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the role policy needs shared_preload_libraries = 'secpolicy'"),
				 errhint("Add secpolicy to shared_preload_libraries and restart the server.")));
	if (!sp_roles_in_policy_database())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the role policy is administered in the policy database \"%s\"", sp_roles_database),
				 errhint("Connect to database \"%s\" (secpolicy.database).", sp_roles_database)));
}

/* Remember a change for the commit. */
static PendingAction *
pending_add(PendingKind kind, Oid roleid)
{
	PendingAction *a;

	if (npending == maxpending)
	{
		maxpending = maxpending == 0 ? 16 : maxpending * 2;
		pending = pending == NULL
			? MemoryContextAlloc(TopMemoryContext, maxpending * sizeof(PendingAction))
			: repalloc(pending, maxpending * sizeof(PendingAction));
	}
	a = &pending[npending++];
	memset(a, 0, sizeof(*a));
	a->kind = kind;
	a->roleid = roleid;
	a->level = GetCurrentTransactionNestLevel();
	return a;
}

/* Send SIGTERM to the backends of a role (but this one); returns how many. */
static int
terminate_role_backends(Oid roleid)
{
	int			n = 0;

	for (uint32 i = 0; i < ProcGlobal->allProcCount; i++)
	{
		PGPROC	   *proc = &ProcGlobal->allProcs[i];
		int			pid = proc->pid;

		if (pid == 0 || pid == MyProcPid || proc->roleId != roleid)
			continue;
#if PG_VERSION_NUM < 170000
		if (proc->isBackgroundWorker)
			continue;
#endif
		if (kill(pid, SIGTERM) == 0)
			n++;
	}
	return n;
}

/* Let go of a hold this backend has on a role.  Caller holds the lock exclusively. */
static void
release_hold(Oid roleid)
{
	RoleEntry  *e = sp_roles_entry(roleid, false);

	if (e != NULL && e->hold_pid == MyProcPid)
		e->hold_pid = 0;
}

/* Apply one change to the shared state and journal it.  Caller holds the lock exclusively. */
static void
apply(const PendingAction *a, TimestampTz now)
{
	RoleEntry  *e;
	AccessWindow *w;

	if (a->kind != PA_HOLD)
		sp_roles->changes++;
	switch (a->kind)
	{
		case PA_UNLOCK:
		case PA_LINK:
			e = sp_roles_entry(a->roleid, true);
			if (e == NULL)
			{
				ereport(WARNING,
						(errmsg("secpolicy: no room in shared memory for role %u", a->roleid),
						 errhint("Raise secpolicy.max_roles.")));
				return;
			}
			if (a->kind == PA_UNLOCK)
			{
				e->failures = 0;
				e->locked_at = 0;
				e->cleared_at = now;
			}
			else
			{
				e->user_id = a->user_id;
				e->mfa_required = a->user_id != 0 && a->mfa;
				if (a->user_id == 0)
					(void) sp_roles_close_windows(a->roleid, false);
			}
			e->dirty = true;
			sp_roles_journal_role(e);
			break;
		case PA_WINDOW:
			w = sp_roles_window_slot(a->window_id, a->expires_at != 0);
			if (w == NULL)
			{
				if (a->expires_at != 0)
					ereport(WARNING,
							(errmsg("secpolicy: no room in shared memory for an access window of role %u", a->roleid),
							 errhint("Raise secpolicy.max_roles.")));
				return;
			}
			w->roleid = a->roleid;
			w->user_id = a->user_id;
			w->window_id = a->window_id;
			w->expires_at = a->expires_at;
			w->family = a->family;
			w->bits = a->bits;
			memcpy(w->addr, a->addr, sizeof(w->addr));
			sp_roles_journal_window(w);
			if (a->expires_at == 0)
				memset(w, 0, sizeof(AccessWindow));
			break;
		case PA_HOLD:
			release_hold(a->roleid);
			break;
	}
}

/* At commit: apply what the transaction asked for; at abort: forget it. */
static void
roles_xact_callback(XactEvent event, void *arg)
{
	TimestampTz now;
	bool		any = false;

	if (npending == 0)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot PREPARE a transaction that changed the role policy's state")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (sp_roles == NULL)
				break;
			/* connections that slipped in before NOLOGIN was visible */
			for (int i = 0; i < npending; i++)
				if (pending[i].kind == PA_HOLD)
					(void) terminate_role_backends(pending[i].roleid);
			now = GetCurrentTimestamp();
			LWLockAcquire(sp_roles->lock, LW_EXCLUSIVE);
			for (int i = 0; i < npending; i++)
			{
				apply(&pending[i], now);
				any = any || pending[i].kind != PA_HOLD;
			}
			if (any)
				(void) sp_roles_journal_sync(WARNING);
			LWLockRelease(sp_roles->lock);
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			if (sp_roles == NULL)
				break;
			LWLockAcquire(sp_roles->lock, LW_EXCLUSIVE);
			for (int i = 0; i < npending; i++)
				if (pending[i].kind == PA_HOLD)
					release_hold(pending[i].roleid);
			LWLockRelease(sp_roles->lock);
			break;
		default:
			return;
	}
	npending = 0;
}

/*
 * A savepoint rolled back: forget what it asked for (and let go of its
 * holds); one released: its changes now belong to the enclosing level.
 */
static void
roles_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	int			kept = 0;

	if (npending == 0)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		for (int i = 0; i < npending; i++)
		{
			if (pending[i].level < level)
				pending[kept++] = pending[i];
			else if (pending[i].kind == PA_HOLD && sp_roles != NULL)
			{
				LWLockAcquire(sp_roles->lock, LW_EXCLUSIVE);
				release_hold(pending[i].roleid);
				LWLockRelease(sp_roles->lock);
			}
		}
		npending = kept;
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		for (int i = 0; i < npending; i++)
			if (pending[i].level >= level)
				pending[i].level = level - 1;
	}
}

/* Register the transaction callbacks. */
void
sp_roles_sql_init(void)
{
	RegisterXactCallback(roles_xact_callback, NULL);
	RegisterSubXactCallback(roles_subxact_callback, NULL);
}

/*
 * role_policy_status() returns (preloaded, policy_database, in_policy_database,
 * active, max_failed_attempts, roles, open_windows, queued, dropped,
 * journal_records): whether the role policy is enforced, the limit the
 * authentication hook applies, and how full its shared state is.
 */
Datum
secpolicy_role_policy_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[10];
	bool		nulls[10];
	int			roles = 0;
	int			windows = 0;
	TimestampTz now = GetCurrentTimestamp();

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "role_policy_status must return a composite type");
	tupdesc = BlessTupleDesc(tupdesc);
	memset(nulls, 0, sizeof(nulls));
	values[0] = BoolGetDatum(sp_roles != NULL);
	values[1] = CStringGetTextDatum(sp_roles_database ? sp_roles_database : "");
	values[2] = BoolGetDatum(sp_roles_in_policy_database());
	if (sp_roles == NULL)
	{
		values[3] = BoolGetDatum(false);
		for (int i = 4; i < 10; i++)
			nulls[i] = true;
	}
	else
	{
		LWLockAcquire(sp_roles->lock, LW_SHARED);
		roles = (int) hash_get_num_entries(sp_role_hash);
		for (int i = 0; i < sp_roles->nwindows; i++)
			windows += sp_roles->windows[i].roleid != InvalidOid && sp_roles->windows[i].expires_at > now;
		values[3] = BoolGetDatum(sp_roles->active);
		values[4] = Int32GetDatum(sp_roles->max_failed);
		values[5] = Int32GetDatum(roles);
		values[6] = Int32GetDatum(windows);
		values[9] = Int64GetDatum((int64) sp_roles->journal_records);
		LWLockRelease(sp_roles->lock);
		SpinLockAcquire(&sp_roles->qlock);
		values[7] = Int32GetDatum((int32) sp_roles->qcount);
		values[8] = Int64GetDatum((int64) sp_roles->qdropped);
		SpinLockRelease(&sp_roles->qlock);
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* require_role_policy(): raises 55000 unless the role policy works in this database. */
Datum
secpolicy_require_role_policy(PG_FUNCTION_ARGS)
{
	require_active();
	PG_RETURN_VOID();
}

/* A timestamp column, NULL for 0. */
static void
put_time(Datum *values, bool *nulls, int i, TimestampTz t)
{
	values[i] = TimestampTzGetDatum(t);
	nulls[i] = t == 0;
}

/*
 * role_state_live() returns setof (role_oid, failed_attempts, locked_at,
 * last_failed_at, last_login_at, cleared_at, user_id, mfa_required): the
 * shared state of every role it holds (nothing without preloading).
 */
Datum
secpolicy_role_state_live(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleDesc	tupdesc;
	Tuplestorestate *store;
	MemoryContext oldcxt;
	RoleEntry  *copy = NULL;
	long		n = 0;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		(rsinfo->allowedModes & SFRM_Materialize) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("role_state_live must be called in a context that accepts a set")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "role_state_live must return a composite type");

	oldcxt = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	tupdesc = CreateTupleDescCopy(tupdesc);
	store = tuplestore_begin_heap(true, false, work_mem);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = store;
	rsinfo->setDesc = tupdesc;
	MemoryContextSwitchTo(oldcxt);

	if (sp_roles == NULL)
		return (Datum) 0;

	LWLockAcquire(sp_roles->lock, LW_SHARED);
	{
		HASH_SEQ_STATUS seq;
		RoleEntry  *e;
		long		max = hash_get_num_entries(sp_role_hash);

		copy = palloc(Max(max, 1) * sizeof(RoleEntry));
		hash_seq_init(&seq, sp_role_hash);
		while ((e = (RoleEntry *) hash_seq_search(&seq)) != NULL)
		{
			if (n < max)
				copy[n++] = *e;
		}
	}
	LWLockRelease(sp_roles->lock);

	for (long i = 0; i < n; i++)
	{
		Datum		values[8];
		bool		nulls[8];
		RoleEntry  *e = &copy[i];

		memset(nulls, 0, sizeof(nulls));
		values[0] = ObjectIdGetDatum(e->roleid);
		values[1] = Int32GetDatum(e->failures);
		put_time(values, nulls, 2, e->locked_at);
		put_time(values, nulls, 3, e->last_failure_at);
		put_time(values, nulls, 4, e->last_success_at);
		put_time(values, nulls, 5, e->cleared_at);
		values[6] = Int64GetDatum(e->user_id);
		nulls[6] = e->user_id == 0;
		values[7] = BoolGetDatum(e->mfa_required);
		tuplestore_putvalues(store, tupdesc, values, nulls);
	}
	return (Datum) 0;
}

/* role_unlock_at_commit(role oid): the role's failures and lock end when this transaction commits. */
Datum
secpolicy_role_unlock_at_commit(PG_FUNCTION_ARGS)
{
	if (sp_roles != NULL)
		(void) pending_add(PA_UNLOCK, PG_GETARG_OID(0));
	PG_RETURN_VOID();
}

/*
 * role_link_at_commit(role oid, user_id bigint, mfa_required boolean): the
 * role's link (NULL user_id: none, and its windows close) takes effect when
 * this transaction commits.
 */
Datum
secpolicy_role_link_at_commit(PG_FUNCTION_ARGS)
{
	PendingAction *a;

	if (sp_roles == NULL || PG_ARGISNULL(0))
		PG_RETURN_VOID();
	a = pending_add(PA_LINK, PG_GETARG_OID(0));
	a->user_id = PG_ARGISNULL(1) ? 0 : PG_GETARG_INT64(1);
	a->mfa = !PG_ARGISNULL(2) && PG_GETARG_BOOL(2);
	PG_RETURN_VOID();
}

/*
 * role_window_at_commit(role oid, user_id bigint, window_id bigint,
 * expires_at timestamptz, client_addr inet): an access window opens (or,
 * with a NULL expires_at, closes) when this transaction commits.
 */
Datum
secpolicy_role_window_at_commit(PG_FUNCTION_ARGS)
{
	PendingAction *a;

	if (sp_roles == NULL || PG_ARGISNULL(0) || PG_ARGISNULL(2))
		PG_RETURN_VOID();
	a = pending_add(PA_WINDOW, PG_GETARG_OID(0));
	a->user_id = PG_ARGISNULL(1) ? 0 : PG_GETARG_INT64(1);
	a->window_id = PG_GETARG_INT64(2);
	a->expires_at = PG_ARGISNULL(3) ? 0 : PG_GETARG_TIMESTAMPTZ(3);
	if (!PG_ARGISNULL(4))
	{
		inet	   *ip = PG_GETARG_INET_PP(4);

		a->family = ip_family(ip);
		a->bits = ip_bits(ip);
		memcpy(a->addr, ip_addr(ip), ip_addrsize(ip));
	}
	PG_RETURN_VOID();
}

/*
 * role_hold(role oid) returns integer: new connections of the role are
 * refused until this transaction ends; its connections are terminated now
 * (the count returned) and again at commit.  Without preloading only the
 * termination happens.
 */
Datum
secpolicy_role_hold(PG_FUNCTION_ARGS)
{
	Oid			roleid = PG_GETARG_OID(0);

	if (sp_roles != NULL)
	{
		RoleEntry  *e;

		LWLockAcquire(sp_roles->lock, LW_EXCLUSIVE);
		e = sp_roles_entry(roleid, true);
		if (e != NULL)
			e->hold_pid = MyProcPid;
		LWLockRelease(sp_roles->lock);
		if (e != NULL)
			(void) pending_add(PA_HOLD, roleid);
	}
	PG_RETURN_INT32(terminate_role_backends(roleid));
}

/*
 * role_may_connect(role oid, client_addr inet, method text) returns text:
 * would the role policy let a password login of the role from this address
 * in now?  'ok', 'disabled' (being disabled), 'no_access_window', 'locked',
 * or 'unavailable' (no role policy: not preloaded, or not active).  With a
 * method, a refusal is queued for login_attempts as an attempt of that
 * method (PgBouncer's auth_query).
 */
Datum
secpolicy_role_may_connect(PG_FUNCTION_ARGS)
{
	Oid			roleid;
	TimestampTz now = GetCurrentTimestamp();
	const char *answer = "ok";
	uint8		family = 0;
	uint8		addr[16];
	bool		locked = false;
	bool		mfa = false;
	bool		window = false;
	int			hold_pid = 0;
	RoleEntry  *e;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	roleid = PG_GETARG_OID(0);
	if (sp_roles == NULL || !sp_roles->active)
		PG_RETURN_TEXT_P(cstring_to_text("unavailable"));
	memset(addr, 0, sizeof(addr));
	if (!PG_ARGISNULL(1))
	{
		inet	   *ip = PG_GETARG_INET_PP(1);

		family = ip_family(ip);
		memcpy(addr, ip_addr(ip), ip_addrsize(ip));
	}

	LWLockAcquire(sp_roles->lock, LW_SHARED);
	e = sp_roles_entry(roleid, false);
	if (e != NULL)
	{
		locked = e->locked_at != 0;
		mfa = e->mfa_required;
		hold_pid = e->hold_pid;
		for (int i = 0; mfa && !window && i < sp_roles->nwindows; i++)
		{
			const AccessWindow *w = &sp_roles->windows[i];
			int			bytes = w->bits / 8;
			int			rest = w->bits % 8;

			if (w->roleid != roleid || w->expires_at <= now)
				continue;
			if (w->family == 0)
				window = true;
			else if (w->family == family && memcmp(w->addr, addr, bytes) == 0 &&
					 (rest == 0 || ((w->addr[bytes] ^ addr[bytes]) & (0xff << (8 - rest))) == 0))
				window = true;
		}
	}
	LWLockRelease(sp_roles->lock);

	if (hold_pid != 0 && BackendPidGetProc(hold_pid) != NULL)
		answer = "disabled";
	else if (mfa && !window)
		answer = "no_access_window";
	else if (locked && !(superuser_arg(roleid) && sp_roles_exempt_superusers))
		answer = "locked";

	if (!PG_ARGISNULL(2) && strcmp(answer, "ok") != 0)
	{
		AttemptRecord rec;
		char	   *name = GetUserNameFromId(roleid, true);
		char	   *db = get_database_name(MyDatabaseId);

		memset(&rec, 0, sizeof(rec));
		rec.at = now;
		strlcpy(rec.role, name ? name : "", sizeof(rec.role));
		strlcpy(rec.database, db ? db : "", sizeof(rec.database));
		if (!PG_ARGISNULL(1))
			strlcpy(rec.addr, DatumGetCString(DirectFunctionCall1(inet_out, PG_GETARG_DATUM(1))),
					sizeof(rec.addr));
		strlcpy(rec.method, text_to_cstring(PG_GETARG_TEXT_PP(2)), sizeof(rec.method));
		strlcpy(rec.outcome, answer, sizeof(rec.outcome));
		rec.success = false;
		sp_roles_queue(&rec);
	}
	PG_RETURN_TEXT_P(cstring_to_text(answer));
}
