/*
 * protect_worker.c
 *		The background worker that encrypts (or, after a key rotation,
 *		re-encrypts) the values already stored in protected columns.
 *
 * protect_column(), reseal_columns() and maintain() start it through
 * secpolicy.launch_protection(), at most one per database.  It connects to
 * the database as the extension's owner and calls
 * secpolicy.protection_step() in a loop, one transaction per call: each call
 * runs one batch of protect_batch() (a few thousand rows, located by their
 * physical position, so that no batch scans what an earlier one did), and
 * commits.  Progress lives in secpolicy.protected_columns, so a cancel, a
 * crash or a restart loses at most the batch under way, whose rows are still
 * in clear (or under the old key); the next worker carries on from there.
 * It ends when no column has work left and the transaction that started it
 * is over (a column protected by that transaction becomes visible only when
 * it commits).
 *
 * Settings (postgresql.conf or ALTER SYSTEM, read again on reload):
 *	 secpolicy.protection_batch_rows	rows per batch (each holds their row locks
 *										until it commits)
 *	 secpolicy.protection_batch_delay	pause between batches, to spare the I/O
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/procarray.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/wait_event.h"

#include "secpolicy.h"
#include "columns.h"

PG_FUNCTION_INFO_V1(secpolicy_start_protection_worker);

PGDLLEXPORT void secpolicy_protection_worker_main(Datum arg);

/* What the worker is told: whom to connect as, and whose commit to wait for. */
typedef struct WorkerArgs
{
	Oid			owner;
	TransactionId launcher_xid;
} WorkerArgs;

#define WORKER_TYPE		"secpolicy encryption"

static int	batch_rows = 10000;
static int	batch_delay = 0;

/* Define the worker's settings. */
void
sp_protect_worker_init(void)
{
	DefineCustomIntVariable("secpolicy.protection_batch_rows",
							gettext_noop("Rows per batch of the worker that encrypts stored values of protected columns."),
							gettext_noop("A batch holds the locks of its rows until it commits."),
							&batch_rows, 10000, 1, 10000000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("secpolicy.protection_batch_delay",
							gettext_noop("Pause between two batches of the worker that encrypts stored values of protected columns."),
							NULL,
							&batch_delay, 0, 0, 60000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
}

/*
 * start_protection_worker(owner oid) returns boolean: internal; registers
 * the worker for this database; false when no worker slot is free
 * (max_worker_processes).
 */
Datum
secpolicy_start_protection_worker(PG_FUNCTION_ARGS)
{
	BackgroundWorker worker;
	WorkerArgs	args;

	memset(&worker, 0, sizeof(worker));
	args.owner = PG_GETARG_OID(0);
	args.launcher_xid = GetTopTransactionIdIfAny();
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "secpolicy");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "secpolicy_protection_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "secpolicy encryption of database %u", MyDatabaseId);
	snprintf(worker.bgw_type, BGW_MAXLEN, WORKER_TYPE);
	worker.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
	StaticAssertStmt(sizeof(WorkerArgs) <= BGW_EXTRALEN, "worker arguments fit");
	memcpy(worker.bgw_extra, &args, sizeof(args));
	worker.bgw_notify_pid = 0;
	PG_RETURN_BOOL(RegisterDynamicBackgroundWorker(&worker, NULL));
}

/* One step in its own transaction; false when no column has work left. */
static bool
run_step(void)
{
	bool		more = false;

	char		sql[80];

	snprintf(sql, sizeof(sql), "SELECT secpolicy.protection_step(%d)", batch_rows);
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, sql);
	if (SPI_execute(sql, false, 1) == SPI_OK_SELECT && SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		more = !isnull && DatumGetBool(d);
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return more;
}

/* The worker's main loop. */
void
secpolicy_protection_worker_main(Datum arg)
{
	WorkerArgs	args;

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(arg), args.owner, 0);
	pgstat_report_appname(WORKER_TYPE);

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (run_step())
		{
			if (batch_delay > 0)
			{
				(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, batch_delay,
								 PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
			}
			continue;
		}
		/* nothing to do: unless what started us may still commit more work */
		if (!TransactionIdIsValid(args.launcher_xid) || !TransactionIdIsInProgress(args.launcher_xid))
		{
			/* one last look: it may have committed between the two checks */
			if (run_step())
				continue;
			break;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 200,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	proc_exit(0);
}
