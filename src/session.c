/*
 * session.c
 *		The session that the current transaction has proven with
 *		session_touch(), for row-level security policies and views.
 *
 * The value lives in backend memory, tagged with the local transaction id
 * that set it, so it vanishes when the transaction ends and cannot be forged
 * with SET (a custom setting could be).
 */
#include "postgres.h"

#include "fmgr.h"
#include "storage/proc.h"

#include "secpolicy.h"

PG_FUNCTION_INFO_V1(secpolicy_set_current_session);
PG_FUNCTION_INFO_V1(secpolicy_current_session_user);
PG_FUNCTION_INFO_V1(secpolicy_current_session_id);

static int64 current_user_id = 0;
static int64 current_session_id = 0;
static LocalTransactionId current_lxid = InvalidLocalTransactionId;

/* This backend's local transaction id (its place moved in PostgreSQL 17). */
static LocalTransactionId
local_xid(void)
{
#if PG_VERSION_NUM >= 170000
	return MyProc->vxid.lxid;
#else
	return MyProc->lxid;
#endif
}

/* set_current_session(user_id bigint, session_id bigint): internal; NULLs clear it */
Datum
secpolicy_set_current_session(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
	{
		current_lxid = InvalidLocalTransactionId;
		PG_RETURN_VOID();
	}
	current_user_id = PG_GETARG_INT64(0);
	current_session_id = PG_GETARG_INT64(1);
	current_lxid = local_xid();
	PG_RETURN_VOID();
}

/* Is the remembered session from this transaction? */
static bool
current_valid(void)
{
	return current_lxid != InvalidLocalTransactionId && current_lxid == local_xid();
}

/* current_session_user() returns bigint: the user of the session touched in this transaction */
Datum
secpolicy_current_session_user(PG_FUNCTION_ARGS)
{
	if (!current_valid())
		PG_RETURN_NULL();
	PG_RETURN_INT64(current_user_id);
}

/* current_session_id() returns bigint: the id of that session */
Datum
secpolicy_current_session_id(PG_FUNCTION_ARGS)
{
	if (!current_valid())
		PG_RETURN_NULL();
	PG_RETURN_INT64(current_session_id);
}
