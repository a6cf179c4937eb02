/*
 * disclosures.c
 *		The record of every reveal() of a protected value: when, by which
 *		database role, application user and session, of which table, column
 *		and rows, and whether it was allowed or refused.
 *
 * reveal() runs once per row, so it only appends the row key to a group in
 * backend memory (one group per table, column, outcome, role, user and
 * session).  When the statement ends (the end of a top-level query or
 * utility command, seen by executor and utility hooks), each group becomes
 * one row of secpolicy.disclosure_log, written by the internal function
 * secpolicy.record_disclosure() with the row keys as an array.  Whatever a
 * statement's end did not flush (a reveal evaluated outside the executor,
 * say in a PL/pgSQL expression of a DO block) is flushed before the
 * transaction commits, so no committed transaction revealed anything that
 * is not on record.  A transaction that rolls back takes its record with it
 * (like any write): call reveal() in autocommit, or in transactions that
 * commit.
 *
 * The statement generation, a counter that moves at every statement end,
 * lets reveal() decide access once per statement and column.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "tcop/utility.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "secpolicy.h"
#include "columns.h"

/* One group of reveals: same statement, table, column, outcome and reader. */
typedef struct DisclosureGroup
{
	Oid			relid;
	char	   *schema;
	char	   *table;
	char	   *column;
	bool		allowed;
	Oid			role;
	int64		user_id;		/* 0: no application session */
	int64		session_id;
	TimestampTz first_at;
	ArrayBuildState *keys;		/* row keys, NULL where unknown */
	struct DisclosureGroup *next;
} DisclosureGroup;

static MemoryContext disclosure_cxt = NULL;
static DisclosureGroup *groups = NULL;
static DisclosureGroup *last_group = NULL;
static uint64 generation = 1;

/* Depth of executor runs and utility commands (0: top level). */
static int	nesting = 0;

/* Depth of internal SQL calls made by the columns code, and a flush under way. */
static int	internal_depth = 0;
static bool flushing = false;

/* secpolicy.log_disclosures: also write each group to the server log. */
static bool log_disclosures = false;

/* At most this many row keys of a group go to the server log. */
#define LOG_ROW_KEYS	100

static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/* The statement generation: changes whenever a statement ends. */
uint64
sp_statement_generation(void)
{
	return generation;
}

/* Is this group the one for these values? */
static bool
group_matches(DisclosureGroup *g, Oid relid, const char *column, bool allowed, Oid role,
			  int64 user_id, int64 session_id)
{
	return g->relid == relid && g->allowed == allowed && g->role == role &&
		g->user_id == user_id && g->session_id == session_id &&
		strcmp(g->column, column) == 0;
}

/* Append one reveal (row_key NULL when unknown) to its group. */
void
sp_disclosure_add(Oid relid, const char *schema, const char *table, const char *column,
				  bool allowed, Oid role, int64 user_id, int64 session_id, const char *row_key)
{
	DisclosureGroup *g = last_group;
	Datum		key = (Datum) 0;

	if (g == NULL || !group_matches(g, relid, column, allowed, role, user_id, session_id))
	{
		for (g = groups; g != NULL; g = g->next)
			if (group_matches(g, relid, column, allowed, role, user_id, session_id))
				break;
	}
	if (g == NULL)
	{
		MemoryContext old;

		if (disclosure_cxt == NULL)
			disclosure_cxt = AllocSetContextCreate(TopMemoryContext, "secpolicy disclosures",
												   ALLOCSET_DEFAULT_SIZES);
		old = MemoryContextSwitchTo(disclosure_cxt);
		g = palloc0(sizeof(DisclosureGroup));
		g->relid = relid;
		g->schema = pstrdup(schema);
		g->table = pstrdup(table);
		g->column = pstrdup(column);
		g->allowed = allowed;
		g->role = role;
		g->user_id = user_id;
		g->session_id = session_id;
		g->first_at = GetCurrentStatementStartTimestamp();
		g->keys = initArrayResult(TEXTOID, disclosure_cxt, false);
		g->next = groups;
		groups = g;
		MemoryContextSwitchTo(old);
	}
	last_group = g;
	if (row_key != NULL)
		key = CStringGetTextDatum(row_key);
	accumArrayResult(g->keys, key, row_key == NULL, TEXTOID, disclosure_cxt);
	if (row_key != NULL)
		pfree(DatumGetPointer(key));
}

/* Forget the pending groups. */
static void
discard(void)
{
	groups = NULL;
	last_group = NULL;
	if (disclosure_cxt != NULL)
		MemoryContextReset(disclosure_cxt);
}

/* Write a group to the server log (the reader, the column, the first row keys). */
static void
log_group(DisclosureGroup *g)
{
	StringInfoData keys;
	int			n = g->keys->nelems;

	initStringInfo(&keys);
	for (int i = 0; i < n && i < LOG_ROW_KEYS; i++)
	{
		if (i > 0)
			appendStringInfoString(&keys, ", ");
		if (g->keys->dnulls[i])
			appendStringInfoString(&keys, "?");
		else
			appendStringInfoString(&keys, TextDatumGetCString(g->keys->dvalues[i]));
	}
	if (n > LOG_ROW_KEYS)
		appendStringInfo(&keys, ", ... (%d more)", n - LOG_ROW_KEYS);
	ereport(LOG,
			(errmsg("secpolicy disclosure: %s %d value(s) of %s.%s.%s to role %s, user %s, session %s",
					g->allowed ? "revealed" : "refused", n, g->schema, g->table, g->column,
					GetUserNameFromId(g->role, false),
					g->user_id != 0 ? psprintf(INT64_FORMAT, g->user_id) : "none",
					g->user_id != 0 ? psprintf(INT64_FORMAT, g->session_id) : "none"),
			 errdetail("row keys: %s", keys.data),
			 errhidestmt(true)));
	pfree(keys.data);
}

/* Write every pending group as a row of secpolicy.disclosure_log. */
static void
flush(void)
{
	static const Oid argtypes[9] = {TEXTOID, INT8OID, INT8OID, TEXTOID, TEXTOID, TEXTOID,
	BOOLOID, TEXTARRAYOID, TIMESTAMPTZOID};
	DisclosureGroup *pending = groups;

	/*
	 * Detach first, so that nothing is written twice.  An error below aborts
	 * the transaction, whose end resets the flag and the memory.
	 */
	groups = NULL;
	last_group = NULL;
	flushing = true;
	for (DisclosureGroup *g = pending; g != NULL; g = g->next)
	{
		Datum		args[9];
		bool		nulls[9] = {false};
		bool		isnull;

		args[0] = CStringGetTextDatum(GetUserNameFromId(g->role, false));
		args[1] = Int64GetDatum(g->user_id);
		nulls[1] = g->user_id == 0;
		args[2] = Int64GetDatum(g->session_id);
		nulls[2] = g->user_id == 0;
		args[3] = CStringGetTextDatum(g->schema);
		args[4] = CStringGetTextDatum(g->table);
		args[5] = CStringGetTextDatum(g->column);
		args[6] = BoolGetDatum(g->allowed);
		args[7] = makeArrayResult(g->keys, CurrentMemoryContext);
		args[8] = TimestampTzGetDatum(g->first_at);
		if (log_disclosures)
			log_group(g);
		(void) sp_call_internal("record_disclosure", 9, argtypes, args, nulls, &isnull);
	}
	flushing = false;
	MemoryContextReset(disclosure_cxt);
}

/*
 * A statement ended: write what it revealed and start a new generation.
 * Ignored while the columns code runs its own queries, and outside a
 * healthy transaction (an aborting one discards everything at its end).
 */
static void
statement_end(void)
{
	if (internal_depth > 0 || flushing)
		return;
	if (groups != NULL && IsTransactionState() && !IsAbortedTransactionBlockState())
		flush();
	generation++;
}

/* Call an internal SQL function of the extension (see columns.h). */
Datum
sp_call_internal(const char *name, int nargs, const Oid *argtypes, const Datum *args,
				 const bool *argnulls, bool *isnull)
{
	LOCAL_FCINFO(fcinfo, 9);
	FmgrInfo	flinfo;
	Oid			fn;
	Datum		result;

	Assert(nargs <= 9);
	fn = LookupFuncName(list_make2(makeString(pstrdup("secpolicy")), makeString(pstrdup(name))),
						nargs, argtypes, false);
	fmgr_info(fn, &flinfo);
	InitFunctionCallInfoData(*fcinfo, &flinfo, nargs, DEFAULT_COLLATION_OID, NULL, NULL);
	for (int i = 0; i < nargs; i++)
	{
		fcinfo->args[i].value = args[i];
		fcinfo->args[i].isnull = argnulls != NULL && argnulls[i];
	}
	internal_depth++;
	PG_TRY();
	{
		result = FunctionCallInvoke(fcinfo);
	}
	PG_FINALLY();
	{
		internal_depth--;
	}
	PG_END_TRY();
	*isnull = fcinfo->isnull;
	return result;
}

/* Executor hooks: track the nesting, and end a statement with its top-level query. */
static void
sp_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction, uint64 count, bool execute_once)
{
	nesting++;
	PG_TRY();
	{
		if (prev_ExecutorRun)
			prev_ExecutorRun(queryDesc, direction, count, execute_once);
		else
			standard_ExecutorRun(queryDesc, direction, count, execute_once);
	}
	PG_FINALLY();
	{
		nesting--;
	}
	PG_END_TRY();
}

static void
sp_ExecutorFinish(QueryDesc *queryDesc)
{
	nesting++;
	PG_TRY();
	{
		if (prev_ExecutorFinish)
			prev_ExecutorFinish(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
	}
	PG_FINALLY();
	{
		nesting--;
	}
	PG_END_TRY();
}

static void
sp_ExecutorEnd(QueryDesc *queryDesc)
{
	if (prev_ExecutorEnd)
		prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
	if (nesting == 0)
		statement_end();
}

/* Utility hook: queries run inside a utility command are nested in it. */
static void
sp_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
#if PG_VERSION_NUM >= 140000
				  bool readOnlyTree,
#endif
				  ProcessUtilityContext context, ParamListInfo params,
				  QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	nesting++;
	PG_TRY();
	{
#if PG_VERSION_NUM >= 140000
		if (prev_ProcessUtility)
			prev_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
#else
		if (prev_ProcessUtility)
			prev_ProcessUtility(pstmt, queryString, context, params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, context, params, queryEnv, dest, qc);
#endif
	}
	PG_FINALLY();
	{
		nesting--;
	}
	PG_END_TRY();
	if (nesting == 0)
		statement_end();
}

/*
 * Before commit (or PREPARE TRANSACTION), write what no statement end has
 * written; at the end of a transaction, forget everything.
 */
static void
disclosures_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			if (groups != NULL && !flushing)
			{
				internal_depth = 0;
				flush();
			}
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			discard();
			nesting = 0;
			internal_depth = 0;
			flushing = false;
			generation++;
			break;
		default:
			break;
	}
}

/* Define the setting, install the hooks and the transaction callback. */
void
sp_disclosures_init(void)
{
	DefineCustomBoolVariable("secpolicy.log_disclosures",
							 gettext_noop("Also writes every record of reveals of protected values to the server log."),
							 gettext_noop("The server log keeps the record even when the transaction that revealed rolls back."),
							 &log_disclosures, false,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = sp_ExecutorRun;
	prev_ExecutorFinish = ExecutorFinish_hook;
	ExecutorFinish_hook = sp_ExecutorFinish;
	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = sp_ExecutorEnd;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = sp_ProcessUtility;
	RegisterXactCallback(disclosures_xact_callback, NULL);
}
