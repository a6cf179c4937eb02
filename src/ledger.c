/*
 * ledger.c
 *		A shared-memory ledger of evaluated password and second-factor
 *		guesses, which the caller's ROLLBACK cannot erase.
 *
 * The flows count failures in secpolicy.users, in the caller's transaction:
 * a caller that rolls back (or makes its own statement fail) rolls its
 * failures back too, and could guess without limit.  When secpolicy is in
 * shared_preload_libraries, every guess is also counted here before it is
 * evaluated, outside any transaction; a right guess gives its count back,
 * and a complete login (or a reset, or an unlock) clears the account's count
 * when it commits.  A guess is refused when either count reaches the limit.
 * Because the flows hold the account's row lock while they consult the
 * ledger, the ledger's count minus the committed count is exactly the
 * number of failures that were rolled back, and the server log says so.
 *
 * Without preloading the functions below do nothing (the ledger needs
 * shared memory reserved at server start).  Keys are hashed with SipHash
 * under a random per-cluster key, so names cannot be chosen to collide.
 * The table has a fixed size (secpolicy.ledger_size); when a probe window
 * is full the entry with the smallest count gives way.
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include <sodium.h>

#include "secpolicy.h"

PG_FUNCTION_INFO_V1(secpolicy_guess_begin);
PG_FUNCTION_INFO_V1(secpolicy_guess_end);
PG_FUNCTION_INFO_V1(secpolicy_guess_clear);
PG_FUNCTION_INFO_V1(secpolicy_ledger_active);

#define PROBE_WINDOW	16

typedef struct LedgerEntry
{
	uint64		key;			/* 0: free */
	int32		count;
} LedgerEntry;

typedef struct LedgerShared
{
	LWLock	   *lock;
	int			size;
	unsigned char hashkey[crypto_shorthash_KEYBYTES];
	LedgerEntry entries[FLEXIBLE_ARRAY_MEMBER];
} LedgerShared;

static LedgerShared *ledger = NULL;
static int	ledger_size = 16384;

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * Keys whose count this transaction clears when it commits (in
 * TopTransactionContext: a retention run may clear many).
 */
static uint64 *pending_clear = NULL;
static int	npending = 0;
static int	maxpending = 0;

/* Bytes of shared memory the ledger needs. */
static Size
ledger_shmem_size(void)
{
	return add_size(offsetof(LedgerShared, entries),
					mul_size(ledger_size, sizeof(LedgerEntry)));
}

/* Reserve the shared memory and the lock (PostgreSQL 15: shmem_request_hook). */
static void
ledger_shmem_request(void)
{
#if PG_VERSION_NUM >= 150000
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(ledger_shmem_size());
	RequestNamedLWLockTranche("secpolicy_ledger", 1);
}

/* Attach to (or create) the ledger at server start. */
static void
ledger_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ledger = ShmemInitStruct("secpolicy guess ledger", ledger_shmem_size(), &found);
	if (!found)
	{
		ledger->lock = &(GetNamedLWLockTranche("secpolicy_ledger"))->lock;
		ledger->size = ledger_size;
		randombytes_buf(ledger->hashkey, sizeof(ledger->hashkey));
		memset(ledger->entries, 0, mul_size(ledger_size, sizeof(LedgerEntry)));
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Clear the counts this transaction asked for, once it has committed. */
static void
ledger_xact_callback(XactEvent event, void *arg);

/* Set up the ledger when loaded by shared_preload_libraries. */
void
sp_ledger_init(void)
{
	RegisterXactCallback(ledger_xact_callback, NULL);
	if (!process_shared_preload_libraries_in_progress)
		return;

	DefineCustomIntVariable("secpolicy.ledger_size",
							gettext_noop("Entries of the shared-memory ledger of guesses (needs shared_preload_libraries)."),
							NULL,
							&ledger_size,
							16384, 1024, 1048576,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);
#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = ledger_shmem_request;
#else
	ledger_shmem_request();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = ledger_shmem_startup;
}

/* The 64-bit keyed hash of a key text in this database (never 0). */
static uint64
ledger_hash(text *key)
{
	unsigned char out[crypto_shorthash_BYTES];
	size_t		len = VARSIZE_ANY_EXHDR(key);
	char	   *buf = palloc(sizeof(Oid) + len);
	uint64		h;

	memcpy(buf, &MyDatabaseId, sizeof(Oid));
	memcpy(buf + sizeof(Oid), VARDATA_ANY(key), len);
	crypto_shorthash(out, (const unsigned char *) buf, sizeof(Oid) + len, ledger->hashkey);
	memcpy(&h, out, sizeof(h));
	pfree(buf);
	return h == 0 ? 1 : h;
}

/*
 * The entry of a key; with `create`, take a free slot or the one with the
 * smallest count in the probe window.  Caller holds the lock exclusively.
 */
static LedgerEntry *
ledger_entry(uint64 h, bool create)
{
	LedgerEntry *victim = NULL;

	for (int i = 0; i < PROBE_WINDOW; i++)
	{
		LedgerEntry *e = &ledger->entries[(h + i) % ledger->size];

		if (e->key == h)
			return e;
		if (victim == NULL || e->key == 0 || (victim->key != 0 && e->count < victim->count))
			victim = e;
	}
	if (!create)
		return NULL;
	victim->key = h;
	victim->count = 0;
	return victim;
}

/*
 * guess_begin(key text, lim integer, committed integer, label text) returns
 * boolean: may one more guess be evaluated?  Counts it if so.  `committed`
 * is the failure count the caller's locked row shows; a ledger count above
 * it means failures were rolled back, which is logged with `label`.
 */
Datum
secpolicy_guess_begin(PG_FUNCTION_ARGS)
{
	int			lim = PG_GETARG_INT32(1);
	int			committed = PG_GETARG_INT32(2);
	uint64		h;
	LedgerEntry *e;
	int			before;
	bool		allowed;

	if (ledger == NULL)
		PG_RETURN_BOOL(true);

	h = ledger_hash(PG_GETARG_TEXT_PP(0));
	LWLockAcquire(ledger->lock, LW_EXCLUSIVE);
	e = ledger_entry(h, true);
	/* after a restart the table may know failures the ledger lost */
	if (e->count < committed)
		e->count = committed;
	before = e->count;
	allowed = before < lim;
	if (allowed)
		e->count++;
	LWLockRelease(ledger->lock);

	if (before > committed)
		ereport(LOG,
				(errmsg("secpolicy: %d failed guess(es) on %s were rolled back by the caller",
						before - committed, text_to_cstring(PG_GETARG_TEXT_PP(3))),
				 errdetail("They still count toward the failure limit.")));
	PG_RETURN_BOOL(allowed);
}

/* guess_end(key text): the guess was right; give its count back. */
Datum
secpolicy_guess_end(PG_FUNCTION_ARGS)
{
	LedgerEntry *e;

	if (ledger == NULL)
		PG_RETURN_VOID();
	LWLockAcquire(ledger->lock, LW_EXCLUSIVE);
	e = ledger_entry(ledger_hash(PG_GETARG_TEXT_PP(0)), false);
	if (e != NULL && e->count > 0)
		e->count--;
	LWLockRelease(ledger->lock);
	PG_RETURN_VOID();
}

/* guess_clear(key text): clear the key's count when this transaction commits. */
Datum
secpolicy_guess_clear(PG_FUNCTION_ARGS)
{
	uint64		h;

	if (ledger == NULL)
		PG_RETURN_VOID();
	h = ledger_hash(PG_GETARG_TEXT_PP(0));
	if (npending == maxpending)
	{
		maxpending = maxpending == 0 ? 64 : maxpending * 2;
		pending_clear = pending_clear == NULL
			? MemoryContextAlloc(TopTransactionContext, maxpending * sizeof(uint64))
			: repalloc(pending_clear, maxpending * sizeof(uint64));
	}
	pending_clear[npending++] = h;
	PG_RETURN_VOID();
}

/* ledger_active() returns boolean: is the shared-memory ledger in use? */
Datum
secpolicy_ledger_active(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(ledger != NULL);
}

static void
ledger_xact_callback(XactEvent event, void *arg)
{
	if (npending == 0)
		return;
	if (event == XACT_EVENT_COMMIT && ledger != NULL)
	{
		LWLockAcquire(ledger->lock, LW_EXCLUSIVE);
		for (int i = 0; i < npending; i++)
		{
			LedgerEntry *e = ledger_entry(pending_clear[i], false);

			if (e != NULL)
				e->count = 0;
		}
		LWLockRelease(ledger->lock);
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
	{
		/* the array goes with TopTransactionContext */
		pending_clear = NULL;
		npending = 0;
		maxpending = 0;
	}
}
