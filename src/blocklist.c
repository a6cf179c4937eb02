/*
 * blocklist.c
 *		The common-password rule: the built-in list (data/common-passwords.txt,
 *		compiled into a sorted array by the Makefile) and the organisation's
 *		own words in table secpolicy.password_blocklist.
 *
 * A password hits the built-in list when, ignoring ASCII case, it is a listed
 * password, or it is one decorated with leading or trailing digits, symbols
 * or spaces ("Password123!" is "password" decorated).  It hits the
 * organisation's list when it contains one of its words anywhere.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include <sodium.h>

#include "secpolicy.h"

/* Undecorated cores shorter than this are not looked up. */
#define MIN_CORE_LENGTH		4

/* Longest entry of the built-in list is far below this. */
#define MAX_LISTED_LENGTH	64

static SPIPlanPtr custom_plan = NULL;

/* bsearch comparator over the sorted word array. */
static int
word_cmp(const void *key, const void *elem)
{
	return strcmp((const char *) key, *(const char *const *) elem);
}

/* Is this NUL-terminated lower-case string in the built-in list? */
static bool
listed(const char *word)
{
	return bsearch(word, sp_blocklist_words, sp_blocklist_count,
				   sizeof(const char *), word_cmp) != NULL;
}

/* A byte that decorates a password: ASCII digit, punctuation or space. */
static bool
is_decoration(unsigned char c)
{
	return c < 0x80 && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
}

/* Is the password, or its undecorated core, a common password? */
bool
sp_blocklist_contains(const char *password, size_t len)
{
	char		buf[MAX_LISTED_LENGTH + 1];
	size_t		start = 0,
				end = len;
	bool		hit;

	/* strip decorations first; a long decorated password can have a short core */
	while (start < end && is_decoration((unsigned char) password[start]))
		start++;
	while (end > start && is_decoration((unsigned char) password[end - 1]))
		end--;

	/* the whole password, when it is short enough to be listed */
	if (len <= MAX_LISTED_LENGTH)
	{
		for (size_t i = 0; i < len; i++)
			buf[i] = pg_ascii_tolower((unsigned char) password[i]);
		buf[len] = '\0';
		hit = listed(buf);
		if (!hit && end - start >= MIN_CORE_LENGTH && end - start < len)
		{
			buf[end] = '\0';
			hit = listed(buf + start);
		}
		sodium_memzero(buf, sizeof(buf));
		return hit;
	}

	if (end - start < MIN_CORE_LENGTH || end - start > MAX_LISTED_LENGTH)
		return false;
	for (size_t i = start; i < end; i++)
		buf[i - start] = pg_ascii_tolower((unsigned char) password[i]);
	buf[end - start] = '\0';
	hit = listed(buf);
	sodium_memzero(buf, sizeof(buf));
	return hit;
}

/*
 * Does the lower-cased password contain a word of the organisation's
 * blocklist table?
 */
bool
sp_custom_blocklist_hit(const char *lower_password, size_t len)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	text	   *arg;
	bool		hit;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (custom_plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare("SELECT 1 FROM secpolicy.password_blocklist"
									   " WHERE pg_catalog.strpos($1, word) OPERATOR(pg_catalog.>) 0 LIMIT 1",
									   1, argtypes);

		if (plan == NULL)
			elog(ERROR, "could not prepare the blocklist query: %s",
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		custom_plan = plan;
	}

	arg = cstring_to_text_with_len(lower_password, len);
	args[0] = PointerGetDatum(arg);
	if (SPI_execute_plan(custom_plan, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read secpolicy.password_blocklist");
	hit = SPI_processed > 0;
	sodium_memzero(VARDATA(arg), len);
	SPI_finish();
	return hit;
}
