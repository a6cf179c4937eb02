/*
 * normalize.c
 *		Unicode normalisation of passwords (NIST SP 800-63B 5.1.1.2): in a
 *		UTF-8 database every password is brought to NFKC before it is
 *		checked against the rules, hashed or verified, so that the same
 *		characters typed on different keyboards and systems (a precomposed
 *		"é" or "e" + U+0301, a full-width "Ａ" or "A", the ligature "ﬁ" or
 *		"fi") are the same password.
 *
 * ASCII text is already in NFKC, so the common case costs one scan of the
 * bytes.  In a database of another encoding, for bytes that are not valid
 * UTF-8, for passwords of more than SP_MAX_NORMALIZE_BYTES (normalisation
 * time grows faster than the length, and no password within the policy's
 * length is that long) and when the NFKC form would exceed
 * SP_MAX_PASSWORD_BYTES, passwords are used as received: the choice depends
 * on the bytes only, so hashing and verifying always agree.
 */
#include "postgres.h"

#include "common/unicode_norm.h"
#include "mb/pg_wchar.h"

#include <sodium.h>

#include "secpolicy.h"

/*
 * Return the NFKC form of a password as a palloc'd NUL-terminated string,
 * with its length in *outlen; or NULL when the password is to be used as
 * received (see above).  The caller
 * wipes and frees the result with sp_password_nfkc_free.
 */
char *
sp_password_nfkc(const char *password, size_t len, size_t *outlen)
{
	size_t		i;
	pg_wchar   *wide;
	pg_wchar   *norm = NULL;
	int			n;
	int			nn;
	char	   *out = NULL;

	for (i = 0; i < len; i++)
		if ((unsigned char) password[i] >= 0x80)
			break;
	if (i == len || len > SP_MAX_NORMALIZE_BYTES ||
		GetDatabaseEncoding() != PG_UTF8 ||
		!pg_verify_mbstr(PG_UTF8, password, (int) len, true))
		return NULL;

	wide = palloc((len + 1) * sizeof(pg_wchar));
	n = pg_encoding_mb2wchar_with_len(PG_UTF8, password, wide, (int) len);
	wide[n] = 0;

	if (unicode_is_normalized_quickcheck(UNICODE_NFKC, wide) != UNICODE_NORM_QC_YES)
	{
		norm = unicode_normalize(UNICODE_NFKC, wide);
		for (nn = 0; norm[nn] != 0; nn++)
			;
		if (nn != n || memcmp(norm, wide, n * sizeof(pg_wchar)) != 0)
		{
			unsigned char *p;

			out = palloc((size_t) nn * 4 + 1);
			p = (unsigned char *) out;
			for (int k = 0; k < nn; k++)
			{
				unicode_to_utf8(norm[k], p);
				p += pg_utf_mblen(p);
			}
			*p = '\0';
			*outlen = (size_t) (p - (unsigned char *) out);
			if (*outlen > SP_MAX_PASSWORD_BYTES)
			{
				/* beyond what we ever hash: use the bytes as received */
				sp_password_nfkc_free(out, *outlen);
				out = NULL;
			}
		}
		sodium_memzero(norm, ((size_t) nn + 1) * sizeof(pg_wchar));
		pfree(norm);
	}
	sodium_memzero(wide, (len + 1) * sizeof(pg_wchar));
	pfree(wide);
	return out;
}

/* Wipe and free a string returned by sp_password_nfkc (NULL is fine). */
void
sp_password_nfkc_free(char *normalized, size_t len)
{
	if (normalized == NULL)
		return;
	sodium_memzero(normalized, len);
	pfree(normalized);
}
