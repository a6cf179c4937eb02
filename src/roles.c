/*
 * roles.c
 *		The database-role policy: its settings, its shared memory and the
 *		journal that makes the shared state durable.
 *
 * Everything here needs shared_preload_libraries = 'secpolicy' (the shared
 * memory is reserved at server start); without it only the settings exist and
 * the role functions refuse with 55000.
 *
 * Shared memory holds one RoleEntry per role with something to remember
 * (failures, a lock, a link to an application account), the open access
 * windows, the markers of failures that an sslmode=prefer retry may repeat,
 * and the queue of attempts that the worker writes to login_attempts.
 *
 * The journal ($PGDATA/secpolicy_roles.journal) is a sequence of fixed-size
 * records, each the whole new state of one role, window or of the policy
 * values the hook needs, with a CRC.  Backends append to it under the lock
 * whenever the state changes: every counted failure is written before the
 * client gets its answer, so a kill -9 of any process loses nothing (the
 * data is in the kernel), and a lock is fsync'd before the refusal, so a lock
 * survives even a power loss.  The worker fsyncs what was appended every
 * second: a power loss (never a process crash) loses at most the counts of
 * the last second.  The postmaster replays the journal when it creates the
 * shared memory (at start and after a crash), before it accepts connections,
 * and rewrites it as a snapshot; the worker does the same when it grows.
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "port/pg_crc32c.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "secpolicy.h"
#include "roles.h"

#define JOURNAL_FILE	"secpolicy_roles.journal"
#define JOURNAL_MAGIC	0x53505231	/* "SPR1" */
/*
 * Appends after which the journal is rewritten as a snapshot by whoever
 * appends (the worker does it much earlier; this bounds the file when no
 * worker runs, as on a standby): about 9 MB.
 */
#define JOURNAL_MAX_RECORDS	100000

typedef enum JournalType
{
	JR_ROLE = 1,				/* the whole state of a role */
	JR_FORGET,					/* a role that no longer exists */
	JR_WINDOW,					/* an access window (expires_at 0: closed) */
	JR_POLICY					/* max_failed_attempts and whether the policy is active */
} JournalType;

typedef struct JournalRecord
{
	uint32		magic;
	uint32		type;
	Oid			roleid;
	int32		count;			/* ROLE: failures; POLICY: max_failed_attempts */
	TimestampTz t_locked;		/* ROLE: locked_at; WINDOW: expires_at */
	TimestampTz t_cleared;
	TimestampTz t_failure;
	TimestampTz t_success;
	int64		user_id;
	int64		window_id;
	uint8		flag;			/* ROLE: mfa_required; POLICY: active */
	uint8		family;
	uint8		bits;
	uint8		addr[16];
	pg_crc32c	crc;			/* over everything before it */
} JournalRecord;

RolesShared *sp_roles = NULL;
HTAB	   *sp_role_hash = NULL;

char	   *sp_roles_database = NULL;
bool		sp_roles_allow_prehashed = false;
bool		sp_roles_exempt_superusers = false;
int			sp_roles_retry_window = 1000;
static int	roles_max = 4096;

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* ------------------------------------------------------------ settings -- */

/* Bytes of shared memory the role policy needs. */
static Size
roles_shmem_size(void)
{
	Size		size = offsetof(RolesShared, windows);

	size = add_size(size, mul_size(roles_max, sizeof(AccessWindow)));
	return add_size(size, hash_estimate_size(roles_max, sizeof(RoleEntry)));
}

/* Reserve the shared memory and the lock (PostgreSQL 15: shmem_request_hook). */
static void
roles_shmem_request(void)
{
#if PG_VERSION_NUM >= 150000
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(roles_shmem_size());
	RequestNamedLWLockTranche("secpolicy_roles", 1);
}

static void journal_replay(void);
static bool journal_append(JournalRecord *recs, int n, bool sync);

/* Create (or attach to) the shared state; a new one is filled from the journal. */
static void
roles_shmem_startup(void)
{
	bool		found;
	HASHCTL		info;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	sp_roles = ShmemInitStruct("secpolicy roles",
							   add_size(offsetof(RolesShared, windows),
										mul_size(roles_max, sizeof(AccessWindow))),
							   &found);
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(Oid);
	info.entrysize = sizeof(RoleEntry);
	sp_role_hash = ShmemInitHash("secpolicy role entries", roles_max, roles_max,
								 &info, HASH_ELEM | HASH_BLOBS);
	if (!found)
	{
		memset(sp_roles, 0, offsetof(RolesShared, windows));
		sp_roles->lock = &(GetNamedLWLockTranche("secpolicy_roles"))->lock;
		SpinLockInit(&sp_roles->qlock);
		sp_roles->max_failed = 5;
		sp_roles->nwindows = roles_max;
		memset(sp_roles->windows, 0, mul_size(roles_max, sizeof(AccessWindow)));
		/* the postmaster, alone: nothing can connect before this is done */
		if (!IsUnderPostmaster)
			journal_replay();
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Define the settings of the role policy; with shared_preload_libraries also
 * reserve its shared memory, install its hooks and register its worker.
 */
void
sp_roles_init(void)
{
	DefineCustomStringVariable("secpolicy.database",
							   gettext_noop("The database that holds the role policy and its state (needs shared_preload_libraries)."),
							   gettext_noop("CREATE EXTENSION secpolicy there; role passwords are set there."),
							   &sp_roles_database, "postgres",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("secpolicy.allow_prehashed_passwords",
							 gettext_noop("Accepts role passwords sent as SCRAM or MD5 verifiers, which the rules cannot check."),
							 gettext_noop("For restoring roles from pg_dumpall; the history cannot record such passwords."),
							 &sp_roles_allow_prehashed, false,
							 PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("secpolicy.exempt_superusers",
							 gettext_noop("Superusers are never locked out by failed password authentications."),
							 NULL,
							 &sp_roles_exempt_superusers, false,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("secpolicy.ssl_retry_window",
							gettext_noop("A failed authentication repeated with the other SSL mode from the same address within this time counts once."),
							gettext_noop("libpq retries a failed SSL connection without SSL (sslmode=prefer) and the other way round (allow). 0 counts every failure."),
							&sp_roles_retry_window, 1000, 0, 60000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

	sp_roles_sql_init();

	/* shared memory and a setting of context postmaster: only at server start */
	if (!process_shared_preload_libraries_in_progress)
		return;

	DefineCustomIntVariable("secpolicy.max_roles",
							gettext_noop("Roles whose failures, locks and links the role policy keeps in shared memory, and open access windows."),
							gettext_noop("Make it larger than the number of login roles (needs a restart)."),
							&roles_max, 4096, 64, 1000000,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = roles_shmem_request;
#else
	roles_shmem_request();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = roles_shmem_startup;

	sp_roles_auth_init();
	sp_roles_password_init();
	sp_roles_worker_register();
}

/* -------------------------------------------------------- shared state -- */

/* Can this entry be dropped from shared memory without losing anything? */
static bool
entry_idle(const RoleEntry *e)
{
	return e->failures == 0 && e->locked_at == 0 && e->user_id == 0 &&
		!e->mfa_required && !e->dirty && e->hold_pid == 0;
}

/*
 * The entry of a role, or NULL.  With create, one is made when missing (the
 * caller holds the lock exclusively); when every slot is taken an idle entry
 * (whose state the worker has mirrored) is dropped first, and NULL means
 * that secpolicy.max_roles is too small.
 */
RoleEntry *
sp_roles_entry(Oid roleid, bool create)
{
	RoleEntry  *e;
	bool		found;

	if (!create)
		return (RoleEntry *) hash_search(sp_role_hash, &roleid, HASH_FIND, NULL);
	e = (RoleEntry *) hash_search(sp_role_hash, &roleid, HASH_ENTER_NULL, &found);
	if (e == NULL)
	{
		HASH_SEQ_STATUS seq;
		RoleEntry  *victim = NULL;

		hash_seq_init(&seq, sp_role_hash);
		while ((e = (RoleEntry *) hash_seq_search(&seq)) != NULL)
			if (entry_idle(e))
			{
				victim = e;
				hash_seq_term(&seq);
				break;
			}
		if (victim == NULL)
			return NULL;
		hash_search(sp_role_hash, &victim->roleid, HASH_REMOVE, NULL);
		e = (RoleEntry *) hash_search(sp_role_hash, &roleid, HASH_ENTER_NULL, &found);
		if (e == NULL)
			return NULL;
	}
	if (!found)
	{
		memset(((char *) e) + sizeof(Oid), 0, sizeof(RoleEntry) - sizeof(Oid));
		e->roleid = roleid;
	}
	return e;
}

/* Drop a role's entry and windows (the role is gone); caller holds the lock exclusively. */
void
sp_roles_forget(Oid roleid)
{
	JournalRecord rec;

	hash_search(sp_role_hash, &roleid, HASH_REMOVE, NULL);
	for (int i = 0; i < sp_roles->nwindows; i++)
		if (sp_roles->windows[i].roleid == roleid)
			memset(&sp_roles->windows[i], 0, sizeof(AccessWindow));
	memset(&rec, 0, sizeof(rec));
	rec.type = JR_FORGET;
	rec.roleid = roleid;
	(void) journal_append(&rec, 1, false);
}

/*
 * The window slot of a window id; with create, a free (or expired) slot is
 * taken when it has none.  NULL when there is none.  Caller holds the lock
 * (exclusively to create).
 */
AccessWindow *
sp_roles_window_slot(int64 window_id, bool create)
{
	AccessWindow *free_slot = NULL;
	TimestampTz now = create ? GetCurrentTimestamp() : 0;

	for (int i = 0; i < sp_roles->nwindows; i++)
	{
		AccessWindow *w = &sp_roles->windows[i];

		if (w->roleid != InvalidOid && w->window_id == window_id)
			return w;
		if (create && free_slot == NULL && (w->roleid == InvalidOid || w->expires_at <= now))
			free_slot = w;
	}
	if (free_slot != NULL)
		memset(free_slot, 0, sizeof(AccessWindow));
	return free_slot;
}

/*
 * Close every window of a role and journal it; those a lockout closed are
 * listed for the worker, which closes them in the table.  Caller holds the
 * lock exclusively.
 */
int
sp_roles_close_windows(Oid roleid, bool by_lockout)
{
	int			n = 0;

	for (int i = 0; i < sp_roles->nwindows; i++)
	{
		AccessWindow *w = &sp_roles->windows[i];

		if (w->roleid != roleid)
			continue;
		if (by_lockout)
		{
			if (sp_roles->nclosed < ROLES_CLOSED)
				sp_roles->closed[sp_roles->nclosed++] = w->window_id;
			else
				sp_roles->closed_overflow = true;
		}
		w->expires_at = 0;
		sp_roles_journal_window(w);
		memset(w, 0, sizeof(AccessWindow));
		n++;
	}
	return n;
}

/* Append an attempt to the queue (the oldest is dropped when it is full). */
void
sp_roles_queue(const AttemptRecord *rec)
{
	bool		wake;

	SpinLockAcquire(&sp_roles->qlock);
	if (sp_roles->qcount == ROLES_QUEUE_SIZE)
	{
		sp_roles->qhead = (sp_roles->qhead + 1) % ROLES_QUEUE_SIZE;
		sp_roles->qcount--;
		sp_roles->qdropped++;
	}
	sp_roles->queue[(sp_roles->qhead + sp_roles->qcount) % ROLES_QUEUE_SIZE] = *rec;
	sp_roles->qcount++;
	wake = sp_roles->qcount == ROLES_QUEUE_SIZE / 2;
	SpinLockRelease(&sp_roles->qlock);
	/* half full: the worker should not wait for its next second */
	if (wake && sp_roles->worker_latch != NULL)
		SetLatch(sp_roles->worker_latch);
}

/* Take up to max attempts off the queue; returns how many. */
int
sp_roles_dequeue(AttemptRecord *out, int max)
{
	int			n = 0;

	SpinLockAcquire(&sp_roles->qlock);
	while (n < max && sp_roles->qcount > 0)
	{
		out[n++] = sp_roles->queue[sp_roles->qhead];
		sp_roles->qhead = (sp_roles->qhead + 1) % ROLES_QUEUE_SIZE;
		sp_roles->qcount--;
	}
	SpinLockRelease(&sp_roles->qlock);
	return n;
}

/* Is this backend connected to the policy database? */
bool
sp_roles_in_policy_database(void)
{
	static char *here = NULL;

	if (!OidIsValid(MyDatabaseId) || sp_roles_database == NULL)
		return false;
	if (here == NULL)
	{
		char	   *name = get_database_name(MyDatabaseId);

		if (name == NULL)
			return false;
		here = MemoryContextStrdup(TopMemoryContext, name);
	}
	return strcmp(here, sp_roles_database) == 0;
}

/* The owner of the extension in this database, or InvalidOid when it is not installed. */
Oid
sp_roles_extension_owner(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			owner = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("secpolicy"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		owner = ((Form_pg_extension) GETSTRUCT(tup))->extowner;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return owner;
}

/* ------------------------------------------------------------- journal -- */

/* The journal's path. */
static void
journal_path(char *path, const char *suffix)
{
	snprintf(path, MAXPGPATH, "%s/%s%s", DataDir, JOURNAL_FILE, suffix);
}

/* Seal a record with its CRC. */
static void
journal_seal(JournalRecord *rec)
{
	rec->magic = JOURNAL_MAGIC;
	INIT_CRC32C(rec->crc);
	COMP_CRC32C(rec->crc, rec, offsetof(JournalRecord, crc));
	FIN_CRC32C(rec->crc);
}

/* Does a record read back carry a valid CRC? */
static bool
journal_valid(JournalRecord *rec)
{
	pg_crc32c	crc;

	if (rec->magic != JOURNAL_MAGIC)
		return false;
	INIT_CRC32C(crc);
	COMP_CRC32C(crc, rec, offsetof(JournalRecord, crc));
	FIN_CRC32C(crc);
	return EQ_CRC32C(crc, rec->crc);
}

/* Write all of a buffer; false (errno set) on failure. */
static bool
write_all(int fd, const char *buf, size_t len)
{
	while (len > 0)
	{
		ssize_t		n = write(fd, buf, len);

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			return false;
		}
		if (n == 0)
		{
			errno = ENOSPC;
			return false;
		}
		buf += n;
		len -= n;
	}
	return true;
}

/*
 * Append records to the journal, fsync'd when `sync`.  The caller holds the
 * lock exclusively (or is the postmaster, alone).  Never raises: a failure is
 * logged (the shared state stays as it is; only its durability is at risk).
 */
static bool
journal_append(JournalRecord *recs, int n, bool sync)
{
	char		path[MAXPGPATH];
	int			fd;
	bool		ok;

	for (int i = 0; i < n; i++)
		journal_seal(&recs[i]);
	journal_path(path, "");
	fd = BasicOpenFilePerm(path, O_WRONLY | O_APPEND | O_CREAT | PG_BINARY, S_IRUSR | S_IWUSR);
	if (fd < 0)
	{
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("secpolicy: could not open the role journal \"%s\": %m", path)));
		return false;
	}
	ok = write_all(fd, (const char *) recs, n * sizeof(JournalRecord));
	if (ok && sync)
		ok = pg_fsync(fd) == 0;
	if (!ok)
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("secpolicy: could not write the role journal \"%s\": %m", path),
				 errdetail("The role state in shared memory is unchanged; a restart may lose this change.")));
	close(fd);
	if (ok && sp_roles != NULL)
	{
		sp_roles->journal_records += n;
		sp_roles->journal_unsynced = sync ? 0 : sp_roles->journal_unsynced + n;
		if (sp_roles->journal_records > JOURNAL_MAX_RECORDS)
			(void) sp_roles_journal_compact(WARNING);
	}
	return ok;
}

/* Fill a record with the state of a role. */
static void
role_record(JournalRecord *rec, const RoleEntry *e)
{
	memset(rec, 0, sizeof(*rec));
	rec->type = JR_ROLE;
	rec->roleid = e->roleid;
	rec->count = e->failures;
	rec->t_locked = e->locked_at;
	rec->t_cleared = e->cleared_at;
	rec->t_failure = e->last_failure_at;
	rec->t_success = e->last_success_at;
	rec->user_id = e->user_id;
	rec->flag = e->mfa_required ? 1 : 0;
}

/* Fill a record with the state of a window. */
static void
window_record(JournalRecord *rec, const AccessWindow *w)
{
	memset(rec, 0, sizeof(*rec));
	rec->type = JR_WINDOW;
	rec->roleid = w->roleid;
	rec->t_locked = w->expires_at;
	rec->user_id = w->user_id;
	rec->window_id = w->window_id;
	rec->family = w->family;
	rec->bits = w->bits;
	memcpy(rec->addr, w->addr, sizeof(rec->addr));
}

/* Fill a record with the policy values. */
static void
policy_record(JournalRecord *rec)
{
	memset(rec, 0, sizeof(*rec));
	rec->type = JR_POLICY;
	rec->count = sp_roles->max_failed;
	rec->flag = sp_roles->active ? 1 : 0;
}

/*
 * Journal the new state of a role; a lock is fsync'd before this returns.
 * Caller holds the lock exclusively.
 */
void
sp_roles_journal_role(const RoleEntry *e)
{
	JournalRecord rec;

	role_record(&rec, e);
	(void) journal_append(&rec, 1, e->locked_at != 0);
}

/* Journal the new state of a window.  Caller holds the lock exclusively. */
void
sp_roles_journal_window(const AccessWindow *w)
{
	JournalRecord rec;

	window_record(&rec, w);
	(void) journal_append(&rec, 1, false);
}

/* Journal the policy values.  Caller holds the lock exclusively. */
void
sp_roles_journal_policy(void)
{
	JournalRecord rec;

	policy_record(&rec);
	(void) journal_append(&rec, 1, true);
}

/*
 * fsync the journal if anything was appended since the last fsync (the
 * worker, every second).  Caller holds the lock exclusively.
 */
bool
sp_roles_journal_sync(int elevel)
{
	char		path[MAXPGPATH];
	int			fd;
	bool		ok;

	if (sp_roles->journal_unsynced == 0)
		return true;
	journal_path(path, "");
	fd = BasicOpenFile(path, O_RDWR | PG_BINARY);
	if (fd < 0)
	{
		ereport(elevel,
				(errcode_for_file_access(),
				 errmsg("secpolicy: could not open the role journal \"%s\": %m", path)));
		return false;
	}
	ok = pg_fsync(fd) == 0;
	if (!ok)
		ereport(elevel,
				(errcode_for_file_access(),
				 errmsg("secpolicy: could not fsync the role journal \"%s\": %m", path)));
	close(fd);
	if (ok)
		sp_roles->journal_unsynced = 0;
	return ok;
}

/*
 * Rewrite the journal as a snapshot of the shared state: written to a
 * temporary file, fsync'd and renamed over the journal.  Caller holds the
 * lock exclusively (or is the postmaster, alone).
 */
bool
sp_roles_journal_compact(int elevel)
{
	char		path[MAXPGPATH];
	char		tmp[MAXPGPATH];
	int			fd;
	bool		ok = true;
	JournalRecord rec;
	HASH_SEQ_STATUS seq;
	RoleEntry  *e;
	TimestampTz now = GetCurrentTimestamp();

	journal_path(path, "");
	journal_path(tmp, ".tmp");
	fd = BasicOpenFilePerm(tmp, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY, S_IRUSR | S_IWUSR);
	if (fd < 0)
	{
		ereport(elevel,
				(errcode_for_file_access(),
				 errmsg("secpolicy: could not create \"%s\": %m", tmp)));
		return false;
	}
	policy_record(&rec);
	journal_seal(&rec);
	ok = write_all(fd, (const char *) &rec, sizeof(rec));
	hash_seq_init(&seq, sp_role_hash);
	while ((e = (RoleEntry *) hash_seq_search(&seq)) != NULL)
	{
		role_record(&rec, e);
		journal_seal(&rec);
		if (ok)
			ok = write_all(fd, (const char *) &rec, sizeof(rec));
	}
	for (int i = 0; ok && i < sp_roles->nwindows; i++)
	{
		AccessWindow *w = &sp_roles->windows[i];

		if (w->roleid == InvalidOid || w->expires_at <= now)
			continue;
		window_record(&rec, w);
		journal_seal(&rec);
		ok = write_all(fd, (const char *) &rec, sizeof(rec));
	}
	if (ok)
		ok = pg_fsync(fd) == 0;
	if (close(fd) != 0)
		ok = false;
	if (!ok)
	{
		ereport(elevel,
				(errcode_for_file_access(),
				 errmsg("secpolicy: could not write \"%s\": %m", tmp)));
		unlink(tmp);
		return false;
	}
	if (durable_rename(tmp, path, elevel) != 0)
		return false;
	sp_roles->journal_records = 0;
	sp_roles->journal_unsynced = 0;
	return true;
}

/* Apply one record of the journal to the shared state. */
static void
journal_apply(const JournalRecord *rec)
{
	switch (rec->type)
	{
		case JR_ROLE:
			{
				RoleEntry  *e = sp_roles_entry(rec->roleid, true);

				if (e == NULL)
				{
					ereport(WARNING,
							(errmsg("secpolicy: no room for role %u in shared memory", rec->roleid),
							 errhint("Raise secpolicy.max_roles.")));
					return;
				}
				e->failures = rec->count;
				e->locked_at = rec->t_locked;
				e->cleared_at = rec->t_cleared;
				e->last_failure_at = rec->t_failure;
				e->last_success_at = rec->t_success;
				e->user_id = rec->user_id;
				e->mfa_required = rec->flag != 0;
				e->dirty = true;
				break;
			}
		case JR_FORGET:
			hash_search(sp_role_hash, &rec->roleid, HASH_REMOVE, NULL);
			for (int i = 0; i < sp_roles->nwindows; i++)
				if (sp_roles->windows[i].roleid == rec->roleid)
					memset(&sp_roles->windows[i], 0, sizeof(AccessWindow));
			break;
		case JR_WINDOW:
			{
				AccessWindow *w = sp_roles_window_slot(rec->window_id, rec->t_locked != 0);

				if (w == NULL)
					return;
				if (rec->t_locked == 0)
				{
					memset(w, 0, sizeof(AccessWindow));
					return;
				}
				w->roleid = rec->roleid;
				w->user_id = rec->user_id;
				w->window_id = rec->window_id;
				w->expires_at = rec->t_locked;
				w->family = rec->family;
				w->bits = rec->bits;
				memcpy(w->addr, rec->addr, sizeof(w->addr));
				break;
			}
		case JR_POLICY:
			sp_roles->max_failed = rec->count;
			sp_roles->active = rec->flag != 0;
			break;
	}
}

/*
 * Replay the journal into a new shared state (the postmaster, alone, before
 * it accepts connections), then rewrite it as a snapshot.  A torn or damaged
 * tail (a power loss during an append) ends the replay there.
 */
static void
journal_replay(void)
{
	char		path[MAXPGPATH];
	int			fd;
	JournalRecord rec;
	ssize_t		n;
	long		nrec = 0;
	bool		damaged = false;

	journal_path(path, "");
	fd = BasicOpenFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
	{
		if (errno != ENOENT)
			ereport(WARNING,
					(errcode_for_file_access(),
					 errmsg("secpolicy: could not read the role journal \"%s\": %m", path),
					 errdetail("Role locks and counters start empty; the worker restores locks from the policy database.")));
		return;
	}
	while ((n = read(fd, &rec, sizeof(rec))) == sizeof(rec))
	{
		if (!journal_valid(&rec))
		{
			damaged = true;
			break;
		}
		journal_apply(&rec);
		nrec++;
	}
	if (n > 0 && n != sizeof(rec))
		damaged = true;
	close(fd);
	if (damaged)
		ereport(LOG,
				(errmsg("secpolicy: the role journal ends with a damaged record after %ld good ones; the rest is ignored",
						nrec)));
	(void) sp_roles_journal_compact(LOG);
}
