/*
 * trigger.c
 *		Hash-on-write triggers: plaintext written to a password column is
 *		checked against the policy (rules and history) and replaced by its
 *		argon2id hash before the row is stored.
 *
 * users_password_trigger() guards secpolicy.users and keeps the history in
 * secpolicy.password_history.  password_policy_trigger(password_column
 * [, username_column [, history_column]]) does the same for a column of any
 * application table, keeping the history in a text[] column of the row.
 *
 * On secpolicy.users a value that is already a well-formed argon2id string
 * is kept as it is (an import, or pg_restore reloading the table, which the
 * trigger of an extension table sees); only the table's owner can write it
 * directly.  The flows write through write_password(), which forces the
 * value to be treated as plaintext, so a user cannot smuggle in a hash of a
 * weak password as a "new password".  A transparent rehash at login goes
 * through write_password(..., 'rehash'), which keeps history and age.
 *
 * On an application table every value is plaintext, except that a superuser
 * migrating the table may set secpolicy.allow_hash_import to store values
 * that already are argon2id strings.  The history column belongs to the
 * trigger: edits by hand are undone.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/guc.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include <sodium.h>

#include "secpolicy.h"

PG_FUNCTION_INFO_V1(secpolicy_users_password_trigger);
PG_FUNCTION_INFO_V1(secpolicy_password_policy_trigger);
PG_FUNCTION_INFO_V1(secpolicy_write_password);

typedef enum SpHashWriteMode
{
	SP_WRITE_DEFAULT = 0,		/* an argon2id string is kept, anything else hashed */
	SP_WRITE_PLAINTEXT,			/* the value is plaintext: check and hash */
	SP_WRITE_TEMPORARY,			/* plaintext set by an admin: rules, no history */
	SP_WRITE_REHASH,			/* a fresh hash of the same password */
	SP_WRITE_IMPORT				/* an argon2id hash made elsewhere */
} SpHashWriteMode;

/* How the users trigger treats the next write; set only by write_password(). */
static SpHashWriteMode write_mode = SP_WRITE_DEFAULT;

/* secpolicy.allow_hash_import: a superuser's migration of an application table. */
static bool allow_hash_import = false;

/* Define the module's settings. */
void
sp_trigger_init(void)
{
	DefineCustomBoolVariable("secpolicy.allow_hash_import",
							 gettext_noop("Lets password_policy_trigger store values that already are argon2id hashes."),
							 gettext_noop("For migrating an application table; honoured only for superusers."),
							 &allow_hash_import, false,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
}

static SPIPlanPtr history_select_plan = NULL;
static SPIPlanPtr history_insert_plan = NULL;
static SPIPlanPtr history_prune_plan = NULL;
static SPIPlanPtr store_plan = NULL;

/* Prepare `sql` once per backend and keep it. */
static SPIPlanPtr
keep_plan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

		if (plan == NULL)
			elog(ERROR, "could not prepare \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		*slot = plan;
	}
	return *slot;
}

/* Raise the policy-violation error with the rule codes in DETAIL. */
static void
reject_password(const char *codes)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("password does not meet the password policy"),
			 errdetail("rule codes: %s", codes),
			 errhint("See secpolicy.password_violations() for what each rule code means."),
			 errhidestmt(true)));
}

/*
 * Check a plaintext password against the rules and against the previous
 * hashes, then return its hash.  Raises 22023 on any violation.
 */
static char *
enforce_and_hash(const char *plain, size_t len, const char *username,
				 const char **previous, int nprevious, const SpPolicy *policy)
{
	ArrayType  *violations;

	violations = sp_password_violations(plain, len, username,
										username ? strlen(username) : 0, policy);
	if (ArrayGetNItems(ARR_NDIM(violations), ARR_DIMS(violations)) > 0)
		reject_password(sp_violations_list(violations));

	for (int i = 0; i < nprevious; i++)
		if (previous[i] != NULL &&
			sp_verify_password(previous[i], strlen(previous[i]), plain, len))
			reject_password("reused_password");

	return sp_hash_password(plain, len, policy->hash_opslimit, policy->hash_memlimit);
}

/* Are two text datums byte-for-byte equal? */
static bool
text_equal(Datum a, Datum b)
{
	text	   *ta = DatumGetTextPP(a);
	text	   *tb = DatumGetTextPP(b);

	return VARSIZE_ANY_EXHDR(ta) == VARSIZE_ANY_EXHDR(tb) &&
		memcmp(VARDATA_ANY(ta), VARDATA_ANY(tb), VARSIZE_ANY_EXHDR(ta)) == 0;
}

/* Check that we are a BEFORE ROW trigger for INSERT or UPDATE. */
static TriggerData *
trigger_context(FunctionCallInfo fcinfo, const char *name)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BEFORE(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
		!(TRIGGER_FIRED_BY_INSERT(td->tg_event) || TRIGGER_FIRED_BY_UPDATE(td->tg_event)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s must be a BEFORE INSERT OR UPDATE ... FOR EACH ROW trigger", name)));
	return td;
}

/* Column number of `name` in the trigger's table, with a clear error if absent. */
static int
column_number(Relation rel, const char *name)
{
	int			attnum = SPI_fnumber(RelationGetDescr(rel), name);

	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						name, RelationGetRelationName(rel))));
	return attnum;
}

/*
 * Decide what a write to a password column means.  Returns false when there
 * is nothing to do (NULL, or with skip_unchanged an UPDATE that leaves the
 * value unchanged);
 * otherwise sets *newval to the new value and *oldval (or NULL) to the old.
 */
static bool
password_changed(TriggerData *td, int attnum, bool skip_unchanged,
				 Datum *newval, Datum *oldval, bool *oldnull)
{
	TupleDesc	desc = RelationGetDescr(td->tg_relation);
	HeapTuple	newtup = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	bool		isnull;

	*newval = SPI_getbinval(newtup, desc, attnum, &isnull);
	if (isnull)
		return false;
	*oldnull = true;
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		*oldval = SPI_getbinval(td->tg_trigtuple, desc, attnum, oldnull);
		if (skip_unchanged && !*oldnull && text_equal(*newval, *oldval))
			return false;
	}
	return true;
}

/* Text value of column `attnum` of the row being written, or NULL. */
static char *
row_value(TriggerData *td, int attnum)
{
	HeapTuple	newtup = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;

	return SPI_getvalue(newtup, RelationGetDescr(td->tg_relation), attnum);
}

/*
 * The hashes that a new password of user `user_id` may not match: the
 * current one and enough stored ones to make history_depth in all.
 */
static int
users_previous_hashes(int64 user_id, const char *current, int depth, const char ***out)
{
	Oid			argtypes[2] = {INT8OID, INT4OID};
	Datum		args[2];
	const char **prev;
	int			n = 0;

	*out = prev = palloc0(sizeof(char *) * (depth + 1));
	if (depth <= 0)
		return 0;
	if (current != NULL)
		prev[n++] = current;
	if (depth - n <= 0)
		return n;

	keep_plan(&history_select_plan,
			  "SELECT password_hash FROM secpolicy.password_history"
			  " WHERE user_id OPERATOR(pg_catalog.=) $1 ORDER BY id DESC LIMIT $2", 2, argtypes);
	args[0] = Int64GetDatum(user_id);
	args[1] = Int32GetDatum(depth - n);
	if (SPI_execute_plan(history_select_plan, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read secpolicy.password_history");
	for (uint64 i = 0; i < SPI_processed; i++)
		prev[n++] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
	return n;
}

/* Move the replaced hash into the history and drop what is beyond the depth. */
static void
users_push_history(int64 user_id, Datum old_hash, int depth)
{
	Oid			argtypes[2] = {INT8OID, TEXTOID};
	Oid			pruneargs[2] = {INT8OID, INT4OID};
	Datum		args[2];

	if (depth > 1)
	{
		keep_plan(&history_insert_plan,
				  "INSERT INTO secpolicy.password_history (user_id, password_hash)"
				  " VALUES ($1, $2)", 2, argtypes);
		args[0] = Int64GetDatum(user_id);
		args[1] = old_hash;
		if (SPI_execute_plan(history_insert_plan, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not write secpolicy.password_history");
	}

	keep_plan(&history_prune_plan,
			  "DELETE FROM secpolicy.password_history h WHERE h.user_id OPERATOR(pg_catalog.=) $1"
			  " AND h.id OPERATOR(pg_catalog.<) ALL ("
			  " SELECT k.id FROM secpolicy.password_history k WHERE k.user_id OPERATOR(pg_catalog.=) $1"
			  " ORDER BY k.id DESC LIMIT $2)", 2, pruneargs);
	/* with LIMIT 0, "< ALL (empty)" is true: every stored hash goes */
	args[0] = Int64GetDatum(user_id);
	args[1] = Int32GetDatum(Max(depth - 1, 0));
	if (SPI_execute_plan(history_prune_plan, args, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not prune secpolicy.password_history");
}

/* Is a text datum a well-formed argon2id hash string? */
static bool
datum_is_argon2id(Datum value)
{
	text	   *t = DatumGetTextPP(value);
	size_t		len = VARSIZE_ANY_EXHDR(t);
	char	   *s;

	if (len >= crypto_pwhash_STRBYTES)
		return false;
	s = sp_text_cstring(t, &len);
	return sp_hash_is_argon2id(s, len);
}

/* The trigger on secpolicy.users (password_hash, username, password_changed_at). */
Datum
secpolicy_users_password_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = trigger_context(fcinfo, "users_password_trigger");
	Relation	rel = td->tg_relation;
	HeapTuple	newtup = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	int			pw_att,
				changed_att,
				checked_att,
				id_att;
	int			cols[3];
	Datum		vals[3];
	char		nulls[3] = {' ', ' ', ' '};
	int			ncols = 1;
	Datum		newval,
				oldval = (Datum) 0;
	bool		oldnull = true;
	bool		isnull;
	bool		checked = false;
	int64		user_id;
	SpPolicy	policy;
	HeapTuple	result;

	/* a write of password_hash may carry a password in clear: keep it out of the log */
	sp_logfilter_mark_statement();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	pw_att = column_number(rel, SP_COLUMN(SPC_USERS_PASSWORD_HASH));
	changed_att = column_number(rel, SP_COLUMN(SPC_USERS_PASSWORD_CHANGED_AT));
	checked_att = column_number(rel, SP_COLUMN(SPC_USERS_PASSWORD_CHECKED_AT));
	id_att = column_number(rel, SP_COLUMN(SPC_USERS_ID));

	if (!password_changed(td, pw_att,
						  write_mode != SP_WRITE_PLAINTEXT && write_mode != SP_WRITE_TEMPORARY,
						  &newval, &oldval, &oldnull))
	{
		SPI_finish();
		return PointerGetDatum(newtup);
	}
	user_id = DatumGetInt64(SPI_getbinval(newtup, RelationGetDescr(rel), id_att, &isnull));

	if (write_mode == SP_WRITE_IMPORT && !datum_is_argon2id(newval))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("not an acceptable argon2id hash")));

	/* a rehash is the same password at a new cost: history and age stay */
	if (write_mode == SP_WRITE_REHASH)
	{
		SPI_finish();
		return PointerGetDatum(newtup);
	}

	sp_policy_load(&policy);
	cols[0] = pw_att;
	vals[0] = newval;
	if (write_mode == SP_WRITE_PLAINTEXT || write_mode == SP_WRITE_TEMPORARY ||
		!datum_is_argon2id(newval))
	{
		const char **previous;
		int			nprevious;
		text	   *plain = DatumGetTextPP(newval);

		/*
		 * An admin's temporary password is not compared with the history:
		 * the user must replace it anyway, and the answer would tell the
		 * admin whether a guess was the user's current password.
		 */
		nprevious = users_previous_hashes(user_id,
										  oldnull ? NULL : TextDatumGetCString(oldval),
										  write_mode == SP_WRITE_TEMPORARY ? 0 : policy.history_depth,
										  &previous);
		vals[0] = CStringGetTextDatum(enforce_and_hash(VARDATA_ANY(plain), VARSIZE_ANY_EXHDR(plain),
													   row_value(td, column_number(rel, SP_COLUMN(SPC_USERS_USERNAME))),
													   previous, nprevious, &policy));
		checked = true;
	}
	else if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
	{
		/* an imported or restored row keeps the age it comes with */
		(void) SPI_getbinval(newtup, RelationGetDescr(rel), changed_att, &isnull);
		if (!isnull)
		{
			SPI_finish();
			return PointerGetDatum(newtup);
		}
	}
	if (!oldnull)
		users_push_history(user_id, oldval, policy.history_depth);
	cols[ncols] = changed_att;
	vals[ncols++] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	/* when the rules were last checked on this password: never, for an import */
	cols[ncols] = checked_att;
	vals[ncols] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	nulls[ncols++] = checked ? ' ' : 'n';

	result = SPI_modifytuple(rel, newtup, ncols, cols, vals, nulls);
	if (result == NULL)
		elog(ERROR, "SPI_modifytuple failed: %s", SPI_result_code_string(SPI_result));
	SPI_finish();
	return PointerGetDatum(result);
}

/* Check that a column is text (or varchar) and wide enough for a hash. */
static void
check_text_column(Relation rel, int attnum, Oid want)
{
	Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), attnum - 1);
	bool		ok;

	if (want == TEXTOID)
		ok = (att->atttypid == TEXTOID || att->atttypid == VARCHAROID) &&
			(att->atttypmod < 0 || att->atttypmod - VARHDRSZ >= (int) crypto_pwhash_STRBYTES);
	else
		ok = att->atttypid == want;
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of relation \"%s\" must be of type %s",
						NameStr(att->attname), RelationGetRelationName(rel),
						want == TEXTOID ? "text (or varchar of at least 128)" : "text[]")));
}

/*
 * password_policy_trigger(password_column [, username_column [, history_column]]):
 * the same policy for a password column of any table.
 */
Datum
secpolicy_password_policy_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = trigger_context(fcinfo, "password_policy_trigger");
	Relation	rel = td->tg_relation;
	TupleDesc	desc = RelationGetDescr(rel);
	char	  **tgargs = td->tg_trigger->tgargs;
	int			nargs = td->tg_trigger->tgnargs;
	bool		is_update = TRIGGER_FIRED_BY_UPDATE(td->tg_event);
	HeapTuple	newtup = is_update ? td->tg_newtuple : td->tg_trigtuple;
	int			pw_att,
				user_att = 0,
				hist_att = 0;
	Datum		newval,
				oldval = (Datum) 0,
				oldhist = (Datum) 0;
	bool		oldnull = true,
				oldhistnull = true;
	int			cols[2];
	Datum		vals[2];
	char		nulls[2] = {' ', ' '};
	int			ncols = 0;
	SpPolicy	policy;
	const char **previous;
	int			nprevious = 0;
	Datum		replaced = (Datum) 0;
	HeapTuple	result;

	if (nargs < 1 || nargs > 3 || tgargs[0][0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("password_policy_trigger takes 1 to 3 arguments: password column, username column, history column")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	pw_att = column_number(rel, tgargs[0]);
	check_text_column(rel, pw_att, TEXTOID);
	if (nargs >= 2 && tgargs[1][0] != '\0')
		user_att = column_number(rel, tgargs[1]);
	if (nargs >= 3 && tgargs[2][0] != '\0')
	{
		hist_att = column_number(rel, tgargs[2]);
		check_text_column(rel, hist_att, TEXTARRAYOID);
		if (is_update)
			oldhist = SPI_getbinval(td->tg_trigtuple, desc, hist_att, &oldhistnull);
	}

	/* the statement wrote a password in clear: keep it out of the log */
	sp_logfilter_mark_statement();

	if (!password_changed(td, pw_att, true, &newval, &oldval, &oldnull))
	{
		/* the history belongs to the trigger: a hand edit is undone */
		if (hist_att == 0)
		{
			SPI_finish();
			return PointerGetDatum(newtup);
		}
		cols[ncols] = hist_att;
		vals[ncols] = oldhist;
		nulls[ncols++] = oldhistnull ? 'n' : ' ';
	}
	else if (allow_hash_import && superuser_arg(GetSessionUserId()) && datum_is_argon2id(newval))
	{
		/* a superuser's migration: the value already is a hash */
		cols[ncols] = pw_att;
		vals[ncols++] = newval;
	}
	else
	{
		text	   *plain = DatumGetTextPP(newval);

		sp_policy_load(&policy);
		previous = palloc0(sizeof(char *) * (policy.history_depth + 1));
		if (!oldnull)
		{
			/*
			 * A table that held plaintext before the trigger was attached: the
			 * old password is hashed now, so that it is remembered without
			 * being kept in clear.
			 */
			if (datum_is_argon2id(oldval))
				replaced = oldval;
			else
			{
				text	   *oldplain = DatumGetTextPP(oldval);

				replaced = CStringGetTextDatum(sp_hash_password(VARDATA_ANY(oldplain),
																VARSIZE_ANY_EXHDR(oldplain),
																policy.hash_opslimit,
																policy.hash_memlimit));
			}
		}
		if (policy.history_depth > 0 && !oldnull)
		{
			previous[nprevious++] = TextDatumGetCString(replaced);
			if (!oldhistnull)
			{
				Datum	   *hist;
				bool	   *hnulls;
				int			nhist;

				deconstruct_array(DatumGetArrayTypeP(oldhist), TEXTOID, -1, false, TYPALIGN_INT,
								  &hist, &hnulls, &nhist);
				for (int i = 0; i < nhist && nprevious < policy.history_depth; i++)
					if (!hnulls[i])
						previous[nprevious++] = TextDatumGetCString(hist[i]);
			}
		}

		cols[ncols] = pw_att;
		vals[ncols++] = CStringGetTextDatum(enforce_and_hash(VARDATA_ANY(plain), VARSIZE_ANY_EXHDR(plain),
															 user_att > 0 ? row_value(td, user_att) : NULL,
															 previous, nprevious, &policy));
		if (hist_att > 0)
		{
			/* the replaced hash and the newest stored ones, history_depth - 1 in all */
			int			keep = Max(policy.history_depth - 1, 0);
			Datum	   *elems = palloc(sizeof(Datum) * (keep + 1));
			int			n = 0;

			if (!oldnull && n < keep)
				elems[n++] = replaced;
			for (int i = 1; i < nprevious && n < keep; i++)
				elems[n++] = CStringGetTextDatum(previous[i]);
			cols[ncols] = hist_att;
			vals[ncols++] = PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
		}
	}

	result = SPI_modifytuple(rel, newtup, ncols, cols, vals, nulls);
	if (result == NULL)
		elog(ERROR, "SPI_modifytuple failed: %s", SPI_result_code_string(SPI_result));
	SPI_finish();
	return PointerGetDatum(result);
}

/*
 * write_password(user_id bigint, value text, mode text) returns boolean:
 * the flows' only way to set a password.  Mode 'plaintext' checks and hashes
 * the value whatever it looks like ('temporary': the same without the history
 * check, for an admin's temporary password); mode 'rehash' stores an argon2id string
 * computed from the current password, keeping history and age; mode 'import'
 * stores an argon2id string made elsewhere (history kept, age restarted,
 * rules never checked).
 */
Datum
secpolicy_write_password(PG_FUNCTION_ARGS)
{
	int64		user_id = PG_GETARG_INT64(0);
	text	   *value = PG_GETARG_TEXT_PP(1);
	char	   *mode = text_to_cstring(PG_GETARG_TEXT_PP(2));
	SpHashWriteMode newmode;
	Oid			argtypes[2] = {INT8OID, TEXTOID};
	Datum		args[2];
	bool		found;

	sp_logfilter_mark_statement();
	if (strcmp(mode, "plaintext") == 0)
		newmode = SP_WRITE_PLAINTEXT;
	else if (strcmp(mode, "temporary") == 0)
		newmode = SP_WRITE_TEMPORARY;
	else if (strcmp(mode, "rehash") == 0)
		newmode = SP_WRITE_REHASH;
	else if (strcmp(mode, "import") == 0)
		newmode = SP_WRITE_IMPORT;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("mode must be 'plaintext', 'temporary', 'rehash' or 'import'")));

	if (newmode == SP_WRITE_IMPORT && datum_is_argon2id(PointerGetDatum(value)))
	{
		size_t		len;
		char	   *hash = sp_text_cstring(value, &len);

		if (!sp_hash_cost_allowed(hash, len))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the hash's cost exceeds secpolicy.max_hash_work"),
					 errdetail("Its memory in MiB times its passes is larger than %d and than the policy's own.",
							   sp_max_hash_work()),
					 errhint("A superuser may raise secpolicy.max_hash_work for the import.")));
	}
	if ((newmode == SP_WRITE_REHASH || newmode == SP_WRITE_IMPORT) &&
		!datum_is_argon2id(PointerGetDatum(value)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("not an acceptable argon2id hash"),
				 errdetail("Expected $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash> "
						   "with m at most %zu, t at most %d and p at most %d.",
						   SP_MAX_HASH_MEMLIMIT / 1024, SP_MAX_HASH_OPSLIMIT, SP_MAX_HASH_LANES)));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	keep_plan(&store_plan,
			  "UPDATE secpolicy.users SET password_hash = $2 WHERE id OPERATOR(pg_catalog.=) $1",
			  2, argtypes);
	args[0] = Int64GetDatum(user_id);
	args[1] = PointerGetDatum(value);

	write_mode = newmode;
	PG_TRY();
	{
		if (SPI_execute_plan(store_plan, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not update secpolicy.users");
	}
	PG_FINALLY();
	{
		write_mode = SP_WRITE_DEFAULT;
	}
	PG_END_TRY();
	found = SPI_processed > 0;
	SPI_finish();
	PG_RETURN_BOOL(found);
}
