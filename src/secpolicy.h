/*
 * secpolicy.h
 *		Declarations shared by the C modules of the secpolicy extension.
 *
 * Each module owns one concern: policy.c reads the policy row, hash.c the
 * argon2id hashes, complexity.c and blocklist.c the password rules, token.c
 * random tokens and digests, normalize.c the Unicode form of passwords,
 * trigger.c the hash-on-write triggers, totp.c one-time passwords, seal.c
 * encryption at rest, columns.c the encrypted columns of application tables
 * and the record of their disclosures, and logfilter.c the redaction of
 * statements that carry secrets.
 */
#ifndef SECPOLICY_H
#define SECPOLICY_H

#include "postgres.h"
#include "utils/array.h"
#include "utils/timestamp.h"

/*
 * Hard upper bound on the bytes of a password that is ever hashed or
 * verified, whatever the policy says: a guard against work on huge inputs.
 * The policy's max_length (in characters) is capped at 1024, and 1024
 * four-byte characters fit.
 */
#define SP_MAX_PASSWORD_BYTES	4096

/*
 * Passwords longer than this are not Unicode-normalised (normalize.c): the
 * work grows faster than the length, and the policy's default maximum of
 * 128 characters is at most 512 bytes.
 */
#define SP_MAX_NORMALIZE_BYTES	1024

/* Upper bounds on argon2id parameters accepted from stored hash strings. */
#define SP_MAX_HASH_MEMLIMIT	((size_t) 1073741824)	/* 1 GiB */
#define SP_MAX_HASH_OPSLIMIT	16
#define SP_MAX_HASH_LANES		16

/* The policy row, as the C code needs it. */
typedef struct SpPolicy
{
	int			min_length;
	int			max_length;
	bool		require_upper;
	bool		require_lower;
	bool		require_digit;
	bool		require_symbol;
	bool		check_username;
	bool		check_blocklist;
	int			history_depth;
	unsigned long long hash_opslimit;
	size_t		hash_memlimit;
} SpPolicy;

/* catalog.c: what the C code reads of the extension's tables by name */
typedef enum SpColumn
{
	SPC_POLICY_SESSION_IDLE_TIMEOUT,
	SPC_POLICY_SESSION_MAX_LIFETIME,
	SPC_POLICY_SESSION_TOUCH_INTERVAL,
	SPC_SESSIONS_USER_ID,
	SPC_SESSIONS_ID,
	SPC_SESSIONS_CREATED_AT,
	SPC_SESSIONS_LAST_SEEN_AT,
	SPC_SESSIONS_ENDED_AT,
	SPC_SESSIONS_END_REASON,
	SPC_SESSIONS_TOKEN_KEY,
	SPC_USERS_ID,
	SPC_USERS_USERNAME,
	SPC_USERS_PASSWORD_HASH,
	SPC_USERS_PASSWORD_CHANGED_AT,
	SPC_USERS_PASSWORD_CHECKED_AT,
	SPC_HISTORY_USER_ID,
	SPC_HISTORY_ID,
	SPC_HISTORY_PASSWORD_HASH,
	SPC_BLOCKLIST_WORD,
	SPC_POLICY_MIN_LENGTH,
	SPC_POLICY_MAX_LENGTH,
	SPC_POLICY_REQUIRE_UPPER,
	SPC_POLICY_REQUIRE_LOWER,
	SPC_POLICY_REQUIRE_DIGIT,
	SPC_POLICY_REQUIRE_SYMBOL,
	SPC_POLICY_CHECK_USERNAME,
	SPC_POLICY_CHECK_BLOCKLIST,
	SPC_POLICY_HISTORY_DEPTH,
	SPC_POLICY_HASH_OPSLIMIT,
	SPC_POLICY_HASH_MEMLIMIT,
	/* the role policy (roles_password.c, roles_worker.c) */
	SPC_POLICY_MAX_FAILED_ATTEMPTS,
	SPC_ROLE_HISTORY_ROLE_NAME,
	SPC_ROLE_HISTORY_ID,
	SPC_ROLE_HISTORY_PASSWORD_HASH,
	SPC_ROLE_STATE_ROLE_NAME,
	SPC_ROLE_STATE_FAILED_ATTEMPTS,
	SPC_ROLE_STATE_LOCKED_AT,
	SPC_ROLE_STATE_CLEARED_AT,
	SPC_ROLE_STATE_LAST_FAILED_AT,
	SPC_ROLE_LINKS_ROLE_NAME,
	SPC_ROLE_LINKS_USER_ID,
	SPC_ROLE_LINKS_MFA_REQUIRED,
	SPC_ACCESS_ID,
	SPC_ACCESS_USER_ID,
	SPC_ACCESS_ROLE_NAME,
	SPC_ACCESS_OPENED_AT,
	SPC_ACCESS_EXPIRES_AT,
	SPC_ACCESS_CLIENT_ADDR,
	SPC_ACCESS_CLOSED_AT,
	SPC_ACCESS_CLOSE_REASON,
	SPC_COUNT
} SpColumn;

typedef struct SpColumnRef
{
	const char *relation;		/* in schema secpolicy */
	const char *column;			/* NULL: the relation itself (an index) */
	const char *type;			/* as format_type() writes it */
} SpColumnRef;

extern const SpColumnRef sp_columns[SPC_COUNT];

/* The name of a column (or relation) the C code reads. */
#define SP_COLUMN(c)	(sp_columns[(c)].column)
#define SP_RELATION(c)	(sp_columns[(c)].relation)

/* policy.c */
extern void sp_policy_load(SpPolicy *policy);

/* hash.c */
extern void sp_hash_init(void);
extern char *sp_hash_password(const char *password, size_t len,
							  unsigned long long opslimit, size_t memlimit);
extern bool sp_verify_password(const char *hash, size_t hashlen,
							   const char *password, size_t len);
extern int	sp_verify_password_form(const char *hash, size_t hashlen,
									const char *password, size_t len);

/* What sp_verify_password_form found. */
#define SP_NO_MATCH			0
#define SP_MATCH			1	/* the hash is of the NFKC form */
#define SP_MATCH_RECEIVED	2	/* only the bytes as received match */
extern bool sp_hash_is_argon2id(const char *hash, size_t hashlen);
extern bool sp_hash_cost_allowed(const char *hash, size_t hashlen);
extern int	sp_max_hash_work(void);

/* normalize.c */
extern char *sp_password_nfkc(const char *password, size_t len, size_t *outlen);
extern void sp_password_nfkc_free(char *normalized, size_t len);

/* complexity.c */
extern ArrayType *sp_password_violations(const char *password, size_t len,
										 const char *username, size_t ulen,
										 const SpPolicy *policy);
extern char *sp_violations_list(ArrayType *violations);

/* blocklist.c */
extern const char *const sp_blocklist_words[];
extern const int sp_blocklist_count;
extern bool sp_blocklist_contains(const char *password, size_t len);
extern bool sp_custom_blocklist_hit(const char *password, size_t len);

/* trigger.c */
extern void sp_trigger_init(void);

/* totp.c */
extern void sp_totp_init(void);

/* seal.c */
#define SP_KEY_BYTES		32	/* the sealing key */
#define SP_KEY_ID_BYTES		8	/* its identifier: the first bytes of its BLAKE2b hash */
extern void sp_seal_init(void);
extern bytea *sp_seal(const unsigned char *plain, size_t len);
extern unsigned char *sp_unseal(bytea *sealed, size_t *len);
extern void sp_seal_current_key(unsigned char key[SP_KEY_BYTES], unsigned char id[SP_KEY_ID_BYTES]);
extern bool sp_seal_previous_key(unsigned char key[SP_KEY_BYTES], unsigned char id[SP_KEY_ID_BYTES]);

/* columns.c */
extern void sp_columns_init(void);

/* audit.c */
extern void sp_audit_init(void);

/* session.c */
extern void sp_session_init(void);
extern uint64 sp_xact_statements;	/* executor starts in this transaction so far */

/* citus.c: a distributed installation */
typedef struct SpTouchAnswer
{
	const char *status;
	int64		user_id;		/* 0: none */
	int64		session_id;		/* 0: none */
	TimestampTz idle_expires_at;	/* 0: none */
} SpTouchAnswer;

/* A session and the policy's session settings, read where the session lives. */
typedef struct SpSessionRead
{
	int64		user_id;
	int64		id;
	TimestampTz created_at;
	TimestampTz last_seen_at;
	bool		ended;
	char	   *end_reason;		/* NULL: none */
	Interval   *idle_timeout;
	Interval   *max_lifetime;
	Interval   *touch_interval;
} SpSessionRead;

extern bool sp_citus_session_read(text *token, bytea *digest, bool with_policy, SpSessionRead *out);
extern Oid	sp_citus_policy_placement(void);

/* citus_direct.c */
extern void sp_citus_direct_init(void);
extern int	sp_citus_direct_read(int64 key, bytea *digest, const char *user, SpSessionRead *out);
extern void sp_citus_init(void);
extern bool sp_distributed(void);
extern int64 sp_account_key(text *username);
extern int64 sp_token_route(text *token);
extern void sp_citus_session_touch(text *token, SpTouchAnswer *answer);

/* ledger.c */
extern void sp_ledger_init(void);

/* roles.c (and roles_*.c): database roles under the policy */
extern void sp_roles_init(void);

/* logfilter.c */
extern void sp_logfilter_init(void);
extern void sp_logfilter_mark_statement(void);

/* Copy a text datum into a NUL-terminated palloc'd buffer. */
static inline char *
sp_text_cstring(text *t, size_t *len)
{
	size_t		n = VARSIZE_ANY_EXHDR(t);
	char	   *s = palloc(n + 1);

	memcpy(s, VARDATA_ANY(t), n);
	s[n] = '\0';
	if (len)
		*len = n;
	return s;
}

#endif							/* SECPOLICY_H */
