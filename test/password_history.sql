-- pgTAP: the hash-on-write trigger of secpolicy.users and the password history.
--   plaintext written to users.password_hash (INSERT, UPDATE) is checked and
--   hashed; violations raise 22023 with DETAIL 'rule codes: ...'; the history
--   holds history_depth passwords (the current one included): reuse answers
--   reused_password until a password falls out; depth 1 and 0; pruning;
--   password_changed_at; an argon2id string written directly (import, restore)
--   is kept; write_password(..., 'plaintext') hashes even an argon2id-looking
--   string, which defeats smuggling a weak password's hash through
--   change_password(); write_password(..., 'rehash') keeps age and history.
BEGIN;
\ir lib/helpers.psql
SELECT plan(51);
UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192;
DO $$ BEGIN PERFORM secpolicy.apply_preset('org'); END $$;
UPDATE secpolicy.policy SET require_mfa = false;

\set ref '$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc'
\set ref_small '$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$8Tf44YakA6Z5zNBgblq13Nr+Q8FkCFWsjG4z6b1j7rM'

-- write a value to a user's password_hash directly
CREATE FUNCTION pg_temp.set_pw(u text, p text) RETURNS text LANGUAGE sql AS $$
    SELECT pg_temp.error_of(format('UPDATE secpolicy.users SET password_hash = %L WHERE username = %L', p, u));
$$;
CREATE FUNCTION pg_temp.hash_of(u text) RETURNS text LANGUAGE sql AS $$
    SELECT password_hash FROM secpolicy.users WHERE username = u;
$$;
CREATE FUNCTION pg_temp.history_count(u text) RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM secpolicy.password_history h JOIN secpolicy.users x ON x.id = h.user_id WHERE x.username = u;
$$;

-- hashing on write
SELECT ok(secpolicy.create_user('hanna', 'Start-Pass-01x') > 0, 'create_user hanna');
SELECT alike(pg_temp.hash_of('hanna'), '$argon2id$v=19$m=8,t=1,p=1$%', 'the password is stored as an argon2id hash at the policy cost');
SELECT ok(secpolicy.verify_password('Start-Pass-01x', pg_temp.hash_of('hanna')), 'and it verifies');
SELECT is((SELECT ROW(password_changed_at, password_checked_at)::text FROM secpolicy.users WHERE username = 'hanna'),
          ROW(now(), now())::text, 'password_changed_at and password_checked_at are set');
SELECT is(pg_temp.history_count('hanna'), 0::bigint, 'a new account has no history');

INSERT INTO secpolicy.users (username, password_hash) VALUES ('ivan', 'Direct-Insert-2y');
SELECT ok(pg_temp.hash_of('ivan') LIKE '$argon2id$%' AND secpolicy.verify_password('Direct-Insert-2y', pg_temp.hash_of('ivan')),
          'a plaintext INSERT into users is hashed');
SELECT is((SELECT password_changed_at FROM secpolicy.users WHERE username = 'ivan'), now(), 'and password_changed_at is set');
SELECT is(pg_temp.error_of($$INSERT INTO secpolicy.users (username, password_hash) VALUES ('jack', 'zqxvw')$$),
          '22023: rule codes: too_short, missing_upper, missing_digit, missing_symbol',
          'a weak plaintext INSERT raises 22023 with the rule codes in DETAIL');
SELECT is(pg_temp.error_of($$INSERT INTO secpolicy.users (username, password_hash) VALUES ('jackson', 'My-Jackson-pw9')$$),
          '22023: rule codes: contains_username', 'the trigger checks the row''s username');
SELECT is((SELECT count(*) FROM secpolicy.users WHERE username IN ('jack', 'jackson')), 0::bigint, 'rejected rows are not stored');

SELECT pg_temp.hash_of('hanna') AS hanna_h1 \gset
UPDATE secpolicy.users SET password_changed_at = now() - interval '1 day' WHERE username = 'hanna';
SELECT is(pg_temp.set_pw('hanna', 'zqxvw'), '22023: rule codes: too_short, missing_upper, missing_digit, missing_symbol',
          'a weak plaintext UPDATE raises 22023');
SELECT is(pg_temp.hash_of('hanna'), :'hanna_h1', 'the hash is unchanged after a rejected change');
SELECT is((SELECT password_changed_at FROM secpolicy.users WHERE username = 'hanna'), now() - interval '1 day',
          'password_changed_at is unchanged after a rejected change');
SELECT is(pg_temp.set_pw('hanna', 'Start-Pass-01x'), '22023: rule codes: reused_password', 'the current password cannot be set again');

-- history depth 5, the current password included
SELECT is(pg_temp.set_pw('hanna', 'Second-Pass-02x'), 'ok', 'second password');
SELECT is((SELECT password_changed_at FROM secpolicy.users WHERE username = 'hanna'), now(), 'password_changed_at follows the change');
SELECT is(pg_temp.history_count('hanna'), 1::bigint, 'the replaced hash went into the history');
SELECT is((SELECT password_hash FROM secpolicy.password_history WHERE user_id = pg_temp.uid('hanna')), :'hanna_h1',
          'the history holds the replaced hash itself');
SELECT is(pg_temp.set_pw('hanna', 'Third-Pass-03x'), 'ok', 'third password');
SELECT is(pg_temp.set_pw('hanna', 'Fourth-Pass-04x'), 'ok', 'fourth password');
SELECT is(pg_temp.set_pw('hanna', 'Fifth-Pass-05x'), 'ok', 'fifth password');
SELECT is(pg_temp.history_count('hanna'), 4::bigint, 'history_depth 5: four stored hashes besides the current one');
SELECT is(pg_temp.set_pw('hanna', 'Start-Pass-01x'), '22023: rule codes: reused_password', 'the password of four changes ago is refused');
SELECT is(pg_temp.set_pw('hanna', 'Third-Pass-03x'), '22023: rule codes: reused_password', 'a password in the middle of the history is refused');
SELECT is(pg_temp.set_pw('hanna', 'Sixth-Pass-06x'), 'ok', 'sixth password');
SELECT is(pg_temp.history_count('hanna'), 4::bigint, 'the history is pruned to four stored hashes');
SELECT is(pg_temp.set_pw('hanna', 'Start-Pass-01x'), 'ok', 'the first password fell out of the history and is accepted again');
SELECT is((SELECT count(*) FROM secpolicy.password_history WHERE password_hash !~ '^\$argon2id\$v=19\$'), 0::bigint,
          'the history holds argon2id hashes only');

-- depth 1 and 0
UPDATE secpolicy.policy SET history_depth = 1;
SELECT is(pg_temp.set_pw('hanna', 'Start-Pass-01x'), '22023: rule codes: reused_password', 'history_depth 1: the current password is refused');
SELECT is(pg_temp.set_pw('hanna', 'Sixth-Pass-06x'), 'ok', 'history_depth 1: the previous password is accepted');
SELECT is(pg_temp.history_count('hanna'), 0::bigint, 'history_depth 1: nothing is stored');
UPDATE secpolicy.policy SET history_depth = 0;
SELECT is(pg_temp.set_pw('hanna', 'Sixth-Pass-06x'), 'ok', 'history_depth 0: even the current password is accepted');
UPDATE secpolicy.policy SET history_depth = 3;
SELECT is(pg_temp.set_pw('hanna', 'Seventh-Pass-07x'), 'ok', 'history_depth 3: a new password');
SELECT is(pg_temp.set_pw('hanna', 'Eighth-Pass-08x'), 'ok', 'history_depth 3: another one');
SELECT is(pg_temp.set_pw('hanna', 'Sixth-Pass-06x'), '22023: rule codes: reused_password', 'history_depth 3: two changes back is refused');
SELECT is(pg_temp.set_pw('hanna', 'Ninth-Pass-09x'), 'ok', 'history_depth 3: a third one');
SELECT is(pg_temp.set_pw('hanna', 'Sixth-Pass-06x'), 'ok', 'history_depth 3: three changes back is accepted');
UPDATE secpolicy.policy SET history_depth = 5;

-- writes that are not a new password
SELECT pg_temp.hash_of('hanna') AS hanna_h2 \gset
UPDATE secpolicy.users SET password_changed_at = now() - interval '2 days' WHERE username = 'hanna';
UPDATE secpolicy.users SET disabled_reason = 'unrelated edit' WHERE username = 'hanna';
UPDATE secpolicy.users SET password_hash = password_hash WHERE username = 'hanna';
SELECT is(pg_temp.hash_of('hanna') || (SELECT password_changed_at FROM secpolicy.users WHERE username = 'hanna'),
          :'hanna_h2' || (now() - interval '2 days'),
          'an unrelated UPDATE and an unchanged hash keep hash and password_changed_at');

-- import: an argon2id string written directly is kept as it is
SELECT pg_temp.history_count('hanna') AS hist_before \gset
SELECT is(pg_temp.set_pw('hanna', :'ref'), 'ok', 'a direct write of an argon2id string is accepted');
SELECT is(pg_temp.hash_of('hanna'), :'ref', 'and stored as it is');
SELECT is((SELECT ROW(password_changed_at, password_checked_at)::text FROM secpolicy.users WHERE username = 'hanna'),
          ROW(now(), NULL::timestamptz)::text, 'an import sets password_changed_at; the rules were never checked on it');
SELECT is(pg_temp.history_count('hanna'), (:hist_before + 1)::bigint, 'the replaced hash went into the history');
INSERT INTO secpolicy.users (username, password_hash, password_changed_at) VALUES ('kate', :'ref_small', '2020-01-01 00:00:00+00');
SELECT is((SELECT password_hash || ' ' || password_changed_at FROM secpolicy.users WHERE username = 'kate'),
          :'ref_small' || ' ' || '2020-01-01 00:00:00+00'::timestamptz,
          'a restored row keeps its hash and its password_changed_at');

-- write_password
SELECT ok(secpolicy.write_password(pg_temp.uid('ivan'), :'ref_small', 'plaintext'), 'write_password plaintext with an argon2id-looking string');
SELECT ok(pg_temp.hash_of('ivan') <> :'ref_small' AND secpolicy.verify_password(:'ref_small', pg_temp.hash_of('ivan'))
          AND NOT secpolicy.verify_password('password', pg_temp.hash_of('ivan')),
          'the string was hashed as plaintext: the password is the string, not what it hashes');
SELECT is(pg_temp.error_of(format('SELECT secpolicy.write_password(%s, %L, %L)', pg_temp.uid('ivan'), 'Other-Pass-9x', 'bogus')),
          '22023: ', 'an unknown mode raises 22023');
SELECT matches(pg_temp.error_of(format('SELECT secpolicy.write_password(%s, %L, %L)', pg_temp.uid('ivan'), 'Other-Pass-9x', 'rehash')),
          '^22023: ', 'rehash mode refuses a value that is not an argon2id hash');
SELECT is(secpolicy.write_password(-1, 'Other-Pass-9x', 'plaintext'), false, 'write_password answers false for an unknown user id');

-- the smuggling attack: the hash of a weak password offered as a "new password"
CREATE TEMP TABLE smuggle AS SELECT secpolicy.hash_password('weakpass') AS h;
SELECT is((SELECT (secpolicy.change_password('ivan', :'ref_small', (SELECT h FROM smuggle))).status), 'ok',
          'change_password accepts the argon2id string as a (strong) plaintext');
SELECT ok(pg_temp.hash_of('ivan') <> (SELECT h FROM smuggle) AND NOT secpolicy.verify_password('weakpass', pg_temp.hash_of('ivan')),
          'the stored hash is not the smuggled one and the weak password does not verify');
SELECT is((SELECT status FROM secpolicy.login('ivan', 'weakpass')), 'invalid_credentials', 'the weak password does not log in');

SELECT * FROM finish();
ROLLBACK;
