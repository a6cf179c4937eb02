/*
 * logfilter.c
 *		Keeps passwords, TOTP codes, tokens and personal data out of the server
 *		log, and out of the activity string that pg_stat_activity, deadlock
 *		reports and the postmaster's crash report show.
 *
 * A statement carries a secret when it calls a function that takes one
 * (the extension's, listed below; an application function whose body calls
 * one, found by reading the bodies of the functions a statement calls; or a
 * function named in secpolicy.redact_functions), gives a role or a user
 * mapping a PASSWORD, names a table guarded by one of the extension's
 * triggers that see values in clear (protect_trigger: personal data;
 * password_policy_trigger: passwords) or a table of secpolicy.redact_tables,
 * EXECUTEs a prepared statement that carries one, or is a DO block whose body
 * does.
 * Statements are read with a small SQL tokenizer of our own (comments,
 * quoted identifiers, string and dollar quotes), never by matching raw text,
 * and never raising: it also reads statements that failed to parse.  C code
 * of the extension that handles a secret marks the running statement too (a
 * wrapper running dynamic SQL, a table guarded by password_policy_trigger).
 *
 * For a statement that carries a secret, an emit_log_hook hides it from the
 * STATEMENT line and the QUERY line of every message, cuts it out of the
 * messages that quote it (log_statement, log_min_duration_statement; an
 * auto_explain line keeps only its duration), and drops what would show its
 * values: logged bind parameters (DETAIL, and the CONTEXT of
 * log_parameter_max_length_on_error), the "prepare:" DETAIL of an EXECUTE,
 * the SQL statements quoted in CONTEXT, and the parse trees and plans of
 * debug_print_*.  Hooks on parse analysis, executor start and utility
 * statements replace the backend's activity string by a marker as soon as the
 * statement is known to carry a secret (so pg_stat_activity, a deadlock
 * report naming this backend, and the postmaster's "Failed process was
 * running" line after a crash never show it).
 *
 * Each statement is classified once (O(length)); the messages it emits look
 * the answer up.  The bodies of the functions a statement calls are read
 * with catalog access, which the log hook never does: it runs only at parse
 * analysis and executor start, and the answers are kept per function name
 * until a function changes.  The log_statement line of a simple query comes
 * before its analysis: when it calls a function not yet read in this backend,
 * the line is held back and written (redacted or not) once the analysis has
 * decided.
 *
 * The hooks work from the moment the library is loaded in a backend: with
 * shared_preload_libraries (recommended) from the first statement, otherwise
 * from the first call of one of the extension's C functions.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/prepare.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "parser/analyze.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/catcache.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#if PG_VERSION_NUM >= 140000
#include "utils/backend_status.h"
#else
#include "pgstat.h"
#endif

#include <sodium.h>

#include "secpolicy.h"

PG_FUNCTION_INFO_V1(secpolicy_mark_statement);
PG_FUNCTION_INFO_V1(secpolicy_redacted_functions);

#define REDACTED "[redacted by secpolicy]"

/* How deep a DO body, a prepared statement or a function body is followed. */
#define MAX_DEPTH	6

/*
 * The extension's functions whose arguments carry a password, a code, a
 * token, a sealed or hashed secret, or personal data in clear.  A test
 * (test/log_redaction_coverage.sql) derives from the catalog every function
 * with such a parameter and checks that this list covers it.
 */
static const char *const secret_functions[] = {
	/* flows */
	"login", "verify_mfa", "totp_enroll", "totp_confirm", "change_password",
	"request_password_reset", "reset_password", "session_touch", "logout",
	"list_sessions", "end_other_sessions",
	/* building blocks */
	"hash_password", "verify_password", "password_match", "password_needs_rehash",
	"password_violations", "totp_code", "totp_match", "otpauth_uri",
	/* administration */
	"create_user", "admin_set_password", "import_password_hash",
	/* internal */
	"authenticate", "unknown_user_attempt", "write_password", "try_set_password",
	"set_password_or_raise", "token_digest", "check_second_factor", "compact_code",
	"find_challenge", "challenge_account", "enrollment_owner", "totp_verify_sealed",
	"reseal", "start_session",
	/* personal data and database roles */
	"reveal", "blind_index", "set_role_password", "open_database_access",
	NULL
};

/* What is known of a statement or of a function name. */
typedef enum Verdict
{
	V_CLEAN = 0,				/* carries nothing secret */
	V_SECRET,					/* carries a secret */
	V_UNDECIDED					/* calls a function whose body was not read yet */
} Verdict;

/* secpolicy.redact_tables and secpolicy.redact_functions */
static char *redact_tables = NULL;
static char *redact_functions = NULL;

/*
 * The statement being classified: identified by the address of its text and
 * the start of the protocol message that runs it (a new statement never has
 * both the same), so that the many messages of one statement cost one
 * classification.
 */
static struct
{
	const char *text;
	TimestampTz started;
	uint64		generation;		/* of the settings and the function cache */
	Verdict		verdict;
	bool		activity_redacted;
}			current;

/* Bumped when the settings or the functions change: every verdict is stale. */
static uint64 generation = 1;

/*
 * The keyed hashes of the last statements that C code marked as carrying a
 * secret (never their text), so that the same text run again is known at
 * once, before it reaches the C code.
 */
#define MARKED_MEMORY 8
static unsigned char marked_key[crypto_shorthash_KEYBYTES];
static unsigned char marked[MARKED_MEMORY][crypto_shorthash_BYTES];
static size_t marked_len[MARKED_MEMORY];
static int	marked_next = 0;

/* Function names read so far: do they carry secrets?  (name -> Verdict) */
typedef struct NameEntry
{
	char		name[NAMEDATALEN];
	Verdict		verdict;
} NameEntry;

static HTAB *names = NULL;

/*
 * The names of the tables guarded by the extension's triggers that see
 * plaintext (any schema; a statement may leave the schema out), read from
 * pg_trigger at a safe point.  Any relcache invalidation (CREATE TRIGGER
 * sends one for its table) makes the list stale: it is read again at the next
 * safe point, and until then a statement that writes (INSERT, UPDATE, COPY,
 * MERGE) is undecided, so that its log_statement line waits for the list.
 */
static const char *const guard_functions[] = {"protect_trigger", "password_policy_trigger", NULL};
static char **guarded = NULL;
static int	n_guarded = 0;
static bool guarded_fresh = false;

/* A log_statement line held back until its statement is classified. */
static char *held_line = NULL;
static const char *held_text = NULL;

static emit_log_hook_type prev_emit_log_hook = NULL;
static post_parse_analyze_hook_type prev_post_parse_analyze_hook = NULL;
static ExecutorStart_hook_type prev_ExecutorStart_hook = NULL;
static ProcessUtility_hook_type prev_ProcessUtility_hook = NULL;

/* ------------------------------------------------------------ tokenizer -- */

typedef enum TokKind
{
	TK_END,
	TK_IDENT,					/* identifier or key word (lower-cased unless quoted) */
	TK_STRING,					/* a string constant: content in [start, start + len) */
	TK_PUNCT,					/* one character: ( ) ; . , and the like */
	TK_OTHER					/* numbers, parameters, operators */
} TokKind;

typedef struct Token
{
	TokKind		kind;
	const char *start;
	int			len;
	char		punct;
} Token;

typedef struct Lexer
{
	const char *p;
	const char *end;
} Lexer;

/* Can `c` start (or, with digits and $, continue) an SQL identifier? */
static inline bool
ident_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static inline bool
ident_char(unsigned char c)
{
	return ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

/* Skip white space and comments. */
static void
lex_skip(Lexer *lx)
{
	while (lx->p < lx->end)
	{
		unsigned char c = (unsigned char) *lx->p;

		if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v')
			lx->p++;
		else if (c == '-' && lx->p + 1 < lx->end && lx->p[1] == '-')
		{
			while (lx->p < lx->end && *lx->p != '\n')
				lx->p++;
		}
		else if (c == '/' && lx->p + 1 < lx->end && lx->p[1] == '*')
		{
			int			depth = 0;

			while (lx->p < lx->end)
			{
				if (lx->p + 1 < lx->end && lx->p[0] == '/' && lx->p[1] == '*')
					depth++, lx->p += 2;
				else if (lx->p + 1 < lx->end && lx->p[0] == '*' && lx->p[1] == '/')
				{
					lx->p += 2;
					if (--depth == 0)
						break;
				}
				else
					lx->p++;
			}
		}
		else
			break;
	}
}

/* Read a quoted run closed by `q` ('' and "" stand for one quote); backslash escapes if asked. */
static void
lex_quoted(Lexer *lx, Token *t, char q, bool backslash)
{
	t->start = ++lx->p;
	while (lx->p < lx->end)
	{
		if (backslash && *lx->p == '\\' && lx->p + 1 < lx->end)
			lx->p += 2;
		else if (*lx->p == q && lx->p + 1 < lx->end && lx->p[1] == q)
			lx->p += 2;
		else if (*lx->p == q)
			break;
		else
			lx->p++;
	}
	t->len = (int) (lx->p - t->start);
	if (lx->p < lx->end)
		lx->p++;
}

/* The next token; TK_END at the end.  Never raises: unterminated runs end the text. */
static void
lex_next(Lexer *lx, Token *t)
{
	unsigned char c;

	lex_skip(lx);
	t->punct = '\0';
	if (lx->p >= lx->end)
	{
		t->kind = TK_END;
		return;
	}
	c = (unsigned char) *lx->p;
	if (c == '\'')
	{
		t->kind = TK_STRING;
		lex_quoted(lx, t, '\'', false);
	}
	else if (c == '"')
	{
		t->kind = TK_IDENT;
		lex_quoted(lx, t, '"', false);
	}
	else if (c == '$' && lx->p + 1 < lx->end && (lx->p[1] == '$' || ident_start((unsigned char) lx->p[1])))
	{
		/* $tag$ ... $tag$ (a parameter $1 is handled below) */
		const char *tag = lx->p;
		const char *q = lx->p + 1;
		int			taglen;

		while (q < lx->end && *q != '$' && ident_char((unsigned char) *q))
			q++;
		if (q >= lx->end || *q != '$')
		{
			lx->p = q;
			t->kind = TK_OTHER;
			return;
		}
		taglen = (int) (q - tag) + 1;
		t->kind = TK_STRING;
		t->start = q + 1;
		for (q = t->start; q + taglen <= lx->end; q++)
			if (*q == '$' && memcmp(q, tag, taglen) == 0)
				break;
		if (q + taglen > lx->end)
			q = lx->end;
		t->len = (int) (q - t->start);
		lx->p = q + taglen <= lx->end ? q + taglen : lx->end;
	}
	else if (ident_start(c))
	{
		const char *s = lx->p;

		while (lx->p < lx->end && ident_char((unsigned char) *lx->p))
			lx->p++;
		/* E'..', B'..', X'..', N'..' and U&'..' / U&".." */
		if (lx->p < lx->end && *lx->p == '\'' && lx->p - s == 1)
		{
			t->kind = TK_STRING;
			lex_quoted(lx, t, '\'', *s == 'e' || *s == 'E');
			return;
		}
		if (lx->p - s == 1 && (*s == 'u' || *s == 'U') && lx->p + 1 < lx->end && *lx->p == '&' &&
			(lx->p[1] == '\'' || lx->p[1] == '"'))
		{
			lx->p++;
			t->kind = *lx->p == '"' ? TK_IDENT : TK_STRING;
			lex_quoted(lx, t, *lx->p, false);
			return;
		}
		t->kind = TK_IDENT;
		t->start = s;
		t->len = (int) (lx->p - s);
	}
	else if (strchr("();,.[]", c) != NULL)
	{
		t->kind = TK_PUNCT;
		t->punct = (char) c;
		t->start = lx->p++;
		t->len = 1;
	}
	else
	{
		t->kind = TK_OTHER;
		t->start = lx->p++;
		t->len = 1;
		while (lx->p < lx->end && (isdigit((unsigned char) *lx->p) || strchr("+-*/<>=~!@#%^&|`?.", *lx->p)))
			lx->p++;
	}
}

/*
 * The token as a name: lower-cased unless it was quoted (which
 * lex_quoted's start tells: the byte before is a quote), at most
 * NAMEDATALEN - 1 bytes.  False for tokens that cannot be names.
 */
static bool
token_name(const Token *t, char *out)
{
	bool		quoted;
	int			n = 0;

	if (t->kind != TK_IDENT || t->len <= 0 || t->len >= NAMEDATALEN)
		return false;
	quoted = t->start[-1] == '"';
	for (int i = 0; i < t->len; i++)
	{
		char		c = t->start[i];

		if (quoted && c == '"')
			i++;				/* "" stands for one quote */
		out[n++] = quoted ? c : pg_ascii_tolower((unsigned char) c);
	}
	out[n] = '\0';
	return true;
}

/* ------------------------------------------------------- what is secret -- */

/* Is `name` one of the comma-separated names of a list setting (last component)? */
static bool
in_list_setting(const char *list, const char *name)
{
	const char *item = list;

	while (item != NULL && *item != '\0')
	{
		const char *end = strchr(item, ',');
		const char *base;
		size_t		len;

		if (end == NULL)
			end = item + strlen(item);
		/* the name without its schema: a statement may leave it out */
		base = item;
		for (const char *c = item; c < end; c++)
			if (*c == '.')
				base = c + 1;
		while (base < end && (*base == ' ' || *base == '"'))
			base++;
		len = end - base;
		while (len > 0 && (base[len - 1] == ' ' || base[len - 1] == '"'))
			len--;
		if (len == strlen(name) && pg_strncasecmp(base, name, len) == 0)
			return true;
		item = *end ? end + 1 : end;
	}
	return false;
}

/* Is `name` an extension function that takes a secret, or a declared one? */
static bool
listed_function(const char *name)
{
	for (int i = 0; secret_functions[i] != NULL; i++)
		if (strcmp(secret_functions[i], name) == 0)
			return true;
	return in_list_setting(redact_functions, name);
}

static Verdict scan_text(const char *text, size_t len, int depth, bool catalog);

/* Forget every verdict on function names (a function changed). */
static void
names_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	if (names != NULL)
	{
		hash_destroy(names);
		names = NULL;
	}
	generation++;
}

/*
 * Does a function named `name` carry a secret?  Listed functions do; others
 * do when the body of a function of that name (in any schema) calls one that
 * does.  With `catalog`, unknown names are read from pg_proc (only at safe
 * points: never from the log hook); without, they are V_UNDECIDED.
 */
static Verdict
function_verdict(const char *name, int depth, bool catalog)
{
	NameEntry  *e;
	bool		found;
	Verdict		v = V_CLEAN;
	CatCList   *list;

	if (listed_function(name))
		return V_SECRET;
	if (names == NULL)
	{
		HASHCTL		ctl;

		if (!catalog)
			return V_UNDECIDED;
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = NAMEDATALEN;
		ctl.entrysize = sizeof(NameEntry);
		ctl.hcxt = TopMemoryContext;
#if PG_VERSION_NUM >= 140000
		names = hash_create("secpolicy function names", 256, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
#else
		names = hash_create("secpolicy function names", 256, &ctl, HASH_ELEM | HASH_CONTEXT);
#endif
	}
	e = hash_search(names, name, catalog ? HASH_ENTER : HASH_FIND, &found);
	if (found)
		return e->verdict;
	if (!catalog || depth >= MAX_DEPTH)
	{
		if (e != NULL)
			hash_search(names, name, HASH_REMOVE, NULL);
		return catalog ? V_CLEAN : V_UNDECIDED;
	}
	/* a name calling itself, directly or not, is clean until proven otherwise */
	e->verdict = V_CLEAN;

	list = SearchSysCacheList1(PROCNAMEARGSNSP, CStringGetDatum(name));
	for (int i = 0; i < list->n_members && v != V_SECRET; i++)
	{
		HeapTuple	tup = &list->members[i]->tuple;
		Form_pg_proc proc = (Form_pg_proc) GETSTRUCT(tup);
		bool		isnull;
		Datum		src;
		char	   *body;

		if (proc->prolang == ClanguageId || proc->prolang == INTERNALlanguageId)
			continue;
		src = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_prosrc, &isnull);
		if (isnull)
			continue;
		body = TextDatumGetCString(src);
		v = scan_text(body, strlen(body), depth + 1, true);
		pfree(body);
	}
	ReleaseSysCacheList(list);

	/* the table may have been rebuilt by an invalidation meanwhile */
	if (names != NULL)
	{
		e = hash_search(names, name, HASH_ENTER, &found);
		e->verdict = v;
	}
	return v;
}

/* Any relation changed (a trigger may have been created or dropped): the list is stale. */
static void
guarded_invalidate(Datum arg, Oid relid)
{
	guarded_fresh = false;
}

static int
compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * Read the names of the tables guarded by the extension's triggers (catalog
 * access: safe points only).  When the list changes, every verdict is stale.
 */
static void
guarded_load(void)
{
	Oid			fns[16];
	int			nfns = 0;
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tup;
	char	  **list = NULL;
	int			n = 0;
	int			max = 0;
	bool		changed;

	/* an invalidation arriving while this reads makes it read again next time */
	guarded_fresh = true;
	for (int i = 0; guard_functions[i] != NULL; i++)
	{
		CatCList   *procs = SearchSysCacheList1(PROCNAMEARGSNSP, CStringGetDatum(guard_functions[i]));

		for (int j = 0; j < procs->n_members && nfns < (int) lengthof(fns); j++)
		{
			Form_pg_proc proc = (Form_pg_proc) GETSTRUCT(&procs->members[j]->tuple);

			if (proc->prolang == ClanguageId && proc->prorettype == TRIGGEROID)
				fns[nfns++] = proc->oid;
		}
		ReleaseSysCacheList(procs);
	}
	if (nfns > 0)
	{
		rel = table_open(TriggerRelationId, AccessShareLock);
		scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
		while (HeapTupleIsValid(tup = systable_getnext(scan)))
		{
			Form_pg_trigger tg = (Form_pg_trigger) GETSTRUCT(tup);
			char	   *name;

			for (int i = 0; i < nfns; i++)
			{
				if (tg->tgfoid != fns[i])
					continue;
				name = get_rel_name(tg->tgrelid);
				if (name == NULL)
					break;
				if (n == max)
				{
					max = max == 0 ? 16 : max * 2;
					list = list == NULL ? MemoryContextAlloc(TopMemoryContext, max * sizeof(char *))
						: repalloc(list, max * sizeof(char *));
				}
				list[n++] = MemoryContextStrdup(TopMemoryContext, name);
				pfree(name);
				break;
			}
		}
		systable_endscan(scan);
		table_close(rel, AccessShareLock);
	}
	if (n > 1)
		qsort(list, n, sizeof(char *), compare_names);
	changed = n != n_guarded;
	for (int i = 0; !changed && i < n; i++)
		changed = strcmp(list[i], guarded[i]) != 0;
	for (int i = 0; i < n_guarded; i++)
		pfree(guarded[i]);
	if (guarded != NULL)
		pfree(guarded);
	guarded = list;
	n_guarded = n;
	/* verdicts on statements and on function bodies may name these tables */
	if (changed)
		names_invalidate((Datum) 0, 0, 0);
}

/* Is `name` the name of a table the extension's triggers guard? */
static bool
guarded_table(const char *name)
{
	for (int i = 0; i < n_guarded; i++)
		if (pg_strcasecmp(guarded[i], name) == 0)
			return true;
	return false;
}

/* Combine two verdicts: secret wins, then undecided. */
static inline Verdict
worse(Verdict a, Verdict b)
{
	if (a == V_SECRET || b == V_SECRET)
		return V_SECRET;
	return (a == V_UNDECIDED || b == V_UNDECIDED) ? V_UNDECIDED : V_CLEAN;
}

/*
 * Does this SQL text (one or more statements, or a function body) carry a
 * secret?  See the file header for what counts.
 */
static Verdict
scan_text(const char *text, size_t len, int depth, bool catalog)
{
	Lexer		lx = {text, text + len};
	Token		t;
	Verdict		v = V_CLEAN;
	bool		in_do = false;
	bool		stmt_start = true;
	bool		writes = false;
	char		name[NAMEDATALEN];
	char		prev_name[NAMEDATALEN] = "";

	if (depth > MAX_DEPTH)
		return V_CLEAN;
	if (catalog && !guarded_fresh)
		guarded_load();
	for (lex_next(&lx, &t); t.kind != TK_END && v != V_SECRET; lex_next(&lx, &t))
	{
		bool		is_name = token_name(&t, name);

		if (is_name && !writes)
			writes = strcmp(name, "insert") == 0 || strcmp(name, "update") == 0 ||
				strcmp(name, "copy") == 0 || strcmp(name, "merge") == 0;

		if (is_name && stmt_start)
			in_do = strcmp(name, "do") == 0;
		stmt_start = t.kind == TK_PUNCT && t.punct == ';';

		if (t.kind == TK_PUNCT && t.punct == '(' && prev_name[0] != '\0')
			v = worse(v, function_verdict(prev_name, depth, catalog));
		else if (t.kind == TK_STRING && in_do)
			v = worse(v, scan_text(t.start, t.len, depth + 1, catalog));
		else if (t.kind == TK_STRING && strcmp(prev_name, "password") == 0)
			v = V_SECRET;		/* CREATE/ALTER ROLE ... PASSWORD '...', OPTIONS (password '...') */
		else if (is_name && strcmp(prev_name, "execute") == 0)
		{
			/* EXECUTE name [(...)], also after EXPLAIN: the prepared statement's text */
			PreparedStatement *ps = FetchPreparedStatement(name, false);

			if (ps != NULL && ps->plansource->query_string != NULL)
				v = worse(v, scan_text(ps->plansource->query_string,
									   strlen(ps->plansource->query_string), depth + 1, catalog));
		}
		if (is_name && (in_list_setting(redact_tables, name) || guarded_table(name)))
			v = V_SECRET;

		if (is_name)
			strlcpy(prev_name, name, sizeof(prev_name));
		else
			prev_name[0] = '\0';
	}
	/* a write to a table not known yet to be unguarded: wait for the list */
	if (v == V_CLEAN && writes && !guarded_fresh)
		v = V_UNDECIDED;
	return v;
}

/* The keyed hash of a statement's text. */
static void
statement_hash(const char *text, size_t len, unsigned char out[crypto_shorthash_BYTES])
{
	crypto_shorthash(out, (const unsigned char *) text, len, marked_key);
}

/* Was this text marked by C code lately? */
static bool
recently_marked(const char *text, size_t len)
{
	unsigned char h[crypto_shorthash_BYTES];

	statement_hash(text, len, h);
	for (int i = 0; i < MARKED_MEMORY; i++)
		if (marked_len[i] == len && sodium_memcmp(marked[i], h, sizeof(h)) == 0)
			return true;
	return false;
}

/*
 * The verdict on the running statement (debug_query_string), computed once
 * per statement; with `catalog`, undecided names are read (safe points only).
 */
static Verdict
statement_verdict(bool catalog)
{
	const char *text = debug_query_string;
	TimestampTz started = GetCurrentStatementStartTimestamp();

	if (text == NULL || *text == '\0')
		return V_CLEAN;
	if (current.text == text && current.started == started && current.generation == generation &&
		(current.verdict != V_UNDECIDED || !catalog))
		return current.verdict;
	if (current.text != text || current.started != started)
		current.activity_redacted = false;
	current.text = text;
	current.started = started;
	current.generation = generation;
	if (recently_marked(text, strlen(text)))
		current.verdict = V_SECRET;
	else
		current.verdict = scan_text(text, strlen(text), 0, catalog);
	/* reading the bodies may have invalidated what it read */
	current.generation = generation;
	return current.verdict;
}

/* Replace this backend's activity string once the statement is known to carry a secret. */
static void
redact_activity(void)
{
	if (current.verdict == V_SECRET && !current.activity_redacted)
	{
		pgstat_report_activity(STATE_RUNNING, REDACTED);
		current.activity_redacted = true;
	}
}

/*
 * Mark the running statement as carrying a secret: called by the C code
 * that handles one (password hashing and checks, TOTP, tokens, the password
 * triggers), so that a statement reaching it through dynamic SQL or an
 * application table is redacted too, and the same text again at once.
 */
void
sp_logfilter_mark_statement(void)
{
	const char *text = debug_query_string;
	size_t		len;

	if (text == NULL)
		return;
	len = strlen(text);
	if (current.text != text || current.started != GetCurrentStatementStartTimestamp() ||
		current.verdict != V_SECRET)
	{
		statement_hash(text, len, marked[marked_next]);
		marked_len[marked_next] = len;
		marked_next = (marked_next + 1) % MARKED_MEMORY;
		if (current.text != text || current.started != GetCurrentStatementStartTimestamp())
			current.activity_redacted = false;
		current.text = text;
		current.started = GetCurrentStatementStartTimestamp();
		current.generation = generation;
		current.verdict = V_SECRET;
	}
	redact_activity();
}

/* mark_statement(): internal; the flows call it first, before any early answer */
Datum
secpolicy_mark_statement(PG_FUNCTION_ARGS)
{
	sp_logfilter_mark_statement();
	PG_RETURN_VOID();
}

/*
 * redacted_functions() returns text[]: the function names whose calls are
 * redacted (the extension's list, then secpolicy.redact_functions).
 */
Datum
secpolicy_redacted_functions(PG_FUNCTION_ARGS)
{
	ArrayBuildState *astate = NULL;
	char	   *list = pstrdup(redact_functions ? redact_functions : "");
	char	   *save;

	for (int i = 0; secret_functions[i] != NULL; i++)
		astate = accumArrayResult(astate, CStringGetTextDatum(secret_functions[i]), false,
								  TEXTOID, CurrentMemoryContext);
	for (char *item = strtok_r(list, ", ", &save); item != NULL; item = strtok_r(NULL, ", ", &save))
		astate = accumArrayResult(astate, CStringGetTextDatum(item), false, TEXTOID, CurrentMemoryContext);
	PG_RETURN_ARRAYTYPE_P(makeArrayResult(astate, CurrentMemoryContext));
}

/* --------------------------------------------------------- the log hook -- */

/* The message with the statement's text cut out. */
static char *
cut_statement(const char *message, const char *at, size_t len)
{
	return psprintf("%.*s%s%s", (int) (at - message), message, REDACTED, at + len);
}

/* A DETAIL that shows values: logged parameters, a prepared statement, a debug_print_* dump. */
static bool
detail_shows_values(const ErrorData *edata, const char *detail)
{
	return detail != NULL &&
		(strncmp(detail, "parameters:", 11) == 0 ||
		 strncmp(detail, "prepare:", 8) == 0 ||
		 (edata->message != NULL &&
		  (strcmp(edata->message, "parse tree:") == 0 ||
		   strcmp(edata->message, "rewritten parse tree:") == 0 ||
		   strcmp(edata->message, "plan:") == 0)));
}

/*
 * A CONTEXT without the values it may show: bind parameters, and the SQL
 * statements and expressions it quotes (dynamic SQL holds values).
 */
static char *
redact_context(const char *context)
{
	StringInfoData buf;
	const char *line = context;

	initStringInfo(&buf);
	while (*line)
	{
		const char *end = strchr(line, '\n');
		size_t		len = end ? (size_t) (end - line) : strlen(line);

		if (strncmp(line, "SQL statement \"", 15) == 0)
			appendStringInfoString(&buf, "SQL statement " REDACTED);
		else if (strncmp(line, "SQL expression \"", 16) == 0)
			appendStringInfoString(&buf, "SQL expression " REDACTED);
		else
		{
			const char *with = NULL;

			for (const char *c = line; c + 16 <= line + len; c++)
				if (strncmp(c, "with parameters:", 16) == 0)
				{
					with = c;
					break;
				}
			if (with != NULL)
				appendStringInfo(&buf, "%.*swith parameters: %s", (int) (with - line), line, REDACTED);
			else
				appendBinaryStringInfo(&buf, line, (int) len);
		}
		if (end == NULL)
			break;
		appendStringInfoChar(&buf, '\n');
		line = end + 1;
	}
	return buf.data;
}

/* emit_log_hook: redact what a secret-carrying statement would put in the log. */
static void
secpolicy_emit_log_hook(ErrorData *edata)
{
	Verdict		v = statement_verdict(false);

	if (v == V_UNDECIDED && held_line == NULL && edata->elevel == LOG && edata->message != NULL &&
		strncmp(edata->message, "statement: ", 11) == 0)
	{
		/* log_statement of a simple query, before its analysis: hold it back */
		held_line = MemoryContextStrdup(TopMemoryContext, edata->message);
		held_text = debug_query_string;
		edata->output_to_server = false;
	}
	else if (v != V_CLEAN)
	{
		/* undecided is treated as secret: the statement could not be read to the end */
		const char *text = debug_query_string;
		const char *at = edata->message ? strstr(edata->message, text) : NULL;

		edata->hide_stmt = true;
		edata->internalquery = NULL;
		if (at != NULL)
			edata->message = cut_statement(edata->message, at, strlen(text));
		else if (edata->message != NULL && strncmp(edata->message, "issuing ", 8) == 0)
		{
			/* Citus's citus.log_remote_commands: a command sent to a worker
			 * (a delegated flow's arguments) */
			edata->message = pstrdup("issuing " REDACTED);
		}
		else if (edata->message != NULL &&
				 strncmp(edata->message, "executing the command locally: ", 31) == 0)
		{
			/* citus.log_local_commands: a shard command run here, with its values */
			edata->message = pstrdup("executing the command locally: " REDACTED);
		}
		if (edata->message != NULL && strncmp(edata->message, "duration: ", 10) == 0)
		{
			/* auto_explain: the plan shows the statement and its constants */
			const char *plan = strstr(edata->message, "  plan:");

			if (plan != NULL)
				edata->message = psprintf("%.*s  plan: %s", (int) (plan - edata->message), edata->message, REDACTED);
		}
		if (detail_shows_values(edata, edata->detail))
			edata->detail = pstrdup(REDACTED);
		if (detail_shows_values(edata, edata->detail_log))
			edata->detail_log = pstrdup(REDACTED);
		if (edata->context != NULL)
			edata->context = redact_context(edata->context);
	}

	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/* Write the held-back log_statement line, now that its statement is classified. */
static void
release_held_line(void)
{
	char	   *line = held_line;

	if (line == NULL)
		return;
	held_line = NULL;
	/* the log hook redacts it if the statement carries a secret */
	if (held_text == debug_query_string)
		ereport(LOG, (errmsg_internal("%s", line), errhidestmt(true)));
	else
		ereport(LOG, (errmsg_internal("statement: %s", REDACTED), errhidestmt(true)));
	pfree(line);
}

/* ------------------------------------------------- the statement hooks -- */

/* Classify the statement with catalog access, redact the activity, release a held line. */
static void
classify_here(void)
{
	if (IsTransactionState() && debug_query_string != NULL)
	{
		statement_verdict(true);
		redact_activity();
	}
	release_held_line();
}

#if PG_VERSION_NUM >= 140000
static void
secpolicy_post_parse_analyze(ParseState *pstate, Query *query, JumbleState *jstate)
{
	if (prev_post_parse_analyze_hook)
		prev_post_parse_analyze_hook(pstate, query, jstate);
	classify_here();
}
#else
static void
secpolicy_post_parse_analyze(ParseState *pstate, Query *query)
{
	if (prev_post_parse_analyze_hook)
		prev_post_parse_analyze_hook(pstate, query);
	classify_here();
}
#endif

static void
secpolicy_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	sp_xact_statements++;
	classify_here();
	if (prev_ExecutorStart_hook)
		prev_ExecutorStart_hook(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

#if PG_VERSION_NUM >= 140000
static void
secpolicy_ProcessUtility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
						 ProcessUtilityContext context, ParamListInfo params,
						 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	sp_xact_statements++;
	classify_here();
	if (prev_ProcessUtility_hook)
		prev_ProcessUtility_hook(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
}
#else
static void
secpolicy_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
						 ProcessUtilityContext context, ParamListInfo params,
						 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	sp_xact_statements++;
	classify_here();
	if (prev_ProcessUtility_hook)
		prev_ProcessUtility_hook(pstmt, queryString, context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, context, params, queryEnv, dest, qc);
}
#endif

/* At the end of a transaction, a line still held back is written, redacted. */
static void
logfilter_xact_callback(XactEvent event, void *arg)
{
	if (held_line != NULL && (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT))
	{
		held_text = NULL;		/* never classified: written redacted */
		release_held_line();
	}
}

/* A list setting changed: every verdict is stale. */
static void
settings_changed(const char *newval, void *extra)
{
	names_invalidate((Datum) 0, 0, 0);
}

/* Define the settings and install the hooks, once per backend. */
void
sp_logfilter_init(void)
{
	randombytes_buf(marked_key, sizeof(marked_key));
	DefineCustomStringVariable("secpolicy.redact_tables",
							   gettext_noop("Tables whose statements are kept out of the server log, e.g. those guarded by password_policy_trigger."),
							   gettext_noop("A comma-separated list of table names; a statement naming one is redacted like a call of a flow."),
							   &redact_tables, "",
							   PGC_SUSET, GUC_LIST_INPUT,
							   NULL, settings_changed, NULL);
	DefineCustomStringVariable("secpolicy.redact_functions",
							   gettext_noop("Functions whose calls are kept out of the server log, e.g. wrappers that run the flows through dynamic SQL."),
							   gettext_noop("A comma-separated list of function names. Wrappers that call the flows directly are found without it."),
							   &redact_functions, "",
							   PGC_SUSET, GUC_LIST_INPUT,
							   NULL, settings_changed, NULL);

	CacheRegisterSyscacheCallback(PROCOID, names_invalidate, (Datum) 0);
	CacheRegisterRelcacheCallback(guarded_invalidate, (Datum) 0);
	RegisterXactCallback(logfilter_xact_callback, NULL);

	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = secpolicy_emit_log_hook;
	prev_post_parse_analyze_hook = post_parse_analyze_hook;
	post_parse_analyze_hook = secpolicy_post_parse_analyze;
	prev_ExecutorStart_hook = ExecutorStart_hook;
	ExecutorStart_hook = secpolicy_ExecutorStart;
	prev_ProcessUtility_hook = ProcessUtility_hook;
	ProcessUtility_hook = secpolicy_ProcessUtility;
}
