/*
 * roles_worker.c
 *		The background worker of the role policy, connected to the policy
 *		database (secpolicy.database) as the bootstrap superuser.
 *
 * Every second (sooner when the attempt queue is half full) it
 *   - writes the queued database authentication attempts to login_attempts
 *     (stage 'database'), through secpolicy.record_database_attempts();
 *   - mirrors the roles whose shared state changed into secpolicy.role_state,
 *     through secpolicy.sync_role_state(), which audits and announces new
 *     locks and closes the lock's access windows in the table;
 *   - reads the policy's max_failed_attempts for the hook;
 *   - fsyncs what was appended to the journal, and rewrites the journal as
 *     a snapshot when it has grown.
 * When it starts (or the extension appears in the policy database) it loads
 * the links and the open windows from the tables, which are authoritative for
 * them, and merges the counters and locks of secpolicy.role_state that are
 * newer than the shared state's (after a restore, pg_upgrade or fail-over,
 * where the journal is new).  Every ten seconds it forgets roles that no
 * longer exist.
 *
 * Without the extension in the policy database the role policy is inactive:
 * the hook counts and refuses nothing, and queued attempts are dropped.
 */
#include "postgres.h"

#include <sys/socket.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inet.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#if PG_VERSION_NUM >= 140000
#include "utils/wait_event.h"
#endif

#include "secpolicy.h"
#include "roles.h"

/* Attempts written per statement. */
#define BATCH_SIZE		1024
/* A batch that fails this often is dropped (and the loss logged). */
#define BATCH_RETRIES	5

static AttemptRecord *batch = NULL;
static int	nbatch = 0;
static int	batch_failures = 0;
static bool loaded = false;
static uint64 cycles = 0;

/* Register the worker (shared_preload_libraries only). */
void
sp_roles_worker_register(void)
{
	BackgroundWorker w;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = 5;
	strlcpy(w.bgw_library_name, "secpolicy", BGW_MAXLEN);
	strlcpy(w.bgw_function_name, "secpolicy_roles_worker_main", BGW_MAXLEN);
	strlcpy(w.bgw_name, "secpolicy role policy", BGW_MAXLEN);
	strlcpy(w.bgw_type, "secpolicy role policy", BGW_MAXLEN);
	RegisterBackgroundWorker(&w);
}

/*
 * A C string as text valid in this database's encoding.  The names of a
 * connection attempt are the client's bytes (a user or database name in any
 * encoding, cut at a byte limit): a byte that does not start a valid
 * character is written as the four characters \xNN, as utf8_bytes() does,
 * so that login_attempts never holds what the database cannot read, dump or
 * restore, and one such attempt cannot make a batch of others fail.
 */
static Datum
valid_text(const char *s)
{
	int			len = strlen(s);
	int			enc = GetDatabaseEncoding();
	StringInfoData buf;

	if (pg_verify_mbstr(enc, s, len, true))
		return CStringGetTextDatum(s);
	initStringInfo(&buf);
	while (len > 0)
	{
		int			l = pg_encoding_mblen(enc, s);

		if (l <= len && pg_verify_mbstr(enc, s, l, true))
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
	return CStringGetTextDatum(buf.data);
}

/* A text[] of n C strings (valid_text). */
static Datum
text_array(char **strs, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		d[i] = valid_text(strs[i]);
	return PointerGetDatum(construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* An array of n by-value datums of a type, with NULLs where nulls[i]. */
static Datum
value_array(Datum *d, bool *nulls, int n, Oid type, int len, bool byval, char align)
{
	int			dims[1] = {n};
	int			lbs[1] = {1};

	return PointerGetDatum(construct_md_array(d, nulls, 1, dims, lbs, type, len, byval, align));
}

/* Run an SQL statement with arguments; raise on failure. */
static void
run(const char *sql, int nargs, Oid *types, Datum *args)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, args, NULL, false, 0);

	if (rc < 0)
		elog(ERROR, "secpolicy role worker: \"%s\" failed: %s", sql, SPI_result_code_string(rc));
}

/* Write the queued attempts (those of a failed batch first). */
static void
write_attempts(void)
{
	if (batch == NULL)
		batch = MemoryContextAlloc(TopMemoryContext, BATCH_SIZE * sizeof(AttemptRecord));
	for (;;)
	{
		Oid			types[9] = {TIMESTAMPTZARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
		TEXTARRAYOID, BOOLARRAYOID, BOOLARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
		Datum		args[9];
		Datum	   *at;
		Datum	   *ssl;
		Datum	   *ok;
		bool	   *nonulls;
		char	  **role,
				  **db,
				  **addr,
				  **method,
				  **outcome,
				  **app;

		if (nbatch == 0)
			nbatch = sp_roles_dequeue(batch, BATCH_SIZE);
		if (nbatch == 0)
			return;
		at = palloc(sizeof(Datum) * nbatch);
		ssl = palloc(sizeof(Datum) * nbatch);
		ok = palloc(sizeof(Datum) * nbatch);
		nonulls = palloc0(sizeof(bool) * nbatch);
		role = palloc(sizeof(char *) * nbatch);
		db = palloc(sizeof(char *) * nbatch);
		addr = palloc(sizeof(char *) * nbatch);
		method = palloc(sizeof(char *) * nbatch);
		outcome = palloc(sizeof(char *) * nbatch);
		app = palloc(sizeof(char *) * nbatch);
		for (int i = 0; i < nbatch; i++)
		{
			at[i] = TimestampTzGetDatum(batch[i].at);
			ssl[i] = BoolGetDatum(batch[i].ssl);
			ok[i] = BoolGetDatum(batch[i].success);
			role[i] = batch[i].role;
			db[i] = batch[i].database;
			addr[i] = batch[i].addr;
			method[i] = batch[i].method;
			outcome[i] = batch[i].outcome;
			app[i] = batch[i].application;
		}
		args[0] = value_array(at, nonulls, nbatch, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
		args[1] = text_array(role, nbatch);
		args[2] = text_array(db, nbatch);
		args[3] = text_array(addr, nbatch);
		args[4] = text_array(method, nbatch);
		args[5] = value_array(ssl, nonulls, nbatch, BOOLOID, 1, true, TYPALIGN_CHAR);
		args[6] = value_array(ok, nonulls, nbatch, BOOLOID, 1, true, TYPALIGN_CHAR);
		args[7] = text_array(outcome, nbatch);
		args[8] = text_array(app, nbatch);
		run("SELECT secpolicy.record_database_attempts($1, $2, $3, $4, $5, $6, $7, $8, $9)",
			9, types, args);
		nbatch = 0;
		batch_failures = 0;
	}
}

/* Is a role entry's mirrored state the same as a copy's (so no longer dirty)? */
static bool
same_state(const RoleEntry *a, const RoleEntry *b)
{
	return a->failures == b->failures && a->locked_at == b->locked_at &&
		a->cleared_at == b->cleared_at && a->last_failure_at == b->last_failure_at &&
		a->last_success_at == b->last_success_at;
}

/*
 * Mirror the changed roles into secpolicy.role_state.  Returns the copies
 * written (their count in *n) so that, once the transaction has committed,
 * their entries can be marked clean.
 */
static RoleEntry *
mirror_states(int *n)
{
	HASH_SEQ_STATUS seq;
	RoleEntry  *e;
	RoleEntry  *copy;
	long		max;
	int			k = 0;

	LWLockAcquire(sp_roles->lock, LW_SHARED);
	max = hash_get_num_entries(sp_role_hash);
	copy = MemoryContextAlloc(TopMemoryContext, sizeof(RoleEntry) * Max(max, 1));
	hash_seq_init(&seq, sp_role_hash);
	while ((e = (RoleEntry *) hash_seq_search(&seq)) != NULL)
		if (e->dirty && k < max)
			copy[k++] = *e;
	LWLockRelease(sp_roles->lock);

	if (k > 0)
	{
		Oid			types[6] = {OIDARRAYOID, INT4ARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID,
		TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID};
		Datum		args[6];
		Datum	   *d[6];
		bool	   *nl[6];

		for (int c = 0; c < 6; c++)
		{
			d[c] = palloc(sizeof(Datum) * k);
			nl[c] = palloc0(sizeof(bool) * k);
		}
		for (int i = 0; i < k; i++)
		{
			d[0][i] = ObjectIdGetDatum(copy[i].roleid);
			d[1][i] = Int32GetDatum(copy[i].failures);
			d[2][i] = TimestampTzGetDatum(copy[i].locked_at);
			nl[2][i] = copy[i].locked_at == 0;
			d[3][i] = TimestampTzGetDatum(copy[i].cleared_at);
			nl[3][i] = copy[i].cleared_at == 0;
			d[4][i] = TimestampTzGetDatum(copy[i].last_failure_at);
			nl[4][i] = copy[i].last_failure_at == 0;
			d[5][i] = TimestampTzGetDatum(copy[i].last_success_at);
			nl[5][i] = copy[i].last_success_at == 0;
		}
		args[0] = value_array(d[0], nl[0], k, OIDOID, sizeof(Oid), true, TYPALIGN_INT);
		args[1] = value_array(d[1], nl[1], k, INT4OID, 4, true, TYPALIGN_INT);
		for (int c = 2; c < 6; c++)
			args[c] = value_array(d[c], nl[c], k, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
		run("SELECT secpolicy.sync_role_state($1, $2, $3, $4, $5, $6)", 6, types, args);
	}
	*n = k;
	return copy;
}

/* After the commit: entries unchanged since they were copied are clean. */
static void
mark_clean(RoleEntry *copy, int n)
{
	if (n > 0)
	{
		LWLockAcquire(sp_roles->lock, LW_EXCLUSIVE);
		for (int i = 0; i < n; i++)
		{
			RoleEntry  *e = sp_roles_entry(copy[i].roleid, false);

			if (e != NULL && same_state(e, &copy[i]))
				e->dirty = false;
		}
		LWLockRelease(sp_roles->lock);
	}
	pfree(copy);
}

/*
 * Close in the table the windows that a lockout closed in shared memory.
 * Returns how many ids it handled, to be taken off the list once committed.
 */
static int
close_locked_windows(void)
{
	int64		ids[ROLES_CLOSED];
	int			n;
	bool		overflow;
	Oid			types[1] = {INT8ARRAYOID};
	Datum		args[1];
	Datum		d[ROLES_CLOSED];
	bool		nulls[ROLES_CLOSED];

	LWLockAcquire(sp_roles->lock, LW_SHARED);
	n = sp_roles->nclosed;
	memcpy(ids, sp_roles->closed, n * sizeof(int64));
	overflow = sp_roles->closed_overflow;
	LWLockRelease(sp_roles->lock);
	if (n > 0)
	{
		for (int i = 0; i < n; i++)
		{
			d[i] = Int64GetDatum(ids[i]);
			nulls[i] = false;
		}
		args[0] = value_array(d, nulls, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
		run("UPDATE secpolicy.database_access w SET closed_at = pg_catalog.now(), close_reason = 'role_lockout'"
			" WHERE w.id OPERATOR(pg_catalog.=) ANY ($1) AND w.closed_at IS NULL", 1, types, args);
	}
	if (overflow)
		run("UPDATE secpolicy.database_access w SET closed_at = pg_catalog.now(), close_reason = 'role_lockout'"
			" FROM secpolicy.role_state_live() l JOIN pg_catalog.pg_authid a ON a.oid OPERATOR(pg_catalog.=) l.role_oid"
			" WHERE l.locked_at IS NOT NULL AND w.role_name OPERATOR(pg_catalog.=) a.rolname::pg_catalog.text"
			" AND w.closed_at IS NULL AND w.opened_at OPERATOR(pg_catalog.<) l.locked_at", 0, NULL, NULL);
	return n;
}

/* After the commit: the handled ids leave the list. */
static void
closed_windows_done(int n)
{
	if (n == 0 && !sp_roles->closed_overflow)
		return;
	LWLockAcquire(sp_roles->lock, LW_EXCLUSIVE);
	memmove(sp_roles->closed, sp_roles->closed + n, (sp_roles->nclosed - n) * sizeof(int64));
	sp_roles->nclosed -= n;
	sp_roles->closed_overflow = false;
	LWLockRelease(sp_roles->lock);
}

/* Read the policy values the hook needs; the policy is active. */
static void
load_policy(void)
{
	int32		max_failed;
	bool		isnull;

	if (SPI_execute("SELECT max_failed_attempts FROM secpolicy.policy", true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "secpolicy role worker: could not read secpolicy.policy");
	max_failed = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull)
		return;
	if (max_failed != sp_roles->max_failed || !sp_roles->active)
	{
		LWLockAcquire(sp_roles->lock, LW_EXCLUSIVE);
		sp_roles->max_failed = max_failed;
		sp_roles->active = true;
		sp_roles_journal_policy();
		LWLockRelease(sp_roles->lock);
	}
}

/* The policy is inactive (the extension is not installed in the policy database). */
static void
deactivate(void)
{
	AttemptRecord dropped[64];

	if (sp_roles->active)
	{
		LWLockAcquire(sp_roles->lock, LW_EXCLUSIVE);
		sp_roles->active = false;
		sp_roles_journal_policy();
		LWLockRelease(sp_roles->lock);
	}
	while (sp_roles_dequeue(dropped, lengthof(dropped)) > 0)
	{
		/* nothing can record them */
	}
	nbatch = 0;
	loaded = false;
}

/* A timestamp of column c of SPI row r (0 for NULL). */
static TimestampTz
row_time(int r, int c)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, c, &isnull);

	return isnull ? 0 : DatumGetTimestampTz(d);
}

/* The latest event of a role's state. */
static TimestampTz
last_event(TimestampTz a, TimestampTz b, TimestampTz c)
{
	return Max(a, Max(b, c));
}

/*
 * Merge the counters and locks of secpolicy.role_state that are newer than
 * the shared state's (the journal is newer than the table, except after a
 * restore, pg_upgrade or fail-over).
 */
static void
merge_role_state(void)
{
	if (SPI_execute("SELECT a.oid, s.failed_attempts, s.locked_at, s.cleared_at, s.last_failed_at"
					" FROM secpolicy.role_state s JOIN pg_catalog.pg_authid a"
					" ON a.rolname OPERATOR(pg_catalog.=) s.role_name::pg_catalog.name",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "secpolicy role worker: could not read secpolicy.role_state");
	LWLockAcquire(sp_roles->lock, LW_EXCLUSIVE);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		Oid			roleid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
		int32		failures = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull));
		TimestampTz locked = row_time(r, 3);
		TimestampTz cleared = row_time(r, 4);
		TimestampTz failed = row_time(r, 5);
		RoleEntry  *e = sp_roles_entry(roleid, false);

		if (e != NULL &&
			last_event(e->locked_at, e->cleared_at, e->last_failure_at) >= last_event(locked, cleared, failed))
			continue;
		if (e == NULL && failures == 0 && locked == 0)
			continue;
		e = sp_roles_entry(roleid, true);
		if (e == NULL)
			continue;
		e->failures = failures;
		e->locked_at = locked;
		e->cleared_at = cleared;
		e->last_failure_at = failed;
		sp_roles_journal_role(e);
	}
	LWLockRelease(sp_roles->lock);
}

/*
 * Load the links and the open windows from the tables into the shared state.
 * A transaction that commits a change between the read and the load would be
 * undone by it: then the read is repeated.
 */
static void
load_links_and_windows(void)
{
	for (int attempt = 0; attempt < 10; attempt++)
	{
		uint64		changes;
		SPITupleTable *links;
		uint64		nlinks;
		HASH_SEQ_STATUS seq;
		RoleEntry  *e;

		LWLockAcquire(sp_roles->lock, LW_SHARED);
		changes = sp_roles->changes;
		LWLockRelease(sp_roles->lock);

		CommandCounterIncrement();
		PopActiveSnapshot();
		PushActiveSnapshot(GetTransactionSnapshot());
		if (SPI_execute("SELECT a.oid, l.user_id, l.mfa_required FROM secpolicy.role_links l"
						" JOIN pg_catalog.pg_authid a ON a.rolname OPERATOR(pg_catalog.=) l.role_name::pg_catalog.name",
						true, 0) != SPI_OK_SELECT)
			elog(ERROR, "secpolicy role worker: could not read secpolicy.role_links");
		links = SPI_tuptable;
		nlinks = SPI_processed;
		SPI_tuptable = NULL;
		if (SPI_execute("SELECT a.oid, w.user_id, w.id, w.expires_at, w.client_addr, w.opened_at"
						" FROM secpolicy.database_access w"
						" JOIN pg_catalog.pg_authid a ON a.rolname OPERATOR(pg_catalog.=) w.role_name::pg_catalog.name"
						" WHERE w.closed_at IS NULL AND w.expires_at OPERATOR(pg_catalog.>) pg_catalog.now()",
						true, 0) != SPI_OK_SELECT)
			elog(ERROR, "secpolicy role worker: could not read secpolicy.database_access");

		LWLockAcquire(sp_roles->lock, LW_EXCLUSIVE);
		if (sp_roles->changes != changes)
		{
			LWLockRelease(sp_roles->lock);
			continue;
		}
		/* links: those of the table, no others */
		hash_seq_init(&seq, sp_role_hash);
		while ((e = (RoleEntry *) hash_seq_search(&seq)) != NULL)
			if (e->user_id != 0 || e->mfa_required)
			{
				e->user_id = 0;
				e->mfa_required = false;
				e->dirty = true;
			}
		for (uint64 r = 0; r < nlinks; r++)
		{
			bool		isnull;
			Oid			roleid = DatumGetObjectId(SPI_getbinval(links->vals[r], links->tupdesc, 1, &isnull));

			e = sp_roles_entry(roleid, true);
			if (e == NULL)
				continue;
			e->user_id = DatumGetInt64(SPI_getbinval(links->vals[r], links->tupdesc, 2, &isnull));
			e->mfa_required = DatumGetBool(SPI_getbinval(links->vals[r], links->tupdesc, 3, &isnull));
		}
		/* windows: those of the table, no others */
		for (int i = 0; i < sp_roles->nwindows; i++)
			memset(&sp_roles->windows[i], 0, sizeof(AccessWindow));
		for (uint64 r = 0, k = 0; r < SPI_processed && k < (uint64) sp_roles->nwindows; r++)
		{
			HeapTuple	t = SPI_tuptable->vals[r];
			TupleDesc	td = SPI_tuptable->tupdesc;
			AccessWindow *w = &sp_roles->windows[k];
			bool		isnull;
			Datum		addr;
			Oid			roleid = DatumGetObjectId(SPI_getbinval(t, td, 1, &isnull));

			/* a lockout since it opened closed it (the table may not know yet) */
			e = sp_roles_entry(roleid, false);
			if (e != NULL && e->locked_at != 0 &&
				e->locked_at >= DatumGetTimestampTz(SPI_getbinval(t, td, 6, &isnull)))
				continue;
			k++;
			w->roleid = roleid;
			w->user_id = DatumGetInt64(SPI_getbinval(t, td, 2, &isnull));
			w->window_id = DatumGetInt64(SPI_getbinval(t, td, 3, &isnull));
			w->expires_at = DatumGetTimestampTz(SPI_getbinval(t, td, 4, &isnull));
			addr = SPI_getbinval(t, td, 5, &isnull);
			if (!isnull)
			{
				inet	   *ip = DatumGetInetPP(addr);

				w->family = ip_family(ip);
				w->bits = ip_bits(ip);
				memcpy(w->addr, ip_addr(ip), ip_addrsize(ip));
			}
		}
		/* the journal becomes a snapshot of exactly this */
		(void) sp_roles_journal_compact(WARNING);
		LWLockRelease(sp_roles->lock);
		return;
	}
	elog(ERROR, "secpolicy role worker: links and windows kept changing while they were loaded");
}

/* Forget the roles of the shared state that no longer exist. */
static void
forget_dropped_roles(void)
{
	HASH_SEQ_STATUS seq;
	RoleEntry  *e;
	Oid		   *oids;
	long		max;
	int			n = 0;

	run("SELECT secpolicy.reconcile_roles()", 0, NULL, NULL);
	LWLockAcquire(sp_roles->lock, LW_SHARED);
	max = hash_get_num_entries(sp_role_hash);
	oids = palloc(sizeof(Oid) * Max(max, 1));
	hash_seq_init(&seq, sp_role_hash);
	while ((e = (RoleEntry *) hash_seq_search(&seq)) != NULL)
		if (n < max)
			oids[n++] = e->roleid;
	LWLockRelease(sp_roles->lock);
	for (int i = 0; i < n; i++)
	{
		if (SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(oids[i])))
			continue;
		LWLockAcquire(sp_roles->lock, LW_EXCLUSIVE);
		sp_roles_forget(oids[i]);
		LWLockRelease(sp_roles->lock);
	}
}

/* One cycle: everything in one transaction, then the journal. */
static void
worker_cycle(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	RoleEntry  *volatile mirrored = NULL;
	volatile int nmirrored = 0;
	volatile int nclosed = 0;

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "secpolicy role policy: writing attempts and role state");

		/* the extension, at a version with the role policy */
		if (!OidIsValid(get_extension_oid("secpolicy", true)) ||
			SPI_execute("SELECT 1 WHERE pg_catalog.to_regclass('secpolicy.role_state') IS NOT NULL",
						true, 1) != SPI_OK_SELECT || SPI_processed != 1)
			deactivate();
		else
		{
			load_policy();
			if (!loaded)
			{
				(void) SPI_execute("SELECT secpolicy.reconcile_roles()", false, 0);
				merge_role_state();
				load_links_and_windows();
				loaded = true;
			}
			write_attempts();
			nclosed = close_locked_windows();
			{
				int			k = 0;

				mirrored = mirror_states(&k);
				nmirrored = k;
			}
			if (++cycles % 10 == 0)
				forget_dropped_roles();
		}
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		pgstat_report_activity(STATE_IDLE, NULL);
		if (mirrored != NULL)
			mark_clean((RoleEntry *) mirrored, nmirrored);
		closed_windows_done(nclosed);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
		if (mirrored != NULL)
			pfree((RoleEntry *) mirrored);
		if (nbatch > 0 && ++batch_failures >= BATCH_RETRIES)
		{
			ereport(LOG,
					(errmsg("secpolicy: %d database authentication attempts could not be written to login_attempts and are dropped",
							nbatch)));
			nbatch = 0;
			batch_failures = 0;
		}
	}
	PG_END_TRY();

	/* durability of the counts: at most the last second's are unsynced */
	LWLockAcquire(sp_roles->lock, LW_EXCLUSIVE);
	(void) sp_roles_journal_sync(LOG);
	if (sp_roles->journal_records > 10000 + 4 * (uint64) hash_get_num_entries(sp_role_hash))
		(void) sp_roles_journal_compact(LOG);
	LWLockRelease(sp_roles->lock);
}

/* The worker is gone: the hook no longer wakes it. */
static void
worker_detach(int code, Datum arg)
{
	if (sp_roles != NULL)
		sp_roles->worker_latch = NULL;
}

/* Entry point of the worker. */
void
secpolicy_roles_worker_main(Datum arg)
{
	char		dbname[NAMEDATALEN];

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	strlcpy(dbname, sp_roles_database, sizeof(dbname));
	BackgroundWorkerInitializeConnection(dbname, NULL, 0);
	sp_roles->worker_latch = MyLatch;
	on_shmem_exit(worker_detach, (Datum) 0);
	ereport(LOG, (errmsg("secpolicy: role policy worker started in database \"%s\"", dbname)));

	for (;;)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000L,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			if (strcmp(dbname, sp_roles_database) != 0)
			{
				ereport(LOG,
						(errmsg("secpolicy: secpolicy.database changed to \"%s\"; the role policy worker restarts",
								sp_roles_database)));
				proc_exit(1);
			}
		}
		worker_cycle();
	}
}
