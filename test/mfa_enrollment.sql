-- pgTAP: enrolment of a TOTP second factor through the flows.
-- Covers login's mfa_enrollment_required answer and its 'spc_' enrolment
-- challenge; totp_enroll (160-bit base32 secret, otpauth URI with issuer,
-- account, algorithm, digits and period; a second call replaces the pending
-- secret); totp_confirm (wrong, NULL and stale codes are invalid_code and count
-- as failures; the right code gives ok, a session with mfa = true, 10 distinct
-- recovery codes xxxxxx-xxxxxx-xxxxxx-xxxxxx and resets the counter; the
-- challenge is single-use; an expired or wrong-purpose challenge is
-- expired_challenge; lockout at the failure limit); re-enrolment with an active
-- session token; the policy's algorithm/digits/period; garbage tokens; a
-- disabled user; no sealing key configured (55000 with a hint).
-- The last assertions show known bugs (totp_confirm before totp_enroll, a
-- username containing a colon, a stale enrolment challenge replacing a
-- confirmed factor) and are kept at the end.
BEGIN;
\ir lib/helpers.psql
SELECT plan(111);

UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192;
UPDATE secpolicy.policy SET require_mfa = true, max_failed_attempts = 5,
       totp_algorithm = 'sha1', totp_digits = 6, totp_period = 30, totp_window = 1,
       recovery_code_count = 10, totp_issuer = 'secpolicy';

-- Helpers (temporary, rolled back with the test); more in lib/helpers.psql.
-- run a query returning one text value; 'error <SQLSTATE>' when it raises
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
    EXECUTE q INTO r;
    RETURN r;
EXCEPTION WHEN OTHERS THEN
    RETURN 'error ' || SQLSTATE;
END $$;

SELECT is(pg_temp.b32decode('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ'), '12345678901234567890'::bytea,
          'test helper: base32 decoder decodes the RFC 6238 seed');

-- ---------------------------------------------------------------- login -----
SELECT secpolicy.create_user('regress_enr', pg_temp.pw()) IS NOT NULL AS created \gset
CREATE TEMP TABLE l1 AS SELECT * FROM secpolicy.login('regress_enr', pg_temp.pw());
SELECT is(status, 'mfa_enrollment_required', 'unenrolled user with require_mfa: mfa_enrollment_required') FROM l1;
SELECT is(user_id, pg_temp.uid('regress_enr'), 'the answer names the user') FROM l1;
SELECT ok(session_token IS NULL, 'no session before enrolment') FROM l1;
SELECT ok(challenge_token ~ '^spc_[A-Za-z0-9_-]{43}$', 'enrolment challenge is spc_ + 43 base64url characters') FROM l1;
SELECT is(c.purpose, 'enroll', 'the challenge is stored with purpose enroll')
  FROM secpolicy.mfa_challenges c, l1 WHERE c.token_digest = secpolicy.token_digest(l1.challenge_token);
SELECT is(c.expires_at - c.created_at, p.mfa_enrollment_lifetime, 'enrolment challenge lives mfa_enrollment_lifetime')
  FROM secpolicy.mfa_challenges c, l1, secpolicy.policy p
 WHERE c.token_digest = secpolicy.token_digest(l1.challenge_token);
SELECT is(c.token_digest, sha256(convert_to(l1.challenge_token, 'UTF8')), 'only the SHA-256 digest of the challenge is stored')
  FROM secpolicy.mfa_challenges c, l1 WHERE c.user_id = l1.user_id;
SELECT is(pg_temp.last_outcome('regress_enr'), 'mfa_enrollment_required/password', 'attempt logged as mfa_enrollment_required');

-- ---------------------------------------------------------- totp_enroll -----
CREATE TEMP TABLE e1 AS SELECT * FROM secpolicy.totp_enroll((SELECT challenge_token FROM l1));
SELECT ok(secret ~ '^[A-Z2-7]{32}$', 'secret is 32 base32 characters, unpadded') FROM e1;
SELECT is(length(pg_temp.b32decode(secret)), 20, 'secret decodes to 20 bytes (160 bits)') FROM e1;
SELECT is(otpauth_uri,
          'otpauth://totp/secpolicy:regress_enr?secret=' || secret || '&issuer=secpolicy&algorithm=SHA1&digits=6&period=30',
          'otpauth URI: issuer label and parameter, account, secret, algorithm, digits, period') FROM e1;
SELECT ok(c.pending_secret IS NOT NULL AND c.sealed_secret IS NULL AND c.confirmed_at IS NULL,
          'enrolment is pending until confirmed')
  FROM secpolicy.totp_credentials c WHERE c.user_id = pg_temp.uid('regress_enr');
SELECT is(status, 'mfa_enrollment_required', 'a pending enrolment does not count: login still asks for enrolment')
  FROM secpolicy.login('regress_enr', pg_temp.pw());

CREATE TEMP TABLE e2 AS SELECT * FROM secpolicy.totp_enroll((SELECT challenge_token FROM l1));
SELECT isnt(e2.secret, e1.secret, 'a second totp_enroll gives a new secret') FROM e1, e2;
SELECT is(count(*), 1::bigint, 'still one credential row per user')
  FROM secpolicy.totp_credentials c WHERE c.user_id = pg_temp.uid('regress_enr');

-- the earlier secret no longer confirms (unless its code happens to equal the new one's)
SELECT is(r.status,
          CASE WHEN secpolicy.totp_match(e2.secret, pg_temp.code(e1.secret), now(), 1) IS NULL
               THEN 'invalid_code' ELSE 'ok' END,
          'totp_confirm with a code of the replaced secret: invalid_code')
  FROM e1, e2, l1, secpolicy.totp_confirm(l1.challenge_token, pg_temp.code(e1.secret)) r;
SELECT is(pg_temp.failed('regress_enr'), 1, 'the wrong code counted as a failure');
SELECT is(pg_temp.last_outcome('regress_enr'), 'invalid_code/mfa', 'attempt logged as invalid_code at stage mfa');
SELECT is(r.status, 'invalid_code', 'totp_confirm with a wrong code: invalid_code')
  FROM e2, l1, secpolicy.totp_confirm(l1.challenge_token, pg_temp.wrong(e2.secret)) r;
SELECT is(r.session_token, NULL, 'no session for a wrong code')
  FROM e2, l1, secpolicy.totp_confirm(l1.challenge_token, pg_temp.wrong(e2.secret)) r;
SELECT is(r.status, 'invalid_code', 'totp_confirm with a NULL code: invalid_code')
  FROM l1, secpolicy.totp_confirm(l1.challenge_token, NULL) r;
SELECT is(pg_temp.failed('regress_enr'), 4, 'every wrong code counted (4 so far)');
SELECT ok(c.confirmed_at IS NULL, 'wrong codes confirm nothing')
  FROM secpolicy.totp_credentials c WHERE c.user_id = pg_temp.uid('regress_enr');

-- the right code
CREATE TEMP TABLE c1 AS
SELECT r.* FROM e2, l1, secpolicy.totp_confirm(l1.challenge_token, pg_temp.code(e2.secret)) r;
SELECT is(status, 'ok', 'totp_confirm with the current code: ok') FROM c1;
SELECT ok(session_token ~ '^sps_[A-Za-z0-9_-]{43}$', 'a session token is issued') FROM c1;
SELECT is(array_length(recovery_codes, 1), 10, '10 recovery codes') FROM c1;
SELECT is((SELECT count(*) FROM unnest(recovery_codes) rc
            WHERE rc ~ '^[a-z2-7]{6}-[a-z2-7]{6}-[a-z2-7]{6}-[a-z2-7]{6}$'), 10::bigint,
          'every recovery code has the form xxxxxx-xxxxxx-xxxxxx-xxxxxx') FROM c1;
SELECT is((SELECT count(DISTINCT rc) FROM unnest(recovery_codes) rc), 10::bigint, 'recovery codes are distinct') FROM c1;
SELECT is(pg_temp.failed('regress_enr'), 0, 'a complete enrolment resets the failure counter');
SELECT is(s.mfa, true, 'the session is marked mfa')
  FROM secpolicy.sessions s, c1 WHERE s.token_digest = secpolicy.token_digest(c1.session_token);
SELECT is(s.ended_at, NULL, 'the session is live')
  FROM secpolicy.sessions s, c1 WHERE s.token_digest = secpolicy.token_digest(c1.session_token);
SELECT ok(c.sealed_secret IS NOT NULL AND c.confirmed_at IS NOT NULL AND c.pending_secret IS NULL
          AND c.pending_created_at IS NULL, 'the pending secret became the confirmed one')
  FROM secpolicy.totp_credentials c WHERE c.user_id = pg_temp.uid('regress_enr');
SELECT is(c.algorithm || '/' || c.digits || '/' || c.period, 'sha1/6/30', 'credential keeps algorithm, digits and period')
  FROM secpolicy.totp_credentials c WHERE c.user_id = pg_temp.uid('regress_enr');
SELECT is(c.last_used_step, floor(extract(epoch FROM now()) / 30)::bigint,
          'the confirming code''s step is recorded (it cannot be replayed)')
  FROM secpolicy.totp_credentials c WHERE c.user_id = pg_temp.uid('regress_enr');
SELECT is(count(*), 10::bigint, '10 unused recovery code rows stored')
  FROM secpolicy.recovery_codes r WHERE r.user_id = pg_temp.uid('regress_enr') AND r.used_at IS NULL;
SELECT is(count(*), 10::bigint, 'recovery codes are stored as their digests')
  FROM secpolicy.recovery_codes r, c1, unnest(c1.recovery_codes) rc
 WHERE r.user_id = pg_temp.uid('regress_enr') AND r.code_digest = secpolicy.token_digest(replace(rc, '-', ''));
SELECT is(a.details->>'via', 'challenge', 'audit: mfa_enrolled via challenge')
  FROM secpolicy.audit_log a WHERE a.action = 'mfa_enrolled' AND a.user_id = pg_temp.uid('regress_enr');
SELECT is(pg_temp.last_outcome('regress_enr'), 'ok/mfa', 'attempt logged as ok at stage mfa');
SELECT ok(c.used_at IS NOT NULL, 'the challenge is spent')
  FROM secpolicy.mfa_challenges c, l1 WHERE c.token_digest = secpolicy.token_digest(l1.challenge_token);

-- single use
SELECT is(r.status, 'expired_challenge', 'a second totp_confirm with the same challenge: expired_challenge')
  FROM e2, l1, secpolicy.totp_confirm(l1.challenge_token, pg_temp.code(e2.secret, 1)) r;
SELECT is(r.secret, NULL, 'totp_enroll with a spent challenge gives no secret')
  FROM l1, secpolicy.totp_enroll(l1.challenge_token) r;
SELECT is(pg_temp.failed('regress_enr'), 0, 'a spent challenge counts no failure');
SELECT is(status, 'mfa_required', 'after enrolment, login answers mfa_required')
  FROM secpolicy.login('regress_enr', pg_temp.pw());

-- ------------------------------------------------ wrong-purpose challenge -----
CREATE TEMP TABLE l1v AS SELECT * FROM secpolicy.login('regress_enr', pg_temp.pw());
SELECT is(r.secret, NULL, 'totp_enroll with a verify challenge gives no secret')
  FROM l1v, secpolicy.totp_enroll(l1v.challenge_token) r;
SELECT is(r.status, 'expired_challenge', 'totp_confirm with a verify challenge: expired_challenge')
  FROM l1v, e2, secpolicy.totp_confirm(l1v.challenge_token, pg_temp.code(e2.secret, 1)) r;
SELECT is(c.pending_secret, NULL, 'no enrolment was started through a verify challenge')
  FROM secpolicy.totp_credentials c WHERE c.user_id = pg_temp.uid('regress_enr');

-- ------------------------------------------------------- garbage tokens -----
SELECT is(r.secret, NULL, 'totp_enroll(NULL): no secret') FROM secpolicy.totp_enroll(NULL) r;
SELECT is(r.secret, NULL, 'totp_enroll(garbage): no secret') FROM secpolicy.totp_enroll('garbage') r;
SELECT is(r.secret, NULL, 'totp_enroll(1 MB token): no secret') FROM secpolicy.totp_enroll(repeat('x', 1000000)) r;
SELECT is(r.secret, NULL, 'totp_enroll(well-formed unknown challenge): no secret')
  FROM secpolicy.totp_enroll('spc_' || repeat('A', 43)) r;
SELECT is(r.status, 'expired_challenge', 'totp_confirm(NULL, NULL): expired_challenge') FROM secpolicy.totp_confirm(NULL, NULL) r;
SELECT is(r.status, 'expired_challenge', 'totp_confirm(garbage, code): expired_challenge') FROM secpolicy.totp_confirm('garbage', '123456') r;
SELECT is(r.status, 'expired_challenge', 'totp_confirm(1 MB token, 1 MB code): expired_challenge')
  FROM secpolicy.totp_confirm(repeat('x', 1000000), repeat('1', 1000000)) r;

-- ---------------------------------------------------- expired challenge -----
SELECT secpolicy.create_user('regress_enr_exp', pg_temp.pw()) IS NOT NULL AS created \gset
CREATE TEMP TABLE l2 AS SELECT * FROM secpolicy.login('regress_enr_exp', pg_temp.pw());
CREATE TEMP TABLE e3 AS SELECT r.* FROM l2, secpolicy.totp_enroll(l2.challenge_token) r;
UPDATE secpolicy.mfa_challenges c SET expires_at = now() - interval '1 second'
  FROM l2 WHERE c.token_digest = secpolicy.token_digest(l2.challenge_token);
SELECT is(r.status, 'expired_challenge', 'totp_confirm with an expired challenge and the right code: expired_challenge')
  FROM l2, e3, secpolicy.totp_confirm(l2.challenge_token, pg_temp.code(e3.secret)) r;
SELECT is(r.secret, NULL, 'totp_enroll with an expired challenge: no secret')
  FROM l2, secpolicy.totp_enroll(l2.challenge_token) r;
SELECT ok(c.confirmed_at IS NULL, 'nothing confirmed through an expired challenge')
  FROM secpolicy.totp_credentials c WHERE c.user_id = pg_temp.uid('regress_enr_exp');
SELECT is(pg_temp.failed('regress_enr_exp'), 0, 'an expired challenge counts no failure');
-- the expiry is tested at the boundary: expires_at = now() is already expired
UPDATE secpolicy.mfa_challenges c SET expires_at = now()
  FROM l2 WHERE c.token_digest = secpolicy.token_digest(l2.challenge_token);
SELECT is(r.status, 'expired_challenge', 'a challenge whose expires_at is now is expired')
  FROM l2, e3, secpolicy.totp_confirm(l2.challenge_token, pg_temp.code(e3.secret)) r;
UPDATE secpolicy.mfa_challenges c SET expires_at = now() + interval '1 second'
  FROM l2 WHERE c.token_digest = secpolicy.token_digest(l2.challenge_token);
SELECT is(r.status, 'ok', 'one second before expiry the same challenge still confirms')
  FROM l2, e3, secpolicy.totp_confirm(l2.challenge_token, pg_temp.code(e3.secret)) r;

-- ----------------------------------------------- re-enrolment by session -----
SELECT pg_temp.put('old_sealed', encode(sealed_secret, 'hex'))
  FROM secpolicy.totp_credentials WHERE user_id = pg_temp.uid('regress_enr');
CREATE TEMP TABLE e4 AS SELECT r.* FROM c1, secpolicy.totp_enroll(c1.session_token) r;
SELECT ok(secret ~ '^[A-Z2-7]{32}$', 'totp_enroll with an active session token gives a new secret') FROM e4;
SELECT isnt(e4.secret, e2.secret, 'the re-enrolment secret differs from the current one') FROM e4, e2;
SELECT is(otpauth_uri, 'otpauth://totp/secpolicy:regress_enr?secret=' || secret || '&issuer=secpolicy&algorithm=SHA1&digits=6&period=30',
          'and its otpauth URI') FROM e4;
SELECT is(encode(c.sealed_secret, 'hex'), pg_temp.get('old_sealed'), 'the current factor stays until the new one is confirmed')
  FROM secpolicy.totp_credentials c WHERE c.user_id = pg_temp.uid('regress_enr');
SELECT is(r.status, 'invalid_code', 're-enrolment: a wrong code is invalid_code')
  FROM c1, e4, secpolicy.totp_confirm(c1.session_token, pg_temp.wrong(e4.secret)) r;
SELECT is(pg_temp.failed('regress_enr'), 1, 're-enrolment: the wrong code counted');
CREATE TEMP TABLE c2 AS SELECT r.* FROM c1, e4, secpolicy.totp_confirm(c1.session_token, pg_temp.code(e4.secret)) r;
SELECT is(status, 'ok', 're-enrolment: the new code confirms') FROM c2;
SELECT is(session_token, NULL, 're-enrolment through a session issues no new session') FROM c2;
SELECT is(array_length(recovery_codes, 1), 10, 're-enrolment: 10 new recovery codes') FROM c2;
SELECT is((SELECT count(*) FROM unnest(c2.recovery_codes) n WHERE n = ANY (c1.recovery_codes)), 0::bigint,
          'the new recovery codes share none with the old ones') FROM c1, c2;
SELECT is(count(*), 0::bigint, 'the old recovery codes are gone')
  FROM secpolicy.recovery_codes r, c1, unnest(c1.recovery_codes) rc
 WHERE r.user_id = pg_temp.uid('regress_enr') AND r.code_digest = secpolicy.token_digest(replace(rc, '-', ''));
SELECT isnt(encode(c.sealed_secret, 'hex'), pg_temp.get('old_sealed'), 'the confirmed secret was replaced')
  FROM secpolicy.totp_credentials c WHERE c.user_id = pg_temp.uid('regress_enr');
SELECT is(count(*), 1::bigint, 'audit: mfa_enrolled via session')
  FROM secpolicy.audit_log a WHERE a.action = 'mfa_enrolled' AND a.user_id = pg_temp.uid('regress_enr')
   AND a.details->>'via' = 'session';
-- the old secret no longer verifies, the new one does
CREATE TEMP TABLE l3 AS SELECT * FROM secpolicy.login('regress_enr', pg_temp.pw());
SELECT is(r.status,
          CASE WHEN secpolicy.totp_match(e4.secret, pg_temp.code(e2.secret, 1), now(), 1) IS NULL
               THEN 'invalid_code' ELSE 'ok' END,
          'after re-enrolment the old secret''s code is invalid_code')
  FROM l3, e2, e4, secpolicy.verify_mfa(l3.challenge_token, pg_temp.code(e2.secret, 1)) r;
CREATE TEMP TABLE v3 AS SELECT r.* FROM l3, e4, secpolicy.verify_mfa(l3.challenge_token, pg_temp.code(e4.secret, 1)) r;
SELECT is(status, 'ok', 'after re-enrolment the new secret''s next code verifies') FROM v3;
-- an ended session authorises no enrolment
SELECT ok(secpolicy.logout(session_token), 'logout of the enrolment session') FROM c1;
SELECT is(r.secret, NULL, 'totp_enroll with an ended session gives no secret') FROM c1, secpolicy.totp_enroll(c1.session_token) r;
SELECT is(r.status, 'expired_challenge', 'totp_confirm with an ended session: expired_challenge')
  FROM c1, e4, secpolicy.totp_confirm(c1.session_token, pg_temp.code(e4.secret, 1)) r;

-- ------------------------------------------------- policy TOTP settings -----
UPDATE secpolicy.policy SET totp_algorithm = 'sha256', totp_digits = 8, totp_period = 60,
       totp_issuer = 'ACME Co', recovery_code_count = 3;
SELECT secpolicy.create_user('regress_enr_256', pg_temp.pw()) IS NOT NULL AS created \gset
CREATE TEMP TABLE l4 AS SELECT * FROM secpolicy.login('regress_enr_256', pg_temp.pw());
CREATE TEMP TABLE e5 AS SELECT r.* FROM l4, secpolicy.totp_enroll(l4.challenge_token) r;
SELECT is(otpauth_uri,
          'otpauth://totp/ACME%20Co:regress_enr_256?secret=' || secret || '&issuer=ACME%20Co&algorithm=SHA256&digits=8&period=60',
          'the URI follows the policy: issuer (percent-encoded), SHA256, 8 digits, 60 s') FROM e5;
SELECT is(r.status, 'invalid_code', 'a 6-digit sha1 code does not confirm a sha256/8/60 enrolment')
  FROM l4, e5, secpolicy.totp_confirm(l4.challenge_token, pg_temp.code(e5.secret)) r;
CREATE TEMP TABLE c5 AS
SELECT r.* FROM l4, e5, secpolicy.totp_confirm(l4.challenge_token, pg_temp.code(e5.secret, 0, 8, 60, 'sha256')) r;
SELECT is(status, 'ok', 'the sha256/8/60 code confirms') FROM c5;
SELECT is(array_length(recovery_codes, 1), 3, 'recovery_code_count is followed') FROM c5;
SELECT is(c.algorithm || '/' || c.digits || '/' || c.period, 'sha256/8/60', 'the credential keeps sha256/8/60')
  FROM secpolicy.totp_credentials c WHERE c.user_id = pg_temp.uid('regress_enr_256');
SELECT is(c.last_used_step, floor(extract(epoch FROM now()) / 60)::bigint, 'its step counts 60 s periods')
  FROM secpolicy.totp_credentials c WHERE c.user_id = pg_temp.uid('regress_enr_256');
UPDATE secpolicy.policy SET totp_algorithm = 'sha1', totp_digits = 6, totp_period = 30,
       totp_issuer = 'secpolicy', recovery_code_count = 10;
CREATE TEMP TABLE l4v AS SELECT * FROM secpolicy.login('regress_enr_256', pg_temp.pw());
SELECT is(r.status, 'ok', 'a policy change later does not change an enrolled credential: next sha256/8/60 code verifies')
  FROM l4v, e5, secpolicy.verify_mfa(l4v.challenge_token, pg_temp.code(e5.secret, 1, 8, 60, 'sha256')) r;

-- ------------------------------------------------------ lockout -----
SELECT secpolicy.create_user('regress_enr_lock', pg_temp.pw()) IS NOT NULL AS created \gset
CREATE TEMP TABLE l5 AS SELECT * FROM secpolicy.login('regress_enr_lock', pg_temp.pw());
CREATE TEMP TABLE e6 AS SELECT r.* FROM l5, secpolicy.totp_enroll(l5.challenge_token) r;
SELECT is(array_agg(r.status ORDER BY n), ARRAY['invalid_code','invalid_code','invalid_code','invalid_code','reset_required'],
          'five wrong confirmation codes: the fifth answers reset_required')
  FROM generate_series(1, 5) n, l5, e6,
       LATERAL secpolicy.totp_confirm(l5.challenge_token, pg_temp.wrong(e6.secret) || left(n::text, 0)) r;
SELECT ok(u.reset_required AND u.failed_attempts = 5, 'the account needs a reset')
  FROM secpolicy.users u WHERE u.username = 'regress_enr_lock';
SELECT is(pg_temp.last_outcome('regress_enr_lock'), 'lockout/mfa', 'the fifth is logged as lockout');
SELECT is(r.status, 'reset_required', 'then even the right code answers reset_required')
  FROM l5, e6, secpolicy.totp_confirm(l5.challenge_token, pg_temp.code(e6.secret)) r;
SELECT is(pg_temp.last_outcome('regress_enr_lock'), 'locked/mfa', 'and that refusal is logged as locked');
SELECT ok(c.confirmed_at IS NULL, 'and nothing is confirmed')
  FROM secpolicy.totp_credentials c WHERE c.user_id = pg_temp.uid('regress_enr_lock');

-- -------------------------------------------------------- disabled user -----
SELECT secpolicy.create_user('regress_enr_dis', pg_temp.pw()) IS NOT NULL AS created \gset
CREATE TEMP TABLE l6 AS SELECT * FROM secpolicy.login('regress_enr_dis', pg_temp.pw());
CREATE TEMP TABLE e7 AS SELECT r.* FROM l6, secpolicy.totp_enroll(l6.challenge_token) r;
SELECT lives_ok($$SELECT secpolicy.disable_user('regress_enr_dis', 'left the company')$$, 'disable the user mid-enrolment');
SELECT is(r.secret, NULL, 'disabled user: totp_enroll gives no secret')
  FROM l6, secpolicy.totp_enroll(l6.challenge_token) r;
SELECT is(r.status, 'expired_challenge', 'disabled user: totp_confirm with the right code is expired_challenge')
  FROM l6, e7, secpolicy.totp_confirm(l6.challenge_token, pg_temp.code(e7.secret)) r;
SELECT ok(c.confirmed_at IS NULL, 'disabled user: nothing confirmed')
  FROM secpolicy.totp_credentials c WHERE c.user_id = pg_temp.uid('regress_enr_dis');
SELECT is(pg_temp.last_outcome('regress_enr_dis'), 'expired_challenge/mfa',
          'disabled user: the confirmation attempt is logged against the account (disabling ended the challenge)');
SELECT secpolicy.create_user('regress_enr_dis2', pg_temp.pw()) IS NOT NULL AS created \gset
CREATE TEMP TABLE l6b AS SELECT * FROM secpolicy.login('regress_enr_dis2', pg_temp.pw());
CREATE TEMP TABLE e7b AS SELECT r.* FROM l6b, secpolicy.totp_enroll(l6b.challenge_token) r;
UPDATE secpolicy.users SET disabled_at = now() WHERE username = 'regress_enr_dis2';
SELECT is(r.status, 'expired_challenge', 'an account disabled behind the flows'' back: totp_confirm answers expired_challenge')
  FROM l6b, e7b, secpolicy.totp_confirm(l6b.challenge_token, pg_temp.code(e7b.secret)) r;
SELECT is(pg_temp.last_outcome('regress_enr_dis2'), 'disabled/mfa', 'logged as disabled');
SELECT is(r.status || '/' || coalesce(r.challenge_token, 'no challenge'), 'disabled/no challenge',
          'disabled user: login answers disabled without a challenge')
  FROM secpolicy.login('regress_enr_dis', pg_temp.pw()) r;
SELECT is(count(*), 0::bigint, 'disabled user: no session was opened')
  FROM secpolicy.sessions s WHERE s.user_id = pg_temp.uid('regress_enr_dis');

-- ------------------------------------------------------ no sealing key -----
SELECT secpolicy.create_user('regress_enr_nokey', pg_temp.pw()) IS NOT NULL AS created \gset
CREATE TEMP TABLE l7 AS SELECT * FROM secpolicy.login('regress_enr_nokey', pg_temp.pw());
SET LOCAL secpolicy.key_file = '';
SELECT throws_ok(format('SELECT * FROM secpolicy.totp_enroll(%L)', challenge_token), '55000', NULL,
                 'no key configured: totp_enroll raises 55000') FROM l7;
DO $$
DECLARE
    h text;
BEGIN
    PERFORM secpolicy.totp_enroll((SELECT challenge_token FROM l7));
    PERFORM pg_temp.put('nokey_hint', 'no error');
EXCEPTION WHEN object_not_in_prerequisite_state THEN
    GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
    PERFORM pg_temp.put('nokey_hint', h);
END $$;
SELECT ok(pg_temp.get('nokey_hint') LIKE '%secpolicy.key_file%', 'the 55000 error carries a hint naming secpolicy.key_file');
RESET secpolicy.key_file;
SELECT is(count(*), 0::bigint, 'no credential row was left by the failed enrolment')
  FROM secpolicy.totp_credentials c WHERE c.user_id = pg_temp.uid('regress_enr_nokey');
SELECT ok(r.secret ~ '^[A-Z2-7]{32}$', 'with the key back, the same challenge enrols')
  FROM l7, secpolicy.totp_enroll(l7.challenge_token) r;

-- ----------------------------------------------- known bugs (keep last) -----
-- totp_confirm before any totp_enroll must answer a status, not raise
-- (it raises 55000 'record "m" is not assigned yet').
SELECT secpolicy.create_user('regress_enr_noenrol', pg_temp.pw()) IS NOT NULL AS created \gset
CREATE TEMP TABLE l8 AS SELECT * FROM secpolicy.login('regress_enr_noenrol', pg_temp.pw());
SELECT is(pg_temp.try(format('SELECT status FROM secpolicy.totp_confirm(%L, %L)', challenge_token, '123456')),
          'invalid_code', 'totp_confirm without a pending enrolment answers invalid_code (no error)') FROM l8;
SELECT is(pg_temp.try(format('SELECT status FROM secpolicy.totp_confirm(%L, %L)', session_token, '123456')),
          'invalid_code', 'totp_confirm with an active session and no pending enrolment answers invalid_code (no error)') FROM v3;
-- a username may contain ':', and such a user must still be able to enrol
SELECT secpolicy.create_user('regress:colon', pg_temp.pw()) IS NOT NULL AS created \gset
CREATE TEMP TABLE l9 AS SELECT * FROM secpolicy.login('regress:colon', pg_temp.pw());
SELECT is(pg_temp.try(format('SELECT (secret IS NOT NULL)::text FROM secpolicy.totp_enroll(%L)', challenge_token)),
          'true', 'totp_enroll works for a username containing a colon') FROM l9;

-- an enrolment challenge still outstanding once the user has enrolled (with
-- another challenge) must not start a new enrolment nor replace the factor
SELECT secpolicy.create_user('regress_enr_twice', pg_temp.pw()) IS NOT NULL AS created \gset
CREATE TEMP TABLE la AS SELECT * FROM secpolicy.login('regress_enr_twice', pg_temp.pw());
CREATE TEMP TABLE lb AS SELECT * FROM secpolicy.login('regress_enr_twice', pg_temp.pw());
CREATE TEMP TABLE ea AS SELECT r.* FROM la, secpolicy.totp_enroll(la.challenge_token) r;
SELECT is(r.status, 'ok', 'enrolled through the first of two enrolment challenges')
  FROM la, ea, secpolicy.totp_confirm(la.challenge_token, pg_temp.code(ea.secret)) r;
SELECT pg_temp.put('twice_sealed', encode(sealed_secret, 'hex'))
  FROM secpolicy.totp_credentials WHERE user_id = pg_temp.uid('regress_enr_twice');
CREATE TEMP TABLE eb AS SELECT r.* FROM lb, secpolicy.totp_enroll(lb.challenge_token) r;
SELECT is(secret, NULL, 'the second enrolment challenge no longer starts an enrolment') FROM eb;
SELECT is(r.status, 'expired_challenge', 'and cannot confirm a replacement factor')
  FROM lb, eb, secpolicy.totp_confirm(lb.challenge_token, pg_temp.code(coalesce(eb.secret, 'AAAAAAAA'))) r;
SELECT is(encode(c.sealed_secret, 'hex'), pg_temp.get('twice_sealed'), 'the confirmed factor is unchanged')
  FROM secpolicy.totp_credentials c WHERE c.user_id = pg_temp.uid('regress_enr_twice');

SELECT * FROM finish();
ROLLBACK;
