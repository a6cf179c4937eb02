/*
 * logfilter.c
 *		Keeps passwords, TOTP codes and tokens out of the server log.
 *
 * Statements such as SELECT secpolicy.login('alice', 'secret') carry a
 * secret in their text.  An emit_log_hook, while such a statement runs,
 * hides it from the STATEMENT line of any message, cuts it out of the
 * messages that quote it (log_statement, log_min_duration_statement), and
 * drops what would show its values: logged bind parameters (DETAIL, and the
 * CONTEXT of log_parameter_max_length_on_error) and the parse trees and plans
 * of debug_print_*.  A statement carries a secret when it mentions
 * secpolicy, calls one of the flows by its bare name, EXECUTEs a prepared
 * statement that does, names a table listed in secpolicy.redact_tables, or
 * reached C code of the extension that handles a secret (which marks it: a
 * wrapper function, a table guarded by password_policy_trigger).
 *
 * The hook is installed when the library is loaded in a backend, which
 * happens at the first call of one of the extension's C functions.  Until
 * then nothing is redacted, and a log_statement line is written before its
 * statement runs, so list secpolicy in shared_preload_libraries (or
 * session_preload_libraries) to cover every statement.  The log_statement
 * line of an INSERT or UPDATE of a table guarded by password_policy_trigger
 * is written before the trigger can mark it: list such tables in
 * secpolicy.redact_tables.
 */
#include "postgres.h"

#include "commands/prepare.h"
#include "tcop/tcopprot.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/plancache.h"

#include <sodium.h>

#include "secpolicy.h"

PG_FUNCTION_INFO_V1(secpolicy_mark_statement);

#define REDACTED "[redacted by secpolicy]"

static emit_log_hook_type prev_emit_log_hook = NULL;

/*
 * The last statement marked as secret by the C code that handled a secret:
 * its keyed hash and length, never its text (which holds the secret).
 */
static unsigned char marked_hash[crypto_shorthash_BYTES];
static unsigned char marked_key[crypto_shorthash_KEYBYTES];
static size_t marked_len = 0;
static bool marked = false;

/* secpolicy.redact_tables: names whose statements are always redacted. */
static char *redact_tables = NULL;

/* Names whose presence followed by "(" marks a statement that carries a secret. */
static const char *const secret_functions[] = {
	"login", "verify_mfa", "change_password", "reset_password",
	"request_password_reset", "create_user", "admin_set_password",
	"hash_password", "verify_password", "password_violations",
	"totp_code", "totp_match", "totp_enroll", "totp_confirm", "otpauth_uri",
	"session_touch", "logout", "list_sessions", "end_other_sessions",
	"import_password_hash", "write_password", "token_digest",
	"unknown_user_attempt", "check_second_factor", "find_challenge",
	"enrollment_owner", "try_set_password", "set_password_or_raise",
	"totp_verify_sealed",
	NULL
};

/* Case-insensitive strstr for ASCII needles. */
static const char *
find_ci(const char *hay, const char *needle)
{
	size_t		n = strlen(needle);

	for (; *hay; hay++)
		if (pg_strncasecmp(hay, needle, n) == 0)
			return hay;
	return NULL;
}

/* Is `c` a character that can continue an SQL identifier? */
static bool
ident_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c == '_' || (unsigned char) c >= 0x80;
}

/* Does this text mention secpolicy or call a secret-carrying function? */
static bool
text_carries_secret(const char *stmt)
{
	if (stmt == NULL)
		return false;
	if (find_ci(stmt, "secpolicy") != NULL)
		return true;
	for (int i = 0; secret_functions[i] != NULL; i++)
	{
		const char *p = stmt;
		size_t		n = strlen(secret_functions[i]);

		while ((p = find_ci(p, secret_functions[i])) != NULL)
		{
			const char *q = p + n;
			bool		word_start = (p == stmt || !ident_char(p[-1]));

			while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
				q++;
			if (word_start && *q == '(')
				return true;
			p += n;
		}
	}
	return false;
}

/*
 * For "EXECUTE name(...)": the text of the prepared statement, if this
 * backend has one by that name (a hash lookup, no catalog access).
 */
static const char *
executed_statement(const char *stmt)
{
	char		name[NAMEDATALEN];
	int			n = 0;
	PreparedStatement *ps;

	while (*stmt == ' ' || *stmt == '\t' || *stmt == '\n' || *stmt == '\r')
		stmt++;
	if (pg_strncasecmp(stmt, "execute", 7) != 0 || ident_char(stmt[7]))
		return NULL;
	stmt += 7;
	while (*stmt == ' ' || *stmt == '\t' || *stmt == '\n' || *stmt == '\r')
		stmt++;
	if (*stmt == '"')
	{
		/* a quoted name keeps its case; "" stands for one quote */
		for (stmt++; *stmt && n < NAMEDATALEN - 1; stmt++)
		{
			if (*stmt == '"' && stmt[1] != '"')
				break;
			if (*stmt == '"')
				stmt++;
			name[n++] = *stmt;
		}
	}
	else
		while (ident_char(*stmt) && n < NAMEDATALEN - 1)
			name[n++] = pg_ascii_tolower((unsigned char) *stmt++);
	name[n] = '\0';
	if (n == 0)
		return NULL;
	ps = FetchPreparedStatement(name, false);
	return ps ? ps->plansource->query_string : NULL;
}

/* Does the statement name (as a whole word, any case) a table of redact_tables? */
static bool
names_redacted_table(const char *stmt)
{
	const char *item = redact_tables;

	while (item != NULL && *item != '\0')
	{
		const char *end = strchr(item, ',');
		const char *name;
		size_t		len;
		char		word[NAMEDATALEN];
		const char *p;

		if (end == NULL)
			end = item + strlen(item);
		/* the table name without its schema: a statement may leave it out */
		name = item;
		for (const char *c = item; c < end; c++)
			if (*c == '.')
				name = c + 1;
		while (name < end && (*name == ' ' || *name == '"'))
			name++;
		len = end - name;
		while (len > 0 && (name[len - 1] == ' ' || name[len - 1] == '"'))
			len--;
		if (len > 0 && len < NAMEDATALEN)
		{
			memcpy(word, name, len);
			word[len] = '\0';
			for (p = stmt; (p = find_ci(p, word)) != NULL; p += len)
				if ((p == stmt || !ident_char(p[-1])) && !ident_char(p[len]))
					return true;
		}
		item = *end ? end + 1 : end;
	}
	return false;
}

/* The keyed hash of a statement's text. */
static void
statement_hash(const char *stmt, size_t len, unsigned char out[crypto_shorthash_BYTES])
{
	crypto_shorthash(out, (const unsigned char *) stmt, len, marked_key);
}

/* Is this the statement last marked as secret? */
static bool
is_marked(const char *stmt)
{
	unsigned char h[crypto_shorthash_BYTES];
	size_t		len;

	if (!marked)
		return false;
	len = strlen(stmt);
	if (len != marked_len)
		return false;
	statement_hash(stmt, len, h);
	return sodium_memcmp(h, marked_hash, sizeof(h)) == 0;
}

/* Does the running statement carry a secret? */
static bool
statement_carries_secret(void)
{
	const char *stmt = debug_query_string;

	if (stmt == NULL || *stmt == '\0')
		return false;
	if (is_marked(stmt))
		return true;
	return text_carries_secret(stmt) || names_redacted_table(stmt) ||
		text_carries_secret(executed_statement(stmt));
}

/*
 * Mark the running statement as carrying a secret: called by the C code
 * that handles one (password hashing and checks, TOTP, tokens, the password
 * triggers), so that a statement reaching it through a wrapper function, a
 * prepared statement or an application table is redacted too.
 */
void
sp_logfilter_mark_statement(void)
{
	if (debug_query_string == NULL)
		return;
	marked_len = strlen(debug_query_string);
	statement_hash(debug_query_string, marked_len, marked_hash);
	marked = true;
}

/* mark_statement(): internal; the flows call it first, before any early answer */
Datum
secpolicy_mark_statement(PG_FUNCTION_ARGS)
{
	sp_logfilter_mark_statement();
	PG_RETURN_VOID();
}

/* Replace the statement text inside `message`. */
static char *
redact_message(const char *message, const char *at, const char *stmt)
{
	return psprintf("%.*s%s%s", (int) (at - message), message, REDACTED, at + strlen(stmt));
}

/* A DETAIL that shows values: logged parameters, or a debug_print_* dump. */
static bool
detail_shows_values(const ErrorData *edata, const char *detail)
{
	return detail != NULL &&
		(strncmp(detail, "parameters:", 11) == 0 ||
		 (edata->message != NULL &&
		  (strcmp(edata->message, "parse tree:") == 0 ||
		   strcmp(edata->message, "rewritten parse tree:") == 0 ||
		   strcmp(edata->message, "plan:") == 0)));
}

/* emit_log_hook: redact what a secret-carrying statement would put in the log. */
static void
secpolicy_emit_log_hook(ErrorData *edata)
{
	if (statement_carries_secret())
	{
		const char *at = edata->message ? strstr(edata->message, debug_query_string) : NULL;
		const char *params = edata->context ? strstr(edata->context, "with parameters:") : NULL;

		edata->hide_stmt = true;
		if (at != NULL)
			edata->message = redact_message(edata->message, at, debug_query_string);
		if (detail_shows_values(edata, edata->detail))
			edata->detail = pstrdup(REDACTED);
		if (detail_shows_values(edata, edata->detail_log))
			edata->detail_log = pstrdup(REDACTED);
		if (params != NULL)
			edata->context = psprintf("%.*swith parameters: %s", (int) (params - edata->context),
									  edata->context, REDACTED);
	}

	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/* Define the setting and install the hook, once per backend. */
void
sp_logfilter_init(void)
{
	randombytes_buf(marked_key, sizeof(marked_key));
	DefineCustomStringVariable("secpolicy.redact_tables",
							   gettext_noop("Tables whose statements are kept out of the server log, e.g. those guarded by password_policy_trigger."),
							   gettext_noop("A comma-separated list of table names; a statement naming one is redacted like a call of a flow."),
							   &redact_tables, "",
							   PGC_SUSET, GUC_LIST_INPUT,
							   NULL, NULL, NULL);

	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = secpolicy_emit_log_hook;
}
