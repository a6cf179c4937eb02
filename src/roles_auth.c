/*
 * roles_auth.c
 *		The ClientAuthentication_hook of the role policy: counts failed
 *		password authentications of roles, locks a role at the policy's
 *		max_failed_attempts, refuses a locked role even its right password
 *		(with the message of a wrong one), refuses a role marked mfa_required
 *		outside an open access window (whatever the password), and queues
 *		every attempt for login_attempts.
 *
 * The hook runs in the new backend once PostgreSQL has checked the
 * credentials, before the backend is connected to a database: no table can
 * be read, only the shared catalog pg_authid (through the catalog cache, as
 * the password check itself does) and the shared state.  It always calls the
 * hook installed before it first, and raises nothing but a refusal (FATAL).
 *
 * Which failures count: those of the password methods (password, md5,
 * scram-sha-256, and ldap, radius, pam, bsd, whose password is checked
 * elsewhere), except when no password was evaluated (the role has none, or
 * its VALID UNTIL has passed) and except a retry: libpq repeats a connection
 * that failed over SSL without SSL (sslmode=prefer), and the other way round
 * (allow), with the same password; such a failure from the same address, for
 * the same role and database, within secpolicy.ssl_retry_window counts once.
 * A lock refuses the password methods only: peer, cert or trust logins of a
 * locked role still work (they prove something else than the password).
 */
#include "postgres.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_authid.h"
#include "common/hashfn.h"
#include "common/ip.h"
#include "libpq/auth.h"
#include "libpq/hba.h"
#include "libpq/libpq-be.h"
#include "miscadmin.h"
#include "storage/procarray.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/inet.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "secpolicy.h"
#include "roles.h"

static ClientAuthentication_hook_type prev_client_auth_hook = NULL;

/* Where a connection comes from. */
typedef struct ClientAddr
{
	uint8		family;			/* 0: a Unix socket */
	uint8		addr[16];
	uint32		addrhash;
	char		text[ROLES_ADDR_LEN];
} ClientAddr;

/* The name of an authentication method, as pg_hba.conf spells it. */
static const char *
method_name(UserAuth m)
{
	switch (m)
	{
		case uaReject:
		case uaImplicitReject:
			return "reject";
		case uaTrust:
			return "trust";
		case uaIdent:
			return "ident";
		case uaPassword:
			return "password";
		case uaMD5:
			return "md5";
		case uaSCRAM:
			return "scram-sha-256";
		case uaGSS:
			return "gss";
		case uaSSPI:
			return "sspi";
		case uaPAM:
			return "pam";
		case uaBSD:
			return "bsd";
		case uaLDAP:
			return "ldap";
		case uaCert:
			return "cert";
		case uaRADIUS:
			return "radius";
		case uaPeer:
			return "peer";
	}
	return "unknown";
}

/* Does the method check a password (which a lock then refuses)? */
static bool
password_method(UserAuth m)
{
	return m == uaPassword || m == uaMD5 || m == uaSCRAM || m == uaLDAP ||
		m == uaRADIUS || m == uaPAM || m == uaBSD;
}

/* The client's address in the forms the hook needs. */
static void
client_addr(Port *port, ClientAddr *ca)
{
	const struct sockaddr_storage *ss = &port->raddr.addr;

	memset(ca, 0, sizeof(*ca));
	if (ss->ss_family == AF_INET)
	{
		ca->family = PGSQL_AF_INET;
		memcpy(ca->addr, &((const struct sockaddr_in *) ss)->sin_addr, 4);
	}
	else if (ss->ss_family == AF_INET6)
	{
		ca->family = PGSQL_AF_INET6;
		memcpy(ca->addr, &((const struct sockaddr_in6 *) ss)->sin6_addr, 16);
	}
	else
		return;
	if (pg_getnameinfo_all(ss, port->raddr.salen, ca->text, sizeof(ca->text),
						   NULL, 0, NI_NUMERICHOST) != 0)
		ca->text[0] = '\0';
	ca->addrhash = hash_bytes(ca->addr, ca->family == PGSQL_AF_INET ? 4 : 16) ^ ca->family;
}

/* Do the first `bits` bits of two addresses agree? */
static bool
prefix_match(const uint8 *a, const uint8 *b, int bits)
{
	int			bytes = bits / 8;
	int			rest = bits % 8;

	if (memcmp(a, b, bytes) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((a[bytes] ^ b[bytes]) & (0xff << (8 - rest))) == 0;
}

/* Is an access window of the role open for this address now?  Caller holds the lock. */
static bool
window_open(Oid roleid, const ClientAddr *ca, TimestampTz now)
{
	for (int i = 0; i < sp_roles->nwindows; i++)
	{
		const AccessWindow *w = &sp_roles->windows[i];

		if (w->roleid != roleid || w->expires_at <= now)
			continue;
		if (w->family == 0)
			return true;
		if (w->family == ca->family && prefix_match(w->addr, ca->addr, w->bits))
			return true;
	}
	return false;
}

/*
 * Is this failure the retry, with the other SSL mode, of one counted just
 * before from the same address for the same role and database?  If not, it
 * is remembered for its own retry.  Caller holds the lock exclusively.
 */
static bool
retry_of_counted(Oid roleid, const ClientAddr *ca, uint32 dbhash, bool ssl, TimestampTz now)
{
	TimestampTz since = now - (TimestampTz) sp_roles_retry_window * 1000;
	RetryMarker *same = NULL;
	RetryMarker *slot = NULL;
	bool		slot_live = false;

	if (sp_roles_retry_window <= 0 || ca->family == 0)
		return false;
	for (int i = 0; i < ROLES_MARKERS; i++)
	{
		RetryMarker *m = &sp_roles->markers[i];
		bool		live = m->pending > 0 && m->at >= since;

		if (live && m->roleid == roleid && m->addrhash == ca->addrhash && m->dbhash == dbhash)
		{
			if (m->ssl != ssl)
			{
				m->pending--;
				return true;
			}
			same = m;
		}
		else if (!live)
		{
			/* a free or stale slot: the first one */
			if (slot == NULL || slot_live)
			{
				slot = m;
				slot_live = false;
			}
		}
		else if (slot == NULL || (slot_live && m->at < slot->at))
		{
			/* no free slot so far: the oldest live one */
			slot = m;
			slot_live = true;
		}
	}
	if (same == NULL)
	{
		memset(slot, 0, sizeof(*slot));
		slot->roleid = roleid;
		slot->addrhash = ca->addrhash;
		slot->dbhash = dbhash;
		slot->ssl = ssl;
		same = slot;
	}
	same->pending++;
	same->at = now;
	return false;
}

/* What the hook needs of a role's catalog row. */
typedef struct RoleFacts
{
	bool		superuser;
	bool		canlogin;
	const char *unevaluated;	/* no_password, password_expired, or NULL */
} RoleFacts;

/*
 * Read a role's catalog row (pg_authid is shared and in the catalog cache).
 * unevaluated says why a failed authentication with a stored password
 * evaluated no password (there is none, or its VALID UNTIL has passed).
 * False when the role is gone.
 */
static bool
role_facts(Oid roleid, TimestampTz now, RoleFacts *f)
{
	HeapTuple	tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(roleid));
	bool		isnull;
	Datum		d;

	memset(f, 0, sizeof(*f));
	if (!HeapTupleIsValid(tup))
		return false;
	f->superuser = ((Form_pg_authid) GETSTRUCT(tup))->rolsuper;
	f->canlogin = ((Form_pg_authid) GETSTRUCT(tup))->rolcanlogin;
	(void) SysCacheGetAttr(AUTHOID, tup, Anum_pg_authid_rolpassword, &isnull);
	if (isnull)
		f->unevaluated = "no_password";
	else
	{
		d = SysCacheGetAttr(AUTHOID, tup, Anum_pg_authid_rolvaliduntil, &isnull);
		if (!isnull && DatumGetTimestampTz(d) < now)
			f->unevaluated = "password_expired";
	}
	ReleaseSysCache(tup);
	return true;
}

/* The other superusers that can log in (for "never lock out the last superuser"). */
static List *
other_superusers(Oid roleid)
{
	Relation	rel = table_open(AuthIdRelationId, AccessShareLock);
	SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	HeapTuple	tup;
	List	   *others = NIL;

	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_authid a = (Form_pg_authid) GETSTRUCT(tup);

		if (a->oid != roleid && a->rolsuper && a->rolcanlogin)
			others = lappend_oid(others, a->oid);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return others;
}

/* Is one of these roles not locked?  Caller holds the lock. */
static bool
any_unlocked(List *roles)
{
	ListCell   *lc;

	foreach(lc, roles)
	{
		RoleEntry  *e = sp_roles_entry(lfirst_oid(lc), false);

		if (e == NULL || e->locked_at == 0)
			return true;
	}
	return false;
}

/*
 * Count a failed password authentication; lock the role at the limit.
 * Returns the outcome to record: invalid_password, lockout (this failure
 * locked it), locked (it already was) or ssl_retry (not counted).
 */
static const char *
count_failure(Port *port, Oid roleid, const ClientAddr *ca, bool superuser, TimestampTz now)
{
	bool		exempt = superuser && sp_roles_exempt_superusers;
	List	   *others = (superuser && !exempt) ? other_superusers(roleid) : NIL;
	uint32		dbhash = hash_bytes((const unsigned char *) port->database_name,
									strlen(port->database_name));
	const char *outcome = "invalid_password";
	bool		spared = false;
	int			failures = 0;
	int			closed = 0;
	RoleEntry  *e;

	LWLockAcquire(sp_roles->lock, LW_EXCLUSIVE);
	if (retry_of_counted(roleid, ca, dbhash, port->ssl_in_use, now))
	{
		LWLockRelease(sp_roles->lock);
		return "ssl_retry";
	}
	e = sp_roles_entry(roleid, true);
	if (e == NULL)
	{
		LWLockRelease(sp_roles->lock);
		ereport(WARNING,
				(errmsg("secpolicy: no room in shared memory to count a failure of role \"%s\"",
						port->user_name),
				 errhint("Raise secpolicy.max_roles.")));
		return outcome;
	}
	e->failures++;
	e->last_failure_at = now;
	e->dirty = true;
	failures = e->failures;
	if (e->locked_at != 0)
		outcome = "locked";
	else if (failures >= sp_roles->max_failed && !exempt)
	{
		if (superuser && !any_unlocked(others))
			spared = true;
		else
		{
			e->locked_at = now;
			outcome = "lockout";
			closed = sp_roles_close_windows(roleid, true);
		}
	}
	/* written before the client hears of it; a lock also fsync'd */
	sp_roles_journal_role(e);
	LWLockRelease(sp_roles->lock);

	if (spared)
		ereport(LOG,
				(errmsg("secpolicy: role \"%s\" reached %d failed password authentications but is not locked: it is the last superuser that can log in",
						port->user_name, failures)));
	else if (strcmp(outcome, "lockout") == 0)
		ereport(LOG,
				(errmsg("secpolicy: role \"%s\" is locked after %d failed password authentications",
						port->user_name, failures),
				 closed > 0 ? errdetail("%d access windows were closed.", closed) : 0));
	return outcome;
}

/* A successful password authentication ends the run of failures. */
static void
clear_failures(Oid roleid, TimestampTz now)
{
	RoleEntry  *e;

	LWLockAcquire(sp_roles->lock, LW_EXCLUSIVE);
	e = sp_roles_entry(roleid, false);
	if (e != NULL && e->failures > 0 && e->locked_at == 0)
	{
		e->failures = 0;
		e->last_success_at = now;
		e->dirty = true;
		sp_roles_journal_role(e);
	}
	LWLockRelease(sp_roles->lock);
}

/* Queue the attempt for login_attempts. */
static void
record(AttemptRecord *rec, const char *outcome, bool success)
{
	strlcpy(rec->outcome, outcome, sizeof(rec->outcome));
	rec->success = success;
	sp_roles_queue(rec);
}

/* Refuse exactly as PostgreSQL refuses a wrong password of this method. */
static void
refuse_as_wrong(Port *port, const char *why)
{
	const char *errstr;
	int			code = ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;

	switch (port->hba->auth_method)
	{
		case uaLDAP:
			errstr = gettext_noop("LDAP authentication failed for user \"%s\"");
			break;
		case uaRADIUS:
			errstr = gettext_noop("RADIUS authentication failed for user \"%s\"");
			break;
		case uaPAM:
			errstr = gettext_noop("PAM authentication failed for user \"%s\"");
			break;
		case uaBSD:
			errstr = gettext_noop("BSD authentication failed for user \"%s\"");
			break;
		default:
			errstr = gettext_noop("password authentication failed for user \"%s\"");
			code = ERRCODE_INVALID_PASSWORD;
			break;
	}
	ereport(FATAL,
			(errcode(code),
			 errmsg(errstr, port->user_name),
			 errdetail_log("secpolicy: %s\nConnection matched pg_hba.conf line %d: \"%s\"",
						   why, port->hba->linenumber, port->hba->rawline)));
}

/* Refuse a role marked mfa_required outside an access window, saying how to open one. */
static void
refuse_outside_window(Port *port)
{
	ereport(FATAL,
			(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
			 errmsg("role \"%s\" needs an open database access window", port->user_name),
			 errdetail("Logins of this role require two-factor authentication."),
			 errhint("Log in to the application with your second factor, then call secpolicy.open_database_access(session_token, '%s') in database \"%s\".",
					 port->user_name, sp_roles_database)));
}

/*
 * The hook.  Calls the previous hook, then classifies the attempt, counts
 * it, refuses it if the policy says so, and queues it for login_attempts.
 */
static void
roles_client_auth(Port *port, int status)
{
	AttemptRecord rec;
	ClientAddr	ca;
	TimestampTz now;
	UserAuth	method;
	Oid			roleid;
	RoleFacts	facts;
	bool		locked = false;
	bool		mfa = false;
	bool		window = true;
	int			failures = 0;
	int			hold_pid = 0;
	RoleEntry  *e;

	if (prev_client_auth_hook)
		prev_client_auth_hook(port, status);

	/* a client that hung up (psql asking for a password) attempted nothing */
	if (sp_roles == NULL || !sp_roles->active || status == STATUS_EOF ||
		port == NULL || port->hba == NULL || port->user_name == NULL ||
		port->database_name == NULL)
		return;

	now = GetCurrentTimestamp();
	method = port->hba->auth_method;
	client_addr(port, &ca);
	memset(&rec, 0, sizeof(rec));
	rec.at = now;
	strlcpy(rec.role, port->user_name, sizeof(rec.role));
	strlcpy(rec.database, port->database_name, sizeof(rec.database));
	strlcpy(rec.addr, ca.text, sizeof(rec.addr));
	strlcpy(rec.method, method_name(method), sizeof(rec.method));
	if (port->application_name != NULL)
		strlcpy(rec.application, port->application_name, sizeof(rec.application));
	rec.ssl = port->ssl_in_use;

	roleid = get_role_oid(port->user_name, true);
	if (!OidIsValid(roleid) || !role_facts(roleid, now, &facts))
	{
		record(&rec, "unknown_role", false);
		return;
	}
	/* NOLOGIN: PostgreSQL refuses it next, with its own message */
	if (!facts.canlogin)
	{
		record(&rec, "nologin", false);
		return;
	}

	LWLockAcquire(sp_roles->lock, LW_SHARED);
	e = sp_roles_entry(roleid, false);
	if (e != NULL)
	{
		locked = e->locked_at != 0;
		mfa = e->mfa_required;
		failures = e->failures;
		hold_pid = e->hold_pid;
		if (mfa)
			window = window_open(roleid, &ca, now);
	}
	LWLockRelease(sp_roles->lock);

	if (status != STATUS_OK)
	{
		const char *outcome = NULL;

		if (!password_method(method))
			outcome = (method == uaReject || method == uaImplicitReject) ? "rejected" : "failed";
		else if (method == uaPassword || method == uaMD5 || method == uaSCRAM)
			outcome = facts.unevaluated;	/* NULL: a password was evaluated */
		if (outcome == NULL)
			outcome = count_failure(port, roleid, &ca, facts.superuser, now);
		record(&rec, outcome, false);
		/* outside a window the answer never tells whether the password was right */
		if (!window)
			refuse_outside_window(port);
		return;					/* PostgreSQL refuses */
	}

	if (!window)
	{
		record(&rec, "no_access_window", false);
		refuse_outside_window(port);
	}
	if (hold_pid != 0 && BackendPidGetProc(hold_pid) != NULL)
	{
		record(&rec, "disabled", false);
		ereport(FATAL,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("role \"%s\" is not permitted to log in", port->user_name)));
	}
	if (password_method(method) && locked && !(facts.superuser && sp_roles_exempt_superusers))
	{
		record(&rec, "locked", false);
		refuse_as_wrong(port, "the role is locked after too many failed password authentications "
						"(secpolicy.unlock_role or secpolicy.set_role_password unlocks it)");
	}
	if (password_method(method) && failures > 0)
		clear_failures(roleid, now);
	record(&rec, "ok", true);
}

/* Install the hook (shared_preload_libraries only). */
void
sp_roles_auth_init(void)
{
	prev_client_auth_hook = ClientAuthentication_hook;
	ClientAuthentication_hook = roles_client_auth;
}
