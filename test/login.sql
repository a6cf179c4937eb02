-- pgTAP: secpolicy.login() statuses and side effects.
--   ok (require_mfa off): session token 'sps_' + 43 base64url characters,
--     only its SHA-256 digest (token_digest) stored; password_expires_at;
--     last_login_*; case-insensitive usernames;
--   invalid_credentials: wrong password, unknown user, NULL / empty inputs;
--   disabled, password_expired (age and expire_password()), password_change_required
--     (admin_set_password), reset_required (force_password_reset) are answered
--     only after a correct password; mfa_enrollment_required when MFA is required;
--   login_attempts rows (user id or NULL, username as typed, address, agent,
--     success, outcome);
--   transparent rehash after raising the cost (history and age unchanged), also
--     of an imported reference hash;
--   argon2 work per attempt (hash_stats): one verification for an unknown user,
--     a wrong password, a right one, and an account without a password.
BEGIN;
\ir lib/helpers.psql
SELECT plan(71);
UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192;
DO $$ BEGIN PERFORM secpolicy.apply_preset('org'); END $$;
UPDATE secpolicy.policy SET require_mfa = false;

\set ref '$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc'

-- the newest attempt row, without its id and time
CREATE FUNCTION pg_temp.last_attempt() RETURNS text LANGUAGE sql AS $$
    SELECT ROW(a.user_id, a.username, a.client_addr, a.user_agent, a.success, a.outcome, a.stage)::text
      FROM secpolicy.login_attempts a ORDER BY a.id DESC LIMIT 1;
$$;
-- the login result without the token values: status, user, whether tokens came, expiry
CREATE FUNCTION pg_temp.shape(u text, p text) RETURNS text LANGUAGE sql AS $$
    SELECT ROW(l.status, l.user_id, l.session_token IS NOT NULL, l.challenge_token IS NOT NULL)::text
      FROM secpolicy.login(u, p) l;
$$;
CREATE FUNCTION pg_temp.hashes() RETURNS bigint LANGUAGE sql AS $$
    SELECT hashes FROM secpolicy.hash_stats();
$$;

SELECT secpolicy.create_user('carol', 'Kestrel-Pass-01x') AS carol \gset

-- ok
CREATE TEMP TABLE l1 AS SELECT * FROM secpolicy.login('CaRoL', 'Kestrel-Pass-01x', '192.0.2.10', 'regress-agent/1.0');
SELECT is((SELECT status FROM l1), 'ok', 'right password, MFA not required: ok');
SELECT is((SELECT user_id FROM l1), :carol::bigint, 'the user id is returned');
SELECT matches((SELECT session_token FROM l1), '^sps_[A-Za-z0-9_-]{43}$', 'session token is sps_ and 43 base64url characters');
SELECT is((SELECT challenge_token FROM l1), NULL, 'no challenge token');
SELECT is((SELECT password_expires_at FROM l1),
          (SELECT password_changed_at + interval '6 months' FROM secpolicy.users WHERE id = :carol),
          'password_expires_at is password_changed_at + max_password_age');
SELECT is((SELECT count(*) FROM secpolicy.sessions s, l1
            WHERE s.user_id = :carol AND s.token_digest = secpolicy.token_digest(l1.session_token)
              AND s.ended_at IS NULL AND s.client_addr = '192.0.2.10' AND s.user_agent = 'regress-agent/1.0'),
          1::bigint, 'one live session stored under the token''s digest, with address and agent');
SELECT is((SELECT secpolicy.token_digest(session_token) FROM l1), (SELECT sha256(convert_to(session_token, 'UTF8')) FROM l1),
          'token_digest is SHA-256 of the token');
SELECT is((SELECT count(*) FROM secpolicy.sessions s, l1 WHERE strpos(row_to_json(s)::text, l1.session_token) > 0
                                                          OR strpos(row_to_json(s)::text, substr(l1.session_token, 5)) > 0),
          0::bigint, 'the token itself is stored nowhere in sessions');
SELECT is(pg_temp.last_attempt(), format('(%s,CaRoL,192.0.2.10,regress-agent/1.0,t,ok,password)', :carol),
          'attempt row: user id, username as typed, address, agent, success, outcome');
SELECT is((SELECT ROW(last_login_at, last_login_addr)::text FROM secpolicy.users WHERE id = :carol),
          ROW(now(), '192.0.2.10'::inet)::text, 'last_login_at and last_login_addr are stamped');
SELECT isnt((SELECT session_token FROM secpolicy.login('carol', 'Kestrel-Pass-01x')), (SELECT session_token FROM l1),
            'every login gets a new token');

-- invalid_credentials
SELECT is(pg_temp.shape('carol', 'Kestrel-Pass-02x'), '(invalid_credentials,,f,f)', 'wrong password: invalid_credentials, nothing else');
SELECT is(pg_temp.failed('carol'), 1, 'the failure is counted');
SELECT is(pg_temp.last_attempt(), format('(%s,carol,,,f,invalid_password,password)', :carol), 'attempt row of a wrong password');
SELECT is(pg_temp.shape('Nobody-Here', 'Kestrel-Pass-01x'), '(invalid_credentials,,f,f)', 'unknown user: invalid_credentials');
SELECT is(pg_temp.last_attempt(), '(,Nobody-Here,,,f,unknown_user,password)', 'attempt row of an unknown user: NULL user id, name as typed');
SELECT is(pg_temp.shape(NULL, 'Kestrel-Pass-01x'), '(invalid_credentials,,f,f)', 'NULL username: invalid_credentials');
SELECT is(pg_temp.last_attempt(), '(,,,,f,invalid_input,password)', 'attempt row of a NULL username');
SELECT is(pg_temp.shape('', 'Kestrel-Pass-01x'), '(invalid_credentials,,f,f)', 'empty username: invalid_credentials');
SELECT is(pg_temp.shape('carol', NULL), '(invalid_credentials,,f,f)', 'NULL password: invalid_credentials');
SELECT is(pg_temp.failed('carol'), 1, 'a NULL password is not evaluated');
SELECT is(pg_temp.shape('carol', ''), '(invalid_credentials,,f,f)', 'empty password: invalid_credentials');
SELECT is(pg_temp.failed('carol'), 2, 'an empty password is a wrong guess');
SELECT is(pg_temp.status('carol', 'Kestrel-Pass-01x'), 'ok', 'a complete login');
SELECT is(pg_temp.failed('carol'), 0, 'clears the failure counter');

-- disabled
DO $$ BEGIN PERFORM secpolicy.disable_user('carol', 'regress: left the company'); END $$;
SELECT is(pg_temp.shape('carol', 'Kestrel-Pass-01x'), '(disabled,,f,f)', 'disabled account, right password: disabled, no session');
SELECT is(pg_temp.last_attempt(), format('(%s,carol,,,f,disabled,password)', :carol), 'attempt row: disabled');
SELECT is(pg_temp.status('carol', 'Kestrel-Pass-02x'), 'invalid_credentials', 'disabled account, wrong password: invalid_credentials');
DO $$ BEGIN PERFORM secpolicy.enable_user('carol'); END $$;
SELECT is(pg_temp.status('carol', 'Kestrel-Pass-01x'), 'ok', 'enabled again: ok');

-- password_expired
UPDATE secpolicy.users SET password_changed_at = now() - interval '7 months' WHERE id = :carol;
CREATE TEMP TABLE l2 AS SELECT * FROM secpolicy.login('carol', 'Kestrel-Pass-01x');
SELECT is((SELECT ROW(status, user_id, session_token IS NULL, challenge_token IS NULL)::text FROM l2),
          format('(password_expired,%s,t,t)', :carol), '7-month-old password: password_expired with the user id and no session');
SELECT ok((SELECT password_expires_at <= now() FROM l2), 'password_expires_at is in the past');
SELECT is(pg_temp.last_attempt(), format('(%s,carol,,,f,password_expired,password)', :carol), 'attempt row: password_expired');
SELECT is(pg_temp.status('carol', 'Kestrel-Pass-02x'), 'invalid_credentials', 'expired password, wrong guess: invalid_credentials');
UPDATE secpolicy.users SET password_changed_at = now() - interval '6 months' + interval '1 minute' WHERE id = :carol;
SELECT is(pg_temp.status('carol', 'Kestrel-Pass-01x'), 'ok', 'a minute before six months: ok');
UPDATE secpolicy.users SET password_changed_at = now() - interval '6 months' WHERE id = :carol;
SELECT is(pg_temp.status('carol', 'Kestrel-Pass-01x'), 'password_expired', 'exactly six months: password_expired');
UPDATE secpolicy.policy SET max_password_age = NULL;
UPDATE secpolicy.users SET password_changed_at = now() - interval '7 years' WHERE id = :carol;
SELECT is((SELECT ROW(status, password_expires_at)::text FROM secpolicy.login('carol', 'Kestrel-Pass-01x')), '(ok,)',
          'max_password_age NULL: never expires, no expiry date');
UPDATE secpolicy.policy SET max_password_age = '6 months';
SELECT is((SELECT ROW(status, violations)::text FROM secpolicy.change_password('carol', 'Kestrel-Pass-01x', 'Kestrel-Pass-03x')),
          '(ok,{})', 'an expired password can be changed');
SELECT is(pg_temp.status('carol', 'Kestrel-Pass-03x'), 'ok', 'and the new one logs in');
DO $$ BEGIN PERFORM secpolicy.expire_password('carol', 'regress'); END $$;
SELECT is(pg_temp.status('carol', 'Kestrel-Pass-03x'), 'password_expired', 'expire_password(): password_expired');
SELECT is((SELECT status FROM secpolicy.change_password('carol', 'Kestrel-Pass-03x', 'Kestrel-Pass-04x')), 'ok', 'changed after expire_password()');
SELECT is(pg_temp.status('carol', 'Kestrel-Pass-04x') || (SELECT password_expired::text FROM secpolicy.users WHERE id = :carol),
          'okfalse', 'the expiry flag is cleared and the login is ok');

-- password_change_required
DO $$ BEGIN PERFORM secpolicy.admin_set_password('carol', 'Temp-Admin-Pass-1x', 'regress'); END $$;
SELECT is(pg_temp.shape('carol', 'Temp-Admin-Pass-1x'), format('(password_change_required,%s,f,f)', :carol),
          'temporary password: password_change_required, no session');
SELECT is(pg_temp.last_attempt(), format('(%s,carol,,,f,password_change_required,password)', :carol), 'attempt row: password_change_required');
SELECT is(pg_temp.status('carol', 'Kestrel-Pass-04x'), 'invalid_credentials', 'the password before the admin''s no longer works');
SELECT is((SELECT status FROM secpolicy.change_password('carol', 'Temp-Admin-Pass-1x', 'Kestrel-Pass-05x')), 'ok', 'the user changes it');
SELECT is(pg_temp.status('carol', 'Kestrel-Pass-05x'), 'ok', 'then logs in');

-- reset_required
DO $$ BEGIN PERFORM secpolicy.force_password_reset('carol', 'regress: suspected compromise'); END $$;
SELECT is(pg_temp.shape('carol', 'Kestrel-Pass-05x'), '(reset_required,,f,f)', 'forced reset, right password: reset_required');
SELECT is(pg_temp.last_attempt(), format('(%s,carol,,,f,reset_required,password)', :carol), 'attempt row: reset_required');
SELECT is(pg_temp.status('carol', 'Kestrel-Pass-06x'), 'invalid_credentials', 'forced reset, wrong password: invalid_credentials');
DO $$ BEGIN PERFORM secpolicy.unlock_user('carol'); END $$;

-- MFA required and not enrolled
UPDATE secpolicy.policy SET require_mfa = true;
CREATE TEMP TABLE l3 AS SELECT * FROM secpolicy.login('carol', 'Kestrel-Pass-05x');
SELECT is((SELECT ROW(status, user_id, session_token)::text FROM l3), format('(mfa_enrollment_required,%s,)', :carol),
          'require_mfa without an enrolment: mfa_enrollment_required, no session');
SELECT matches((SELECT challenge_token FROM l3), '^spc_[A-Za-z0-9_-]{43}$', 'and an spc_ challenge token');
UPDATE secpolicy.policy SET require_mfa = false;

-- argon2 work per attempt
SELECT pg_temp.verifications() AS v0, pg_temp.hashes() AS h0 \gset
SELECT is(pg_temp.status('nobody-at-all', 'Kestrel-Pass-05x'), 'invalid_credentials', 'unknown user');
SELECT is(ROW(pg_temp.verifications() - :v0, pg_temp.hashes() - :h0)::text, '(1,0)', 'an unknown user costs exactly one argon2 verification');
SELECT pg_temp.verifications() AS v0, pg_temp.hashes() AS h0 \gset
SELECT is(pg_temp.status('carol', 'Kestrel-Pass-99x'), 'invalid_credentials', 'wrong password');
SELECT is(ROW(pg_temp.verifications() - :v0, pg_temp.hashes() - :h0)::text, '(1,0)', 'a wrong password costs exactly one argon2 verification');
SELECT pg_temp.verifications() AS v0, pg_temp.hashes() AS h0 \gset
SELECT is(pg_temp.status('carol', 'Kestrel-Pass-05x'), 'ok', 'right password');
SELECT is(ROW(pg_temp.verifications() - :v0, pg_temp.hashes() - :h0)::text, '(1,0)', 'a right password at the policy cost: one verification, no hash');
INSERT INTO secpolicy.users (username) VALUES ('no-password');
SELECT pg_temp.verifications() AS v0 \gset
SELECT is(pg_temp.status('no-password', ''), 'invalid_credentials', 'an account without a password: invalid_credentials');
SELECT is(pg_temp.verifications() - :v0, 1::bigint, 'it costs one verification (dummy hash), like any other');
SELECT pg_temp.verifications() AS v0 \gset
SELECT is(pg_temp.status(NULL, NULL), 'invalid_credentials', 'NULL input');
SELECT is(pg_temp.verifications() - :v0, 0::bigint, 'NULL input is not evaluated');

-- transparent rehash
SELECT password_hash AS h_before, password_changed_at AS changed_before, password_checked_at AS checked_before
  FROM secpolicy.users WHERE id = :carol \gset
SELECT count(*) AS hist_before FROM secpolicy.password_history WHERE user_id = :carol \gset
UPDATE secpolicy.policy SET hash_opslimit = 2;
SELECT pg_temp.hashes() AS h0 \gset
SELECT is(pg_temp.status('carol', 'Kestrel-Pass-05x'), 'ok', 'login after raising the cost');
SELECT is(pg_temp.hashes() - :h0, 1::bigint, 'one new hash was computed');
SELECT alike((SELECT password_hash FROM secpolicy.users WHERE id = :carol), '$argon2id$v=19$m=8,t=2,p=1$%', 'the hash is now at the new cost');
SELECT isnt((SELECT password_hash FROM secpolicy.users WHERE id = :carol), :'h_before', 'the hash changed');
SELECT ok(secpolicy.verify_password('Kestrel-Pass-05x', (SELECT password_hash FROM secpolicy.users WHERE id = :carol)), 'and still verifies');
SELECT is((SELECT ROW(password_changed_at, password_checked_at)::text FROM secpolicy.users WHERE id = :carol),
          ROW(:'changed_before'::timestamptz, :'checked_before'::timestamptz)::text, 'password_changed_at and password_checked_at are unchanged');
SELECT is((SELECT count(*) FROM secpolicy.password_history WHERE user_id = :carol), :hist_before::bigint, 'the history is unchanged');
SELECT pg_temp.hashes() AS h0 \gset
SELECT is(pg_temp.status('carol', 'Kestrel-Pass-05x') || (pg_temp.hashes() - :h0), 'ok0', 'the next login does not rehash again');
SELECT secpolicy.create_user('dora', 'Heron-Pass-01x') AS dora \gset
DO $$ BEGIN PERFORM secpolicy.import_password_hash('dora', '$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc', 'regress'); END $$;
SELECT is(pg_temp.status('dora', 'password'), 'ok', 'an imported reference hash logs in with its password');
SELECT ok((SELECT password_hash LIKE '$argon2id$v=19$m=8,t=2,p=1$%' AND secpolicy.verify_password('password', password_hash)
             FROM secpolicy.users WHERE id = :dora), 'and is rehashed at the policy cost');

SELECT * FROM finish();
ROLLBACK;
