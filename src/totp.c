/*
 * totp.c
 *		Time-based one-time passwords (RFC 6238) through liboath: totp_code,
 *		totp_match, otpauth_uri, and the internal functions the MFA flows use
 *		on sealed secrets (totp_new_secret, totp_verify_sealed).
 *
 * Candidate codes are generated with oath_totp_generate2 for every step of
 * the window and compared with sodium_memcmp, without stopping at the first
 * match, so the time taken does not depend on where (or whether) a code
 * matched.  liboath's own validate functions compare with strcmp.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include <oath.h>
#include <sodium.h>

#include "secpolicy.h"

PG_FUNCTION_INFO_V1(secpolicy_totp_code);
PG_FUNCTION_INFO_V1(secpolicy_totp_match);
PG_FUNCTION_INFO_V1(secpolicy_otpauth_uri);
PG_FUNCTION_INFO_V1(secpolicy_totp_new_secret);
PG_FUNCTION_INFO_V1(secpolicy_totp_verify_sealed);

#define MAX_WINDOW			10
#define MAX_PERIOD			3600
#define MAX_SECRET_BYTES	128
#define NEW_SECRET_BYTES	20		/* 160 bits, as RFC 4226 recommends */

/* The TOTP parameters of one call, checked. */
typedef struct TotpParams
{
	int			digits;
	int			period;
	int			flags;			/* 0, OATH_TOTP_HMAC_SHA256 or _SHA512 */
	const char *algorithm;		/* canonical lower-case name */
} TotpParams;

/* Initialise liboath once per backend. */
void
sp_totp_init(void)
{
	int			rc = oath_init();

	if (rc != OATH_OK)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION),
				 errmsg("could not initialise liboath: %s", oath_strerror(rc))));
}

/* Check digits, period and algorithm; raise 22023 on anything unsupported. */
static void
totp_params(TotpParams *p, int digits, int period, const char *algorithm)
{
	if (digits < 6 || digits > 8)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("TOTP digits must be 6, 7 or 8, not %d", digits)));
	if (period < 1 || period > MAX_PERIOD)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("TOTP period must be between 1 and %d seconds, not %d", MAX_PERIOD, period)));
	if (pg_strcasecmp(algorithm, "sha1") == 0)
		p->flags = 0, p->algorithm = "sha1";
	else if (pg_strcasecmp(algorithm, "sha256") == 0)
		p->flags = OATH_TOTP_HMAC_SHA256, p->algorithm = "sha256";
	else if (pg_strcasecmp(algorithm, "sha512") == 0)
		p->flags = OATH_TOTP_HMAC_SHA512, p->algorithm = "sha512";
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unsupported TOTP algorithm \"%s\"", algorithm),
				 errhint("Use sha1, sha256 or sha512.")));
	p->digits = digits;
	p->period = period;
}

/*
 * Decode a base32 secret (spaces ignored, case-insensitive, padding
 * optional) into a palloc'd buffer; raise 22023 when empty or malformed.
 */
static char *
decode_secret(text *secret, size_t *outlen)
{
	char	   *in = sp_text_cstring(secret, NULL);
	char	   *raw = NULL;
	char	   *out;
	size_t		rawlen = 0;
	int			rc;

	if (strspn(in, " ") == strlen(in))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("TOTP secret must not be empty")));
	rc = oath_base32_decode(in, strlen(in), &raw, &rawlen);
	sodium_memzero(in, strlen(in));
	if (rc != OATH_OK || rawlen == 0 || rawlen > MAX_SECRET_BYTES)
	{
		if (raw)
		{
			sodium_memzero(raw, rawlen);
			free(raw);
		}
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("TOTP secret is not valid base32"),
				 errdetail("A secret is 1 to %d bytes written in RFC 4648 base32 (A-Z, 2-7).",
						   MAX_SECRET_BYTES)));
	}
	/* liboath allocates with malloc: copy into palloc memory at once */
	out = palloc(rawlen);
	memcpy(out, raw, rawlen);
	sodium_memzero(raw, rawlen);
	free(raw);
	*outlen = rawlen;
	return out;
}

/* Seconds since the Unix epoch of a timestamptz; raise if out of range. */
static int64
unix_seconds(TimestampTz at)
{
	int64		secs;

	if (TIMESTAMP_NOT_FINITE(at))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("TOTP time must be finite")));
	secs = at / USECS_PER_SEC - (at % USECS_PER_SEC < 0 ? 1 : 0) +
		((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY);
	if (secs < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("TOTP time must not be before 1970-01-01")));
	return secs;
}

/* Generate the code of time step `step` into buf (digits + 1 bytes). */
static void
code_at_step(const char *key, size_t keylen, int64 step, const TotpParams *p, char *buf)
{
	int			rc = oath_totp_generate2(key, keylen, (time_t) (step * p->period),
										 (unsigned) p->period, 0, (unsigned) p->digits,
										 p->flags, buf);

	if (rc != OATH_OK)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION),
				 errmsg("TOTP generation failed: %s", oath_strerror(rc))));
}

/*
 * Normalise a submitted code: drop spaces; it must then be exactly
 * `digits` ASCII digits.  Returns false for anything else.
 */
static bool
normalise_code(text *code, int digits, char *out)
{
	const char *s = VARDATA_ANY(code);
	size_t		len = VARSIZE_ANY_EXHDR(code);
	int			n = 0;

	if (len > 64)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		if (s[i] == ' ')
			continue;
		if (s[i] < '0' || s[i] > '9' || n >= digits)
			return false;
		out[n++] = s[i];
	}
	out[n] = '\0';
	return n == digits;
}

/*
 * Find the step in [T - window, T + window] whose code equals `code`,
 * ignoring steps at or below `after_step`.  Every candidate is computed and
 * compared.  Returns true and sets *matched on a match; sets *replayed when
 * the code matches only a step at or below after_step.
 */
static bool
match_steps(const char *key, size_t keylen, const char *code, int64 now_secs,
			int window, int64 after_step, const TotpParams *p,
			int64 *matched, bool *replayed)
{
	int64		t = now_secs / p->period;
	bool		found = false;
	char		buf[16];

	*replayed = false;
	for (int64 s = t - window; s <= t + window; s++)
	{
		bool		equal;

		if (s < 0)
			continue;
		code_at_step(key, keylen, s, p, buf);
		equal = sodium_memcmp(buf, code, p->digits) == 0;
		if (equal && s > after_step && !found)
		{
			found = true;
			*matched = s;
		}
		else if (equal && s <= after_step)
			*replayed = true;
	}
	sodium_memzero(buf, sizeof(buf));
	if (found)
		*replayed = false;
	return found;
}

/* totp_code(secret, at, digits, period, algorithm) returns text */
Datum
secpolicy_totp_code(PG_FUNCTION_ARGS)
{
	TotpParams	p;
	size_t		keylen = 0;
	char	   *volatile key = NULL;
	char		buf[16];
	int64		step;
	text	   *volatile result = NULL;

	sp_logfilter_mark_statement();

	totp_params(&p, PG_GETARG_INT32(2), PG_GETARG_INT32(3),
				text_to_cstring(PG_GETARG_TEXT_PP(4)));
	step = unix_seconds(PG_GETARG_TIMESTAMPTZ(1)) / p.period;
	PG_TRY();
	{
		key = decode_secret(PG_GETARG_TEXT_PP(0), &keylen);
		code_at_step(key, keylen, step, &p, buf);
		result = cstring_to_text(buf);
	}
	PG_FINALLY();
	{
		if (key != NULL)
			sodium_memzero(key, keylen);
		sodium_memzero(buf, sizeof(buf));
	}
	PG_END_TRY();
	PG_RETURN_TEXT_P(result);
}

/* totp_match(secret, code, at, window, digits, period, algorithm) returns bigint */
Datum
secpolicy_totp_match(PG_FUNCTION_ARGS)
{
	TotpParams	p;
	int			window = PG_GETARG_INT32(3);
	size_t		keylen = 0;
	char	   *volatile key = NULL;
	char		code[16];
	int64		now_secs;
	int64		matched = 0;
	bool		replayed;
	volatile bool found = false;

	sp_logfilter_mark_statement();

	totp_params(&p, PG_GETARG_INT32(4), PG_GETARG_INT32(5),
				text_to_cstring(PG_GETARG_TEXT_PP(6)));
	if (window < 0 || window > MAX_WINDOW)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("TOTP window must be between 0 and %d steps, not %d", MAX_WINDOW, window)));
	now_secs = unix_seconds(PG_GETARG_TIMESTAMPTZ(2));
	PG_TRY();
	{
		key = decode_secret(PG_GETARG_TEXT_PP(0), &keylen);
		if (normalise_code(PG_GETARG_TEXT_PP(1), p.digits, code))
			found = match_steps(key, keylen, code, now_secs, window, -1, &p, &matched, &replayed);
	}
	PG_FINALLY();
	{
		if (key != NULL)
			sodium_memzero(key, keylen);
		sodium_memzero(code, sizeof(code));
	}
	PG_END_TRY();
	if (!found)
		PG_RETURN_NULL();
	PG_RETURN_INT64(matched);
}

/* Append `s` to buf, percent-encoding everything but RFC 3986 unreserved characters. */
static void
append_uri_encoded(StringInfo buf, const char *s)
{
	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			c == '-' || c == '.' || c == '_' || c == '~')
			appendStringInfoChar(buf, (char) c);
		else
			appendStringInfo(buf, "%%%02X", c);
	}
}

/* otpauth_uri(secret, account, issuer, algorithm, digits, period) returns text */
Datum
secpolicy_otpauth_uri(PG_FUNCTION_ARGS)
{
	char	   *account = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *issuer = text_to_cstring(PG_GETARG_TEXT_PP(2));
	TotpParams	p;
	StringInfo	buf;
	size_t		keylen = 0;
	char	   *volatile key = NULL;
	char	   *volatile canonical = NULL;
	const char *secret;
	size_t		secretlen;
	text	   *volatile result = NULL;

	sp_logfilter_mark_statement();

	totp_params(&p, PG_GETARG_INT32(4), PG_GETARG_INT32(5),
				text_to_cstring(PG_GETARG_TEXT_PP(3)));
	if (strchr(account, ':') != NULL || strchr(issuer, ':') != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("otpauth account and issuer must not contain a colon")));

	buf = makeStringInfo();
	PG_TRY();
	{
		size_t		n = 0;

		/* validate the secret, and write it upper-case without spaces or padding */
		key = decode_secret(PG_GETARG_TEXT_PP(0), &keylen);
		secret = VARDATA_ANY(PG_GETARG_TEXT_PP(0));
		secretlen = VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(0));
		canonical = palloc(secretlen + 1);
		for (size_t i = 0; i < secretlen; i++)
			if (secret[i] != ' ' && secret[i] != '=')
				canonical[n++] = pg_ascii_toupper((unsigned char) secret[i]);
		canonical[n] = '\0';

		appendStringInfoString(buf, "otpauth://totp/");
		append_uri_encoded(buf, issuer);
		appendStringInfoChar(buf, ':');
		append_uri_encoded(buf, account);
		appendStringInfo(buf, "?secret=%s&issuer=", canonical);
		append_uri_encoded(buf, issuer);
		appendStringInfo(buf, "&algorithm=%s&digits=%d&period=%d",
						 p.flags == 0 ? "SHA1" : (p.flags == OATH_TOTP_HMAC_SHA256 ? "SHA256" : "SHA512"),
						 p.digits, p.period);
		result = cstring_to_text(buf->data);
	}
	PG_FINALLY();
	{
		if (key != NULL)
			sodium_memzero(key, keylen);
		if (canonical != NULL)
			sodium_memzero(canonical, strlen(canonical));
		sodium_memzero(buf->data, buf->maxlen);
	}
	PG_END_TRY();
	PG_RETURN_TEXT_P(result);
}

/*
 * totp_new_secret(OUT secret text, OUT sealed bytea): a fresh 160-bit secret
 * from the CSPRNG, in base32 (shown once to the user) and sealed (stored).
 */
Datum
secpolicy_totp_new_secret(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	unsigned char raw[NEW_SECRET_BYTES];
	char	   *volatile b32 = NULL;
	size_t		b32len = 0;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "totp_new_secret must return a composite type");
	tupdesc = BlessTupleDesc(tupdesc);

	PG_TRY();
	{
		int			rc;
		size_t		n = 0;
		text	   *t;
		char	   *enc = NULL;

		randombytes_buf(raw, sizeof(raw));
		values[1] = PointerGetDatum(sp_seal(raw, sizeof(raw)));
		rc = oath_base32_encode((const char *) raw, sizeof(raw), &enc, &b32len);
		b32 = enc;
		if (rc != OATH_OK)
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION),
					 errmsg("base32 encoding failed: %s", oath_strerror(rc))));
		while (n < b32len && b32[n] != '=')
			n++;
		t = palloc(VARHDRSZ + n);
		SET_VARSIZE(t, VARHDRSZ + n);
		memcpy(VARDATA(t), b32, n);
		values[0] = PointerGetDatum(t);
	}
	PG_FINALLY();
	{
		sodium_memzero(raw, sizeof(raw));
		/* liboath allocates with malloc */
		if (b32 != NULL)
		{
			sodium_memzero(b32, b32len);
			free(b32);
		}
	}
	PG_END_TRY();
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * totp_verify_sealed(sealed, code, at, after_step, window, digits, period,
 * algorithm, OUT step bigint, OUT replayed boolean): check a code against a
 * sealed secret, accepting only steps after after_step (replay protection).
 */
Datum
secpolicy_totp_verify_sealed(PG_FUNCTION_ARGS)
{
	bytea	   *sealed = PG_GETARG_BYTEA_PP(0);
	TotpParams	p;
	int			window = PG_GETARG_INT32(4);
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {true, false};
	char		code[16];
	size_t		keylen = 0;
	char	   *volatile key = NULL;
	int64		now_secs;
	int64		matched = 0;
	bool		replayed = false;

	sp_logfilter_mark_statement();

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "totp_verify_sealed must return a composite type");
	tupdesc = BlessTupleDesc(tupdesc);
	totp_params(&p, PG_GETARG_INT32(5), PG_GETARG_INT32(6),
				text_to_cstring(PG_GETARG_TEXT_PP(7)));
	if (window < 0 || window > MAX_WINDOW)
		window = 1;
	now_secs = unix_seconds(PG_GETARG_TIMESTAMPTZ(2));

	PG_TRY();
	{
		if (normalise_code(PG_GETARG_TEXT_PP(1), p.digits, code))
		{
			key = (char *) sp_unseal(sealed, &keylen);
			if (match_steps(key, keylen, code, now_secs, window, PG_GETARG_INT64(3),
							&p, &matched, &replayed))
			{
				nulls[0] = false;
				values[0] = Int64GetDatum(matched);
			}
		}
	}
	PG_FINALLY();
	{
		if (key != NULL)
			sodium_memzero(key, keylen);
		sodium_memzero(code, sizeof(code));
	}
	PG_END_TRY();
	values[1] = BoolGetDatum(replayed);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
