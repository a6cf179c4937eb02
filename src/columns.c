/*
 * columns.c
 *		Protected columns of application tables: the trigger that encrypts
 *		every value written in clear, reveal() for readers who hold the
 *		column's access, blind_index() for equality searches, and the helpers
 *		of protect_column(), unprotect_column() and the batches that encrypt
 *		existing values (src/sql/93_protected_columns.sql).
 *
 * A protected value is the text "$sp2$" followed by the URL-safe base64
 * (without padding) of
 *
 *	 version (1 byte, 0x02) || key_id (8) || row key length (2, big-endian)
 *	 || row key || nonce (24) || XChaCha20-Poly1305 ciphertext || tag (16)
 *
 * key_id identifies the sealing key (secpolicy.key_file, as in seal.c) that
 * the column key was derived from: crypto_kdf_derive_from_key(sealing key,
 * subkey id, "spcolenc"), where the subkey id is a hash of the schema, table
 * and column names.  A fresh random nonce is drawn for every value (from a
 * pool of random bytes, see fresh_nonce()).  The
 * associated data is everything before the nonce followed by the
 * length-prefixed schema, table and column names: a value authenticates only
 * in its own column of its own table, under the row key it carries.  The
 * trigger refuses a value whose row key is not its row's, and reveal() one
 * whose row key is not the one it is given, so a value copied to another
 * row or column fails with XX001.  The row key is the text output of the
 * primary key (a row literal, as ROW(a, b)::text, for a composite key): it
 * is the same in any database the table is dumped into.
 *
 * The trigger recognises a value that is already encrypted (a restore, a
 * copy, an UPDATE that leaves the column alone) by its prefix, and keeps it
 * only when it authenticates for its row; anything else is plaintext and is
 * encrypted.  So nothing is ever encrypted twice, and a value written in
 * clear must not begin with "$sp2$".
 *
 * Keys: the sealing keys are read from their files once per statement (and
 * only by a statement that needs them), the column keys derived from them
 * when first needed; all of them are wiped when the next statement needs
 * keys, and when the transaction ends.
 * The key of a column's blind index is 32 random bytes sealed (seal.c) in
 * secpolicy.protected_columns, so that blind indexes survive a rotation of
 * the sealing key unchanged.
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/inval.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/timestamp.h"

#include <ctype.h>
#include <sodium.h>

#include "secpolicy.h"
#include "columns.h"

PG_FUNCTION_INFO_V1(secpolicy_protect_trigger);
PG_FUNCTION_INFO_V1(secpolicy_reveal);
PG_FUNCTION_INFO_V1(secpolicy_blind_index);
PG_FUNCTION_INFO_V1(secpolicy_needs_encryption);
PG_FUNCTION_INFO_V1(secpolicy_protected_key_id);
PG_FUNCTION_INFO_V1(secpolicy_open_value);
PG_FUNCTION_INFO_V1(secpolicy_new_index_key);
PG_FUNCTION_INFO_V1(secpolicy_set_reseal_target);
PG_FUNCTION_INFO_V1(secpolicy_register_changed);

/* session.c: the session proven in this transaction */
extern Datum secpolicy_current_session_user(PG_FUNCTION_ARGS);
extern Datum secpolicy_current_session_id(PG_FUNCTION_ARGS);

#define COL_PREFIX			"$sp2$"
#define COL_PREFIX_LEN		5
#define COL_VERSION			0x02
#define COL_NONCE			crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define COL_TAG				crypto_aead_xchacha20poly1305_ietf_ABYTES
#define COL_KEY				crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define COL_FIXED_HEADER	(1 + SP_KEY_ID_BYTES + 2)
#define COL_KDF_CONTEXT		"spcolenc"
#define BIDX_BYTES			16
#define INDEX_KEY_BYTES		32

/* Documented limits: plaintext of a value, and text of a row key. */
#define COL_MAX_PLAIN		(1024 * 1024)
#define COL_MAX_ROW_KEY		1024

StaticAssertDecl(COL_KEY == crypto_kdf_KEYBYTES, "column keys are derived with crypto_kdf");
StaticAssertDecl(SP_KEY_BYTES == crypto_kdf_KEYBYTES, "the sealing key is a crypto_kdf key");

/* The sealing keys, read once per statement. */
typedef struct SealingKeys
{
	bool		loaded_current;
	unsigned char current[SP_KEY_BYTES];
	unsigned char current_id[SP_KEY_ID_BYTES];
	bool		loaded_previous;
	bool		have_previous;
	unsigned char previous[SP_KEY_BYTES];
	unsigned char previous_id[SP_KEY_ID_BYTES];
} SealingKeys;

/* What the trigger needs to know of a table: its names and primary key. */
typedef struct TableInfo
{
	Oid			relid;
	char	   *schema;
	char	   *table;
	int			npk;			/* 0 until read from the relation */
	AttrNumber	pk[INDEX_MAX_KEYS];
	FmgrInfo	pkout[INDEX_MAX_KEYS];
	struct TableInfo *next;
} TableInfo;

/* A protected column as this transaction knows it, with its keys. */
typedef struct ColumnInfo
{
	TableInfo  *tab;
	char		column[NAMEDATALEN];
	AttrNumber	attnum;			/* 0 until resolved by the trigger */
	AttrNumber	bidx_attnum;
	uint64		subkey_id;
	char	   *names;			/* the length-prefixed names, as in the associated data */
	int			names_len;
	bool		have_current;	/* column key under the current sealing key */
	unsigned char key_current[COL_KEY];
	bool		have_previous;
	unsigned char key_previous[COL_KEY];
	/* reveal()'s decision, for one statement and one reader */
	uint64		decided_generation;
	Oid			decided_role;
	int64		decided_user;
	int64		decided_session;
	bool		allowed;
	struct ColumnInfo *next;
} ColumnInfo;

/* A protected value, decoded. */
typedef struct ParsedValue
{
	unsigned char *bin;
	size_t		binlen;
	size_t		header;			/* bytes before the nonce (all of them are associated data) */
	const unsigned char *key_id;
	const char *row_key;
	size_t		row_key_len;
} ParsedValue;

static SealingKeys sealing;
static MemoryContext cache_cxt = NULL;
static TableInfo *tables = NULL;
static ColumnInfo *columns = NULL;

/* The column whose batch is running (protect_batch): unchanged values under an old key are resealed. */
static Oid	reseal_relid = InvalidOid;
static char reseal_column[NAMEDATALEN];

/* The statement last marked for the log filter. */
static LocalTransactionId marked_lxid = InvalidLocalTransactionId;
static TimestampTz marked_start = 0;
static const char *marked_query = NULL;

/*
 * Nonces are drawn from a pool that randombytes_buf() refills 4 KiB at a
 * time: one getrandom() call per 170 values instead of one per value (it
 * was the largest cost of an INSERT).  Nonces are public, but each must be
 * fresh; the pool belongs to the process that filled it (never the
 * postmaster, which encrypts nothing), so no two backends share bytes.
 */
#define NONCE_POOL_BYTES	(COL_NONCE * 170)
static unsigned char nonce_pool[NONCE_POOL_BYTES];
static size_t nonce_pool_left = 0;
static int	nonce_pool_pid = 0;

/* A fresh random nonce. */
static void
fresh_nonce(unsigned char *nonce)
{
	if (nonce_pool_left < COL_NONCE || nonce_pool_pid != MyProcPid)
	{
		randombytes_buf(nonce_pool, sizeof(nonce_pool));
		nonce_pool_left = sizeof(nonce_pool);
		nonce_pool_pid = MyProcPid;
	}
	memcpy(nonce, nonce_pool + sizeof(nonce_pool) - nonce_pool_left, COL_NONCE);
	/* used bytes are wiped, so that none is ever handed out twice */
	sodium_memzero(nonce_pool + sizeof(nonce_pool) - nonce_pool_left, COL_NONCE);
	nonce_pool_left -= COL_NONCE;
}

/* This backend's local transaction id (its place moved in PostgreSQL 17). */
static LocalTransactionId
local_xid(void)
{
#if PG_VERSION_NUM >= 170000
	return MyProc->vxid.lxid;
#else
	return MyProc->lxid;
#endif
}

/* Tell the log filter, once per statement, that this statement carries plaintext. */
static void
mark_statement(void)
{
	if (marked_lxid == local_xid() && marked_start == GetCurrentStatementStartTimestamp() &&
		marked_query == debug_query_string)
		return;
	sp_logfilter_mark_statement();
	marked_lxid = local_xid();
	marked_start = GetCurrentStatementStartTimestamp();
	marked_query = debug_query_string;
}

/* Wipe every key this transaction holds and forget the cache. */
static void
forget_keys(void)
{
	for (ColumnInfo *c = columns; c != NULL; c = c->next)
	{
		sodium_memzero(c->key_current, sizeof(c->key_current));
		sodium_memzero(c->key_previous, sizeof(c->key_previous));
	}
	sodium_memzero(&sealing, sizeof(sealing));
	columns = NULL;
	tables = NULL;
	if (cache_cxt != NULL)
		MemoryContextReset(cache_cxt);
	reseal_relid = InvalidOid;
}

/* At the end of every transaction, committed or not, the keys go. */
static void
columns_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			forget_keys();
			break;
		default:
			break;
	}
}

/* Module set-up: the transaction callback, the disclosure record, the worker's settings. */
void
sp_columns_init(void)
{
	RegisterXactCallback(columns_xact_callback, NULL);
	sp_disclosures_init();
	sp_protect_worker_init();
}

/* ---------------------------------------------------------------- keys ---- */

/*
 * Keys are kept for one statement: the next one reads the key files again
 * (a rotation, or SET secpolicy.key_file, takes effect at once).
 */
static void
keys_for_this_statement(void)
{
	static uint64 keys_generation = 0;

	if (keys_generation == sp_statement_generation())
		return;
	for (ColumnInfo *c = columns; c != NULL; c = c->next)
	{
		sodium_memzero(c->key_current, sizeof(c->key_current));
		sodium_memzero(c->key_previous, sizeof(c->key_previous));
		c->have_current = false;
		c->have_previous = false;
	}
	sodium_memzero(&sealing, sizeof(sealing));
	keys_generation = sp_statement_generation();
}

/* The current sealing key and its id (raises 55000 without one). */
static void
load_current(void)
{
	keys_for_this_statement();
	if (!sealing.loaded_current)
	{
		sp_seal_current_key(sealing.current, sealing.current_id);
		sealing.loaded_current = true;
	}
}

/* The previous sealing key, if one is configured. */
static bool
load_previous(void)
{
	keys_for_this_statement();
	if (!sealing.loaded_previous)
	{
		sealing.have_previous = sp_seal_previous_key(sealing.previous, sealing.previous_id);
		sealing.loaded_previous = true;
	}
	return sealing.have_previous;
}

/* Append a name with its length (2 bytes, big-endian). */
static void
append_name(StringInfo buf, const char *name)
{
	size_t		n = strlen(name);

	appendStringInfoChar(buf, (char) (n >> 8));
	appendStringInfoChar(buf, (char) (n & 0xff));
	appendBinaryStringInfo(buf, name, n);
}

/* The names of a column, length-prefixed: its identity in keys and associated data. */
static void
append_names(StringInfo buf, const ColumnInfo *c)
{
	append_name(buf, c->tab->schema);
	append_name(buf, c->tab->table);
	append_name(buf, c->column);
}

/* The crypto_kdf subkey id of a column: a hash of its names. */
static uint64
column_subkey_id(const ColumnInfo *c)
{
	StringInfoData buf;
	unsigned char h[crypto_generichash_BYTES_MIN];
	uint64		id = 0;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "secpolicy column");
	append_names(&buf, c);
	crypto_generichash(h, sizeof(h), (unsigned char *) buf.data, buf.len, NULL, 0);
	for (int i = 0; i < 8; i++)
		id = (id << 8) | h[i];
	pfree(buf.data);
	return id;
}

/* The column key under the current sealing key, and that key's id. */
static const unsigned char *
column_key_current(ColumnInfo *c, const unsigned char **id)
{
	load_current();
	if (!c->have_current)
	{
		if (crypto_kdf_derive_from_key(c->key_current, COL_KEY, c->subkey_id, COL_KDF_CONTEXT,
									   sealing.current) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION),
					 errmsg("could not derive a column key")));
		c->have_current = true;
	}
	*id = sealing.current_id;
	return c->key_current;
}

/* The column key for a value sealed under key `id`; raises 55000 when no configured key has that id. */
static const unsigned char *
column_key_for(ColumnInfo *c, const unsigned char *id)
{
	const unsigned char *cur_id;
	const unsigned char *key = column_key_current(c, &cur_id);

	if (memcmp(id, cur_id, SP_KEY_ID_BYTES) == 0)
		return key;
	if (load_previous() && memcmp(id, sealing.previous_id, SP_KEY_ID_BYTES) == 0)
	{
		if (!c->have_previous)
		{
			if (crypto_kdf_derive_from_key(c->key_previous, COL_KEY, c->subkey_id, COL_KDF_CONTEXT,
										   sealing.previous) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION),
						 errmsg("could not derive a column key")));
			c->have_previous = true;
		}
		return c->key_previous;
	}
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("no configured key can open this value of %s.%s.%s",
					c->tab->schema, c->tab->table, c->column),
			 errhint("Set secpolicy.key_file (or secpolicy.previous_key_file during a rotation) to the key it was encrypted with.")));
	return NULL;				/* not reached */
}

/* Hex text of a key id. */
static char *
hex_id(const unsigned char *id)
{
	char	   *out = palloc(SP_KEY_ID_BYTES * 2 + 1);

	sodium_bin2hex(out, SP_KEY_ID_BYTES * 2 + 1, id, SP_KEY_ID_BYTES);
	return out;
}

/* -------------------------------------------------------------- caches ---- */

/* The cache's memory context. */
static MemoryContext
cache_context(void)
{
	if (cache_cxt == NULL)
		cache_cxt = AllocSetContextCreate(TopMemoryContext, "secpolicy protected columns",
										  ALLOCSET_SMALL_SIZES);
	return cache_cxt;
}

/* The names of a table (and, given its relation, its primary key). */
static TableInfo *
table_info(Oid relid, Relation rel)
{
	TableInfo  *t;

	for (t = tables; t != NULL; t = t->next)
		if (t->relid == relid)
			break;
	if (t == NULL)
	{
		char	   *relname = get_rel_name(relid);
		MemoryContext old;

		if (relname == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("relation with OID %u does not exist", relid)));
		old = MemoryContextSwitchTo(cache_context());
		t = palloc0(sizeof(TableInfo));
		t->relid = relid;
		t->schema = get_namespace_name(get_rel_namespace(relid));
		t->table = pstrdup(relname);
		t->next = tables;
		tables = t;
		MemoryContextSwitchTo(old);
	}
	if (rel != NULL && t->npk == 0)
	{
		Oid			pkoid = RelationGetPrimaryKeyIndex(rel);
		Relation	idx;
		TupleDesc	desc = RelationGetDescr(rel);

		if (!OidIsValid(pkoid))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("table %s.%s has no primary key", t->schema, t->table),
					 errdetail("The values of a protected column are bound to their row's primary key.")));
		idx = index_open(pkoid, AccessShareLock);
		for (int i = 0; i < idx->rd_index->indnkeyatts; i++)
		{
			AttrNumber	att = idx->rd_index->indkey.values[i];
			Oid			outfunc;
			bool		varlena;

			getTypeOutputInfo(TupleDescAttr(desc, att - 1)->atttypid, &outfunc, &varlena);
			fmgr_info_cxt(outfunc, &t->pkout[i], cache_context());
			t->pk[i] = att;
		}
		t->npk = idx->rd_index->indnkeyatts;
		index_close(idx, AccessShareLock);
	}
	return t;
}

/* The cache entry of column `column` of table `relid`. */
static ColumnInfo *
column_info(Oid relid, Relation rel, const char *column)
{
	TableInfo  *t = table_info(relid, rel);
	ColumnInfo *c;

	for (c = columns; c != NULL; c = c->next)
		if (c->tab == t && strcmp(c->column, column) == 0)
			return c;
	c = MemoryContextAllocZero(cache_context(), sizeof(ColumnInfo));
	c->tab = t;
	strlcpy(c->column, column, NAMEDATALEN);
	c->subkey_id = column_subkey_id(c);
	{
		StringInfoData buf;
		MemoryContext old = MemoryContextSwitchTo(cache_context());

		initStringInfo(&buf);
		append_names(&buf, c);
		c->names = buf.data;
		c->names_len = buf.len;
		MemoryContextSwitchTo(old);
	}
	c->next = columns;
	columns = c;
	return c;
}

/* ---------------------------------------------------------- the register -- */

/*
 * What this backend read of the register (secpolicy.protected_columns and
 * secpolicy.reveal_grants): each column's access and sealed blind index key,
 * each access's roles.  A statement trigger on both tables
 * (register_changed()) sends an invalidation of the table at commit, and
 * every backend (the one that changed it at its next command) forgets all of
 * it; register_version counts those invalidations.  So lookups cost no query
 * after the first, which keeps a blind-index search close to a plain one.
 * For the same reason a blind index key, once unsealed, is kept here (and
 * wiped when the register changes) rather than unsealed (reading the key
 * file) in every transaction.
 */
typedef struct RegisterColumn
{
	char	   *schema;
	char	   *table;
	char	   *column;
	char	   *access;			/* NULL: not protected */
	bytea	   *sealed_index_key;	/* NULL: not searchable */
	bool		have_index_key;	/* index_key holds the unsealed key */
	unsigned char index_key[INDEX_KEY_BYTES];
	struct RegisterColumn *next;
} RegisterColumn;

typedef struct RegisterRoles
{
	char	   *access;
	int			nroles;
	Oid		   *roles;
	struct RegisterRoles *next;
} RegisterRoles;

static MemoryContext register_cxt = NULL;
static RegisterColumn *register_columns = NULL;
static RegisterRoles *register_roles = NULL;
static uint64 register_version = 1;
static Oid	register_relids[2] = {InvalidOid, InvalidOid};
static bool register_callback = false;

/* Relcache invalidation callback: forget the register when one of its tables changed. */
static void
register_invalidate(Datum arg, Oid relid)
{
	if (OidIsValid(relid) && relid != register_relids[0] && relid != register_relids[1])
		return;
	for (RegisterColumn *r = register_columns; r != NULL; r = r->next)
		sodium_memzero(r->index_key, sizeof(r->index_key));
	register_columns = NULL;
	register_roles = NULL;
	if (register_cxt != NULL)
		MemoryContextReset(register_cxt);
	register_relids[0] = register_relids[1] = InvalidOid;
	register_version++;
}

/* Get ready to read the register: the callback, the tables' OIDs, the memory. */
static void
register_prepare(void)
{
	if (!register_callback)
	{
		CacheRegisterRelcacheCallback(register_invalidate, (Datum) 0);
		register_callback = true;
	}
	if (register_cxt == NULL)
		register_cxt = AllocSetContextCreate(TopMemoryContext, "secpolicy register",
											 ALLOCSET_SMALL_SIZES);
	if (!OidIsValid(register_relids[0]))
	{
		Oid			nsp = get_namespace_oid("secpolicy", false);

		register_relids[0] = get_relname_relid("protected_columns", nsp);
		register_relids[1] = get_relname_relid("reveal_grants", nsp);
	}
}

/* Text arguments of the internal lookups: the column's names. */
static void
names_args(const ColumnInfo *c, Datum *args)
{
	args[0] = CStringGetTextDatum(c->tab->schema);
	args[1] = CStringGetTextDatum(c->tab->table);
	args[2] = CStringGetTextDatum(c->column);
}

/* The register's entry of a column (read on first use after each change). */
static RegisterColumn *
register_column(const ColumnInfo *c)
{
	static const Oid argtypes[3] = {TEXTOID, TEXTOID, TEXTOID};
	RegisterColumn *r;
	Datum		args[3];
	bool		access_null;
	bool		key_null;
	Datum		access;
	Datum		key;
	uint64		version;
	MemoryContext old;

	register_prepare();
	for (r = register_columns; r != NULL; r = r->next)
		if (strcmp(r->column, c->column) == 0 && strcmp(r->table, c->tab->table) == 0 &&
			strcmp(r->schema, c->tab->schema) == 0)
			return r;

	version = register_version;
	names_args(c, args);
	access = sp_call_internal("column_access", 3, argtypes, args, NULL, &access_null);
	key = sp_call_internal("column_index_key", 3, argtypes, args, NULL, &key_null);

	old = MemoryContextSwitchTo(register_cxt);
	r = palloc0(sizeof(RegisterColumn));
	r->schema = pstrdup(c->tab->schema);
	r->table = pstrdup(c->tab->table);
	r->column = pstrdup(c->column);
	r->access = access_null ? NULL : TextDatumGetCString(access);
	r->sealed_index_key = key_null ? NULL : DatumGetByteaPCopy(key);
	MemoryContextSwitchTo(old);
	/* kept only if no change was seen while reading (else it may be stale) */
	if (version == register_version)
	{
		r->next = register_columns;
		register_columns = r;
	}
	return r;
}

/* The access a column is protected with, or NULL when it is not protected. */
static const char *
column_access(ColumnInfo *c)
{
	return register_column(c)->access;
}

/* Raise 42704 unless the column is protected. */
static void
require_protected(ColumnInfo *c)
{
	if (column_access(c) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("column \"%s\" of table %s.%s is not protected",
						c->column, c->tab->schema, c->tab->table),
				 errhint("See secpolicy.protect_column().")));
}

/*
 * The key of the column's blind index (raises 55000 when it has none),
 * unsealed on first use after each change of the register.
 */
static const unsigned char *
index_key(ColumnInfo *c)
{
	RegisterColumn *r = register_column(c);

	if (!r->have_index_key && r->sealed_index_key != NULL)
	{
		size_t		len;
		unsigned char *key = sp_unseal(r->sealed_index_key, &len);

		if (len != INDEX_KEY_BYTES)
		{
			sodium_memzero(key, len);
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("the blind index key of %s.%s.%s is malformed",
							c->tab->schema, c->tab->table, c->column)));
		}
		memcpy(r->index_key, key, INDEX_KEY_BYTES);
		sodium_memzero(key, len);
		r->have_index_key = true;
	}
	if (!r->have_index_key)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("column \"%s\" of table %s.%s is not searchable",
						c->column, c->tab->schema, c->tab->table),
				 errhint("Protect it with searchable => true to have a blind index.")));
	return r->index_key;
}

/* The roles granted an access with grant_reveal (read on first use after each change). */
static RegisterRoles *
register_roles_of(const char *access)
{
	static const Oid argtypes[1] = {TEXTOID};
	RegisterRoles *r;
	Datum		arg = CStringGetTextDatum(access);	/* access must not live in the register */
	bool		isnull;
	Datum		d;
	uint64		version;
	MemoryContext old;

	register_prepare();
	for (r = register_roles; r != NULL; r = r->next)
		if (strcmp(r->access, access) == 0)
			return r;
	version = register_version;
	d = sp_call_internal("reveal_roles", 1, argtypes, &arg, NULL, &isnull);
	old = MemoryContextSwitchTo(register_cxt);
	r = palloc0(sizeof(RegisterRoles));
	r->access = pstrdup(access);
	if (!isnull)
	{
		Datum	   *roles;
		bool	   *rnulls;

		deconstruct_array(DatumGetArrayTypeP(d), OIDOID, sizeof(Oid), true, TYPALIGN_INT,
						  &roles, &rnulls, &r->nroles);
		r->roles = palloc(sizeof(Oid) * Max(r->nroles, 1));
		for (int i = 0; i < r->nroles; i++)
			r->roles[i] = rnulls[i] ? InvalidOid : DatumGetObjectId(roles[i]);
	}
	MemoryContextSwitchTo(old);
	if (version == register_version)
	{
		r->next = register_roles;
		register_roles = r;
	}
	return r;
}

/* The blind index of a plaintext: a keyed BLAKE2b hash of 128 bits. */
static bytea *
blind_hash(ColumnInfo *c, const char *plain, size_t len)
{
	const unsigned char *key = index_key(c);
	bytea	   *out = palloc(VARHDRSZ + BIDX_BYTES);

	SET_VARSIZE(out, VARHDRSZ + BIDX_BYTES);
	crypto_generichash((unsigned char *) VARDATA(out), BIDX_BYTES,
					   (const unsigned char *) plain, len, key, INDEX_KEY_BYTES);
	return out;
}

/* ------------------------------------------------------------ the format -- */

/*
 * URL-safe base64 without padding (RFC 4648, section 5).  Ciphertext is no
 * secret, so these need not run in constant time (libsodium's codec does,
 * and cost more than the decryption itself).
 */
static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Characters needed for `len` bytes. */
#define B64_LEN(len)	(((len) / 3) * 4 + ((len) % 3 == 0 ? 0 : (len) % 3 + 1))

/* Encode `len` bytes into out (B64_LEN(len) characters, no terminator). */
static void
b64_encode(const unsigned char *in, size_t len, char *out)
{
	size_t		i;

	for (i = 0; i + 3 <= len; i += 3)
	{
		uint32		v = ((uint32) in[i] << 16) | ((uint32) in[i + 1] << 8) | in[i + 2];

		*out++ = b64_chars[v >> 18];
		*out++ = b64_chars[(v >> 12) & 63];
		*out++ = b64_chars[(v >> 6) & 63];
		*out++ = b64_chars[v & 63];
	}
	if (len - i == 1)
	{
		*out++ = b64_chars[in[i] >> 2];
		*out++ = b64_chars[(in[i] & 3) << 4];
	}
	else if (len - i == 2)
	{
		uint32		v = ((uint32) in[i] << 8) | in[i + 1];

		*out++ = b64_chars[v >> 10];
		*out++ = b64_chars[(v >> 4) & 63];
		*out++ = b64_chars[(v & 15) << 2];
	}
}

/* Values of the base64 characters (-1 for any other byte), filled on first use. */
static int8 b64_values[256];
static bool b64_ready = false;

/*
 * Decode `len` characters into out (room for len * 3 / 4 bytes); the number
 * of bytes, or -1 when the text is no canonical base64.
 */
static ssize_t
b64_decode(const char *in, size_t len, unsigned char *out)
{
	const unsigned char *s = (const unsigned char *) in;
	unsigned char *o = out;
	size_t		full = len / 4 * 4;
	size_t		i;
	int			a,
				b,
				c,
				d;

	if (!b64_ready)
	{
		memset(b64_values, -1, sizeof(b64_values));
		for (int k = 0; k < 64; k++)
			b64_values[(unsigned char) b64_chars[k]] = (int8) k;
		b64_ready = true;
	}
	if (len % 4 == 1)
		return -1;
	for (i = 0; i < full; i += 4)
	{
		a = b64_values[s[i]];
		b = b64_values[s[i + 1]];
		c = b64_values[s[i + 2]];
		d = b64_values[s[i + 3]];
		if ((a | b | c | d) < 0)
			return -1;
		*o++ = (unsigned char) ((a << 2) | (b >> 4));
		*o++ = (unsigned char) ((b << 4) | (c >> 2));
		*o++ = (unsigned char) ((c << 6) | d);
	}
	if (len - full >= 2)
	{
		a = b64_values[s[i]];
		b = b64_values[s[i + 1]];
		if ((a | b) < 0)
			return -1;
		*o++ = (unsigned char) ((a << 2) | (b >> 4));
		if (len - full == 3)
		{
			c = b64_values[s[i + 2]];
			if (c < 0 || (c & 3) != 0)	/* leftover bits must be zero */
				return -1;
			*o++ = (unsigned char) ((b << 4) | (c >> 2));
		}
		else if ((b & 15) != 0)
			return -1;
	}
	return o - out;
}

/* Does the text begin with the prefix of a protected value? */
static bool
has_prefix(const char *s, size_t len)
{
	return len >= COL_PREFIX_LEN && memcmp(s, COL_PREFIX, COL_PREFIX_LEN) == 0;
}

/* Decode a protected value; false (or, with raise, XX001) when it is malformed. */
static bool
parse_value(const ColumnInfo *c, const char *s, size_t len, ParsedValue *p, bool raise)
{
	size_t		max = (len - COL_PREFIX_LEN) * 3 / 4 + 3;
	size_t		rklen;
	ssize_t		n;

	p->bin = palloc(max);
	n = b64_decode(s + COL_PREFIX_LEN, len - COL_PREFIX_LEN, p->bin);
	if (n < 0)
		goto malformed;
	p->binlen = (size_t) n;
	if (p->binlen < COL_FIXED_HEADER + COL_NONCE + COL_TAG || p->bin[0] != COL_VERSION)
		goto malformed;
	rklen = ((size_t) p->bin[1 + SP_KEY_ID_BYTES] << 8) | p->bin[2 + SP_KEY_ID_BYTES];
	if (p->binlen < COL_FIXED_HEADER + rklen + COL_NONCE + COL_TAG)
		goto malformed;
	p->key_id = p->bin + 1;
	p->row_key = (const char *) p->bin + COL_FIXED_HEADER;
	p->row_key_len = rklen;
	p->header = COL_FIXED_HEADER + rklen;
	return true;

malformed:
	if (raise)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("a value of %s.%s.%s looks encrypted but is malformed",
						c->tab->schema, c->tab->table, c->column),
				 errdetail("Protected values begin with \"%s\"; a value written in clear must not.", COL_PREFIX)));
	return false;
}

/*
 * The associated data of a value: its header and the column's names, in
 * `buf` (AD_BUF_BYTES) or, for a long row key, a palloc'd buffer.
 */
#define AD_BUF_BYTES	512
static unsigned char *
associated_data(const ColumnInfo *c, const unsigned char *header, size_t len,
				unsigned char *buf, size_t *adlen)
{
	unsigned char *ad = len + c->names_len <= AD_BUF_BYTES ? buf : palloc(len + c->names_len);

	memcpy(ad, header, len);
	memcpy(ad + len, c->names, c->names_len);
	*adlen = len + c->names_len;
	return ad;
}

/* Does a parsed value carry this row key? */
static bool
same_row_key(const ParsedValue *p, const char *row_key)
{
	return p->row_key_len == strlen(row_key) && memcmp(p->row_key, row_key, p->row_key_len) == 0;
}

/* The row key of a parsed value, as a C string. */
static char *
row_key_text(const ParsedValue *p)
{
	return pnstrdup(p->row_key, p->row_key_len);
}

/* Raise XX001: a value that belongs to another row. */
static void
moved_value(const ColumnInfo *c, const char *row_key)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("a protected value of %s.%s.%s belongs to another row",
					c->tab->schema, c->tab->table, c->column),
			 errdetail("It is bound to another row key than %s.", row_key)));
}

/* Encrypt `len` bytes of plaintext for a row; returns the protected text. */
static text *
encrypt_value(ColumnInfo *c, const char *row_key, const char *plain, size_t len)
{
	size_t		rklen = strlen(row_key);
	size_t		header = COL_FIXED_HEADER + rklen;
	size_t		binlen = header + COL_NONCE + len + COL_TAG;
	const unsigned char *id;
	const unsigned char *key = column_key_current(c, &id);
	unsigned char *bin;
	unsigned long long clen;
	unsigned char adbuf[AD_BUF_BYTES];
	unsigned char *ad;
	size_t		adlen;
	size_t		enclen;
	text	   *out;

	if (len > COL_MAX_PLAIN)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a value of %s.%s.%s is longer than the %d bytes a protected value may hold",
						c->tab->schema, c->tab->table, c->column, COL_MAX_PLAIN)));
	if (rklen > COL_MAX_ROW_KEY)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the primary key of a row of %s.%s is longer than %d bytes",
						c->tab->schema, c->tab->table, COL_MAX_ROW_KEY)));
	bin = palloc(binlen);
	bin[0] = COL_VERSION;
	memcpy(bin + 1, id, SP_KEY_ID_BYTES);
	bin[1 + SP_KEY_ID_BYTES] = (unsigned char) (rklen >> 8);
	bin[2 + SP_KEY_ID_BYTES] = (unsigned char) (rklen & 0xff);
	memcpy(bin + COL_FIXED_HEADER, row_key, rklen);
	fresh_nonce(bin + header);
	ad = associated_data(c, bin, header, adbuf, &adlen);
	crypto_aead_xchacha20poly1305_ietf_encrypt(bin + header + COL_NONCE, &clen,
											   (const unsigned char *) plain, len,
											   ad, adlen, NULL, bin + header, key);
	enclen = B64_LEN(binlen);
	out = palloc(VARHDRSZ + COL_PREFIX_LEN + enclen);
	memcpy(VARDATA(out), COL_PREFIX, COL_PREFIX_LEN);
	b64_encode(bin, binlen, VARDATA(out) + COL_PREFIX_LEN);
	SET_VARSIZE(out, VARHDRSZ + COL_PREFIX_LEN + enclen);
	pfree(bin);
	return out;
}

/*
 * Decrypt a parsed value; returns a palloc'd buffer (NUL-terminated) that
 * the caller wipes.  Raises XX001 when it fails authentication.
 */
static pg_noinline char *
decrypt_value(ColumnInfo *c, const ParsedValue *p, size_t *len)
{
	const unsigned char *key = column_key_for(c, p->key_id);
	size_t		clen = p->binlen - p->header - COL_NONCE;
	unsigned long long mlen;
	unsigned char adbuf[AD_BUF_BYTES];
	unsigned char *ad;
	size_t		adlen;
	char	   *plain;

	*len = clen - COL_TAG;
	plain = palloc(*len + 1);
	ad = associated_data(c, p->bin, p->header, adbuf, &adlen);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt((unsigned char *) plain, &mlen, NULL,
												   p->bin + p->header + COL_NONCE, clen,
												   ad, adlen, p->bin + p->header, key) != 0)
	{
		char	   *rk = row_key_text(p);

		sodium_memzero(plain, *len + 1);
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("a protected value of %s.%s.%s failed authentication",
						c->tab->schema, c->tab->table, c->column),
				 errdetail("The value of row %s was altered, or belongs to another table or column.", rk)));
	}
	plain[*len] = '\0';
	return plain;
}

/* -------------------------------------------------------------- row keys -- */

/* Append a field of a row literal, quoted as record_out() quotes it. */
static void
append_row_field(StringInfo buf, const char *value)
{
	bool		quote = value[0] == '\0';

	for (const char *p = value; *p && !quote; p++)
		if (*p == '"' || *p == '\\' || *p == '(' || *p == ')' || *p == ',' ||
			isspace((unsigned char) *p))
			quote = true;
	if (quote)
		appendStringInfoChar(buf, '"');
	for (const char *p = value; *p; p++)
	{
		if (quote && (*p == '"' || *p == '\\'))
			appendStringInfoChar(buf, *p);
		appendStringInfoChar(buf, *p);
	}
	if (quote)
		appendStringInfoChar(buf, '"');
}

/* The row key of a tuple: pk::text, or ROW(pk1, pk2, ...)::text. */
static char *
row_key_of(TableInfo *t, HeapTuple tuple, TupleDesc desc)
{
	StringInfoData buf;

	if (t->npk == 1)
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, t->pk[0], desc, &isnull);

		if (isnull)				/* a NOT NULL check will refuse the row */
			return pstrdup("");
		return OutputFunctionCall(&t->pkout[0], d);
	}
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '(');
	for (int i = 0; i < t->npk; i++)
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, t->pk[i], desc, &isnull);

		if (i > 0)
			appendStringInfoChar(&buf, ',');
		if (!isnull)
			append_row_field(&buf, OutputFunctionCall(&t->pkout[i], d));
	}
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

/* ------------------------------------------------------------ the trigger -- */

/* Are two values of a column the same bytes? */
static bool
same_value(Datum a, Datum b)
{
	struct varlena *va = (struct varlena *) DatumGetPointer(a);
	struct varlena *vb = (struct varlena *) DatumGetPointer(b);
	text	   *ta;
	text	   *tb;

	if (va == vb)
		return true;
	/* an UPDATE that leaves a toasted value alone keeps its pointer */
	if (VARATT_IS_EXTERNAL_ONDISK(va) && VARATT_IS_EXTERNAL_ONDISK(vb))
	{
		struct varatt_external ea;
		struct varatt_external eb;

		VARATT_EXTERNAL_GET_POINTER(ea, va);
		VARATT_EXTERNAL_GET_POINTER(eb, vb);
		if (ea.va_valueid == eb.va_valueid && ea.va_toastrelid == eb.va_toastrelid)
			return true;
	}
	ta = DatumGetTextPP(a);
	tb = DatumGetTextPP(b);
	return VARSIZE_ANY_EXHDR(ta) == VARSIZE_ANY_EXHDR(tb) &&
		memcmp(VARDATA_ANY(ta), VARDATA_ANY(tb), VARSIZE_ANY_EXHDR(ta)) == 0;
}

/* Resolve the column's place in the relation (and its blind index's). */
static void
resolve_columns(ColumnInfo *c, Relation rel, bool searchable)
{
	TupleDesc	desc = RelationGetDescr(rel);
	char		bidx[NAMEDATALEN * 2];

	/* still where it was (a column dropped and added again moves) */
	if (c->attnum != 0 && c->attnum <= desc->natts &&
		!TupleDescAttr(desc, c->attnum - 1)->attisdropped &&
		strcmp(NameStr(TupleDescAttr(desc, c->attnum - 1)->attname), c->column) == 0 &&
		(!searchable || (c->bidx_attnum != InvalidAttrNumber && c->bidx_attnum <= desc->natts &&
						 !TupleDescAttr(desc, c->bidx_attnum - 1)->attisdropped)))
		return;
	c->attnum = 0;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, i);

		if (!a->attisdropped && strcmp(NameStr(a->attname), c->column) == 0)
		{
			if (a->atttypid != TEXTOID && a->atttypid != VARCHAROID)
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("protected column \"%s\" of table %s.%s is not of type text",
								c->column, c->tab->schema, c->tab->table)));
			c->attnum = a->attnum;
		}
	}
	if (c->attnum == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("protected column \"%s\" of table %s.%s does not exist",
						c->column, c->tab->schema, c->tab->table)));
	c->bidx_attnum = InvalidAttrNumber;
	if (searchable)
	{
		snprintf(bidx, sizeof(bidx), "%s_bidx", c->column);
		for (int i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute a = TupleDescAttr(desc, i);

			if (!a->attisdropped && strcmp(NameStr(a->attname), bidx) == 0 && a->atttypid == BYTEAOID)
				c->bidx_attnum = a->attnum;
		}
		if (c->bidx_attnum == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the blind index column \"%s\" of table %s.%s is missing",
							bidx, c->tab->schema, c->tab->table),
					 errhint("Unprotect the column and protect it again.")));
	}
}

/* What the trigger decided for one column of the new row. */
typedef struct TriggerRow
{
	Datum	   *values;
	bool	   *nulls;
	bool	   *replace;
} TriggerRow;

/* Set column `att` of the new row. */
static void
set_column(TriggerRow *r, AttrNumber att, Datum value, bool isnull)
{
	r->values[att - 1] = value;
	r->nulls[att - 1] = isnull;
	r->replace[att - 1] = true;
}

/* Wipe a detoasted copy of a value (never the tuple's own bytes). */
static void
wipe_copy(text *t, Datum original)
{
	if ((Pointer) t != DatumGetPointer(original))
		sodium_memzero(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

/* Is this the column whose batch is running (reseal unchanged values under an old key)? */
static bool
reseal_target(const ColumnInfo *c)
{
	return OidIsValid(reseal_relid) && c->tab->relid == reseal_relid &&
		strcmp(c->column, reseal_column) == 0;
}

/*
 * (The helpers below hold one PG_TRY each, out of line.  Two of them wipe
 * in PG_CATCH and after the block rather than in PG_FINALLY, which gcc's
 * -Wclobbered misreads in them.)
 *
 * Open a value that authenticated for its row and seal it again for
 * `row_key` under the current key (the primary key changed, or a batch
 * reseals); keep its blind index.
 */
static pg_noinline void
seal_again(ColumnInfo *c, bool searchable, const ParsedValue *p, const char *row_key, TriggerRow *r)
{
	char	   *volatile plain = NULL;
	volatile size_t len = 0;
	text	   *volatile sealed = NULL;
	bytea	   *volatile bidx = NULL;
	size_t		n;

	PG_TRY();
	{
		plain = decrypt_value(c, p, &n);
		len = n;
		sealed = encrypt_value(c, row_key, plain, n);
		if (searchable)
			bidx = blind_hash(c, plain, n);
	}
	PG_CATCH();
	{
		if (plain != NULL)
			sodium_memzero(plain, len);
		PG_RE_THROW();
	}
	PG_END_TRY();
	sodium_memzero(plain, len);
	set_column(r, c->attnum, PointerGetDatum(sealed), false);
	if (searchable)
		set_column(r, c->bidx_attnum, PointerGetDatum(bidx), false);
}

/* Check that a value that arrives encrypted authenticates (XX001 if not); set its blind index. */
static pg_noinline void
check_encrypted(ColumnInfo *c, bool searchable, const ParsedValue *p, TriggerRow *r)
{
	char	   *volatile plain = NULL;
	volatile size_t len = 0;
	bytea	   *volatile bidx = NULL;
	size_t		n;

	PG_TRY();
	{
		plain = decrypt_value(c, p, &n);
		len = n;
		if (searchable)
			bidx = blind_hash(c, plain, n);
	}
	PG_CATCH();
	{
		if (plain != NULL)
			sodium_memzero(plain, len);
		PG_RE_THROW();
	}
	PG_END_TRY();
	sodium_memzero(plain, len);
	if (searchable)
		set_column(r, c->bidx_attnum, PointerGetDatum(bidx), false);
}

/* Encrypt a value written in clear, and set its blind index. */
static pg_noinline void
encrypt_plain(ColumnInfo *c, bool searchable, Datum value, const char *row_key, TriggerRow *r)
{
	text	   *t = DatumGetTextPP(value);

	mark_statement();
	PG_TRY();
	{
		set_column(r, c->attnum,
				   PointerGetDatum(encrypt_value(c, row_key, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t))),
				   false);
		if (searchable)
			set_column(r, c->bidx_attnum,
					   PointerGetDatum(blind_hash(c, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t))), false);
	}
	PG_FINALLY();
	{
		wipe_copy(t, value);
	}
	PG_END_TRY();
}

/*
 * The trigger's work on one protected column: encrypt a value in clear,
 * check a value that arrives encrypted, re-encrypt a value whose row key
 * changed (or, in a batch, whose key is old), and keep the blind index.
 */
static void
protect_one(ColumnInfo *c, bool searchable, HeapTuple newtup, HeapTuple oldtup, TupleDesc desc,
			const char *row_key, const char *old_row_key, TriggerRow *r)
{
	bool		isnull;
	Datum		value = heap_getattr(newtup, c->attnum, desc, &isnull);
	text	   *t;
	ParsedValue p;

	if (isnull)
	{
		if (searchable)
			set_column(r, c->bidx_attnum, (Datum) 0, true);
		return;
	}

	if (oldtup != NULL)
	{
		bool		oldnull;
		Datum		old = heap_getattr(oldtup, c->attnum, desc, &oldnull);

		if (!oldnull && same_value(value, old))
		{
			text	   *head = DatumGetTextPSlice(value, 0, COL_PREFIX_LEN);

			if (has_prefix(VARDATA_ANY(head), VARSIZE_ANY_EXHDR(head)))
			{
				bool		moved = strcmp(row_key, old_row_key) != 0;
				bool		reseal = false;

				t = DatumGetTextPP(value);
				if (!moved && reseal_target(c))
				{
					const unsigned char *cur_id;

					(void) parse_value(c, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), &p, true);
					(void) column_key_current(c, &cur_id);
					reseal = memcmp(p.key_id, cur_id, SP_KEY_ID_BYTES) != 0;
				}
				if (!moved && !reseal)
				{
					/* unchanged: the blind index too (a hand-made edit is undone) */
					if (searchable)
					{
						Datum		b = heap_getattr(oldtup, c->bidx_attnum, desc, &oldnull);

						set_column(r, c->bidx_attnum, b, oldnull);
					}
					return;
				}
				/* the primary key changed, or the key is old: open and seal again */
				(void) parse_value(c, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), &p, true);
				if (!same_row_key(&p, old_row_key))
					moved_value(c, old_row_key);
				seal_again(c, searchable, &p, row_key, r);
				return;
			}
			/* an unchanged value still in clear (the column is being encrypted) */
		}
	}

	t = DatumGetTextPP(value);
	if (has_prefix(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)))
	{
		/* encrypted elsewhere (a restore, a copy): kept only if it is this row's */
		(void) parse_value(c, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), &p, true);
		if (!same_row_key(&p, row_key))
			moved_value(c, row_key);
		check_encrypted(c, searchable, &p, r);
		return;
	}
	encrypt_plain(c, searchable, value, row_key, r);
}

/*
 * protect_trigger(column, 'searchable' | 'plain', ...): BEFORE INSERT OR
 * UPDATE FOR EACH ROW on a table with protected columns.  protect_column()
 * creates it (as zz_secpolicy_protect, so that it fires after the table's
 * other BEFORE triggers, which see plaintext).
 */
Datum
secpolicy_protect_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Relation	rel;
	TupleDesc	desc;
	HeapTuple	newtup;
	HeapTuple	oldtup = NULL;
	TableInfo  *tab;
	char	   *row_key;
	char	   *old_row_key = NULL;
	TriggerRow	r;
	bool		any = false;
	int			nargs;
	char	  **args;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
		!(TRIGGER_FIRED_BY_INSERT(td->tg_event) || TRIGGER_FIRED_BY_UPDATE(td->tg_event)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("protect_trigger must be a BEFORE INSERT OR UPDATE trigger FOR EACH ROW")));
	nargs = td->tg_trigger->tgnargs;
	args = td->tg_trigger->tgargs;
	if (nargs == 0 || nargs % 2 != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("protect_trigger takes pairs of arguments: a column and 'searchable' or 'plain'")));

	rel = td->tg_relation;
	desc = RelationGetDescr(rel);
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		newtup = td->tg_newtuple;
		oldtup = td->tg_trigtuple;
	}
	else
		newtup = td->tg_trigtuple;

	tab = table_info(RelationGetRelid(rel), rel);
	row_key = row_key_of(tab, newtup, desc);
	if (oldtup != NULL)
		old_row_key = row_key_of(tab, oldtup, desc);

	r.values = palloc0(desc->natts * sizeof(Datum));
	r.nulls = palloc0(desc->natts * sizeof(bool));
	r.replace = palloc0(desc->natts * sizeof(bool));
	for (int i = 0; i < nargs; i += 2)
	{
		bool		searchable = strcmp(args[i + 1], "searchable") == 0;
		ColumnInfo *c = column_info(RelationGetRelid(rel), rel, args[i]);

		resolve_columns(c, rel, searchable);
		protect_one(c, searchable, newtup, oldtup, desc, row_key, old_row_key, &r);
	}
	for (int i = 0; i < desc->natts; i++)
		any |= r.replace[i];
	if (any)
		newtup = heap_modify_tuple(newtup, desc, r.values, r.nulls, r.replace);
	return PointerGetDatum(newtup);
}

/* ---------------------------------------------------------- reveal, search -- */

/* The session proven in this transaction (session_touch), as user and session ids (0: none). */
static void
current_session(int64 *user_id, int64 *session_id)
{
	LOCAL_FCINFO(f, 0);
	Datum		d;

	InitFunctionCallInfoData(*f, NULL, 0, InvalidOid, NULL, NULL);
	d = secpolicy_current_session_user(f);
	*user_id = f->isnull ? 0 : DatumGetInt64(d);
	InitFunctionCallInfoData(*f, NULL, 0, InvalidOid, NULL, NULL);
	d = secpolicy_current_session_id(f);
	*session_id = f->isnull ? 0 : DatumGetInt64(d);
}

/*
 * May the reader see the column's values?  Yes when the session proven in
 * this transaction holds the access (has_access), or the database role is,
 * or is a member of, a role granted it with grant_reveal (superusers are not
 * members of everything here).  Decided once per statement and reader.
 */
static bool
may_reveal(ColumnInfo *c, Oid role, int64 user_id, int64 session_id)
{
	uint64		gen = sp_statement_generation();
	/* copies: catalog reads below may process an invalidation that frees the register */
	char	   *access = pstrdup(column_access(c));
	bool		allowed = false;

	if (c->decided_generation == gen && c->decided_role == role &&
		c->decided_user == user_id && c->decided_session == session_id)
		return c->allowed;
	if (user_id != 0)
	{
		static const Oid argtypes[1] = {TEXTOID};
		Datum		arg = CStringGetTextDatum(access);
		bool		isnull;
		Datum		d;

		d = sp_call_internal("has_access", 1, argtypes, &arg, NULL, &isnull);
		allowed = !isnull && DatumGetBool(d);
	}
	if (!allowed)
	{
		RegisterRoles *r = register_roles_of(access);
		int			n = r->nroles;
		Oid		   *roles = n > 0 ? palloc(sizeof(Oid) * n) : NULL;

		if (n > 0)
			memcpy(roles, r->roles, sizeof(Oid) * n);
		for (int i = 0; i < n && !allowed; i++)
			allowed = OidIsValid(roles[i]) &&
				(roles[i] == role || is_member_of_role_nosuper(role, roles[i]));
	}
	c->decided_generation = gen;
	c->decided_role = role;
	c->decided_user = user_id;
	c->decided_session = session_id;
	c->allowed = allowed;
	return allowed;
}

/*
 * reveal(tbl regclass, col name, value text, row_key text DEFAULT NULL)
 * returns text: the plaintext when the reader may see it, else NULL; every
 * call is on record (disclosures.c).  A value still in clear (the column is
 * being encrypted) is shown as it is to those who may see it.  Given a row
 * key, a value bound to another row fails with XX001.
 */
Datum
secpolicy_reveal(PG_FUNCTION_ARGS)
{
	ColumnInfo *c;
	text	   *value;
	const char *given = NULL;
	Oid			role = GetUserId();
	int64		user_id;
	int64		session_id;
	bool		allowed;
	ParsedValue p;
	char	   *volatile plain = NULL;
	volatile size_t len = 0;
	size_t		n;
	text	   *volatile result = NULL;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("reveal needs a table and a column")));
	if (PG_ARGISNULL(2))
		PG_RETURN_NULL();
	c = column_info(PG_GETARG_OID(0), NULL, NameStr(*PG_GETARG_NAME(1)));
	require_protected(c);
	if (XactReadOnly)
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("reveal needs a read-write transaction"),
				 errdetail("Every reveal is recorded in secpolicy.disclosure_log.")));
	if (!PG_ARGISNULL(3))
		given = text_to_cstring(PG_GETARG_TEXT_PP(3));
	current_session(&user_id, &session_id);
	allowed = may_reveal(c, role, user_id, session_id);

	value = PG_GETARG_TEXT_PP(2);
	if (!has_prefix(VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value)))
	{
		/* still in clear: the column is being encrypted */
		sp_disclosure_add(c->tab->relid, c->tab->schema, c->tab->table, c->column, allowed,
						  role, user_id, session_id, given);
		if (!allowed)
			PG_RETURN_NULL();
		PG_RETURN_TEXT_P(value);
	}
	if (!allowed)
	{
		bool		parsed = parse_value(c, VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value), &p, false);

		sp_disclosure_add(c->tab->relid, c->tab->schema, c->tab->table, c->column, false,
						  role, user_id, session_id,
						  given != NULL ? given : parsed ? row_key_text(&p) : NULL);
		PG_RETURN_NULL();
	}
	(void) parse_value(c, VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value), &p, true);
	if (given != NULL && !same_row_key(&p, given))
		moved_value(c, given);
	PG_TRY();
	{
		plain = decrypt_value(c, &p, &n);
		len = n;
		result = cstring_to_text_with_len(plain, n);
	}
	PG_FINALLY();
	{
		if (plain != NULL)
			sodium_memzero(plain, len);
	}
	PG_END_TRY();
	mark_statement();
	sp_disclosure_add(c->tab->relid, c->tab->schema, c->tab->table, c->column, true,
					  role, user_id, session_id, row_key_text(&p));
	PG_RETURN_TEXT_P(result);
}

/*
 * blind_index(tbl regclass, col name, value text) returns bytea: the keyed
 * hash that the trigger stores in <col>_bidx, for equality searches.
 */
Datum
secpolicy_blind_index(PG_FUNCTION_ARGS)
{
	ColumnInfo *c = column_info(PG_GETARG_OID(0), NULL, NameStr(*PG_GETARG_NAME(1)));
	Datum		arg = PG_GETARG_DATUM(2);
	text	   *value;
	bytea	   *volatile result = NULL;

	mark_statement();
	require_protected(c);
	value = DatumGetTextPP(arg);
	PG_TRY();
	{
		result = blind_hash(c, VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value));
	}
	PG_FINALLY();
	{
		wipe_copy(value, arg);
	}
	PG_END_TRY();
	PG_RETURN_BYTEA_P(result);
}

/* ------------------------------------------------------------- helpers ---- */

/*
 * needs_encryption(value text, key_id text) returns boolean: is the value in
 * clear, or encrypted under another key than key_id?  (A malformed value is
 * left alone; reveal() reports it.)  The predicate of the batches.
 */
Datum
secpolicy_needs_encryption(PG_FUNCTION_ARGS)
{
	text	   *value = PG_GETARG_TEXT_PP(0);
	char	   *key = text_to_cstring(PG_GETARG_TEXT_PP(1));
	unsigned char head[1 + SP_KEY_ID_BYTES];

	if (!has_prefix(VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value)))
		PG_RETURN_BOOL(true);
	/* 12 base64 characters hold exactly the version and the key id */
	if (VARSIZE_ANY_EXHDR(value) < COL_PREFIX_LEN + 12 ||
		b64_decode(VARDATA_ANY(value) + COL_PREFIX_LEN, 12, head) != sizeof(head) || head[0] != COL_VERSION)
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(strcmp(hex_id(head + 1), key) != 0);
}

/* protected_key_id(value text) returns text: hex id of the key a protected value is under, or NULL. */
Datum
secpolicy_protected_key_id(PG_FUNCTION_ARGS)
{
	text	   *value = PG_GETARG_TEXT_PP(0);
	unsigned char head[1 + SP_KEY_ID_BYTES];

	if (!has_prefix(VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value)) ||
		VARSIZE_ANY_EXHDR(value) < COL_PREFIX_LEN + 12 ||
		b64_decode(VARDATA_ANY(value) + COL_PREFIX_LEN, 12, head) != sizeof(head) || head[0] != COL_VERSION)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(hex_id(head + 1)));
}

/*
 * open_value(tbl regclass, col name, value text, row_key text) returns text:
 * internal, for unprotect_column(): the plaintext of a value of that row
 * (a value in clear as it is), with no access check and no record.
 */
Datum
secpolicy_open_value(PG_FUNCTION_ARGS)
{
	ColumnInfo *c = column_info(PG_GETARG_OID(0), NULL, NameStr(*PG_GETARG_NAME(1)));
	text	   *value = PG_GETARG_TEXT_PP(2);
	char	   *row_key = text_to_cstring(PG_GETARG_TEXT_PP(3));
	ParsedValue p;
	char	   *volatile plain = NULL;
	volatile size_t len = 0;
	size_t		n;
	text	   *volatile result = NULL;

	if (!has_prefix(VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value)))
		PG_RETURN_TEXT_P(value);
	(void) parse_value(c, VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value), &p, true);
	if (!same_row_key(&p, row_key))
		moved_value(c, row_key);
	mark_statement();
	PG_TRY();
	{
		plain = decrypt_value(c, &p, &n);
		len = n;
		result = cstring_to_text_with_len(plain, n);
	}
	PG_FINALLY();
	{
		if (plain != NULL)
			sodium_memzero(plain, len);
	}
	PG_END_TRY();
	PG_RETURN_TEXT_P(result);
}

/* new_index_key() returns bytea: internal, 32 random bytes sealed under the current key. */
Datum
secpolicy_new_index_key(PG_FUNCTION_ARGS)
{
	unsigned char key[INDEX_KEY_BYTES];
	bytea	   *volatile sealed = NULL;

	randombytes_buf(key, sizeof(key));
	PG_TRY();
	{
		sealed = sp_seal(key, sizeof(key));
	}
	PG_FINALLY();
	{
		sodium_memzero(key, sizeof(key));
	}
	PG_END_TRY();
	PG_RETURN_BYTEA_P(sealed);
}

/*
 * set_reseal_target(tbl regclass, col name): internal, for protect_batch():
 * until the transaction ends (or NULLs clear it), the trigger reseals the
 * unchanged values of that column that are under an old key.
 */
Datum
secpolicy_set_reseal_target(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		reseal_relid = InvalidOid;
	else
	{
		reseal_relid = PG_GETARG_OID(0);
		strlcpy(reseal_column, NameStr(*PG_GETARG_NAME(1)), NAMEDATALEN);
	}
	PG_RETURN_VOID();
}

/*
 * register_changed(): statement trigger on protected_columns and
 * reveal_grants: every backend forgets what it read of them (at this
 * transaction's commit; this backend at its next command).
 */
Datum
secpolicy_register_changed(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("register_changed must be called as a trigger")));
	CacheInvalidateRelcacheByRelid(RelationGetRelid(td->tg_relation));
	return PointerGetDatum(NULL);
}
