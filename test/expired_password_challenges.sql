-- pgTAP: a second-factor challenge opens no session for a password that
-- expired after the challenge was issued.  A verify challenge followed by
-- password ageing (password_changed_at moved back past max_password_age):
-- verify_mfa answers expired_challenge with the right code, opens no
-- session, spends the challenge, counts no failure; expire_password() voids
-- every open challenge.  An enrolment challenge followed by expire_password()
-- or by ageing: totp_confirm answers expired_challenge, opens no session,
-- confirms nothing.
BEGIN;
\ir lib/helpers.psql
SELECT plan(12);

UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192;
DO $$ BEGIN PERFORM secpolicy.apply_preset('org'); END $$;
UPDATE secpolicy.policy SET require_mfa = true, max_failed_attempts = 5, totp_window = 1,
       mfa_challenge_lifetime = '5 minutes';

-- (Statements ending in \gset quiet_ print nothing: tokens and secrets stay
-- out of the output.)

-- the challenge of a token
CREATE FUNCTION pg_temp.challenge_of(t text) RETURNS secpolicy.mfa_challenges LANGUAGE sql AS $$
    SELECT * FROM secpolicy.mfa_challenges WHERE token_digest = secpolicy.token_digest(t);
$$;
-- the number of sessions of an account
CREATE FUNCTION pg_temp.sessions_of(uname text) RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM secpolicy.sessions WHERE user_id = pg_temp.uid(uname);
$$;
-- a user enrolled through a login enrolment challenge; returns the secret
CREATE FUNCTION pg_temp.enrol(uname text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    ch text := pg_temp.challenge(uname);
    s text := (SELECT e.secret FROM secpolicy.totp_enroll(ch) e);
BEGIN
    IF (SELECT c.status FROM secpolicy.totp_confirm(ch, pg_temp.code(s)) c) <> 'ok' THEN
        RAISE EXCEPTION 'enrolment of % failed', uname;
    END IF;
    UPDATE secpolicy.totp_credentials SET last_used_step = -1 WHERE user_id = pg_temp.uid(uname);
    RETURN s;
END
$$;

-- ---------------------------------------------------- verify challenges -----
SELECT secpolicy.create_user('regress_stale_ver', pg_temp.pw()) AS ver_uid \gset
SELECT pg_temp.put('v_sec', pg_temp.enrol('regress_stale_ver')) \gset quiet_
SELECT pg_temp.put('v_sessions', pg_temp.sessions_of('regress_stale_ver')::text) \gset quiet_
CREATE TEMP TABLE v_login AS SELECT * FROM secpolicy.login('regress_stale_ver', pg_temp.pw());
SELECT is(status, 'mfa_required', 'an enrolled user gets a verify challenge') FROM v_login;
UPDATE secpolicy.users SET password_changed_at = now() - interval '7 months' WHERE id = :ver_uid;
CREATE TEMP TABLE v_mfa AS
    SELECT * FROM secpolicy.verify_mfa((SELECT challenge_token FROM v_login), pg_temp.code(pg_temp.get('v_sec')));
SELECT is(status, 'expired_challenge', 'the password aged past max_password_age: verify_mfa answers expired_challenge')
  FROM v_mfa;
SELECT ok(session_token IS NULL AND user_id IS NULL, 'with no session token') FROM v_mfa;
SELECT is(pg_temp.sessions_of('regress_stale_ver'), pg_temp.get('v_sessions')::bigint, 'and no session was opened');
SELECT ok((pg_temp.challenge_of((SELECT challenge_token FROM v_login))).used_at IS NOT NULL
          AND pg_temp.failed('regress_stale_ver') = 0,
          'the challenge is spent, no failure is counted');
UPDATE secpolicy.users SET password_changed_at = now() WHERE id = :ver_uid;
SELECT pg_temp.put('v_ch2', pg_temp.challenge('regress_stale_ver')) \gset quiet_
SELECT pg_temp.put('v_ch3', pg_temp.challenge('regress_stale_ver')) \gset quiet_
SELECT is((SELECT count(*) FROM secpolicy.mfa_challenges WHERE user_id = :ver_uid AND used_at IS NULL), 2::bigint,
          'two open verify challenges');
SELECT secpolicy.expire_password('regress_stale_ver', 'regress') \gset quiet_
SELECT is((SELECT count(*) FROM secpolicy.mfa_challenges WHERE user_id = :ver_uid AND used_at IS NULL), 0::bigint,
          'expire_password() voids every open challenge');
SELECT is(m.status, 'expired_challenge', 'verify_mfa after expire_password answers expired_challenge')
  FROM secpolicy.verify_mfa(pg_temp.get('v_ch2'), pg_temp.code(pg_temp.get('v_sec'))) m;

-- ------------------------------------------------- enrolment challenges -----
SELECT secpolicy.create_user('regress_stale_enr', pg_temp.pw()) AS enr_uid \gset
SELECT pg_temp.put('e_ch', pg_temp.challenge('regress_stale_enr')) \gset quiet_
SELECT pg_temp.put('e_sec', secret) FROM secpolicy.totp_enroll(pg_temp.get('e_ch')) \gset quiet_
SELECT secpolicy.expire_password('regress_stale_enr', 'regress') \gset quiet_
CREATE TEMP TABLE e_conf AS SELECT * FROM secpolicy.totp_confirm(pg_temp.get('e_ch'), pg_temp.code(pg_temp.get('e_sec')));
SELECT is(status, 'expired_challenge', 'enrolment challenge, then expire_password(): totp_confirm answers expired_challenge')
  FROM e_conf;
SELECT is(ROW(c.session_token IS NULL, c.recovery_codes IS NULL, pg_temp.sessions_of('regress_stale_enr'),
              (SELECT t.confirmed_at IS NULL FROM secpolicy.totp_credentials t WHERE t.user_id = :enr_uid))::text,
          '(t,t,0,t)', 'no session, no recovery codes, nothing confirmed') FROM e_conf c;

SELECT secpolicy.create_user('regress_stale_enr2', pg_temp.pw()) AS enr2_uid \gset
SELECT pg_temp.put('e2_ch', pg_temp.challenge('regress_stale_enr2')) \gset quiet_
SELECT pg_temp.put('e2_sec', secret) FROM secpolicy.totp_enroll(pg_temp.get('e2_ch')) \gset quiet_
UPDATE secpolicy.users SET password_changed_at = now() - interval '7 months' WHERE id = :enr2_uid;
CREATE TEMP TABLE e2_conf AS SELECT * FROM secpolicy.totp_confirm(pg_temp.get('e2_ch'), pg_temp.code(pg_temp.get('e2_sec')));
SELECT is(status, 'expired_challenge', 'enrolment challenge, then the password ages: totp_confirm answers expired_challenge')
  FROM e2_conf;
SELECT is(ROW(c.session_token IS NULL, pg_temp.sessions_of('regress_stale_enr2'),
              (SELECT t.confirmed_at IS NULL FROM secpolicy.totp_credentials t WHERE t.user_id = :enr2_uid),
              (pg_temp.challenge_of(pg_temp.get('e2_ch'))).used_at IS NOT NULL)::text,
          '(t,0,t,t)', 'no session, nothing confirmed, the challenge spent') FROM e2_conf c;

SELECT * FROM finish();
ROLLBACK;
