/*
 * rollups.c
 *		rollup_window_changes(): the failed attempts that changed the report
 *		windows since the last refresh, read by rollup_window_changes_read()
 *		(SQL) once per snapshot and handed out again to the other calls that
 *		see the same data.
 *
 * A query of failed_logins_by_user or failed_logins_by_source needs these
 * rows twice or three times: to sum the touched names or sources again, and
 * to leave out their stored rows (plain views: a shared CTE would stop the
 * planner from merging the stored rows in the order of their index).  The
 * rows are a function of what the caller sees and of now(): the same
 * transaction (now()), the same snapshot (its xmin, xmax and in-progress
 * transactions), the same command of it and the same subtransaction give the
 * same rows.  (A subtransaction that wrote and aborted moves the snapshot's
 * xmax; the copy is dropped then all the same.)  The copy lives in the
 * transaction's memory and goes with it.  Nothing a caller sets can make a
 * call reuse another's rows: the key is read from the server's state only.
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "secpolicy.h"

PG_FUNCTION_INFO_V1(secpolicy_rollup_window_changes);

typedef struct ChangesKey
{
	LocalTransactionId lxid;
	TimestampTz xact_start;
	SubTransactionId subxid;
	Oid			userid;
	TransactionId xmin;
	TransactionId xmax;
	CommandId	curcid;
	uint32		xcnt;
	int32		subxcnt;
	bool		suboverflowed;
} ChangesKey;

static bool cache_valid = false;
static bool callbacks_registered = false;
static ChangesKey cache_key;
static TransactionId *cache_xip;	/* xcnt then subxcnt ids */
static MemoryContext cache_cxt;		/* a child of TopTransactionContext */
static TupleDesc cache_desc;
static HeapTuple *cache_rows;
static uint64 cache_count;

static void
forget_changes(void)
{
	/* the memory goes with the transaction's (or is deleted here) */
	if (cache_valid && cache_cxt != NULL)
		MemoryContextDelete(cache_cxt);
	cache_valid = false;
	cache_cxt = NULL;
}

static void
changes_xact_callback(XactEvent event, void *arg)
{
	/* TopTransactionContext is reset after these: only forget the pointers */
	cache_valid = false;
	cache_cxt = NULL;
}

static void
changes_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		forget_changes();
}

static void
key_of(Snapshot snap, ChangesKey *key)
{
	memset(key, 0, sizeof(*key));
#if PG_VERSION_NUM >= 170000
	key->lxid = MyProc->vxid.lxid;
#else
	key->lxid = MyProc->lxid;
#endif
	key->xact_start = GetCurrentTransactionStartTimestamp();
	key->subxid = GetCurrentSubTransactionId();
	key->userid = GetUserId();
	key->xmin = snap->xmin;
	key->xmax = snap->xmax;
	key->curcid = snap->curcid;
	key->xcnt = snap->xcnt;
	key->subxcnt = snap->subxcnt;
	key->suboverflowed = snap->suboverflowed;
}

static bool
key_matches(Snapshot snap, const ChangesKey *key)
{
	if (!cache_valid || memcmp(key, &cache_key, sizeof(*key)) != 0)
		return false;
	if (key->xcnt > 0 &&
		memcmp(snap->xip, cache_xip, key->xcnt * sizeof(TransactionId)) != 0)
		return false;
	if (key->subxcnt > 0 &&
		memcmp(snap->subxip, cache_xip + key->xcnt, key->subxcnt * sizeof(TransactionId)) != 0)
		return false;
	return true;
}

/* reads the rows through SPI into the transaction's memory, under key */
static void
read_changes(Snapshot snap, const ChangesKey *key)
{
	MemoryContext cxt;
	MemoryContext old;
	int			rc;

	forget_changes();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "rollup_window_changes: SPI_connect failed");
	/* read only: the caller's snapshot, no new command */
	rc = SPI_execute("SELECT * FROM secpolicy.rollup_window_changes_read()", true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "rollup_window_changes: reading the changes failed (%d)", rc);

	cxt = AllocSetContextCreate(TopTransactionContext, "secpolicy rollup changes",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	cache_desc = CreateTupleDescCopy(SPI_tuptable->tupdesc);
	cache_count = SPI_processed;
	cache_rows = palloc(sizeof(HeapTuple) * Max(cache_count, 1));
	for (uint64 i = 0; i < cache_count; i++)
		cache_rows[i] = heap_copytuple(SPI_tuptable->vals[i]);
	cache_xip = palloc(sizeof(TransactionId) * Max(key->xcnt + Max(key->subxcnt, 0), 1));
	if (key->xcnt > 0)
		memcpy(cache_xip, snap->xip, key->xcnt * sizeof(TransactionId));
	if (key->subxcnt > 0)
		memcpy(cache_xip + key->xcnt, snap->subxip, key->subxcnt * sizeof(TransactionId));
	MemoryContextSwitchTo(old);
	SPI_finish();

	cache_key = *key;
	cache_cxt = cxt;
	cache_valid = true;
}

/*
 * rollup_window_changes() returns the rows of rollup_window_changes_read(),
 * read once per snapshot (see above).
 */
Datum
secpolicy_rollup_window_changes(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleDesc	tupdesc;
	Tuplestorestate *store;
	MemoryContext old;
	Snapshot	snap;
	ChangesKey	key;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) || !(rsinfo->allowedModes & SFRM_Materialize))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("rollup_window_changes() must be called in the FROM clause")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "rollup_window_changes must return a composite type");
	if (!ActiveSnapshotSet())
		elog(ERROR, "rollup_window_changes: no active snapshot");
	if (!callbacks_registered)
	{
		RegisterXactCallback(changes_xact_callback, NULL);
		RegisterSubXactCallback(changes_subxact_callback, NULL);
		callbacks_registered = true;
	}

	snap = GetActiveSnapshot();
	key_of(snap, &key);
	if (!key_matches(snap, &key))
		read_changes(snap, &key);
	if (cache_desc->natts != tupdesc->natts)
		elog(ERROR, "rollup_window_changes: rollup_window_changes_read() returns %d columns, not %d",
			 cache_desc->natts, tupdesc->natts);
	for (int i = 0; i < tupdesc->natts; i++)
		if (TupleDescAttr(cache_desc, i)->atttypid != TupleDescAttr(tupdesc, i)->atttypid)
			elog(ERROR, "rollup_window_changes: column %d of rollup_window_changes_read() has another type", i + 1);

	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	tupdesc = CreateTupleDescCopy(tupdesc);
	store = tuplestore_begin_heap(true, false, work_mem);
	for (uint64 i = 0; i < cache_count; i++)
		tuplestore_puttuple(store, cache_rows[i]);
	MemoryContextSwitchTo(old);

	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = store;
	rsinfo->setDesc = tupdesc;
	return (Datum) 0;
}
