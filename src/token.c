/*
 * token.c
 *		Random tokens from libsodium's CSPRNG and the SHA-256 digests that are
 *		stored in their place.
 *
 * A token is "<prefix>_" followed by 256 random bits in unpadded base64url
 * (43 characters).  The prefix names the token's use (session, challenge,
 * reset) so that a leaked token is recognisable by secret scanners.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include <sodium.h>

#include "secpolicy.h"

PG_FUNCTION_INFO_V1(secpolicy_random_token);
PG_FUNCTION_INFO_V1(secpolicy_token_digest);
PG_FUNCTION_INFO_V1(secpolicy_recovery_code);

#define TOKEN_BYTES		32
#define MAX_PREFIX		16

/* Return a palloc'd "<prefix>_<43 base64url characters>" token. */
static char *
random_token(const char *prefix)
{
	unsigned char raw[TOKEN_BYTES];
	char		b64[sodium_base64_ENCODED_LEN(TOKEN_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	char	   *token;

	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(b64, sizeof(b64), raw, sizeof(raw),
					  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof(raw));
	token = psprintf("%s_%s", prefix, b64);
	sodium_memzero(b64, sizeof(b64));
	return token;
}

/* random_token(prefix text) returns text: an internal helper of the flows */
Datum
secpolicy_random_token(PG_FUNCTION_ARGS)
{
	char	   *prefix = text_to_cstring(PG_GETARG_TEXT_PP(0));

	if (strlen(prefix) == 0 || strlen(prefix) > MAX_PREFIX ||
		strspn(prefix, "abcdefghijklmnopqrstuvwxyz") != strlen(prefix))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("token prefix must be 1 to %d lower-case ASCII letters", MAX_PREFIX)));
	PG_RETURN_TEXT_P(cstring_to_text(random_token(prefix)));
}

/* token_digest(token text) returns bytea: SHA-256 of the token's bytes */
Datum
secpolicy_token_digest(PG_FUNCTION_ARGS)
{
	text	   *token = PG_GETARG_TEXT_PP(0);
	bytea	   *out = palloc(VARHDRSZ + crypto_hash_sha256_BYTES);

	sp_logfilter_mark_statement();
	SET_VARSIZE(out, VARHDRSZ + crypto_hash_sha256_BYTES);
	crypto_hash_sha256((unsigned char *) VARDATA(out),
					   (const unsigned char *) VARDATA_ANY(token),
					   VARSIZE_ANY_EXHDR(token));
	PG_RETURN_BYTEA_P(out);
}

/*
 * recovery_code() returns text: 120 random bits as four dash-separated
 * groups of six lower-case base32 letters, e.g. "k7fq2m-..".
 */
Datum
secpolicy_recovery_code(PG_FUNCTION_ARGS)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
	char		out[4 * 6 + 3 + 1];
	int			n = 0;
	text	   *result;

	for (int group = 0; group < 4; group++)
	{
		if (group > 0)
			out[n++] = '-';
		for (int i = 0; i < 6; i++)
			out[n++] = alphabet[randombytes_uniform(32)];
	}
	out[n] = '\0';
	result = cstring_to_text(out);
	sodium_memzero(out, sizeof(out));
	PG_RETURN_TEXT_P(result);
}
