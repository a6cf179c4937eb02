/*
 * policy.c
 *		Reads the single row of secpolicy.policy for the C code.
 *
 * The statement is prepared once per backend and kept; plan invalidation
 * takes care of DDL on the table.  Callers are SECURITY DEFINER functions,
 * so the read runs as the extension owner.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/builtins.h"

#include "secpolicy.h"

static SPIPlanPtr policy_plan = NULL;

/* Fetch column `col` (1-based) of the policy row, which must not be NULL. */
static Datum
policy_column(int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
								  col, &isnull);

	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("secpolicy.policy has a NULL setting")));
	return d;
}

/* Load the policy row into *policy; raise if it is missing. */
void
sp_policy_load(SpPolicy *policy)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	if (policy_plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(
									   "SELECT min_length, max_length, require_upper, require_lower,"
									   " require_digit, require_symbol, check_username, check_blocklist,"
									   " history_depth, hash_opslimit, hash_memlimit"
									   " FROM secpolicy.policy", 0, NULL);

		if (plan == NULL)
			elog(ERROR, "could not prepare the policy query: %s",
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		policy_plan = plan;
	}

	if (SPI_execute_plan(policy_plan, NULL, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read secpolicy.policy");
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("secpolicy.policy has no row"),
				 errhint("Reinstall the extension or insert the policy row again.")));

	policy->min_length = DatumGetInt32(policy_column(1));
	policy->max_length = DatumGetInt32(policy_column(2));
	policy->require_upper = DatumGetBool(policy_column(3));
	policy->require_lower = DatumGetBool(policy_column(4));
	policy->require_digit = DatumGetBool(policy_column(5));
	policy->require_symbol = DatumGetBool(policy_column(6));
	policy->check_username = DatumGetBool(policy_column(7));
	policy->check_blocklist = DatumGetBool(policy_column(8));
	policy->history_depth = DatumGetInt32(policy_column(9));
	policy->hash_opslimit = (unsigned long long) DatumGetInt32(policy_column(10));
	policy->hash_memlimit = (size_t) DatumGetInt64(policy_column(11));

	SPI_finish();
}
