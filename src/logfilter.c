/*
 * logfilter.c
 *		Keeps passwords, TOTP codes and tokens out of the server log.
 *
 * Statements such as SELECT secpolicy.login('alice', 'secret') carry a
 * secret in their text.  An emit_log_hook hides the statement of any log
 * message raised while such a statement runs, redacts the statement text in
 * log_statement and log_min_duration_statement lines, and drops the bind
 * parameters that the extended protocol would log in DETAIL.
 *
 * The hook is installed when the library is loaded: for the first statement
 * of a connection to be covered as well, list secpolicy in
 * shared_preload_libraries or session_preload_libraries.
 */
#include "postgres.h"

#include "tcop/tcopprot.h"
#include "utils/elog.h"

#include "secpolicy.h"

#define REDACTED "[redacted by secpolicy]"

static emit_log_hook_type prev_emit_log_hook = NULL;

/* Names whose presence followed by "(" marks a statement that carries a secret. */
static const char *const secret_functions[] = {
	"login", "verify_mfa", "change_password", "reset_password",
	"request_password_reset", "create_user", "admin_set_password",
	"hash_password", "verify_password", "password_violations",
	"totp_code", "totp_match", "totp_enroll", "totp_confirm",
	"session_touch", "logout", "import_password_hash",
	"write_password", "token_digest",
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

/* Does this statement text mention secpolicy or call a secret-carrying function? */
static bool
carries_secret(const char *stmt)
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

/* Replace the statement text inside `message`. */
static char *
redact_message(const char *message, const char *at, const char *stmt)
{
	return psprintf("%.*s%s%s", (int) (at - message), message, REDACTED, at + strlen(stmt));
}

/*
 * emit_log_hook: while a secret-carrying statement runs, hide it from the
 * STATEMENT line, cut it out of messages that quote it (log_statement,
 * log_min_duration_statement) and drop its logged bind parameters.  Other
 * messages, including the extension's own errors, pass unchanged.
 */
static void
secpolicy_emit_log_hook(ErrorData *edata)
{
	if (carries_secret(debug_query_string))
	{
		const char *at = edata->message && *debug_query_string
			? strstr(edata->message, debug_query_string) : NULL;

		edata->hide_stmt = true;
		if (at != NULL)
			edata->message = redact_message(edata->message, at, debug_query_string);
		if (edata->detail && strncmp(edata->detail, "parameters:", 11) == 0)
			edata->detail = pstrdup("parameters: " REDACTED);
		if (edata->detail_log && strncmp(edata->detail_log, "parameters:", 11) == 0)
			edata->detail_log = pstrdup("parameters: " REDACTED);
	}

	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/* Install the hook once per backend. */
void
sp_logfilter_init(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = secpolicy_emit_log_hook;
}
