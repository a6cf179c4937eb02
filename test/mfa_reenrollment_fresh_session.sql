-- pgTAP: replacing a confirmed second factor takes a fresh two-factor
-- session.  A first factor can be enrolled from any session; once one is
-- confirmed, totp_enroll/totp_confirm accept a session token only when that
-- session was opened with the second factor (sessions.mfa) within
-- mfa_enrollment_lifetime.  A session without it, or an older one
-- (created_at moved back), gets NULLs / expired_challenge and leaves the
-- factor alone; a fresh one gets a new secret, confirms it (no new session,
-- new recovery codes) and is audited as made through a session.
BEGIN;
\ir lib/helpers.psql
SELECT plan(11);

UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192;
UPDATE secpolicy.policy SET require_mfa = false, totp_window = 1, mfa_enrollment_lifetime = '15 minutes';

-- (Statements ending in \gset quiet_ print nothing: tokens and secrets stay
-- out of the output.)

-- the session of a token
CREATE FUNCTION pg_temp.session_of(t text) RETURNS secpolicy.sessions LANGUAGE sql AS $$
    SELECT * FROM secpolicy.sessions WHERE token_digest = secpolicy.token_digest(t);
$$;

SELECT secpolicy.create_user('regress_reenrol', pg_temp.pw()) AS re_uid \gset
SELECT pg_temp.put('re_s0', session_token) FROM secpolicy.login('regress_reenrol', pg_temp.pw()) \gset quiet_
SELECT pg_temp.put('re_sec1', secret) FROM secpolicy.totp_enroll(pg_temp.get('re_s0')) \gset quiet_
SELECT is(c.status, 'ok', 'a first factor can be enrolled from a session without one')
  FROM secpolicy.totp_confirm(pg_temp.get('re_s0'), pg_temp.code(pg_temp.get('re_sec1'))) c;
SELECT pg_temp.put('re_sealed', encode(sealed_secret, 'hex')) FROM secpolicy.totp_credentials WHERE user_id = :re_uid \gset quiet_
SELECT is(ROW(e.secret, e.otpauth_uri)::text, '(,)',
          'with a confirmed factor, a session opened without it gets NULLs from totp_enroll')
  FROM secpolicy.totp_enroll(pg_temp.get('re_s0')) e;
SELECT is(c.status, 'expired_challenge', 'and expired_challenge from totp_confirm')
  FROM secpolicy.totp_confirm(pg_temp.get('re_s0'), pg_temp.code(pg_temp.get('re_sec1'))) c;
UPDATE secpolicy.totp_credentials SET last_used_step = -1 WHERE user_id = :re_uid;
SELECT pg_temp.put('re_ch', challenge_token) FROM secpolicy.login('regress_reenrol', pg_temp.pw()) \gset quiet_
SELECT pg_temp.put('re_s1', session_token)
  FROM secpolicy.verify_mfa(pg_temp.get('re_ch'), pg_temp.code(pg_temp.get('re_sec1'))) \gset quiet_
SELECT is((pg_temp.session_of(pg_temp.get('re_s1'))).mfa, true, 'verify_mfa opened a two-factor session');
UPDATE secpolicy.sessions SET created_at = now() - interval '16 minutes'
 WHERE token_digest = secpolicy.token_digest(pg_temp.get('re_s1'));
SELECT is(ROW(e.secret, e.otpauth_uri)::text, '(,)',
          'a two-factor session older than mfa_enrollment_lifetime gets NULLs')
  FROM secpolicy.totp_enroll(pg_temp.get('re_s1')) e;
SELECT is(c.status, 'expired_challenge', 'and expired_challenge from totp_confirm')
  FROM secpolicy.totp_confirm(pg_temp.get('re_s1'), pg_temp.code(pg_temp.get('re_sec1'))) c;
SELECT is(ROW(encode(sealed_secret, 'hex') = pg_temp.get('re_sealed'), pending_secret IS NULL)::text, '(t,t)',
          'the refused calls left the factor as it was, nothing pending')
  FROM secpolicy.totp_credentials WHERE user_id = :re_uid;
UPDATE secpolicy.sessions SET created_at = now() - interval '14 minutes'
 WHERE token_digest = secpolicy.token_digest(pg_temp.get('re_s1'));
SELECT pg_temp.put('re_sec2', secret) FROM secpolicy.totp_enroll(pg_temp.get('re_s1')) \gset quiet_
SELECT ok(pg_temp.get('re_sec2') ~ '^[A-Z2-7]{32}$' AND pg_temp.get('re_sec2') <> pg_temp.get('re_sec1'),
          'a two-factor session within mfa_enrollment_lifetime gets a new secret');
SELECT is(ROW(c.status, c.session_token IS NULL, cardinality(c.recovery_codes))::text, '(ok,t,10)',
          'and confirms it (no new session, new recovery codes)')
  FROM secpolicy.totp_confirm(pg_temp.get('re_s1'), pg_temp.code(pg_temp.get('re_sec2'))) c;
SELECT is(details->>'via', 'session', 'audited as made through a session')
  FROM secpolicy.audit_log WHERE action = 'mfa_enrolled' AND user_id = :re_uid ORDER BY id DESC LIMIT 1;
UPDATE secpolicy.sessions SET mfa = false WHERE token_digest = secpolicy.token_digest(pg_temp.get('re_s1'));
SELECT is(ROW(e.secret, e.otpauth_uri)::text, '(,)', 'a recent session without the second factor gets NULLs')
  FROM secpolicy.totp_enroll(pg_temp.get('re_s1')) e;

SELECT * FROM finish();
ROLLBACK;
