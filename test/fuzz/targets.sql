-- What the fuzzer calls (test/fuzz/harness.sql runs them): every C function
-- of schema secpolicy, the two trigger functions through writes to the
-- tables they guard, the end-user flows, a few admin functions, the policy
-- row, and top-level statements for the log redaction.
--
-- For each: the generator of each argument ('generator:type'), the role it
-- runs as (owner: the superuser that owns the extension, for internal
-- functions; app: a member of secpolicy_app; admin: of secpolicy_admin), the
-- SQLSTATEs its documentation gives (README.md: the Errors table and the
-- function's own section, quoted in `documented`), and for the flows the
-- statuses they document.  End-user flows document no SQLSTATE at all:
-- "End-user flows never raise for bad input".  `proposed`: SQLSTATEs raised
-- for a sound reason the documentation does not give yet; they do not fail a
-- run, and the summary lists them.
--
-- A C function added to schema secpolicy without a target here makes
-- fuzz.check_targets() name it, and scripts/fuzz fail.

INSERT INTO fuzz.targets (name, kind, covers, fn, args, role, sqlstates, proposed, result, statuses, undo, weight, documented) VALUES

-- ------------------------------------------------- building blocks (C) --
('hash_password', 'c', 'hash_password(text)', 'secpolicy.hash_password', '{password:text}', 'app',
 '{22023,39000}', '{}', NULL, NULL, false, 10,
 'Errors: 22023 a password breaks the policy (empty: too_short; over 4096 bytes: too_long); 39000 libsodium failed'),
('verify_password', 'c', 'verify_password(text, text)', 'secpolicy.verify_password', '{password:text,phc:text}', 'app',
 '{}', '{}', 'SELECT array_agg(r::text) FROM %s AS r', '{true,false}', false, 20,
 'Hashing: "answers false, never an error, for NULLs and for anything that is not a well-formed argon2id string"'),
('password_match', 'c', 'password_match(text, text)', 'secpolicy.password_match', '{password:text,phc:text}', 'app',
 '{}', '{}', 'SELECT array_agg(coalesce(r, ''NULL'')) FROM %s AS r', '{nfkc,as_received,NULL}', false, 12,
 'Unicode: "tells which form matched (nfkc, as_received, or NULL)"; like verify_password, never an error'),
('password_needs_rehash', 'c', 'password_needs_rehash(text)', 'secpolicy.password_needs_rehash', '{phc:text}', 'app',
 '{}', '{}', 'SELECT array_agg(coalesce(r::text, ''NULL'')) FROM %s AS r', '{true,false,NULL}', false, 10,
 'Hashing: "true unless the hash is at exactly the policy''s cost"'),
('password_violations', 'c', 'password_violations(text, text)', 'secpolicy.password_violations',
 '{password:text,username:text}', 'app', '{}', '{}',
 'SELECT array_agg(x) FROM %s AS r, unnest(r) AS x',
 '{too_short,too_long,missing_upper,missing_lower,missing_digit,missing_symbol,contains_username,common_password}', false, 20,
 'Rules: returns the rule codes a password breaks (table of codes); NULL for a NULL password'),
('totp_code', 'c', 'totp_code(text, timestamp with time zone, integer, integer, text)', 'secpolicy.totp_code',
 '{secret:text,time:timestamptz,digits:integer,period:integer,algorithm:text}', 'app', '{22023}', '{}', NULL, NULL, false, 15,
 'Two-factor: "Malformed base32, an empty secret, unsupported digits, periods or algorithms raise 22023"; Errors: 22023 invalid TOTP parameters, base32'),
('totp_match', 'c', 'totp_match(text, text, timestamp with time zone, integer, integer, integer, text)', 'secpolicy.totp_match',
 '{secret:text,code:text,time:timestamptz,window:integer,digits:integer,period:integer,algorithm:text}', 'app',
 '{22023}', '{}', NULL, NULL, false, 15,
 'Two-factor: "the matched time step or NULL"; invalid parameters and base32 raise 22023'),
('otpauth_uri', 'c', 'otpauth_uri(text, text, text, text, integer, integer)', 'secpolicy.otpauth_uri',
 '{secret:text,free:text,free:text,algorithm:text,digits:integer,period:integer}', 'app', '{22023}', '{}', NULL, NULL, false, 8,
 'Two-factor: invalid TOTP parameters and base32 raise 22023'),

-- ---------------------------------------------- internal and admin (C) --
('hash_stats', 'c', 'hash_stats()', 'secpolicy.hash_stats', '{}', 'admin', '{}', '{}', NULL, NULL, false, 1,
 'Reference: this backend''s argon2 counters'),
('distributed', 'c', 'distributed()', 'secpolicy.distributed', '{}', 'admin', '{}', '{}', NULL, NULL, false, 1,
 'Scaling out: whether the installation is distributed (false on a single node)'),
('account_key', 'c', 'account_key(text)', 'secpolicy.account_key', '{username:text}', 'admin', '{}', '{}', NULL, NULL, false, 5,
 'Scaling out: the account key of a username (0 for NULL), any bytes of any length'),
('route_key', 'c', 'route_key(text)', 'secpolicy.route_key', '{free:text}', 'owner', '{}', '{}', NULL, NULL, false, 4,
 'internal; the account key a token names after its last dot, 0 for anything else'),
('random_token', 'c', 'random_token(text)', 'secpolicy.random_token', '{prefix:text}', 'owner', '{22023}', '{}', NULL, NULL, false, 3,
 'internal; its comment: "<prefix>_" and 256 CSPRNG bits (a prefix is 1 to 16 lower-case letters: 22023 otherwise)'),
('token_digest', 'c', 'token_digest(text)', 'secpolicy.token_digest', '{token:text}', 'owner', '{}', '{}', NULL, NULL, false, 3,
 'internal; SHA-256 of a token'),
('write_password', 'c', 'write_password(bigint, text, text)', 'secpolicy.write_password', '{uid:bigint,pwvalue:text,mode:text}',
 'owner', '{22023}', '{}', NULL, NULL, true, 8,
 'internal; its comment: plaintext, temporary, rehash or import; Errors: 22023 a password breaks the policy, not an argon2id hash'),
('totp_new_secret', 'c', 'totp_new_secret()', 'secpolicy.totp_new_secret', '{}', 'owner', '{55000,58P01,F0000}', '{}',
 NULL, NULL, false, 2, 'internal; Errors: 55000 no sealing key, 58P01/F0000 key file problems'),
('totp_verify_sealed', 'c', 'totp_verify_sealed(bytea, text, timestamp with time zone, bigint, integer, integer, integer, text)',
 'secpolicy.totp_verify_sealed',
 '{sealed:bytea,code:text,time:timestamptz,step:bigint,window:integer,digits:integer,period:integer,algorithm:text}',
 'owner', '{22023,XX001,55000}', '{}', NULL, NULL, false, 10,
 'internal; Errors: XX001 a sealed secret failed authentication, 55000 no key, 22023 TOTP parameters'),
('reseal', 'c', 'reseal(bytea)', 'secpolicy.reseal', '{sealed:bytea}', 'owner', '{XX001,55000}', '{}', NULL, NULL, false, 5,
 'internal; Errors: XX001 sealed secret altered, 55000 no configured key'),
('sealed_key_id', 'c', 'sealed_key_id(bytea)', 'secpolicy.sealed_key_id', '{sealed:bytea}', 'admin', '{}', '{}', NULL, NULL, false, 4,
 'Reference: the key a sealed value was sealed under (NULL for anything else)'),
('key_status', 'c', 'key_status()', 'secpolicy.key_status', '{}', 'admin', '{58P01,F0000}', '{}', NULL, NULL, false, 1,
 'The sealing key: identifiers of the configured keys; 58P01/F0000 key file problems'),
('recovery_code', 'c', 'recovery_code()', 'secpolicy.recovery_code', '{}', 'owner', '{}', '{}', NULL, NULL, false, 1, 'internal'),
('set_current_session', 'c', 'set_current_session(bigint, bigint)', 'secpolicy.set_current_session', '{bigint:bigint,bigint:bigint}',
 'owner', '{}', '{}', NULL, NULL, false, 2, 'internal'),
('current_session_user', 'c', 'current_session_user()', 'secpolicy.current_session_user', '{}', 'app', '{}', '{}', NULL, NULL, false, 2,
 'Sessions: NULL outside a transaction that touched an active session'),
('current_session_id', 'c', 'current_session_id()', 'secpolicy.current_session_id', '{}', 'app', '{}', '{}', NULL, NULL, false, 2,
 'Sessions: NULL outside a transaction that touched an active session'),
('guess_check', 'c', 'guess_check(text, integer, integer, text)', 'secpolicy.guess_check',
 '{ledger_key:text,limit:integer,count:integer,label:text}', 'owner', '{}', '{}',
 'SELECT array_agg(coalesce(r, ''NULL'')) FROM %s AS r', '{ok,limit,full,NULL}', false, 4,
 'internal; its comment: ok, limit or full (STRICT: NULL for a NULL argument)'),
('guess_end', 'c', 'guess_end(text)', 'secpolicy.guess_end', '{ledger_key:text}', 'owner', '{}', '{}', NULL, NULL, false, 2, 'internal'),
('guess_clear', 'c', 'guess_clear(text)', 'secpolicy.guess_clear', '{ledger_key:text}', 'owner', '{}', '{}', NULL, NULL, false, 2, 'internal'),
('ledger_active', 'c', 'ledger_active()', 'secpolicy.ledger_active', '{}', 'admin', '{}', '{}', NULL, NULL, false, 1, 'Installing'),
('ledger_status', 'c', 'ledger_status()', 'secpolicy.ledger_status', '{}', 'admin', '{}', '{}', NULL, NULL, false, 1, 'its comment'),
('mark_statement', 'c', 'mark_statement()', 'secpolicy.mark_statement', '{}', 'owner', '{}', '{}', NULL, NULL, false, 1, 'internal'),
('redacted_functions', 'c', 'redacted_functions()', 'secpolicy.redacted_functions', '{}', 'admin', '{}', '{}', NULL, NULL, false, 1,
 'its comment'),
('catalog_reads', 'c', 'catalog_reads()', 'secpolicy.catalog_reads', '{}', 'admin', '{}', '{}', NULL, NULL, false, 1,
 'its comment: the columns the C code reads by name'),
('rollup_window_changes', 'c', 'rollup_window_changes()', 'secpolicy.rollup_window_changes', '{}', 'owner', '{}', '{}', NULL, NULL, false, 1,
 'internal; the rows of rollup_window_changes_read(), read once per snapshot'),
('utf8_bytes', 'c', 'utf8_bytes(text)', 'secpolicy.utf8_bytes', '{free:text}', 'admin', '{}', '{}', NULL, NULL, false, 4,
 'Audit / its comment: the UTF-8 bytes the chain hashes, invalid bytes of a SQL_ASCII database as \\xNN (never an error)'),
('audit_pending', 'c', 'audit_pending()', 'secpolicy.audit_pending', '{}', 'owner', '{}', '{}', NULL, NULL, false, 1,
 'internal; chains this transaction''s audit rows at commit (40001 only under REPEATABLE READ)'),

-- ----------------------------------------------------- end-user flows --
-- "End-user flows never raise for bad input: NULLs, empty strings,
-- megabyte-long values and unknown tokens get the statuses documented above."
('login', 'flow', 'login(text, text, inet, text)', 'secpolicy.login', '{username:text,password:text,inet:inet,free:text}', 'app',
 '{}', '{}', 'SELECT array_agg(r.status) FROM %s AS r',
 '{ok,mfa_required,mfa_enrollment_required,password_expired,password_change_required,invalid_credentials,reset_required,disabled}',
 false, 30, 'Login and lockout: status table'),
('verify_mfa', 'flow', 'verify_mfa(text, text, inet)', 'secpolicy.verify_mfa', '{challenge:text,code:text,inet:inet}', 'app',
 '{}', '{}', 'SELECT array_agg(r.status) FROM %s AS r', '{ok,invalid_code,expired_challenge,reset_required}', false, 20,
 'Two-factor: "answers ok with the session, invalid_code, expired_challenge or reset_required"'),
('totp_enroll', 'flow', 'totp_enroll(text)', 'secpolicy.totp_enroll', '{enrolment:text}', 'app', '{}', '{}',
 'SELECT array_agg(CASE WHEN r.secret IS NULL AND r.otpauth_uri IS NULL THEN ''nothing'' WHEN r.secret IS NOT NULL AND r.otpauth_uri LIKE ''otpauth://totp/%%'' THEN ''secret'' ELSE ''other'' END) FROM %s AS r',
 '{nothing,secret}', false, 10, 'Two-factor: a fresh secret and its otpauth URI (NULLs for an invalid token: type comment)'),
('totp_confirm', 'flow', 'totp_confirm(text, text)', 'secpolicy.totp_confirm', '{enrolment:text,code:text}', 'app', '{}', '{}',
 'SELECT array_agg(r.status) FROM %s AS r', '{ok,invalid_code,expired_challenge,reset_required}', false, 15,
 'Two-factor and the enrollment_result type: ok, invalid_code, expired_challenge or reset_required'),
('change_password', 'flow', 'change_password(text, text, text, inet, text, text)', 'secpolicy.change_password',
 '{username:text,password:text,password:text,inet:inet,session:text,code:text}', 'app', '{}', '{}',
 'SELECT array_agg(r.status) FROM %s AS r', '{ok,invalid_credentials,rejected,mfa_required,invalid_code,reset_required}',
 false, 15, 'Password change and reset: ok, invalid_credentials, rejected, mfa_required, invalid_code or reset_required'),
('request_password_reset', 'flow', 'request_password_reset(text, inet)', 'secpolicy.request_password_reset',
 '{username:text,inet:inet}', 'app', '{}', '{}',
 'SELECT array_agg(CASE WHEN r IS NULL THEN ''NULL'' WHEN r ~ ''^spr_[A-Za-z0-9_-]{43}$'' THEN ''token'' ELSE ''other'' END) FROM %s AS r',
 '{NULL,token}', false, 10, 'Password change and reset: a single-use token (spr_...), or NULL for an unknown or disabled account'),
('reset_password', 'flow', 'reset_password(text, text)', 'secpolicy.reset_password', '{reset:text,password:text}', 'app',
 '{}', '{}', 'SELECT array_agg(r.status) FROM %s AS r', '{ok,invalid_token,rejected}', false, 15,
 'Password change and reset: ok, invalid_token or rejected'),
('session_touch', 'flow', 'session_touch(text)', 'secpolicy.session_touch', '{session:text}', 'app', '{}', '{}',
 'SELECT array_agg(r.status) FROM %s AS r', '{active,expired,revoked,unknown}', false, 20,
 'Sessions: active, expired, revoked, unknown (also NULL, empty or oversized input)'),
('logout', 'flow', 'logout(text)', 'secpolicy.logout', '{session:text}', 'app', '{}', '{}',
 'SELECT array_agg(r::text) FROM %s AS r', '{true,false}', false, 8, 'Sessions: ends a session (true once)'),
('list_sessions', 'flow', 'list_sessions(text)', 'secpolicy.list_sessions', '{session:text}', 'app', '{}', '{}',
 'SELECT array_agg(CASE WHEN r.session_id IS NOT NULL THEN ''row'' END) FROM %s AS r', '{row}', false, 8,
 'Sessions: the live sessions of an active session''s user (none for any other token)'),
('end_other_sessions', 'flow', 'end_other_sessions(text)', 'secpolicy.end_other_sessions', '{session:text}', 'app', '{}', '{}',
 'SELECT array_agg(CASE WHEN r >= 0 THEN ''count'' END) FROM %s AS r', '{count}', false, 5,
 'Sessions: how many sessions ended'),

-- ------------------------------------------------------ admin functions --
('create_user', 'admin', 'create_user(text, text, boolean)', 'secpolicy.create_user', '{username:text,password:text,bool:boolean}',
 'admin', '{22023,22004,23505}', '{}', NULL, NULL, true, 4,
 'Administration: duplicate 23505, policy violation 22023, missing value 22004; invalid usernames 22023'),
('admin_set_password', 'admin', 'admin_set_password(text, text, text)', 'secpolicy.admin_set_password',
 '{username:text,password:text,reason:text}', 'admin', '{22023,22004,42704}', '{}', NULL, NULL, true, 4,
 'Administration: unknown user 42704, policy violation 22023, missing value or reason 22004'),
('maintain', 'admin', 'maintain()', 'secpolicy.maintain', '{}', 'admin', '{}', '{}', NULL, NULL, false, 1,
 'Administration: housekeeping, scheduled every few minutes; documents no error'),
('import_password_hash', 'admin', 'import_password_hash(text, text, text)', 'secpolicy.import_password_hash',
 '{username:text,phc:text,reason:text}', 'admin', '{22023,22004,42704}', '{}', NULL, NULL, true, 4,
 'Administration: "22023 for anything else, or beyond 1 GiB, 16 passes, 16 lanes"; unknown user 42704; NULL 22004');

-- --------------------------------------------------- trigger functions --
INSERT INTO fuzz.targets (name, kind, covers, template, args, role, sqlstates, proposed, undo, weight, documented) VALUES
('users_password_trigger: UPDATE secpolicy.users', 'trigger', 'users_password_trigger()',
 'UPDATE secpolicy.users SET password_hash = %2$s WHERE id = %1$s', '{uid:bigint,pwvalue:text}', 'owner',
 '{22023}', '{}', true, 10,
 'Accounts, history and expiry: plaintext is checked and hashed, an argon2id string kept; a violation raises 22023'),
('users_password_trigger: INSERT INTO secpolicy.users', 'trigger', 'users_password_trigger()',
 'INSERT INTO secpolicy.users (username, password_hash, password_changed_at) VALUES (%1$s, %2$s, %3$s)',
 '{username:text,pwvalue:text,time:timestamptz}', 'owner', '{22023,23505,23502,23514}', '{}', true, 6,
 'as above; the table''s own constraints: unique username 23505, NOT NULL 23502, CHECK on the username 23514'),
('password_policy_trigger: UPDATE of the password', 'trigger', 'password_policy_trigger()',
 'UPDATE fuzz.legacy SET password = %2$s WHERE id = %1$s', '{row_id:integer,pwvalue:text}', 'owner',
 '{22023}', '{}', false, 10,
 'Legacy tables: "a violation raises SQLSTATE 22023 with the rule codes in DETAIL; NULL and unchanged values pass"'),
('password_policy_trigger: UPDATE of the history by hand', 'trigger', 'password_policy_trigger()',
 'UPDATE fuzz.legacy SET pw_history = %2$s WHERE id = %1$s', '{row_id:integer,history:text[]}', 'owner',
 '{22023}', '{}', false, 5, 'Legacy tables: the history column belongs to the trigger: edits by hand are undone'),
('password_policy_trigger: INSERT .. ON CONFLICT', 'trigger', 'password_policy_trigger()',
 'INSERT INTO fuzz.legacy (id, login, password, pw_history) VALUES (%1$s, %2$s, %3$s, %4$s) ON CONFLICT (id) DO UPDATE SET password = EXCLUDED.password, login = EXCLUDED.login',
 '{row_id:integer,username:text,pwvalue:text,history:text[]}', 'owner', '{22023}', '{}', false, 6, 'Legacy tables'),
('password_policy_trigger: password column only', 'trigger', 'password_policy_trigger()',
 'INSERT INTO fuzz.legacy_bare (id, password) VALUES (%1$s, %2$s) ON CONFLICT (id) DO UPDATE SET password = EXCLUDED.password',
 '{row_id:integer,pwvalue:varchar}', 'owner', '{22023,22001}', '{}', false, 4,
 'Legacy tables: the one-argument form; a varchar(200) column (22001 when the value is longer than the column, from PostgreSQL)'),
('password_policy_trigger: rows written with the trigger off', 'trigger', 'password_policy_trigger()',
 'SET LOCAL session_replication_role = replica; UPDATE fuzz.legacy SET password = %2$s, pw_history = %3$s WHERE id = %1$s; SET LOCAL session_replication_role = DEFAULT; UPDATE fuzz.legacy SET password = %4$s WHERE id = %1$s',
 '{row_id:integer,password:text,history:text[],password:text}', 'owner', '{22023}', '{}', true, 4,
 'Legacy tables: "A password that was still stored in clear is hashed into the history when it is replaced"'),
('password_policy_trigger: migration with allow_hash_import', 'trigger', 'password_policy_trigger()',
 'SET LOCAL secpolicy.allow_hash_import = on; UPDATE fuzz.legacy SET password = %2$s WHERE id = %1$s',
 '{row_id:integer,pwvalue:text}', 'owner', '{22023}', '{}', true, 3,
 'Legacy tables: a superuser migrating with secpolicy.allow_hash_import keeps argon2id strings'),
('password_policy_trigger: misconfigured triggers', 'trigger', 'password_policy_trigger()',
 'INSERT INTO fuzz.legacy_misconfigured (id, login, pw) VALUES (%1$s, %2$s, %3$s)', '{row_id:integer,username:text,password:text}',
 'owner', '{22023}', '{42703,42804,39P01}', true, 3,
 'Legacy tables: arguments are the password column (text, or varchar of at least 128), username and text[] history columns; '
 'the README gives no SQLSTATE for a wrong definition (unknown column 42703, wrong type 42804, not BEFORE ROW 39P01)'),

-- ------------------------------------------------------- the policy row --
('policy: UPDATE secpolicy.policy', 'policy', NULL,
 'UPDATE secpolicy.policy SET %1$s', '{policy}', 'admin', '{23514,23502}', '{}', false, 3,
 'Administration: "The policy row is edited directly"; its CHECK (23514) and NOT NULL (23502) constraints bound each setting');

-- ----------------------------------------------------- protected columns --
INSERT INTO fuzz.targets (name, kind, covers, template, args, role, sqlstates, proposed, undo, weight, documented) VALUES
('reveal', 'c', 'reveal(regclass, name, text, text)',
 'SELECT secpolicy.reveal(%1$s, %2$s, %3$s, %4$s)', '{ptable:regclass,pcol:name,ciphertext:text,free:text}', 'app',
 '{XX001,42704,55000,42501}', '{}', false, 10,
 'Protected columns: NULL without the access; XX001 for a value that fails authentication; 42704 a column that is not protected; 42501 a secpolicy table'),
('blind_index', 'c', 'blind_index(regclass, name, text)',
 'SELECT secpolicy.blind_index(%1$s, %2$s, %3$s)', '{ptable:regclass,pcol:name,free:text}', 'app',
 '{42704,55000,54000,42501}', '{}', false, 8,
 'Errors: 42704 a column that is not protected; 55000 not searchable; 54000 a value over 1 MiB'),
('protect_trigger: writes to a protected table', 'trigger', 'protect_trigger()',
 'INSERT INTO fuzz.people (id, email) VALUES (%1$s, %2$s) ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email',
 '{row_id:integer,ciphertext:text}', 'owner', '{XX001,54000,55000}', '{}', false, 8,
 'Protecting a column: a value written in clear is encrypted; a ciphertext of another row or column: XX001; over 1 MiB: 54000; Errors: 55000 "none that can open a value" (a ciphertext under a key id not configured)'),
('register_changed: reveal grants', 'c', 'register_changed()',
 'SELECT secpolicy.grant_reveal(''secpolicy_app'', %1$s), secpolicy.revoke_reveal(''secpolicy_app'', %1$s)',
 '{free:text}', 'owner', '{22023,22004}', '{}', false, 2,
 'Errors: 22004 a NULL argument, 22023 an invalid access name'),
('open_value', 'c', 'open_value(regclass, name, text, text)',
 'SELECT secpolicy.open_value(%1$s, %2$s, %3$s, %4$s)', '{ptable:regclass,pcol:name,ciphertext:text,free:text}', 'owner',
 '{XX001,42704,55000,42501}', '{}', false, 5, 'internal; as reveal'),
('needs_encryption', 'c', 'needs_encryption(text, text)',
 'SELECT secpolicy.needs_encryption(%1$s, %2$s)', '{ciphertext:text,free:text}', 'owner', '{}', '{}', false, 3, 'internal'),
('new_index_key', 'c', 'new_index_key()', 'SELECT secpolicy.new_index_key()', '{}', 'owner', '{55000}', '{}', false, 1,
 'internal; 55000 without a sealing key'),
('set_reseal_target', 'c', 'set_reseal_target(regclass, name)', 'SELECT secpolicy.set_reseal_target(%1$s, %2$s)',
 '{ptable:regclass,pcol:name}', 'owner', '{42704}', '{}', false, 2, 'internal'),
('protected_key_id', 'c', 'protected_key_id(text)', 'SELECT secpolicy.protected_key_id(%1$s)', '{ciphertext:text}', 'admin',
 '{}', '{}', false, 3, 'Reference: the key a protected value was sealed under (NULL for anything else)'),
('start_protection_worker', 'c', 'start_protection_worker(oid)', 'SELECT secpolicy.start_protection_worker(%1$s)',
 '{bigint:oid}', 'owner', '{}', '{22003}', false, 1, 'internal; an OID out of range is PostgreSQL''s 22003');

-- ------------------------------------------------------- database roles --
-- scripts/fuzz makes fuzz_utf8 the policy database (secpolicy.database), so
-- the role policy is active there and 55000 elsewhere; it creates the login
-- roles fuzz_victim1..3 that these targets lock, link, hold and set passwords
-- of (never the roles the harness itself runs as).
INSERT INTO fuzz.targets (name, kind, covers, template, args, role, sqlstates, proposed, undo, weight, documented) VALUES
('role_policy_status', 'c', 'role_policy_status()', 'SELECT secpolicy.role_policy_status()', '{}', 'admin',
 '{}', '{}', false, 1, 'Database roles: whether the role policy is enforced'),
('require_role_policy', 'c', 'require_role_policy()', 'SELECT secpolicy.require_role_policy()', '{}', 'owner',
 '{55000}', '{}', false, 1, 'internal; 55000 outside the policy database'),
('role_state_live', 'c', 'role_state_live()', 'SELECT count(*) FROM secpolicy.role_state_live()', '{}', 'owner',
 '{}', '{}', false, 1, 'internal'),
('role_unlock_at_commit', 'c', 'role_unlock_at_commit(oid)', 'SELECT secpolicy.role_unlock_at_commit(%1$s)',
 '{role_oid:oid}', 'owner', '{}', '{}', false, 2, 'internal'),
('role_link_at_commit', 'c', 'role_link_at_commit(oid, bigint, boolean)',
 'SELECT secpolicy.role_link_at_commit(%1$s, %2$s, %3$s)', '{role_oid:oid,uid:bigint,bool:boolean}', 'owner',
 '{}', '{}', true, 2, 'internal'),
('role_window_at_commit', 'c', 'role_window_at_commit(oid, bigint, bigint, timestamp with time zone, inet)',
 'SELECT secpolicy.role_window_at_commit(%1$s, %2$s, %3$s, %4$s, %5$s)',
 '{role_oid:oid,uid:bigint,bigint:bigint,time:timestamptz,inet:inet}', 'owner', '{}', '{}', true, 3, 'internal'),
('role_hold', 'c', 'role_hold(oid)', 'SELECT secpolicy.role_hold(%1$s)', '{role_oid:oid}', 'owner',
 '{}', '{}', false, 2, 'internal; the number of connections of the role it terminated'),
('role_may_connect', 'c', 'role_may_connect(oid, inet, text)',
 'SELECT secpolicy.role_may_connect(%1$s, %2$s, %3$s) = ANY (ARRAY[''ok'', ''disabled'', ''no_access_window'', ''locked'', ''unavailable''])',
 '{role_oid:oid,inet:inet,free:text}', 'owner', '{}', '{}', false, 3,
 'internal; its comment: ok, disabled, no_access_window, locked or unavailable'),
('set_role_password', 'c', 'set_role_password(text, text)', 'SELECT secpolicy.set_role_password(%1$s, %2$s)',
 '{role_name:text,password:text}', 'admin', '{22023,22004,42704,42501,55000}', '{}', true, 6,
 'Database roles / Errors: 22023 the rules (rule codes), 22004 NULL, 42704 unknown role, 42501 privileges, 55000 outside the policy database');

-- ------------------------------------------------------ server settings --
INSERT INTO fuzz.targets (name, kind, covers, template, args, role, sqlstates, proposed, undo, weight, documented) VALUES
('settings: max_hash_work and password_match', 'c', 'password_match(text, text)',
 'SELECT set_config(''secpolicy.max_hash_work'', %1$s, true); SELECT secpolicy.password_match(%2$s, %3$s)',
 '{hash_work:text,password:text,phc:text}', 'owner', '{22023}', '{}', false, 4,
 'Server settings: max_hash_work 1 .. 16384 (PostgreSQL raises 22023 for a value out of range); password_match never raises'),
('settings: redact_functions, redact_tables', 'c', 'redacted_functions()',
 'SELECT set_config(''secpolicy.redact_functions'', %1$s, true), set_config(''secpolicy.redact_tables'', %2$s, true); SELECT secpolicy.redacted_functions()',
 '{name_list:text,name_list:text}', 'owner', '{}', '{}', false, 3,
 'Server settings: comma-separated names (any text is a valid value)');

-- ------------------------------------------------- the log redaction hook --
-- Counted by fuzz.statement_text; scripts/fuzz sends these statements
-- itself, at top level (the hook reads the top-level statement).
INSERT INTO fuzz.targets (name, kind, covers, template, args, weight, documented) VALUES
('log hook: top-level statement text', 'log', NULL, 'SELECT 1', '{}', 0,
 'Security notes: the emit_log_hook reads statements with a tokenizer "never raising"; any SQLSTATE of the statement itself is fine, a crash is not');
