/*
 * ledger.c
 *		A shared-memory ledger of evaluated password and second-factor
 *		guesses, which the caller's ROLLBACK cannot erase.
 *
 * The flows count failures in secpolicy.users, in the caller's transaction:
 * a caller that rolls back (or makes its own statement fail, or rolls back
 * to a savepoint) rolls its failures back too, and could guess without limit.
 * When secpolicy is in shared_preload_libraries, every guess is also counted
 * here before it is evaluated, outside any transaction; a right guess gives
 * its count back, and a complete login (or a reset, or an unlock) clears the
 * key's entry when it commits.  A guess is refused when either count reaches
 * the limit.  Because the flows hold the account's row lock while they
 * consult the ledger, at most one transaction at a time is between counting
 * a guess of a key and committing (or not) the matching change of the table,
 * and the ledger's count minus the committed count is exactly the number of
 * failures that were rolled back, which the server log reports.
 *
 * An entry is "synced" when the table holds its whole count: after the
 * transaction that counted a guess commits.  Only an entry with rolled-back
 * guesses (count above synced) holds anything the table does not; such an
 * entry is pinned: no other key can take its slot.  A new key takes a free
 * slot of its probe window, else a synced entry's; an account or a reset
 * token may also take the slot of an unknown name's pinned entry (unknown
 * names have no password to guess).  When every slot of the window is pinned
 * by accounts, the guess is refused without evaluation ('full'), and the
 * server log says to raise secpolicy.ledger_size: a flood of guesses, however cheap,
 * never pushes an account's count out.  Only rolled-back guesses pin, so the
 * ledger fills only under a caller that rolls back; ledger_status() shows it.
 *
 * Keys are hashed with SipHash under a random per-cluster key, together with
 * the database and the extension's OID: a name cannot be chosen to collide,
 * and an entry belongs to one installation (DROP EXTENSION and CREATE
 * EXTENSION start afresh, although the new account 1 has the old one's key).
 * Without preloading the functions below count nothing (the ledger needs
 * shared memory reserved at server start).
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "funcapi.h"
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
PG_FUNCTION_INFO_V1(secpolicy_guess_check);
PG_FUNCTION_INFO_V1(secpolicy_guess_end);
PG_FUNCTION_INFO_V1(secpolicy_guess_clear);
PG_FUNCTION_INFO_V1(secpolicy_ledger_active);
PG_FUNCTION_INFO_V1(secpolicy_ledger_status);

#define PROBE_WINDOW	32

typedef struct LedgerEntry
{
	uint64		key;			/* 0: free */
	int32		count;			/* guesses counted */
	int32		synced;			/* of which the table holds (committed) */
	Oid			dbid;			/* the installation: database ... */
	Oid			extoid;			/* ... and the extension's OID */
	bool		account;		/* an account or a reset token, not an unknown name */
} LedgerEntry;

typedef struct LedgerShared
{
	LWLock	   *lock;
	int			size;
	unsigned char hashkey[crypto_shorthash_KEYBYTES];
	LedgerEntry entries[FLEXIBLE_ARRAY_MEMBER];
} LedgerShared;

static LedgerShared *ledger = NULL;
static int	ledger_size = 65536;

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * What this transaction does to the ledger when it commits: sync the entries
 * it counted guesses in, clear the entries of completed logins, resets and
 * unlocks.  Each item remembers the (sub)transaction level that added it, so
 * that what a rolled-back savepoint did is forgotten.  In TopMemoryContext,
 * emptied at the end of every transaction.
 */
typedef struct PendingItem
{
	uint64		key;
	bool		clear;			/* clear the entry (else: sync it) */
	int			level;			/* transaction nesting level that added it */
} PendingItem;

static PendingItem *pending = NULL;
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

static void ledger_xact_callback(XactEvent event, void *arg);
static void ledger_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
									SubTransactionId parentSubid, void *arg);

/* Set up the ledger (and its setting) when loaded by shared_preload_libraries. */
void
sp_ledger_init(void)
{
	RegisterXactCallback(ledger_xact_callback, NULL);
	RegisterSubXactCallback(ledger_subxact_callback, NULL);
	/* a setting of context postmaster can only be defined at server start */
	if (!process_shared_preload_libraries_in_progress)
		return;

	DefineCustomIntVariable("secpolicy.ledger_size",
							gettext_noop("Entries of the shared-memory ledger of guesses (needs shared_preload_libraries)."),
							gettext_noop("Make it larger than the number of accounts: only guesses a caller rolled back "
										 "occupy entries for long."),
							&ledger_size,
							65536, 1024, 16777216,
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

/* The OID of this database's installation of the extension (InvalidOid if none). */
static Oid
installation(void)
{
	return get_extension_oid("secpolicy", true);
}

/*
 * The 64-bit keyed hash of a key text in this installation of the extension
 * (database, extension OID, key); never 0.
 */
static uint64
ledger_hash(text *key)
{
	unsigned char out[crypto_shorthash_BYTES];
	size_t		len = VARSIZE_ANY_EXHDR(key);
	Oid			ext = installation();
	char	   *buf = palloc(2 * sizeof(Oid) + len);
	uint64		h;

	memcpy(buf, &MyDatabaseId, sizeof(Oid));
	memcpy(buf + sizeof(Oid), &ext, sizeof(Oid));
	memcpy(buf + 2 * sizeof(Oid), VARDATA_ANY(key), len);
	crypto_shorthash(out, (const unsigned char *) buf, 2 * sizeof(Oid) + len, ledger->hashkey);
	memcpy(&h, out, sizeof(h));
	pfree(buf);
	return h == 0 ? 1 : h;
}

/* Does a key text name an account or a reset token ('u:...', 'r:...')? */
static bool
key_is_account(text *key)
{
	const char *k = VARDATA_ANY(key);

	return VARSIZE_ANY_EXHDR(key) >= 2 && k[1] == ':' && (k[0] == 'u' || k[0] == 'r');
}

/* Does the entry hold guesses that the table does not (rolled back)? */
static inline bool
pinned(const LedgerEntry *e)
{
	return e->key != 0 && e->count > e->synced;
}

/*
 * May the slot of this entry be taken by a new key of installation `ext`?
 * When it is free, synced, or belongs to an earlier installation of the
 * extension in this database (dropped since: its tables are gone).
 */
static inline bool
reusable(const LedgerEntry *e, Oid ext)
{
	return !pinned(e) || (e->dbid == MyDatabaseId && e->extoid != ext);
}

/* The entry of a key, or NULL.  Caller holds the lock. */
static LedgerEntry *
ledger_find(uint64 h)
{
	for (int i = 0; i < PROBE_WINDOW; i++)
	{
		LedgerEntry *e = &ledger->entries[(h + i) % ledger->size];

		if (e->key == h)
			return e;
	}
	return NULL;
}

/*
 * The entry of a key, taking a slot for it if it has none: a free slot, else
 * a synced entry's (or one of a dropped installation's), else (for an
 * account) an unknown name's pinned entry with the smallest count.  NULL when every slot of the window is pinned by keys
 * this one may not displace.  Caller holds the lock exclusively.
 */
static LedgerEntry *
ledger_take(uint64 h, bool account, Oid ext)
{
	LedgerEntry *victim = NULL;
	LedgerEntry *e = ledger_find(h);

	if (e != NULL)
		return e;
	for (int i = 0; i < PROBE_WINDOW; i++)
	{
		e = &ledger->entries[(h + i) % ledger->size];
		if (reusable(e, ext))
		{
			victim = e;
			break;
		}
		if (account && !e->account && (victim == NULL || e->count < victim->count))
			victim = e;
	}
	if (victim == NULL)
		return NULL;
	victim->key = h;
	victim->count = 0;
	victim->synced = 0;
	victim->dbid = MyDatabaseId;
	victim->extoid = ext;
	victim->account = account;
	return victim;
}

/* Remember that this transaction must sync or clear key `h` when it commits. */
static void
pending_add(uint64 h, bool clear)
{
	if (npending == maxpending)
	{
		maxpending = maxpending == 0 ? 16 : maxpending * 2;
		pending = pending == NULL
			? MemoryContextAlloc(TopMemoryContext, maxpending * sizeof(PendingItem))
			: repalloc(pending, maxpending * sizeof(PendingItem));
	}
	pending[npending].key = h;
	pending[npending].clear = clear;
	pending[npending].level = GetCurrentTransactionNestLevel();
	npending++;
}

/*
 * Count one more guess of `key` if it may be evaluated: "ok"; "limit" when
 * the key is at the limit (in the table or, with rolled-back guesses, here);
 * "full" when the ledger has no slot for it.  `committed` is the failure
 * count the caller's locked row shows.
 */
static const char *
guess_take(FunctionCallInfo fcinfo)
{
	text	   *key = PG_GETARG_TEXT_PP(0);
	int			lim = PG_GETARG_INT32(1);
	int			committed = PG_GETARG_INT32(2);
	uint64		h;
	LedgerEntry *e;
	int64		rolled_back = 0;
	const char *answer;

	if (ledger == NULL)
		return committed < lim ? "ok" : "limit";

	h = ledger_hash(key);
	LWLockAcquire(ledger->lock, LW_EXCLUSIVE);
	e = ledger_take(h, key_is_account(key), installation());
	if (e == NULL)
		answer = "full";
	else
	{
		/* after a restart the table may know failures the ledger lost */
		if (e->count < committed)
			e->count = committed;
		rolled_back = (int64) e->count - committed;
		e->synced = committed;
		if (e->count < lim)
		{
			e->count++;
			answer = "ok";
		}
		else
			answer = "limit";
	}
	LWLockRelease(ledger->lock);

	if (strcmp(answer, "ok") == 0)
		pending_add(h, false);
	if (rolled_back > 0)
		ereport(LOG,
				(errmsg_plural("secpolicy: %lld failed guess on %s was rolled back by the caller",
							   "secpolicy: %lld failed guesses on %s were rolled back by the caller",
							   (unsigned long) rolled_back,
							   (long long) rolled_back, text_to_cstring(PG_GETARG_TEXT_PP(3))),
				 errdetail("They still count toward the failure limit.")));
	if (strcmp(answer, "full") == 0)
		ereport(LOG,
				(errmsg("secpolicy: the guess ledger has no room for %s; the guess was refused",
						text_to_cstring(PG_GETARG_TEXT_PP(3))),
				 errdetail("Every entry near it holds guesses that callers rolled back."),
				 errhint("Raise secpolicy.ledger_size (it needs a restart), and find the caller that rolls back its logins.")));
	return answer;
}

/*
 * guess_begin(key text, lim integer, committed integer, label text) returns
 * boolean: may one more guess be evaluated?  Counts it if so.  (Version 1.0's
 * entry point: false also when the ledger is full.)
 */
Datum
secpolicy_guess_begin(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(strcmp(guess_take(fcinfo), "ok") == 0);
}

/*
 * guess_check(key text, lim integer, committed integer, label text) returns
 * text: 'ok' (the guess is counted and may be evaluated), 'limit' or 'full'.
 */
Datum
secpolicy_guess_check(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(guess_take(fcinfo)));
}

/* guess_end(key text): the guess was right; give its count back. */
Datum
secpolicy_guess_end(PG_FUNCTION_ARGS)
{
	LedgerEntry *e;

	if (ledger == NULL)
		PG_RETURN_VOID();
	LWLockAcquire(ledger->lock, LW_EXCLUSIVE);
	e = ledger_find(ledger_hash(PG_GETARG_TEXT_PP(0)));
	if (e != NULL && e->count > 0)
		e->count--;
	LWLockRelease(ledger->lock);
	PG_RETURN_VOID();
}

/* guess_clear(key text): clear the key's entry when this transaction commits. */
Datum
secpolicy_guess_clear(PG_FUNCTION_ARGS)
{
	if (ledger != NULL)
		pending_add(ledger_hash(PG_GETARG_TEXT_PP(0)), true);
	PG_RETURN_VOID();
}

/* ledger_active() returns boolean: is the shared-memory ledger in use? */
Datum
secpolicy_ledger_active(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(ledger != NULL);
}

/*
 * ledger_status(OUT active boolean, OUT size integer, OUT used integer,
 * OUT pinned integer): how full the ledger is; pinned entries hold guesses
 * that callers rolled back.
 */
Datum
secpolicy_ledger_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	int			used = 0,
				npinned = 0;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "ledger_status must return a composite type");
	tupdesc = BlessTupleDesc(tupdesc);
	if (ledger != NULL)
	{
		LWLockAcquire(ledger->lock, LW_SHARED);
		for (int i = 0; i < ledger->size; i++)
		{
			used += ledger->entries[i].key != 0;
			npinned += pinned(&ledger->entries[i]);
		}
		LWLockRelease(ledger->lock);
	}
	values[0] = BoolGetDatum(ledger != NULL);
	values[1] = Int32GetDatum(ledger != NULL ? ledger->size : 0);
	values[2] = Int32GetDatum(used);
	values[3] = Int32GetDatum(npinned);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* At commit, sync the entries this transaction counted in and clear those it asked to. */
static void
ledger_xact_callback(XactEvent event, void *arg)
{
	if (npending == 0)
		return;
	if ((event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT) && ledger != NULL)
	{
		LWLockAcquire(ledger->lock, LW_EXCLUSIVE);
		for (int i = 0; i < npending; i++)
		{
			LedgerEntry *e = ledger_find(pending[i].key);

			if (e == NULL)
				continue;
			if (pending[i].clear)
				memset(e, 0, sizeof(*e));
			else
				e->synced = e->count;
		}
		LWLockRelease(ledger->lock);
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
		npending = 0;
}

/*
 * A savepoint rolled back: forget what it (and the savepoints inside it)
 * asked for, so its guesses stay pinned and its clears never happen.  A
 * savepoint released: its items now belong to the enclosing level.
 */
static void
ledger_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	int			kept = 0;

	if (npending == 0)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		for (int i = 0; i < npending; i++)
			if (pending[i].level < level)
				pending[kept++] = pending[i];
		npending = kept;
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		for (int i = 0; i < npending; i++)
			if (pending[i].level >= level)
				pending[i].level = level - 1;
	}
}
