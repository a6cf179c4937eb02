-- pgTAP: the consecutive-failure counter and the lockout.
--   each wrong password counts; the 5th (max_failed_attempts) answers
--   reset_required, sets reset_required and locked_at, audits account_locked
--   and ends the account's sessions (end_reason lockout); afterwards nothing
--   is evaluated (hash_stats shows no argon2 verification), even for the right
--   password or through change_password; unknown usernames answer the same way
--   (case-insensitively); a complete login clears the counter; unlock_user
--   clears the lockout; change_password with a wrong old password counts; a
--   lowered max_failed_attempts applies; disabled accounts lock too.
BEGIN;
\ir lib/helpers.psql
SELECT plan(49);
UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192;
DO $$ BEGIN PERFORM secpolicy.apply_preset('org'); END $$;
UPDATE secpolicy.policy SET require_mfa = false, max_failed_attempts = 5;

CREATE FUNCTION pg_temp.change(u text, o text, n text) RETURNS text LANGUAGE sql AS $$
    SELECT c.status FROM secpolicy.change_password(u, o, n) c;
$$;
CREATE FUNCTION pg_temp.last_outcome() RETURNS text LANGUAGE sql AS $$
    SELECT a.outcome || '/' || a.stage || '/' || a.success FROM secpolicy.login_attempts a ORDER BY a.id DESC LIMIT 1;
$$;

SELECT secpolicy.create_user('dan', 'Osprey-Pass-01x') AS dan \gset
SELECT secpolicy.create_user('erin', 'Falcon-Pass-01x') AS erin \gset
SELECT secpolicy.create_user('fred', 'Condor-Pass-01x') AS fred \gset
SELECT secpolicy.create_user('gina', 'Merlin-Pass-01x') AS gina \gset
SELECT session_token AS dan_s1 FROM secpolicy.login('dan', 'Osprey-Pass-01x') \gset
SELECT session_token AS dan_s2 FROM secpolicy.login('dan', 'Osprey-Pass-01x') \gset

-- five failures
SELECT is(pg_temp.status('dan', 'Wrong-Guess-01x'), 'invalid_credentials', 'failure 1: invalid_credentials');
SELECT is(pg_temp.state('dan'), '(1,f,f)', 'counter at 1');
SELECT is(pg_temp.status('dan', 'Wrong-Guess-02x'), 'invalid_credentials', 'failure 2: invalid_credentials');
SELECT is(pg_temp.status('DAN', 'Wrong-Guess-03x'), 'invalid_credentials', 'failure 3 (another case of the name): invalid_credentials');
SELECT is(pg_temp.status('dan', 'Wrong-Guess-04x'), 'invalid_credentials', 'failure 4: invalid_credentials');
SELECT is(pg_temp.state('dan'), '(4,f,f)', 'counter at 4, not locked');
SELECT is((SELECT count(*) FROM secpolicy.sessions WHERE user_id = :dan AND ended_at IS NULL), 2::bigint, 'sessions still live');
SELECT is(pg_temp.status('dan', 'Wrong-Guess-05x'), 'reset_required', 'failure 5: reset_required');
SELECT is(pg_temp.state('dan'), '(5,t,t)', 'counter at 5, reset_required and locked_at set');
SELECT is((SELECT locked_at FROM secpolicy.users WHERE id = :dan), now(), 'locked_at is the time of the lockout');
SELECT is(pg_temp.last_outcome(), 'lockout/password/false', 'the attempt row says lockout');
SELECT is((SELECT count(*) FROM secpolicy.audit_log WHERE action = 'account_locked' AND user_id = :dan), 1::bigint,
          'account_locked is audited once');
SELECT is((SELECT string_agg(DISTINCT coalesce(end_reason, 'live'), ',') FROM secpolicy.sessions WHERE user_id = :dan),
          'lockout', 'every session of the account ended with end_reason lockout');
SELECT is((SELECT status FROM secpolicy.session_touch(:'dan_s1')), 'revoked', 'a session token of the account is revoked');

-- nothing is evaluated any more
SELECT pg_temp.verifications() AS v0 \gset
SELECT is(pg_temp.status('dan', 'Osprey-Pass-01x'), 'reset_required', 'locked, right password: reset_required');
SELECT is(pg_temp.last_outcome(), 'locked/password/false', 'the attempt row says locked');
SELECT is(pg_temp.status('dan', 'Wrong-Guess-06x'), 'reset_required', 'locked, wrong password: reset_required');
SELECT is(pg_temp.change('dan', 'Osprey-Pass-01x', 'Osprey-Pass-02x'), 'reset_required', 'locked, change_password: reset_required');
SELECT is(pg_temp.verifications() - :v0, 0::bigint, 'no argon2 verification ran for any of them');
SELECT is(pg_temp.state('dan'), '(5,t,t)', 'the counter stays at the limit');
SELECT is(pg_temp.last_outcome(), 'locked/change_password/false', 'change_password on a locked account is logged as locked');

-- unknown usernames
SELECT is(pg_temp.status('ghost', 'Wrong-Guess-01x'), 'invalid_credentials', 'unknown 1');
SELECT is(pg_temp.status('Ghost', 'Wrong-Guess-02x'), 'invalid_credentials', 'unknown 2 (another case)');
SELECT is(pg_temp.status('ghost', 'Wrong-Guess-03x'), 'invalid_credentials', 'unknown 3');
SELECT is(pg_temp.status('GHOST', 'Wrong-Guess-04x'), 'invalid_credentials', 'unknown 4');
SELECT pg_temp.verifications() AS v0 \gset
SELECT is(pg_temp.status('ghost', 'Wrong-Guess-05x'), 'reset_required', 'unknown 5: reset_required, as an account would');
SELECT is(pg_temp.verifications() - :v0, 1::bigint, 'the 5th guess on an unknown name was still evaluated once');
SELECT pg_temp.verifications() AS v0 \gset
SELECT is(pg_temp.status('gHoSt', 'Wrong-Guess-06x'), 'reset_required', 'unknown 6: reset_required');
SELECT is(pg_temp.change('ghost', 'Wrong-Guess-07x', 'Another-Pass-1x'), 'reset_required', 'unknown, change_password: reset_required');
SELECT is(pg_temp.verifications() - :v0, 0::bigint, 'after the limit an unknown name evaluates nothing');
SELECT is(pg_temp.status('ghost2', 'Wrong-Guess-01x'), 'invalid_credentials', 'another unknown name has its own counter');
SELECT ok(secpolicy.create_user('Ghost', 'Kinglet-Pass-01x') > 0, 'creating the account clears the unknown name''s counter');
SELECT is(pg_temp.status('ghost', 'Kinglet-Pass-01x'), 'ok', 'so the new account can log in');

-- a complete login clears the counter
SELECT is(pg_temp.status('erin', 'Wrong-Guess-01x') || pg_temp.status('erin', 'Wrong-Guess-02x') || pg_temp.status('erin', 'Wrong-Guess-03x'),
          'invalid_credentialsinvalid_credentialsinvalid_credentials', 'three failures');
SELECT is(pg_temp.status('erin', 'Falcon-Pass-01x'), 'ok', 'then a complete login');
SELECT is(pg_temp.state('erin'), '(0,f,f)', 'the counter is back at 0');
SELECT is(pg_temp.status('erin', 'Wrong-Guess-04x') || pg_temp.status('erin', 'Wrong-Guess-05x') || pg_temp.status('erin', 'Wrong-Guess-06x')
          || pg_temp.status('erin', 'Wrong-Guess-07x'),
          'invalid_credentialsinvalid_credentialsinvalid_credentialsinvalid_credentials', 'four more failures do not lock: the count restarted');

-- unlock_user
DO $$ BEGIN PERFORM secpolicy.unlock_user('dan', 'regress: identity checked'); END $$;
SELECT is(pg_temp.state('dan'), '(0,f,f)', 'unlock_user clears counter, reset_required and locked_at');
SELECT is(pg_temp.status('dan', 'Osprey-Pass-01x'), 'ok', 'the account logs in again');
SELECT is((SELECT count(*) FROM secpolicy.audit_log WHERE action = 'user_unlocked' AND user_id = :dan AND reason = 'regress: identity checked'),
          1::bigint, 'unlock_user is audited with its reason');

-- change_password failures count
SELECT is(pg_temp.change('fred', 'Wrong-Guess-01x', 'Condor-Pass-02x'), 'invalid_credentials', 'change_password with a wrong old password');
SELECT is(pg_temp.state('fred'), '(1,f,f)', 'counts as a failure');
SELECT is(pg_temp.last_outcome(), 'invalid_password/change_password/false', 'and is logged with stage change_password');
SELECT is(pg_temp.status('fred', 'Wrong-Guess-02x') || pg_temp.status('fred', 'Wrong-Guess-03x')
          || pg_temp.change('fred', 'Wrong-Guess-04x', 'Condor-Pass-02x'),
          'invalid_credentialsinvalid_credentialsinvalid_credentials', 'failures 2 to 4, mixed');
SELECT is(pg_temp.change('fred', 'Wrong-Guess-05x', 'Condor-Pass-02x'), 'reset_required', 'the 5th, through change_password, locks');
SELECT is(pg_temp.state('fred'), '(5,t,t)', 'fred is locked');

-- a lower limit
UPDATE secpolicy.policy SET max_failed_attempts = 3;
SELECT is(pg_temp.status('gina', 'Wrong-Guess-01x') || ',' || pg_temp.status('gina', 'Wrong-Guess-02x') || ',' || pg_temp.status('gina', 'Wrong-Guess-03x'),
          'invalid_credentials,invalid_credentials,reset_required', 'max_failed_attempts 3: the 3rd failure locks');
UPDATE secpolicy.policy SET max_failed_attempts = 5;

-- disabled accounts lock too
DO $$ BEGIN PERFORM secpolicy.unlock_user('erin'); PERFORM secpolicy.disable_user('erin', 'regress'); END $$;
SELECT is(pg_temp.status('erin', 'Wrong-Guess-01x') || pg_temp.status('erin', 'Wrong-Guess-02x') || pg_temp.status('erin', 'Wrong-Guess-03x')
          || pg_temp.status('erin', 'Wrong-Guess-04x'),
          'invalid_credentialsinvalid_credentialsinvalid_credentialsinvalid_credentials', 'a disabled account answers invalid_credentials to guesses');
SELECT is(pg_temp.status('erin', 'Wrong-Guess-05x'), 'reset_required', 'and reset_required at the limit, like any account');

SELECT * FROM finish();
ROLLBACK;
