/*
 * seal.c
 *		Encryption at rest of second-factor secrets with libsodium's
 *		crypto_secretbox (XSalsa20-Poly1305) under a 256-bit key that lives in
 *		a file outside the database.
 *
 * Settings (superuser only, values hidden from other users):
 *	 secpolicy.key_file			 the current key: 64 hex characters
 *	 secpolicy.previous_key_file the key being rotated away from, if any
 *
 * A sealed value is version (1 byte, SEAL_VERSION) || key_id (8 bytes) ||
 * nonce (24) || box.  key_id is the first 8 bytes of BLAKE2b(key), so that
 * unsealing picks the right key and reseal() can tell which values still use
 * an old one.  Version 1.0 of the extension wrote no version byte; it only
 * ever sealed 20-byte TOTP secrets, so its values are exactly
 * LEGACY_SEALED_BYTES long, a length that versioned values never have (a
 * 19-byte secret is refused).  Keys are read from their file at each use,
 * kept in a stack buffer and wiped afterwards.
 */
#include "postgres.h"

#include <sys/stat.h>

#include "fmgr.h"
#include "funcapi.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include <sodium.h>

#include "secpolicy.h"

StaticAssertDecl(SP_KEY_BYTES == crypto_secretbox_KEYBYTES, "the sealing key is a secretbox key");

PG_FUNCTION_INFO_V1(secpolicy_reseal);
PG_FUNCTION_INFO_V1(secpolicy_key_status);
PG_FUNCTION_INFO_V1(secpolicy_sealed_key_id);

#define SEAL_VERSION	1
#define KEY_ID_BYTES	SP_KEY_ID_BYTES
#define SEAL_OVERHEAD	(1 + KEY_ID_BYTES + crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
/* A value sealed by version 1.0: no version byte, a 20-byte TOTP secret. */
#define LEGACY_SEALED_BYTES (SEAL_OVERHEAD - 1 + 20)

static char *key_file = NULL;
static char *previous_key_file = NULL;

/* Define the key settings. */
void
sp_seal_init(void)
{
	DefineCustomStringVariable("secpolicy.key_file",
							   gettext_noop("File holding the 256-bit key (64 hex characters) that seals second-factor secrets."),
							   NULL,
							   &key_file, "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("secpolicy.previous_key_file",
							   gettext_noop("File holding the key being rotated away from; secrets sealed under it still open."),
							   NULL,
							   &previous_key_file, "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
}

/* Value of a hex digit, or -1. */
static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Read the key named by setting `setting` (whose value is `path`) into key.
 * Returns false when the setting is empty; raises on any problem with the file.
 */
static bool
load_key(const char *setting, const char *path, unsigned char key[crypto_secretbox_KEYBYTES])
{
	char		buf[crypto_secretbox_KEYBYTES * 2 + 8];
	struct stat st;
	FILE	   *f;
	size_t		n;
	size_t		end;
	bool		trailing;

	if (path == NULL || path[0] == '\0')
		return false;

	f = AllocateFile(path, "r");
	if (f == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open the key file named by %s: %m", setting)));
	/* unbuffered: the key must not linger in a stdio buffer we cannot wipe */
	setvbuf(f, NULL, _IONBF, 0);
	/* check the file we opened, not the name (no window to swap it) */
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode))
	{
		FreeFile(f);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("the key file named by %s is not a regular file", setting)));
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO))
	{
		FreeFile(f);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("the key file named by %s is accessible to group or others", setting),
				 errhint("chmod 600 the file; it must be readable by the database server's user only.")));
	}
	n = fread(buf, 1, sizeof(buf), f);
	trailing = (n == sizeof(buf) && fgetc(f) != EOF);
	FreeFile(f);

	/* 64 hex characters, optionally followed by white space */
	end = n;
	while (end > 0 && (buf[end - 1] == '\n' || buf[end - 1] == '\r' ||
					   buf[end - 1] == ' ' || buf[end - 1] == '\t'))
		end--;
	if (end != crypto_secretbox_KEYBYTES * 2 || trailing)
	{
		sodium_memzero(buf, sizeof(buf));
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("the key file named by %s must hold exactly 64 hex characters", setting),
				 errhint("Create one with: head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' > FILE")));
	}
	for (size_t i = 0; i < crypto_secretbox_KEYBYTES; i++)
	{
		int			hi = hexval(buf[2 * i]),
					lo = hexval(buf[2 * i + 1]);

		if (hi < 0 || lo < 0)
		{
			sodium_memzero(buf, sizeof(buf));
			sodium_memzero(key, crypto_secretbox_KEYBYTES);
			ereport(ERROR,
					(errcode(ERRCODE_CONFIG_FILE_ERROR),
					 errmsg("the key file named by %s must hold exactly 64 hex characters", setting)));
		}
		key[i] = (unsigned char) (hi * 16 + lo);
	}
	sodium_memzero(buf, sizeof(buf));
	return true;
}

/* The identifier of a key: the first bytes of its BLAKE2b hash. */
static void
key_id(const unsigned char key[crypto_secretbox_KEYBYTES], unsigned char id[KEY_ID_BYTES])
{
	unsigned char h[crypto_generichash_BYTES];

	crypto_generichash(h, sizeof(h), key, crypto_secretbox_KEYBYTES, NULL, 0);
	memcpy(id, h, KEY_ID_BYTES);
}

/* Load the current key or raise the "no key configured" error. */
static void
current_key(unsigned char key[crypto_secretbox_KEYBYTES])
{
	if (!load_key("secpolicy.key_file", key_file, key))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no sealing key is configured"),
				 errdetail("Second-factor secrets are stored encrypted, and secpolicy.key_file is empty."),
				 errhint("Write 32 random bytes as 64 hex characters to a file readable only by the server "
						 "(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' > FILE; chmod 600 FILE), "
						 "then ALTER SYSTEM SET secpolicy.key_file = 'FILE' and SELECT pg_reload_conf().")));
}

/*
 * Where the key identifier starts in a sealed value of `total` bytes: 1
 * after the version byte, 0 in a value sealed by version 1.0, or -1 when the
 * value is no sealed value at all.
 */
static int
key_id_offset(const unsigned char *p, size_t total)
{
	if (total == LEGACY_SEALED_BYTES)
		return 0;
	if (total > SEAL_OVERHEAD && p[0] == SEAL_VERSION)
		return 1;
	return -1;
}

/* Seal `len` bytes under the current key; returns a palloc'd bytea. */
bytea *
sp_seal(const unsigned char *plain, size_t len)
{
	unsigned char key[crypto_secretbox_KEYBYTES];
	bytea	   *out;
	unsigned char *p;

	/* that length would read as a value of version 1.0 */
	if (SEAL_OVERHEAD + len == LEGACY_SEALED_BYTES)
		elog(ERROR, "cannot seal a value of %zu bytes", len);
	current_key(key);
	out = palloc(VARHDRSZ + SEAL_OVERHEAD + len);
	SET_VARSIZE(out, VARHDRSZ + SEAL_OVERHEAD + len);
	p = (unsigned char *) VARDATA(out);
	p[0] = SEAL_VERSION;
	key_id(key, p + 1);
	randombytes_buf(p + 1 + KEY_ID_BYTES, crypto_secretbox_NONCEBYTES);
	crypto_secretbox_easy(p + 1 + KEY_ID_BYTES + crypto_secretbox_NONCEBYTES, plain, len,
						  p + 1 + KEY_ID_BYTES, key);
	sodium_memzero(key, sizeof(key));
	return out;
}

/*
 * Open a sealed value with whichever configured key sealed it; returns a
 * palloc'd buffer the caller wipes.  Raises when no key fits or the box has
 * been tampered with.
 */
unsigned char *
sp_unseal(bytea *sealed, size_t *len)
{
	size_t		total = VARSIZE_ANY_EXHDR(sealed);
	const unsigned char *p = (const unsigned char *) VARDATA_ANY(sealed);
	int			at = key_id_offset(p, total);
	unsigned char key[crypto_secretbox_KEYBYTES];
	unsigned char id[KEY_ID_BYTES];
	unsigned char *plain;
	size_t		boxlen;
	bool		have = false;

	if (at < 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("sealed secret is truncated or of an unknown format")));

	if (load_key("secpolicy.key_file", key_file, key))
	{
		key_id(key, id);
		have = memcmp(id, p + at, KEY_ID_BYTES) == 0;
	}
	if (!have && load_key("secpolicy.previous_key_file", previous_key_file, key))
	{
		key_id(key, id);
		have = memcmp(id, p + at, KEY_ID_BYTES) == 0;
	}
	if (!have)
	{
		sodium_memzero(key, sizeof(key));
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no configured key can open this sealed secret"),
				 errhint("Set secpolicy.key_file (or secpolicy.previous_key_file during a rotation) to the key it was sealed with.")));
	}

	p += at + KEY_ID_BYTES;
	boxlen = total - at - KEY_ID_BYTES - crypto_secretbox_NONCEBYTES;
	*len = boxlen - crypto_secretbox_MACBYTES;
	plain = palloc(*len + 1);
	if (crypto_secretbox_open_easy(plain, p + crypto_secretbox_NONCEBYTES, boxlen, p, key) != 0)
	{
		sodium_memzero(key, sizeof(key));
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("sealed secret failed authentication"),
				 errdetail("The stored value was altered or sealed with another key of the same identifier.")));
	}
	sodium_memzero(key, sizeof(key));
	return plain;
}

/*
 * The current key and its identifier, for column encryption (columns.c);
 * raises the "no key configured" error.  The caller wipes the key.
 */
void
sp_seal_current_key(unsigned char key[SP_KEY_BYTES], unsigned char id[SP_KEY_ID_BYTES])
{
	current_key(key);
	key_id(key, id);
}

/*
 * The previous key (secpolicy.previous_key_file) and its identifier; false
 * when none is configured.  The caller wipes the key.
 */
bool
sp_seal_previous_key(unsigned char key[SP_KEY_BYTES], unsigned char id[SP_KEY_ID_BYTES])
{
	if (!load_key("secpolicy.previous_key_file", previous_key_file, key))
		return false;
	key_id(key, id);
	return true;
}

/* Hex text of a key identifier. */
static char *
hex_id(const unsigned char id[KEY_ID_BYTES])
{
	char	   *out = palloc(KEY_ID_BYTES * 2 + 1);

	sodium_bin2hex(out, KEY_ID_BYTES * 2 + 1, id, KEY_ID_BYTES);
	return out;
}

/* reseal(sealed bytea) returns bytea: the same secret sealed under the current key */
Datum
secpolicy_reseal(PG_FUNCTION_ARGS)
{
	size_t		len;
	unsigned char *plain = sp_unseal(PG_GETARG_BYTEA_PP(0), &len);
	bytea	   *out = sp_seal(plain, len);

	sodium_memzero(plain, len);
	PG_RETURN_BYTEA_P(out);
}

/* sealed_key_id(sealed bytea) returns text: hex id of the key that sealed it, or NULL */
Datum
secpolicy_sealed_key_id(PG_FUNCTION_ARGS)
{
	bytea	   *sealed = PG_GETARG_BYTEA_PP(0);
	const unsigned char *p = (const unsigned char *) VARDATA_ANY(sealed);
	int			at = key_id_offset(p, VARSIZE_ANY_EXHDR(sealed));

	if (at < 0)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(hex_id(p + at)));
}

/* key_status(OUT key_id text, OUT previous_key_id text): which keys are configured */
Datum
secpolicy_key_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {true, true};
	unsigned char key[crypto_secretbox_KEYBYTES];
	unsigned char id[KEY_ID_BYTES];

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "key_status must return a composite type");
	tupdesc = BlessTupleDesc(tupdesc);

	if (load_key("secpolicy.key_file", key_file, key))
	{
		key_id(key, id);
		values[0] = CStringGetTextDatum(hex_id(id));
		nulls[0] = false;
	}
	if (load_key("secpolicy.previous_key_file", previous_key_file, key))
	{
		key_id(key, id);
		values[1] = CStringGetTextDatum(hex_id(id));
		nulls[1] = false;
	}
	sodium_memzero(key, sizeof(key));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
