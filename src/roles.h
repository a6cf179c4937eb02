/*
 * roles.h
 *		Declarations shared by the modules of the database-role policy
 *		(roles.c, roles_auth.c, roles_password.c, roles_sql.c, roles_worker.c).
 *
 * The role policy needs shared_preload_libraries = 'secpolicy'.  Its state
 * lives in shared memory (one entry per role with anything to remember, and
 * the open access windows), is made durable by an append-only journal in the
 * data directory (replayed by the postmaster before it accepts connections),
 * and is mirrored by a background worker into the tables of the policy
 * database (secpolicy.database), where SQL reads it, pg_dump keeps it and
 * streaming replication copies it.
 */
#ifndef SECPOLICY_ROLES_H
#define SECPOLICY_ROLES_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/s_lock.h"
#include "utils/hsearch.h"

/* Attempts waiting for the worker (a ring); beyond it the oldest are dropped. */
#define ROLES_QUEUE_SIZE	8192
/* Pending failures that an sslmode=prefer/allow retry may still follow. */
#define ROLES_MARKERS		256
/* Windows a lockout closed, for the worker to close in the table. */
#define ROLES_CLOSED		256

#define ROLES_ADDR_LEN		48	/* a numeric IPv6 address and NUL */
#define ROLES_METHOD_LEN	16
#define ROLES_OUTCOME_LEN	24
#define ROLES_APP_LEN		64

/* What is remembered of a role; key roleid.  Protected by RolesShared.lock. */
typedef struct RoleEntry
{
	Oid			roleid;			/* hash key */
	int32		failures;		/* consecutive failed password authentications */
	TimestampTz locked_at;		/* 0: not locked */
	TimestampTz cleared_at;		/* last unlock or password change */
	TimestampTz last_failure_at;
	TimestampTz last_success_at;
	int64		user_id;		/* linked application account, 0: none */
	bool		mfa_required;	/* connections need an open access window */
	bool		dirty;			/* changed since the worker last mirrored it */
	int			hold_pid;		/* being disabled by this backend's transaction */
} RoleEntry;

/* An open access window (roleid 0: a free slot). */
typedef struct AccessWindow
{
	Oid			roleid;
	int64		user_id;
	int64		window_id;		/* secpolicy.database_access.id */
	TimestampTz expires_at;
	uint8		family;			/* 0: any address; else PGSQL_AF_INET(6) */
	uint8		bits;
	uint8		addr[16];
} AccessWindow;

/*
 * A failure that a libpq retry with the other SSL mode may repeat: pending
 * counts such failures of (role, client address, database) not yet matched
 * by a retry.
 */
typedef struct RetryMarker
{
	Oid			roleid;
	uint32		addrhash;
	uint32		dbhash;
	bool		ssl;
	int32		pending;
	TimestampTz at;
} RetryMarker;

/* One database authentication attempt on its way to login_attempts. */
typedef struct AttemptRecord
{
	TimestampTz at;
	char		role[NAMEDATALEN];
	char		database[NAMEDATALEN];
	char		addr[ROLES_ADDR_LEN];	/* "" for a Unix socket */
	char		method[ROLES_METHOD_LEN];
	char		outcome[ROLES_OUTCOME_LEN];
	char		application[ROLES_APP_LEN];
	bool		ssl;
	bool		success;
} AttemptRecord;

typedef struct RolesShared
{
	LWLock	   *lock;			/* entries, windows, markers, policy, journal */
	slock_t		qlock;			/* the attempt queue */
	int32		max_failed;		/* the policy's max_failed_attempts */
	bool		active;			/* the extension is installed in the policy database */
	uint64		journal_records;	/* appended since the last compaction */
	uint64		journal_unsynced;	/* appended since the last fsync */
	uint64		changes;		/* links and windows changed by transactions */
	Latch	   *worker_latch;
	/* the attempt queue: a ring of ROLES_QUEUE_SIZE */
	uint32		qhead;			/* next to read */
	uint32		qcount;
	uint64		qdropped;		/* lost because the queue was full */
	AttemptRecord queue[ROLES_QUEUE_SIZE];
	RetryMarker markers[ROLES_MARKERS];
	int64		closed[ROLES_CLOSED];	/* window ids closed by a lockout */
	int			nclosed;
	bool		closed_overflow;	/* more were closed: the worker looks at every lock */
	int			nwindows;		/* slots in windows[] (max_roles) */
	AccessWindow windows[FLEXIBLE_ARRAY_MEMBER];
} RolesShared;

/* roles.c: settings, shared memory, the journal */
extern RolesShared *sp_roles;
extern HTAB *sp_role_hash;
extern char *sp_roles_database;
extern bool sp_roles_allow_prehashed;
extern bool sp_roles_exempt_superusers;
extern int	sp_roles_retry_window;

extern RoleEntry *sp_roles_entry(Oid roleid, bool create);
extern void sp_roles_forget(Oid roleid);
extern void sp_roles_journal_role(const RoleEntry *e);
extern void sp_roles_journal_window(const AccessWindow *w);
extern void sp_roles_journal_policy(void);
extern bool sp_roles_journal_sync(int elevel);
extern bool sp_roles_journal_compact(int elevel);
extern int	sp_roles_close_windows(Oid roleid, bool by_lockout);
extern AccessWindow *sp_roles_window_slot(int64 window_id, bool create);
extern void sp_roles_queue(const AttemptRecord *rec);
extern int	sp_roles_dequeue(AttemptRecord *out, int max);
extern bool sp_roles_in_policy_database(void);
extern Oid	sp_roles_extension_owner(void);

/* roles_auth.c: the ClientAuthentication_hook */
extern void sp_roles_auth_init(void);

/* roles_password.c: check_password_hook, VALID UNTIL and history */
extern void sp_roles_password_init(void);

/* roles_sql.c: the SQL-callable helpers and what commits with a transaction */
extern void sp_roles_sql_init(void);

/* roles_worker.c: the background worker */
extern void sp_roles_worker_register(void);
extern PGDLLEXPORT void secpolicy_roles_worker_main(Datum arg);

#endif							/* SECPOLICY_ROLES_H */
