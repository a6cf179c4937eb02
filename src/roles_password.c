/*
 * roles_password.c
 *		Passwords of database roles: the check_password_hook that applies the
 *		password rules and the role's password history to CREATE ROLE and
 *		ALTER ROLE ... PASSWORD, what follows a change (VALID UNTIL, the
 *		history, the end of a lock, the audit row), and set_role_password().
 *
 * The rules and the history live in the policy database (secpolicy.database),
 * so role passwords are set there: elsewhere a password change is refused
 * with a hint, and a password sent as a SCRAM or MD5 verifier, which no rule
 * can check, is refused unless secpolicy.allow_prehashed_passwords is on.
 * The hook receives the plaintext only when the client sends it in clear
 * (ALTER ROLE ... PASSWORD 'x'); psql's \password sends a verifier.
 *
 * The check runs inside the statement; what follows it (the new VALID UNTIL
 * of now + max_password_age, the argon2id hash of the new password in the
 * history) runs right after the statement, in our ProcessUtility hook (or in
 * set_role_password), through secpolicy.role_password_changed() as the
 * extension's owner.  The plaintext is hashed in the hook and never leaves
 * it; every statement that carries one is marked for the log redaction.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/user.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "libpq/crypt.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_node.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include <sodium.h>

#include "secpolicy.h"
#include "roles.h"

PG_FUNCTION_INFO_V1(secpolicy_set_role_password);

static check_password_hook_type prev_check_password_hook = NULL;
static ProcessUtility_hook_type prev_ProcessUtility_hook = NULL;

/*
 * The password change the hook accepted in the running statement, for the
 * step that follows it.  One statement changes one role's password.
 */
static struct
{
	bool		set;
	bool		has_hash;		/* false: a pre-hashed password (no history) */
	char		role[NAMEDATALEN];
	char		hash[crypto_pwhash_STRBYTES];
}			accepted;

/* Forget the accepted change (and wipe its hash). */
static void
accepted_clear(void)
{
	sodium_memzero(&accepted, sizeof(accepted));
}

/* Raise the policy-violation error with the rule codes in DETAIL. */
static void
reject_password(const char *codes, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("password does not meet the password policy"),
			 errdetail("rule codes: %s", codes),
			 hint ? errhint("%s", hint) : errhint("See secpolicy.password_violations() for what each rule code means."),
			 errhidestmt(true)));
}

/* Raise 55000: the role policy does not work here. */
static void
require_policy_database(void)
{
	if (sp_roles == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the role policy needs shared_preload_libraries = 'secpolicy'"),
				 errhint("Add secpolicy to shared_preload_libraries and restart the server.")));
	if (!sp_roles_in_policy_database())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("role passwords are set in the policy database \"%s\"", sp_roles_database),
				 errdetail("The password rules and the password history of roles are kept there (secpolicy.database)."),
				 errhint("Connect to database \"%s\" and run the statement there, or call secpolicy.set_role_password(role, password) there.",
						 sp_roles_database)));
}

/*
 * Check a plaintext password of a role against the rules and the role's
 * history, as the extension's owner; on success remember its argon2id hash
 * for the step after the statement.  Raises 22023 with the rule codes.
 */
static void
check_plaintext(const char *role, const char *password, Oid owner)
{
	SpPolicy	policy;
	ArrayType  *violations;
	Oid			save_userid;
	int			save_sec;
	size_t		len = strlen(password);
	char	   *hash;

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);

	sp_policy_load(&policy);
	violations = sp_password_violations(password, len, role, strlen(role), &policy);
	if (ArrayGetNItems(ARR_NDIM(violations), ARR_DIMS(violations)) > 0)
		reject_password(sp_violations_list(violations), NULL);

	if (policy.history_depth > 0)
	{
		Oid			argtypes[2] = {TEXTOID, INT4OID};
		Datum		args[2];
		int			n;
		bool		reused = false;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		args[0] = CStringGetTextDatum(role);
		args[1] = Int32GetDatum(policy.history_depth);
		if (SPI_execute_with_args("SELECT h.password_hash FROM secpolicy.role_password_history h"
								  " WHERE h.role_name OPERATOR(pg_catalog.=) $1"
								  " ORDER BY h.id DESC LIMIT $2",
								  2, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read secpolicy.role_password_history");
		for (n = 0; n < (int) SPI_processed && !reused; n++)
		{
			char	   *old = SPI_getvalue(SPI_tuptable->vals[n], SPI_tuptable->tupdesc, 1);

			if (old != NULL && sp_verify_password(old, strlen(old), password, len))
				reused = true;
		}
		SPI_finish();
		if (reused)
			reject_password("reused_password", NULL);
	}

	hash = sp_hash_password(password, len, policy.hash_opslimit, policy.hash_memlimit);
	SetUserIdAndSecContext(save_userid, save_sec);

	accepted_clear();
	accepted.set = true;
	accepted.has_hash = true;
	strlcpy(accepted.role, role, sizeof(accepted.role));
	strlcpy(accepted.hash, hash, sizeof(accepted.hash));
	pfree(hash);
}

/*
 * check_password_hook: CREATE ROLE and ALTER ROLE with a password.  Calls the
 * hook installed before it first.
 */
static void
roles_check_password(const char *username, const char *shadow_pass, PasswordType password_type,
					 Datum validuntil_time, bool validuntil_null)
{
	Oid			owner;

	if (prev_check_password_hook)
		prev_check_password_hook(username, shadow_pass, password_type, validuntil_time, validuntil_null);

	/* the statement carries a password: keep it out of the server log */
	sp_logfilter_mark_statement();
	accepted_clear();
	if (sp_roles == NULL)
		return;
	if (!sp_roles_in_policy_database())
	{
		/* before the extension exists in the policy database, nothing is enforced */
		if (sp_roles->active)
			require_policy_database();
		return;
	}
	owner = sp_roles_extension_owner();
	if (!OidIsValid(owner))
		return;

	if (password_type != PASSWORD_TYPE_PLAINTEXT)
	{
		if (!sp_roles_allow_prehashed)
		{
			char	   *hint = psprintf("A password sent as a SCRAM or MD5 verifier (as psql's \\password does) cannot be checked. "
										"Set it with SELECT secpolicy.set_role_password('%s', '...') in database \"%s\", "
										"or with ALTER ROLE ... PASSWORD in plaintext over an encrypted connection.",
										username, sp_roles_database);

			reject_password("prehashed_password", hint);
		}
		accepted_clear();
		accepted.set = true;
		strlcpy(accepted.role, username, sizeof(accepted.role));
		return;
	}
	check_plaintext(username, shadow_pass, owner);
}

/*
 * After a password change: VALID UNTIL, the history, the end of a lock and
 * the audit row, through secpolicy.role_password_changed() as the
 * extension's owner.  `until` is an explicit VALID UNTIL of the statement
 * (the earlier of it and now + max_password_age wins), or NULL.
 */
static void
after_password_change(const char *via, Datum until, bool until_null)
{
	char		role[NAMEDATALEN];
	char		hash[crypto_pwhash_STRBYTES];
	bool		has_hash = accepted.has_hash;
	Oid			roleid;
	Oid			owner = sp_roles_extension_owner();
	Oid			save_userid;
	int			save_sec;
	Oid			argtypes[5] = {TEXTOID, OIDOID, TEXTOID, TIMESTAMPTZOID, TEXTOID};
	Datum		args[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};

	/* the nested ALTER ROLE ... VALID UNTIL passes through here again */
	strlcpy(role, accepted.role, sizeof(role));
	strlcpy(hash, accepted.hash, sizeof(hash));
	accepted_clear();
	if (!OidIsValid(owner))
		return;

	CommandCounterIncrement();
	roleid = get_role_oid(role, false);
	args[0] = CStringGetTextDatum(role);
	args[1] = ObjectIdGetDatum(roleid);
	args[2] = has_hash ? CStringGetTextDatum(hash) : (Datum) 0;
	nulls[2] = has_hash ? ' ' : 'n';
	args[3] = until;
	nulls[3] = until_null ? 'n' : ' ';
	args[4] = CStringGetTextDatum(via);
	sodium_memzero(hash, sizeof(hash));

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT secpolicy.role_password_changed($1, $2, $3, $4, $5)",
							  5, argtypes, args, nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not record the password change of role \"%s\"", role);
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec);
}

/* The explicit VALID UNTIL of a CREATE/ALTER ROLE statement, if any. */
static bool
statement_valid_until(List *options, Datum *until)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *d = (DefElem *) lfirst(lc);

		if (strcmp(d->defname, "validUntil") == 0 && d->arg != NULL)
		{
			*until = DirectFunctionCall3(timestamptz_in, CStringGetDatum(strVal(d->arg)),
										 ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
			return true;
		}
	}
	return false;
}

/* Run the statement, then what follows an accepted password change. */
static void
roles_utility_after(Node *node)
{
	List	   *options = IsA(node, CreateRoleStmt) ? ((CreateRoleStmt *) node)->options
		: ((AlterRoleStmt *) node)->options;
	Datum		until = (Datum) 0;
	bool		explicit_until = statement_valid_until(options, &until);

	after_password_change(IsA(node, CreateRoleStmt) ? "CREATE ROLE" : "ALTER ROLE",
						  until, !explicit_until);
}

#if PG_VERSION_NUM >= 140000
static void
roles_ProcessUtility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					 ProcessUtilityContext context, ParamListInfo params,
					 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *node = pstmt->utilityStmt;
	bool		role_ddl = IsA(node, CreateRoleStmt) || IsA(node, AlterRoleStmt);

	if (role_ddl)
		accepted_clear();
	if (prev_ProcessUtility_hook)
		prev_ProcessUtility_hook(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	if (role_ddl && accepted.set)
		roles_utility_after(node);
}
#else
static void
roles_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
					 ProcessUtilityContext context, ParamListInfo params,
					 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *node = pstmt->utilityStmt;
	bool		role_ddl = IsA(node, CreateRoleStmt) || IsA(node, AlterRoleStmt);

	if (role_ddl)
		accepted_clear();
	if (prev_ProcessUtility_hook)
		prev_ProcessUtility_hook(pstmt, queryString, context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, context, params, queryEnv, dest, qc);
	if (role_ddl && accepted.set)
		roles_utility_after(node);
}
#endif

/* A statement that failed after the check leaves nothing behind. */
static void
roles_password_xact_callback(XactEvent event, void *arg)
{
	if (accepted.set && (event == XACT_EVENT_ABORT || event == XACT_EVENT_COMMIT ||
						 event == XACT_EVENT_PARALLEL_ABORT || event == XACT_EVENT_PARALLEL_COMMIT))
		accepted_clear();
}

/* Install the hooks (shared_preload_libraries only). */
void
sp_roles_password_init(void)
{
	RegisterXactCallback(roles_password_xact_callback, NULL);
	prev_check_password_hook = check_password_hook;
	check_password_hook = roles_check_password;
	prev_ProcessUtility_hook = ProcessUtility_hook;
	ProcessUtility_hook = roles_ProcessUtility;
}

/*
 * set_role_password(role text, password text) returns void: a role sets its
 * own password, a member of secpolicy_admin anyone's (a superuser's, a
 * replication or a bypassrls role's only when the caller is a superuser, as
 * for ALTER ROLE).  The rules and the history apply; VALID UNTIL becomes
 * now + max_password_age, and a lock of the role ends.
 */
Datum
secpolicy_set_role_password(PG_FUNCTION_ARGS)
{
	char	   *role;
	char	   *password;
	size_t		len;
	Oid			roleid;
	Oid			caller = GetUserId();
	Oid			owner;
	Oid			save_userid;
	int			save_sec;
	AlterRoleStmt *stmt;
	RoleSpec   *spec;

	sp_logfilter_mark_statement();
	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("role must not be NULL")));
	if (PG_ARGISNULL(1))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("password must not be NULL")));
	role = text_to_cstring(PG_GETARG_TEXT_PP(0));
	roleid = get_role_oid(role, true);
	if (!OidIsValid(roleid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role \"%s\" does not exist", role)));
	if (roleid != caller)
	{
		Oid			admin = get_role_oid("secpolicy_admin", true);
		HeapTuple	tup;
		bool		privileged;

		if (!OidIsValid(admin) || !has_privs_of_role(caller, admin))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to set the password of role \"%s\"", role),
					 errhint("A role may set its own password; members of secpolicy_admin set other roles' passwords.")));
		tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(roleid));
		if (!HeapTupleIsValid(tup))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("role \"%s\" does not exist", role)));
		privileged = ((Form_pg_authid) GETSTRUCT(tup))->rolsuper ||
			((Form_pg_authid) GETSTRUCT(tup))->rolreplication ||
			((Form_pg_authid) GETSTRUCT(tup))->rolbypassrls;
		ReleaseSysCache(tup);
		if (privileged && !superuser_arg(caller))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to set the password of role \"%s\"", role),
					 errdetail("Only superusers set the passwords of superuser, replication and bypassrls roles.")));
	}
	require_policy_database();
	owner = sp_roles_extension_owner();
	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension secpolicy is not installed in the policy database")));

	password = text_to_cstring(PG_GETARG_TEXT_PP(1));
	len = strlen(password);
	if (len == 0)
		reject_password("too_short", NULL);

	spec = makeNode(RoleSpec);
	spec->roletype = ROLESPEC_CSTRING;
	spec->rolename = role;
	spec->location = -1;
	stmt = makeNode(AlterRoleStmt);
	stmt->role = spec;
	stmt->options = list_make1(makeDefElem("password", (Node *) makeString(password), -1));
	stmt->action = 1;

	/* ALTER ROLE as the extension's owner (a superuser); the hook checks the password */
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		accepted_clear();
#if PG_VERSION_NUM >= 150000
		(void) AlterRole(make_parsestate(NULL), stmt);
#else
		(void) AlterRole(stmt);
#endif
	}
	PG_FINALLY();
	{
		sodium_memzero(password, len);
	}
	PG_END_TRY();
	SetUserIdAndSecContext(save_userid, save_sec);

	if (!accepted.set)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the password of role \"%s\" was not checked", role),
				 errhint("secpolicy must be in shared_preload_libraries.")));
	after_password_change("set_role_password", (Datum) 0, true);
	PG_RETURN_VOID();
}
