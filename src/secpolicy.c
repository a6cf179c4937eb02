/*
 * secpolicy.c
 *		Module entry point: library initialisation only.  Each module defines
 *		its own settings in its *_init function.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include <sodium.h>

#include "secpolicy.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* Initialise libsodium and every module of the extension. */
void
_PG_init(void)
{
	if (sodium_init() < 0)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION),
				 errmsg("could not initialise libsodium")));

	sp_hash_init();
	sp_trigger_init();
	sp_totp_init();
	sp_seal_init();
	sp_session_init();
	sp_citus_init();
	sp_citus_direct_init();
	sp_audit_init();
	sp_ledger_init();
	sp_logfilter_init();
	sp_columns_init();
	sp_roles_init();
#if PG_VERSION_NUM >= 150000
	/* every secpolicy.* setting is defined above: a misspelt one is an error */
	MarkGUCPrefixReserved("secpolicy");
#endif
}
