/*
 * complexity.c
 *		The password rules: length in characters, character classes, the
 *		username, and the blocklists.  password_violations() reports every
 *		broken rule as a code; the triggers raise with the same codes.
 *
 * Character classes: ASCII letters and digits are classified directly;
 * other characters through the C library's wide-character functions under
 * the database's LC_CTYPE (a UTF-8 locale classifies every script; the C
 * locale treats non-ASCII letters as symbols).  A symbol is any character
 * that is neither a letter nor a digit nor a control character, so spaces
 * and emoji count.  In a UTF-8 database the rules look at the password's
 * NFKC form (normalize.c), which is what gets hashed.
 */
#include "postgres.h"

#include <wctype.h>

#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/formatting.h"

#include <sodium.h>

#include "secpolicy.h"

PG_FUNCTION_INFO_V1(secpolicy_password_violations);

/* Usernames shorter than this are not searched for inside passwords. */
#define MIN_USERNAME_MATCH	3

typedef struct CharClasses
{
	int			nchars;
	bool		upper;
	bool		lower;
	bool		digit;
	bool		symbol;
} CharClasses;

/* Classify one non-ASCII code point into *cc. */
static void
classify_wide(pg_wchar cp, CharClasses *cc)
{
	wint_t		wc = (wint_t) cp;

	if (iswupper(wc))
		cc->upper = true;
	else if (iswlower(wc))
		cc->lower = true;
	else if (iswdigit(wc))
		cc->digit = true;
	else if (!iswalpha(wc) && !iswcntrl(wc))
		cc->symbol = true;
}

/* Count the characters of a password and note which classes it uses. */
static void
classify(const char *s, size_t len, CharClasses *cc)
{
	bool		utf8 = GetDatabaseEncoding() == PG_UTF8;
	const char *end = s + len;

	memset(cc, 0, sizeof(*cc));
	while (s < end)
	{
		unsigned char c = (unsigned char) *s;
		int			l = pg_mblen(s);

		if (l <= 0 || s + l > end)
			l = 1;
		cc->nchars++;
		if (c < 0x80)
		{
			if (c >= 'A' && c <= 'Z')
				cc->upper = true;
			else if (c >= 'a' && c <= 'z')
				cc->lower = true;
			else if (c >= '0' && c <= '9')
				cc->digit = true;
			else if (c >= 0x20 && c != 0x7f)
				cc->symbol = true;
		}
		else if (utf8)
			classify_wide(utf8_to_unicode((const unsigned char *) s), cc);
		else
			cc->symbol = true;
		s += l;
	}
}

/* Lower-case a string under the database's default collation. */
static char *
lower_default(const char *s, size_t len)
{
	return str_tolower(s, len, DEFAULT_COLLATION_OID);
}

/*
 * Does the password contain the username (case-insensitively)?  For an
 * address-like username "alice@example.com" the local part "alice" counts too.
 */
static bool
contains_username(const char *lpw, const char *username, size_t ulen)
{
	char	   *luser;
	char	   *at;
	bool		hit = false;

	if (pg_mbstrlen_with_len(username, ulen) < MIN_USERNAME_MATCH)
		return false;
	luser = lower_default(username, ulen);
	if (strstr(lpw, luser) != NULL)
		hit = true;
	else if ((at = strchr(luser, '@')) != NULL)
	{
		*at = '\0';
		if (pg_mbstrlen(luser) >= MIN_USERNAME_MATCH && strstr(lpw, luser) != NULL)
			hit = true;
	}
	pfree(luser);
	return hit;
}

/*
 * Return the rule codes a password breaks, in the documented order, as a
 * text[] (empty when the password is acceptable).
 */
ArrayType *
sp_password_violations(const char *password, size_t len,
					   const char *username, size_t ulen,
					   const SpPolicy *policy)
{
	const char *codes[8];
	Datum		elems[8];
	int			n = 0;
	CharClasses cc;
	size_t		nlen = 0;
	size_t		nulen = 0;
	char	   *norm = sp_password_nfkc(password, len, &nlen);
	char	   *normuser = username ? sp_password_nfkc(username, ulen, &nulen) : NULL;

	/* the rules apply to what is hashed: the NFKC form */
	if (norm != NULL)
	{
		password = norm;
		len = nlen;
	}
	if (normuser != NULL)
	{
		username = normuser;
		ulen = nulen;
	}
	classify(password, len, &cc);

	if (cc.nchars < policy->min_length)
		codes[n++] = "too_short";
	if (cc.nchars > policy->max_length || len > SP_MAX_PASSWORD_BYTES)
		codes[n++] = "too_long";
	if (policy->require_upper && !cc.upper)
		codes[n++] = "missing_upper";
	if (policy->require_lower && !cc.lower)
		codes[n++] = "missing_lower";
	if (policy->require_digit && !cc.digit)
		codes[n++] = "missing_digit";
	if (policy->require_symbol && !cc.symbol)
		codes[n++] = "missing_symbol";

	/* The remaining checks look inside the text: bound their work. */
	if (len <= SP_MAX_PASSWORD_BYTES && len > 0)
	{
		char	   *lpw = lower_default(password, len);

		if (policy->check_username && username != NULL && ulen > 0 &&
			contains_username(lpw, username, ulen))
			codes[n++] = "contains_username";
		if (policy->check_blocklist &&
			(sp_blocklist_contains(password, len) ||
			 sp_custom_blocklist_hit(lpw, strlen(lpw))))
			codes[n++] = "common_password";

		sodium_memzero(lpw, strlen(lpw));
		pfree(lpw);
	}
	sp_password_nfkc_free(norm, nlen);
	sp_password_nfkc_free(normuser, nulen);

	for (int i = 0; i < n; i++)
		elems[i] = CStringGetTextDatum(codes[i]);
	return construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT);
}

/* Render a text[] of rule codes as "a, b, c" for an error DETAIL. */
char *
sp_violations_list(ArrayType *violations)
{
	Datum	   *elems;
	int			n;
	StringInfoData buf;

	deconstruct_array(violations, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, NULL, &n);
	initStringInfo(&buf);
	for (int i = 0; i < n; i++)
		appendStringInfo(&buf, "%s%s", i > 0 ? ", " : "", TextDatumGetCString(elems[i]));
	return buf.data;
}

/*
 * password_violations(password text, username text DEFAULT NULL) returns text[].
 * NULL password gives NULL; NULL username skips the username rule.
 */
Datum
secpolicy_password_violations(PG_FUNCTION_ARGS)
{
	text	   *password;
	text	   *username = NULL;
	SpPolicy	policy;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	password = PG_GETARG_TEXT_PP(0);
	if (!PG_ARGISNULL(1))
		username = PG_GETARG_TEXT_PP(1);

	sp_policy_load(&policy);
	PG_RETURN_ARRAYTYPE_P(sp_password_violations(VARDATA_ANY(password),
												 VARSIZE_ANY_EXHDR(password),
												 username ? VARDATA_ANY(username) : NULL,
												 username ? VARSIZE_ANY_EXHDR(username) : 0,
												 &policy));
}
