-- pgTAP: hostile and malformed input to the flows, and security invariant 1.
--   NULLs in every flow give the documented status, never an error;
--   a 1 MB password: login answers invalid_credentials without any argon2
--   work (existing and unknown users), password_violations answers too_long,
--   change/reset answer rejected too_long, create_user raises 22023;
--   a 1 MB username is kept as its first 256 characters, a 1 MB user agent as
--   512; 1 MB tokens are unknown/invalid; control characters in names;
--   no password or token text appears in any column of any secpolicy table
--   after the flows (text, arrays and jsonb searched as text, bytea as bytes),
--   nor in the message, detail, hint or context of the errors raised;
--   an imported hash of the empty password does not make login() raise.
BEGIN;
\ir lib/helpers.psql
SELECT plan(59);
UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192;
DO $$ BEGIN PERFORM secpolicy.apply_preset('org'); END $$;
UPDATE secpolicy.policy SET require_mfa = false;

-- every secret used below, to look for afterwards
CREATE TEMP TABLE secrets (s text PRIMARY KEY);
INSERT INTO secrets VALUES ('Thrush-Pass-01x'), ('Thrush-Pass-02x'), ('Thrush-Pass-03x'), ('Wrong-Guess-01x'),
                           ('Zebra-Unique-77!'), ('Temp-Admin-Pass-9x'), ('Robin-Pass-01x'), ('zqxvw');

-- 'SQLSTATE' and whether a secret shows in any part of the error a statement
-- raises (the context's quote of the statement itself aside)
CREATE FUNCTION pg_temp.error_leaks(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text;
    m text;
    d text;
    h text;
    c text;
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL,
                            h = PG_EXCEPTION_HINT, c = PG_EXCEPTION_CONTEXT;
    RETURN st || CASE WHEN EXISTS (SELECT 1 FROM pg_temp.secrets s
                                    WHERE strpos(replace(concat_ws('|', m, d, h, c), q, ''), s.s) > 0) THEN ' leaks' ELSE ' clean' END;
END
$$;
-- a token without its prefix (the random part); other secrets as they are
CREATE FUNCTION pg_temp.token_body(s text) RETURNS text LANGUAGE sql AS $$
    SELECT CASE WHEN s ~ '^sp[a-z]_' THEN substr(s, 5) ELSE s END;
$$;
-- every column of every secpolicy table that holds a secret: 'table.column,...' or NULL
CREATE FUNCTION pg_temp.leaks() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    col record;
    hit boolean;
    found text;
BEGIN
    FOR col IN
        SELECT c.relname, a.attname, t.typname
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          JOIN pg_type t ON t.oid = a.atttypid
         WHERE n.nspname = 'secpolicy' AND c.relkind IN ('r', 'p')
           AND t.typname NOT IN ('int2', 'int4', 'int8', 'bool', 'timestamptz', 'timestamp', 'date', 'interval', 'inet', 'oid', 'float8', 'numeric')
         ORDER BY 1, 2
    LOOP
        IF col.typname = 'bytea' THEN
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM secpolicy.%I x, pg_temp.secrets s'
                           ' WHERE position(convert_to(s.s, %L) IN x.%I) > 0'
                           '    OR position(convert_to(pg_temp.token_body(s.s), %L) IN x.%I) > 0)',
                           col.relname, 'UTF8', col.attname, 'UTF8', col.attname) INTO hit;
        ELSE
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM secpolicy.%I x, pg_temp.secrets s'
                           ' WHERE strpos(x.%I::text, s.s) > 0 OR strpos(x.%I::text, pg_temp.token_body(s.s)) > 0)',
                           col.relname, col.attname, col.attname) INTO hit;
        END IF;
        IF hit THEN
            found := concat_ws(',', found, col.relname || '.' || col.attname);
        END IF;
    END LOOP;
    RETURN found;
END
$$;

SELECT secpolicy.create_user('uma', 'Thrush-Pass-01x') AS uma \gset
SELECT secpolicy.create_user('vera', 'Robin-Pass-01x') AS vera \gset

-- NULLs everywhere
SELECT is((SELECT ROW(l.*)::text FROM secpolicy.login(NULL, NULL) l), '(invalid_credentials,,,,)', 'login(NULL, NULL)');
SELECT is(pg_temp.status(NULL, 'Thrush-Pass-01x'), 'invalid_credentials', 'login(NULL, password)');
SELECT is(pg_temp.status('uma', NULL), 'invalid_credentials', 'login(username, NULL)');
SELECT is((SELECT l.status FROM secpolicy.login('uma', 'Thrush-Pass-01x', NULL, NULL) l), 'ok', 'login with NULL address and agent: ok');
SELECT is((SELECT ROW(c.*)::text FROM secpolicy.change_password(NULL, NULL, NULL) c), '(invalid_credentials,)', 'change_password(NULL, NULL, NULL)');
SELECT is((SELECT ROW(c.*)::text FROM secpolicy.change_password('uma', NULL, 'Thrush-Pass-02x') c), '(invalid_credentials,)',
          'change_password with a NULL old password');
SELECT is((SELECT ROW(c.*)::text FROM secpolicy.change_password('uma', 'Thrush-Pass-01x', NULL) c), '(rejected,{too_short})',
          'change_password with a NULL new password: rejected');
SELECT is((SELECT ROW(c.*)::text FROM secpolicy.change_password('uma', 'Thrush-Pass-01x', '') c), '(rejected,{too_short})',
          'change_password with an empty new password: rejected');
SELECT is((SELECT ROW(c.*)::text FROM secpolicy.change_password('uma', 'Thrush-Pass-01x', 'Thrush-Pass-02x', NULL, NULL) c), '(ok,{})',
          'change_password with NULL address and session: ok');
SELECT is(secpolicy.request_password_reset(NULL, NULL), NULL, 'request_password_reset(NULL, NULL)');
SELECT secpolicy.request_password_reset('uma') AS uma_r \gset
INSERT INTO secrets VALUES (:'uma_r');
SELECT is((SELECT ROW(r.*)::text FROM secpolicy.reset_password(NULL, NULL) r), '(invalid_token,)', 'reset_password(NULL, NULL)');
SELECT is((SELECT ROW(r.*)::text FROM secpolicy.reset_password(:'uma_r', NULL) r), '(rejected,{too_short})', 'reset_password(token, NULL): rejected');
SELECT is((SELECT ROW(s.*)::text FROM secpolicy.session_touch(NULL) s), '(unknown,,)', 'session_touch(NULL)');
SELECT is(secpolicy.logout(NULL), false, 'logout(NULL)');
SELECT is((SELECT count(*) FROM secpolicy.list_sessions(NULL)), 0::bigint, 'list_sessions(NULL)');
SELECT is(secpolicy.end_other_sessions(NULL), 0, 'end_other_sessions(NULL)');
SELECT is((SELECT ROW(m.*)::text FROM secpolicy.verify_mfa(NULL, NULL, NULL) m), '(expired_challenge,,)', 'verify_mfa(NULL, NULL)');
SELECT is((SELECT ROW(e.*)::text FROM secpolicy.totp_enroll(NULL) e), '(,)', 'totp_enroll(NULL)');
SELECT is((SELECT ROW(e.*)::text FROM secpolicy.totp_confirm(NULL, NULL) e), '(expired_challenge,,)', 'totp_confirm(NULL, NULL)');
SELECT is(secpolicy.password_violations(NULL, NULL), NULL, 'password_violations(NULL, NULL)');
SELECT is(secpolicy.verify_password(NULL, NULL), false, 'verify_password(NULL, NULL)');
SELECT is(secpolicy.hash_password(NULL), NULL, 'hash_password(NULL)');
SELECT is(secpolicy.password_needs_rehash(NULL), NULL, 'password_needs_rehash(NULL)');

-- a megabyte of password
CREATE TEMP TABLE big AS SELECT 'Zebra-Unique-77!' || repeat('Aa1!', 262144) AS pw, repeat('n', 1048576) AS name,
                                'sps_' || repeat('A', 1048576) AS tok;
SELECT is(octet_length((SELECT pw FROM big)), 1048592, 'the big password is over a megabyte');
SELECT pg_temp.verifications() AS v0 \gset
SELECT is(pg_temp.status('uma', (SELECT pw FROM big)), 'invalid_credentials', '1 MB password, existing user: invalid_credentials');
SELECT is(pg_temp.status('nobody-here', (SELECT pw FROM big)), 'invalid_credentials', '1 MB password, unknown user: invalid_credentials');
SELECT is(pg_temp.verifications() - :v0, 0::bigint, 'neither ran an argon2 computation');
SELECT is(secpolicy.password_violations((SELECT pw FROM big)), '{too_long}'::text[], 'password_violations of 1 MB: too_long');
SELECT is(secpolicy.password_violations(repeat('a', 1048576)), '{too_long,missing_upper,missing_digit,missing_symbol}'::text[],
          'a megabyte of one letter: too_long and the missing classes');
SELECT is((SELECT ROW(c.*)::text FROM secpolicy.change_password('uma', 'Thrush-Pass-02x', (SELECT pw FROM big)) c), '(rejected,{too_long})',
          'change_password to 1 MB: rejected, too_long');
SELECT is((SELECT ROW(r.*)::text FROM secpolicy.reset_password(:'uma_r', (SELECT pw FROM big)) r), '(rejected,{too_long})',
          'reset_password to 1 MB: rejected, too_long');
SELECT throws_ok($$SELECT secpolicy.create_user('wade', (SELECT pw FROM big))$$, '22023', NULL, 'create_user with 1 MB: 22023');

-- a megabyte of username, agent and token
SELECT is((SELECT l.status FROM secpolicy.login((SELECT name FROM big), 'Thrush-Pass-02x', '203.0.113.9', (SELECT name FROM big)) l),
          'invalid_credentials', '1 MB username and agent: invalid_credentials');
SELECT is((SELECT ROW(char_length(a.username), a.username = left(b.name, 256), char_length(a.user_agent), a.user_id, a.outcome)::text
             FROM secpolicy.login_attempts a, big b ORDER BY a.id DESC LIMIT 1),
          '(256,t,512,,unknown_user)', 'the attempt row keeps the first 256 characters of the name and 512 of the agent');
SELECT is((SELECT max(char_length(username_key)) FROM secpolicy.unknown_user_failures), 256, 'the unknown-user counter key is cut to 256 too');
SELECT is(secpolicy.request_password_reset((SELECT name FROM big)), NULL, 'request_password_reset with a 1 MB name: NULL');
SELECT is((SELECT c.status FROM secpolicy.change_password((SELECT name FROM big), 'Thrush-Pass-02x', 'Thrush-Pass-03x') c), 'invalid_credentials',
          'change_password with a 1 MB name: invalid_credentials');
SELECT is((SELECT s.status FROM secpolicy.session_touch((SELECT tok FROM big)) s), 'unknown', 'session_touch with a 1 MB token: unknown');
SELECT is(secpolicy.logout((SELECT tok FROM big)), false, 'logout with a 1 MB token: false');
SELECT is((SELECT r.status FROM secpolicy.reset_password((SELECT tok FROM big), 'Thrush-Pass-03x') r), 'invalid_token', 'reset_password with a 1 MB token');
SELECT is((SELECT m.status FROM secpolicy.verify_mfa((SELECT tok FROM big), '123456') m), 'expired_challenge', 'verify_mfa with a 1 MB token');
SELECT is((SELECT m.status FROM secpolicy.totp_confirm((SELECT tok FROM big), repeat('1', 1048576)) m), 'expired_challenge',
          'totp_confirm with a 1 MB token and code');

-- odd characters
SELECT is(pg_temp.status(E'uma\n', 'Thrush-Pass-02x'), 'invalid_credentials', 'a name with a newline is another (unknown) name');
SELECT is(pg_temp.status(E'uma\t', 'Thrush-Pass-02x'), 'invalid_credentials', 'a name with a tab too');
SELECT is(pg_temp.status(' uma', 'Thrush-Pass-02x'), 'invalid_credentials', 'names are not trimmed');
SELECT is(pg_temp.status('uma', 'Thrush-Pass-02x '), 'invalid_credentials', 'passwords are not trimmed');
SELECT is(pg_temp.status('uma', 'Thrush-Pass-02x'), 'ok', 'the exact password still works');
SELECT is(pg_temp.status('ümä', 'Thrush-Pass-02x'), 'invalid_credentials', 'a non-ASCII unknown name');

-- more flows that carry secrets, for the scan below
SELECT session_token AS uma_s FROM secpolicy.login('uma', 'Thrush-Pass-02x') \gset
INSERT INTO secrets VALUES (:'uma_s');
SELECT is(pg_temp.status('uma', 'Wrong-Guess-01x'), 'invalid_credentials', 'a wrong guess');
SELECT is(pg_temp.status('Weakling-Guess', 'Wrong-Guess-01x'), 'invalid_credentials', 'an unknown name');
UPDATE secpolicy.policy SET require_mfa = true;
SELECT challenge_token AS uma_c FROM secpolicy.login('uma', 'Thrush-Pass-02x') \gset
INSERT INTO secrets VALUES (:'uma_c');
UPDATE secpolicy.policy SET require_mfa = false;
SELECT is((SELECT ROW(r.*)::text FROM secpolicy.reset_password(:'uma_r', 'Thrush-Pass-03x') r), '(ok,{})', 'a reset');
DO $$ BEGIN PERFORM secpolicy.admin_set_password('uma', 'Temp-Admin-Pass-9x', 'regress'); END $$;
INSERT INTO secrets SELECT secpolicy.hash_password('zqxvw');
SELECT is((SELECT c.status FROM secpolicy.change_password('vera', 'Robin-Pass-01x', (SELECT max(s) FROM secrets WHERE s LIKE '$argon2id$%')) c),
          'ok', 'vera''s new password is an argon2id-looking string');

-- errors do not carry the password
SELECT is(pg_temp.error_leaks($$SELECT secpolicy.create_user('xena', 'zqxvw')$$), '22023 clean', 'create_user: the error does not show the password');
SELECT is(pg_temp.error_leaks($$SELECT secpolicy.admin_set_password('vera', 'zqxvw')$$), '22023 clean', 'admin_set_password: the error does not show it');
SELECT is(pg_temp.error_leaks($$UPDATE secpolicy.users SET password_hash = 'zqxvw' WHERE username = 'vera'$$), '22023 clean',
          'the users trigger: the error does not show it');
SELECT is(pg_temp.error_leaks($$SELECT secpolicy.hash_password('')$$), '22023 clean', 'hash_password('''')');

-- invariant 1: no password or token anywhere
SELECT is(pg_temp.leaks(), NULL, 'no password or token text in any column of any secpolicy table');

-- an account migrated with the hash of an empty password (libsodium, t=2, 64 KiB):
-- the flow must answer with a status, and an empty password must not open a session
SELECT secpolicy.create_user('yann', 'Siskin-Pass-01x') AS yann \gset
DO $$ BEGIN PERFORM secpolicy.import_password_hash('yann',
    '$argon2id$v=19$m=64,t=2,p=1$v+BBuSkBP6S7IPH9XNLc0A$kChr4AiOO30Ypb64RwxQUyZK4gIjO7NMcN8CzVcTHtg', 'regress'); END $$;
SELECT lives_ok($$SELECT secpolicy.login('yann', '')$$, 'login with an empty password on such an account does not raise');
CREATE FUNCTION pg_temp.status_or_error(u text, p text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RETURN pg_temp.status(u, p);
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR ' || SQLSTATE;
END
$$;
SELECT is(pg_temp.status_or_error('yann', ''), 'invalid_credentials', 'and answers invalid_credentials');

SELECT * FROM finish();
ROLLBACK;
