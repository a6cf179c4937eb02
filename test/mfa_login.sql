-- pgTAP: login with a second factor (TOTP and recovery codes) through verify_mfa.
-- Covers login -> mfa_required with a 'verify' challenge for an enrolled user;
-- verify_mfa with a current TOTP code (ok, session with mfa = true, counter
-- cleared only then: a correct password alone keeps failed_attempts); replay
-- protection (the same code, a code of an older step already used, an older
-- unused step: invalid_code, logged as replayed_code and audited as
-- totp_replay_rejected); recovery codes (with and without dashes, upper case,
-- spaces; single use; audited); wrong codes count toward the limit
-- (reset_required at 5, lockout ends sessions); challenge purpose mismatch,
-- expiry, single use; garbage, NULL and huge codes and tokens; reset_mfa
-- (factor and codes removed, sessions and challenges ended, audited, next login
-- asks for enrolment; 22004/42704); require_mfa off; a disabled user; a code
-- in full-width digits; a challenge does not outlive admin_set_password,
-- expire_password or change_password.
BEGIN;
\ir lib/helpers.psql
SELECT plan(120);

UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192;
UPDATE secpolicy.policy SET require_mfa = true, max_failed_attempts = 5,
       totp_algorithm = 'sha1', totp_digits = 6, totp_period = 30, totp_window = 1,
       recovery_code_count = 10;

-- Helpers (temporary, rolled back with the test); more in lib/helpers.psql.
CREATE FUNCTION pg_temp.last_used(uname text) RETURNS bigint LANGUAGE sql STABLE AS
$$ SELECT last_used_step FROM secpolicy.totp_credentials WHERE user_id = pg_temp.uid(uname) $$;
CREATE FUNCTION pg_temp.verify(token text, code text) RETURNS text LANGUAGE sql AS
$$ SELECT status FROM secpolicy.verify_mfa(token, code) $$;

SELECT ok(pg_temp.enrol_new('regress_mfa') ~ '^[A-Z2-7]{32}$', 'setup: regress_mfa enrolled through the flows');
SELECT is(pg_temp.last_used('regress_mfa'), pg_temp.step(0), 'setup: the confirming code used step T');

-- --------------------------------------------------- mfa_required, ok -----
UPDATE secpolicy.users SET failed_attempts = 3 WHERE username = 'regress_mfa';
CREATE TEMP TABLE l1 AS SELECT * FROM secpolicy.login('regress_mfa', pg_temp.pw());
SELECT is(status, 'mfa_required', 'enrolled user, right password: mfa_required') FROM l1;
SELECT is(user_id, pg_temp.uid('regress_mfa'), 'the answer names the user') FROM l1;
SELECT ok(session_token IS NULL, 'no session before the second factor') FROM l1;
SELECT ok(challenge_token ~ '^spc_[A-Za-z0-9_-]{43}$', 'a spc_ challenge') FROM l1;
SELECT is(c.purpose || '/' || (c.expires_at - c.created_at = p.mfa_challenge_lifetime)::text, 'verify/true',
          'the challenge has purpose verify and lives mfa_challenge_lifetime')
  FROM secpolicy.mfa_challenges c, l1, secpolicy.policy p WHERE c.token_digest = secpolicy.token_digest(l1.challenge_token);
SELECT is(pg_temp.failed('regress_mfa'), 3, 'a correct password alone does not reset failed_attempts');
SELECT is(pg_temp.last_outcome('regress_mfa'), 'mfa_required/password', 'attempt logged as mfa_required');

CREATE TEMP TABLE v1 AS SELECT r.* FROM l1, secpolicy.verify_mfa(l1.challenge_token, pg_temp.code(pg_temp.secret('regress_mfa'), 1)) r;
SELECT is(status, 'ok', 'verify_mfa with a fresh code (step T+1): ok') FROM v1;
SELECT is(user_id, pg_temp.uid('regress_mfa'), 'verify_mfa names the user') FROM v1;
SELECT ok(session_token ~ '^sps_[A-Za-z0-9_-]{43}$', 'verify_mfa issues a session token') FROM v1;
SELECT is(s.mfa, true, 'the session is marked mfa = true')
  FROM secpolicy.sessions s, v1 WHERE s.token_digest = secpolicy.token_digest(v1.session_token);
SELECT is(r.status, 'active', 'the session is active') FROM v1, secpolicy.session_touch(v1.session_token) r;
SELECT is(pg_temp.failed('regress_mfa'), 0, 'the counter is cleared once the second factor succeeds');
SELECT is(pg_temp.last_used('regress_mfa'), pg_temp.step(1), 'last_used_step is now T+1');
SELECT is(pg_temp.last_outcome('regress_mfa'), 'ok/mfa', 'attempt logged as ok at stage mfa');
SELECT is(r.status, 'expired_challenge', 'the challenge is single-use')
  FROM l1, secpolicy.verify_mfa(l1.challenge_token, pg_temp.code(pg_temp.secret('regress_mfa'), 1)) r;
SELECT is(pg_temp.failed('regress_mfa'), 0, 'a spent challenge counts no failure');
SELECT is(pg_temp.last_outcome('regress_mfa'), 'expired_challenge/mfa', 'but is logged against the account it was issued to');

-- ------------------------------------------------------------- replay -----
SELECT pg_temp.put('ch2', pg_temp.challenge('regress_mfa')) IS NOT NULL AS ok \gset
SELECT is(pg_temp.verify(pg_temp.get('ch2'), pg_temp.code(pg_temp.secret('regress_mfa'), 1)), 'invalid_code',
          'replay of the same code on a new challenge: invalid_code');
SELECT is(pg_temp.last_outcome('regress_mfa'), 'replayed_code/mfa', 'logged as replayed_code');
SELECT is(count(*), 1::bigint, 'audited as totp_replay_rejected')
  FROM secpolicy.audit_log a WHERE a.action = 'totp_replay_rejected' AND a.user_id = pg_temp.uid('regress_mfa');
SELECT is(pg_temp.failed('regress_mfa'), 1, 'the replay counts as a failure');
SELECT is(pg_temp.verify(pg_temp.get('ch2'), pg_temp.code(pg_temp.secret('regress_mfa'), 0)), 'invalid_code',
          'a code of an older step already used (T, used by the enrolment): invalid_code');
SELECT is(pg_temp.last_outcome('regress_mfa'), 'replayed_code/mfa', 'logged as replayed_code');
SELECT is(pg_temp.verify(pg_temp.get('ch2'), pg_temp.code(pg_temp.secret('regress_mfa'), -1)), 'invalid_code',
          'a code of a step before the last used one (T-1): invalid_code');
SELECT is(pg_temp.last_outcome('regress_mfa'), 'replayed_code/mfa', 'logged as replayed_code');
SELECT is(pg_temp.verify(pg_temp.get('ch2'), pg_temp.code(pg_temp.secret('regress_mfa'), 2)), 'invalid_code',
          'a code two steps ahead (outside the window of 1): invalid_code');
SELECT is(pg_temp.last_outcome('regress_mfa'), 'invalid_code/mfa', 'logged as invalid_code');
SELECT is(pg_temp.failed('regress_mfa'), 4, 'all four counted');
SELECT is(pg_temp.last_used('regress_mfa'), pg_temp.step(1), 'rejected codes leave last_used_step alone');
SELECT is(count(*), 3::bigint, 'three replays audited')
  FROM secpolicy.audit_log a WHERE a.action = 'totp_replay_rejected' AND a.user_id = pg_temp.uid('regress_mfa');
SELECT ok(NOT EXISTS (SELECT 1 FROM secpolicy.audit_log a WHERE a.action = 'totp_replay_rejected'
                       AND (a.details::text LIKE '%' || pg_temp.code(pg_temp.secret('regress_mfa'), 1) || '%'
                            OR a.reason LIKE '%' || pg_temp.code(pg_temp.secret('regress_mfa'), 1) || '%')),
          'the audit row does not carry the replayed code');

-- ----------------------------------------------------- recovery codes -----
SELECT is(pg_temp.verify(pg_temp.get('ch2'), pg_temp.rc('regress_mfa', 1)), 'ok',
          'a recovery code (with dashes) is accepted');
SELECT is(pg_temp.failed('regress_mfa'), 0, 'and clears the counter');
SELECT is(count(*), 1::bigint, 'exactly one recovery code is marked used')
  FROM secpolicy.recovery_codes r WHERE r.user_id = pg_temp.uid('regress_mfa') AND r.used_at IS NOT NULL;
SELECT is(a.details->>'remaining', '9', 'audit: recovery_code_used with 9 remaining')
  FROM secpolicy.audit_log a WHERE a.action = 'recovery_code_used' AND a.user_id = pg_temp.uid('regress_mfa');
SELECT is(s.mfa, true, 'a recovery-code login also gives an mfa session')
  FROM secpolicy.sessions s WHERE s.user_id = pg_temp.uid('regress_mfa') ORDER BY s.id DESC LIMIT 1;
SELECT is(pg_temp.last_used('regress_mfa'), pg_temp.step(1), 'a recovery code does not move last_used_step');
SELECT is(pg_temp.verify(pg_temp.challenge('regress_mfa'), pg_temp.rc('regress_mfa', 1)), 'invalid_code',
          'the same recovery code a second time: invalid_code');
SELECT is(pg_temp.last_outcome('regress_mfa'), 'invalid_code/mfa', 'logged as invalid_code');
SELECT is(pg_temp.failed('regress_mfa'), 1, 'the reused recovery code counts as a failure');
SELECT is(pg_temp.verify(pg_temp.challenge('regress_mfa'), replace(pg_temp.rc('regress_mfa', 2), '-', '')), 'ok',
          'a recovery code without dashes is accepted');
SELECT is(pg_temp.verify(pg_temp.challenge('regress_mfa'), upper(pg_temp.rc('regress_mfa', 3))), 'ok',
          'a recovery code in upper case is accepted');
SELECT is(pg_temp.verify(pg_temp.challenge('regress_mfa'), ' ' || replace(pg_temp.rc('regress_mfa', 4), '-', ' ') || ' '), 'ok',
          'a recovery code with spaces instead of dashes is accepted');
SELECT is(pg_temp.verify(pg_temp.challenge('regress_mfa'), upper(replace(pg_temp.rc('regress_mfa', 2), '-', ''))), 'invalid_code',
          'a used recovery code in another spelling: invalid_code');
SELECT is(pg_temp.verify(pg_temp.challenge('regress_mfa'), pg_temp.rc('regress_mfa', 5) || 'a'), 'invalid_code',
          'a recovery code with an extra character: invalid_code');
SELECT is(count(*), 4::bigint, 'four recovery codes are used, six remain unused')
  FROM secpolicy.recovery_codes r WHERE r.user_id = pg_temp.uid('regress_mfa') AND r.used_at IS NOT NULL;
SELECT is(pg_temp.failed('regress_mfa'), 2, 'two failures since the last success');

-- --------------------------------------------------- failure limit -----
UPDATE secpolicy.users SET failed_attempts = 0 WHERE username = 'regress_mfa';
SELECT pg_temp.put('ch3', pg_temp.challenge('regress_mfa')) IS NOT NULL AS ok \gset
SELECT is(array_agg(pg_temp.verify(pg_temp.get('ch3'), pg_temp.wrong(pg_temp.secret('regress_mfa')) || left(n::text, 0)) ORDER BY n),
          ARRAY['invalid_code','invalid_code','invalid_code','invalid_code','reset_required'],
          'five wrong codes: invalid_code four times, then reset_required')
  FROM generate_series(1, 5) n;
SELECT ok(u.reset_required AND u.failed_attempts = 5 AND u.locked_at IS NOT NULL, 'the account is locked and needs a reset')
  FROM secpolicy.users u WHERE u.username = 'regress_mfa';
SELECT is(pg_temp.last_outcome('regress_mfa'), 'lockout/mfa', 'the fifth is logged as lockout');
SELECT is(count(*), 1::bigint, 'audit: account_locked')
  FROM secpolicy.audit_log a WHERE a.action = 'account_locked' AND a.user_id = pg_temp.uid('regress_mfa');
SELECT is(count(*), 0::bigint, 'the lockout ended every live session')
  FROM secpolicy.sessions s WHERE s.user_id = pg_temp.uid('regress_mfa') AND s.ended_at IS NULL;
SELECT is(r.status, 'revoked', 'an earlier session token is revoked')
  FROM v1, secpolicy.session_touch(v1.session_token) r;
SELECT is(pg_temp.verify(pg_temp.get('ch3'), pg_temp.rc('regress_mfa', 6)), 'reset_required',
          'after the limit even a valid recovery code answers reset_required');
SELECT is(count(*), 0::bigint, 'and that recovery code was not consumed')
  FROM secpolicy.recovery_codes r
 WHERE r.user_id = pg_temp.uid('regress_mfa') AND r.used_at IS NOT NULL
   AND r.code_digest = secpolicy.token_digest(replace(pg_temp.rc('regress_mfa', 6), '-', ''));
SELECT is(pg_temp.failed('regress_mfa'), 5, 'nothing is evaluated beyond the limit');
SELECT is(status, 'reset_required', 'login with the right password: reset_required')
  FROM secpolicy.login('regress_mfa', pg_temp.pw());

-- password failures and second-factor failures share one counter
SELECT ok(pg_temp.enrol_new('regress_mfa_mix') IS NOT NULL, 'setup: regress_mfa_mix enrolled');
SELECT is(array_agg(status ORDER BY n), ARRAY['invalid_credentials','invalid_credentials','invalid_credentials'],
          'three wrong passwords')
  FROM generate_series(1, 3) n, LATERAL secpolicy.login('regress_mfa_mix', 'Wrong-Password-' || n) r;
SELECT pg_temp.put('ch_mix', pg_temp.challenge('regress_mfa_mix')) IS NOT NULL AS ok \gset
SELECT is(pg_temp.verify(pg_temp.get('ch_mix'), pg_temp.wrong(pg_temp.secret('regress_mfa_mix'))), 'invalid_code',
          'then a wrong code: invalid_code (4th failure)');
SELECT is(pg_temp.verify(pg_temp.get('ch_mix'), 'not-a-code'), 'reset_required',
          'then a malformed code: reset_required (5th failure)');

-- ------------------------------------------ challenge purpose and expiry -----
SELECT ok(pg_temp.enrol_new('regress_mfa_b') IS NOT NULL, 'setup: regress_mfa_b enrolled');
SELECT secpolicy.create_user('regress_mfa_new', pg_temp.pw()) IS NOT NULL AS ok \gset
SELECT is(pg_temp.verify(pg_temp.challenge('regress_mfa_new'), '123456'), 'expired_challenge',
          'an enrolment challenge given to verify_mfa: expired_challenge');
SELECT is(pg_temp.failed('regress_mfa_new'), 0, 'and no failure is counted');
SELECT pg_temp.put('ch_b', pg_temp.challenge('regress_mfa_b')) IS NOT NULL AS ok \gset
UPDATE secpolicy.mfa_challenges c SET expires_at = now() - interval '1 second'
 WHERE c.token_digest = secpolicy.token_digest(pg_temp.get('ch_b'));
SELECT is(pg_temp.verify(pg_temp.get('ch_b'), pg_temp.code(pg_temp.secret('regress_mfa_b'), 1)), 'expired_challenge',
          'an expired challenge with a valid code: expired_challenge');
SELECT is(pg_temp.last_used('regress_mfa_b'), pg_temp.step(0), 'the valid code was not consumed');
SELECT is(pg_temp.failed('regress_mfa_b'), 0, 'no failure counted');

-- ------------------------------------------------ garbage codes/tokens -----
SELECT is(pg_temp.verify(NULL, '123456'), 'expired_challenge', 'NULL challenge: expired_challenge');
SELECT is(pg_temp.verify('', '123456'), 'expired_challenge', 'empty challenge: expired_challenge');
SELECT is(pg_temp.verify('garbage', '123456'), 'expired_challenge', 'garbage challenge: expired_challenge');
SELECT is(pg_temp.verify('spc_' || repeat('A', 43), '123456'), 'expired_challenge', 'well-formed unknown challenge: expired_challenge');
SELECT is(pg_temp.verify(repeat('x', 1000000), '123456'), 'expired_challenge', '1 MB challenge: expired_challenge');
SELECT FROM secpolicy.verify_mfa('spc_' || repeat('B', 43), '123456', '192.0.2.77');
SELECT results_eq($$SELECT a.user_id, a.client_addr, a.outcome, a.stage
                      FROM secpolicy.login_attempts a ORDER BY id DESC LIMIT 1$$,
                  $$VALUES (NULL::bigint, '192.0.2.77'::inet, 'expired_challenge', 'mfa')$$,
                  'an unknown challenge is logged as an attempt (no account, the client address, expired_challenge)');
SELECT is(pg_temp.verify(pg_temp.get('regress_mfa_b.session'), pg_temp.code(pg_temp.secret('regress_mfa_b'), 1)),
          'expired_challenge', 'a session token is no challenge: expired_challenge');
SELECT pg_temp.put('ch_g', pg_temp.challenge('regress_mfa_b')) IS NOT NULL AS ok \gset
SELECT is(array_agg(pg_temp.verify(pg_temp.get('ch_g'), c) ORDER BY n),
          ARRAY['invalid_code','invalid_code','invalid_code','invalid_code'],
          'NULL, empty, letters and 1 MB codes: invalid_code')
  FROM unnest(ARRAY[NULL, '', 'abcdef', repeat('1', 1000000)]) WITH ORDINALITY AS g(c, n);
SELECT is(pg_temp.failed('regress_mfa_b'), 4, 'each garbage code counted as a failure');
SELECT is(pg_temp.verify(pg_temp.get('ch_g'), '12345678901'), 'reset_required',
          'an 11-digit code is the fifth failure: reset_required');
SELECT lives_ok($$SELECT secpolicy.unlock_user('regress_mfa_b', 'test')$$, 'unlock regress_mfa_b');
SELECT pg_temp.put('ch_g2', pg_temp.challenge('regress_mfa_b')) IS NOT NULL AS ok \gset
SELECT is(pg_temp.verify(pg_temp.get('ch_g2'), ' ' || substr(pg_temp.code(pg_temp.secret('regress_mfa_b'), 1), 1, 3) || ' '
                                              || substr(pg_temp.code(pg_temp.secret('regress_mfa_b'), 1), 4) || ' '),
          'ok', 'a TOTP code with spaces is accepted');

-- ------------------------------------------------------------ reset_mfa -----
SELECT ok(pg_temp.enrol_new('regress_mfa_r') IS NOT NULL, 'setup: regress_mfa_r enrolled');
SELECT pg_temp.put('ch_r', pg_temp.challenge('regress_mfa_r')) IS NOT NULL AS ok \gset
SELECT throws_ok($$SELECT secpolicy.reset_mfa('regress_mfa_r', NULL)$$, '22004', NULL, 'reset_mfa without a reason: 22004');
SELECT throws_ok($$SELECT secpolicy.reset_mfa('regress_mfa_r', '  ')$$, '22004', NULL, 'reset_mfa with a blank reason: 22004');
SELECT throws_ok($$SELECT secpolicy.reset_mfa('regress_no_such_user', 'lost phone')$$, '42704', NULL, 'reset_mfa of an unknown user: 42704');
SELECT lives_ok($$SELECT secpolicy.reset_mfa('REGRESS_MFA_R', 'lost phone')$$, 'reset_mfa (username case-insensitive)');
SELECT is(count(*), 0::bigint, 'the TOTP credential is removed')
  FROM secpolicy.totp_credentials c WHERE c.user_id = pg_temp.uid('regress_mfa_r');
SELECT is(count(*), 0::bigint, 'the recovery codes are removed')
  FROM secpolicy.recovery_codes r WHERE r.user_id = pg_temp.uid('regress_mfa_r');
SELECT is(a.reason || '/' || a.actor, 'lost phone/' || session_user, 'audit: mfa_reset with reason and actor')
  FROM secpolicy.audit_log a WHERE a.action = 'mfa_reset' AND a.user_id = pg_temp.uid('regress_mfa_r');
SELECT is(r.status, 'revoked', 'the user''s session is ended')
  FROM secpolicy.session_touch(pg_temp.get('regress_mfa_r.session')) r;
SELECT is(pg_temp.verify(pg_temp.get('ch_r'), pg_temp.code(pg_temp.secret('regress_mfa_r'), 1)), 'expired_challenge',
          'an outstanding challenge is void after reset_mfa');
SELECT is(pg_temp.verify(pg_temp.get('ch_r'), pg_temp.rc('regress_mfa_r', 1)), 'expired_challenge',
          'and so are the old recovery codes');
SELECT is(status, 'mfa_enrollment_required', 'next login: mfa_enrollment_required')
  FROM secpolicy.login('regress_mfa_r', pg_temp.pw());

-- --------------------------------------------------- require_mfa off -----
UPDATE secpolicy.policy SET require_mfa = false;
SELECT secpolicy.create_user('regress_mfa_off', pg_temp.pw()) IS NOT NULL AS ok \gset
CREATE TEMP TABLE l_off AS SELECT * FROM secpolicy.login('regress_mfa_off', pg_temp.pw());
SELECT is(status, 'ok', 'require_mfa off and not enrolled: ok at once') FROM l_off;
SELECT ok(session_token ~ '^sps_' AND challenge_token IS NULL, 'with a session and no challenge') FROM l_off;
SELECT is(s.mfa, false, 'that session is not an mfa session')
  FROM secpolicy.sessions s, l_off WHERE s.token_digest = secpolicy.token_digest(l_off.session_token);
SELECT is(status, 'mfa_required', 'require_mfa off but enrolled: mfa_required still')
  FROM secpolicy.login('regress_mfa_b', pg_temp.pw());
UPDATE secpolicy.policy SET require_mfa = true;
SELECT is(status, 'mfa_enrollment_required', 'require_mfa back on: the unenrolled user must enrol')
  FROM secpolicy.login('regress_mfa_off', pg_temp.pw());

-- ------------------------------------------------------- disabled user -----
SELECT ok(pg_temp.enrol_new('regress_mfa_dis') IS NOT NULL, 'setup: regress_mfa_dis enrolled');
SELECT pg_temp.put('ch_d', pg_temp.challenge('regress_mfa_dis')) IS NOT NULL AS ok \gset
SELECT lives_ok($$SELECT secpolicy.disable_user('regress_mfa_dis', 'left')$$, 'disable the user with a challenge outstanding');
SELECT is(pg_temp.verify(pg_temp.get('ch_d'), pg_temp.code(pg_temp.secret('regress_mfa_dis'), 1)), 'expired_challenge',
          'disabled user: a valid code on the outstanding challenge is expired_challenge');
SELECT is(pg_temp.last_outcome('regress_mfa_dis'), 'expired_challenge/mfa',
          'disabled user: the attempt is logged against the account (disabling ended the challenge)');
-- disabled without disable_user (a direct write by the table's owner): the challenge still exists
SELECT ok(pg_temp.enrol_new('regress_mfa_dis2') IS NOT NULL, 'setup: regress_mfa_dis2 enrolled');
SELECT pg_temp.put('ch_d2', pg_temp.challenge('regress_mfa_dis2')) IS NOT NULL AS ok \gset
UPDATE secpolicy.users SET disabled_at = now() WHERE username = 'regress_mfa_dis2';
SELECT is(pg_temp.verify(pg_temp.get('ch_d2'), pg_temp.code(pg_temp.secret('regress_mfa_dis2'), 1)), 'expired_challenge',
          'an account disabled behind the flows'' back: expired_challenge');
SELECT is(pg_temp.last_outcome('regress_mfa_dis2'), 'disabled/mfa', 'logged as disabled');
SELECT is(count(*), 0::bigint, 'disabled user: no live session')
  FROM secpolicy.sessions s WHERE s.user_id = pg_temp.uid('regress_mfa_dis') AND s.ended_at IS NULL;
SELECT is(status, 'disabled', 'disabled user: login answers disabled')
  FROM secpolicy.login('regress_mfa_dis', pg_temp.pw());

-- ------------------------------------------- full-width digits -----
SELECT ok(pg_temp.enrol_new('regress_mfa_fw') IS NOT NULL, 'setup: regress_mfa_fw enrolled');
SELECT is(pg_temp.verify(pg_temp.challenge('regress_mfa_fw'),
                         translate(pg_temp.code(pg_temp.secret('regress_mfa_fw'), 1), '0123456789',
                                   U&'\FF10\FF11\FF12\FF13\FF14\FF15\FF16\FF17\FF18\FF19')),
          'ok', 'a code typed in full-width digits (an input method) is accepted: codes are read in NFKC');

-- ------------------------------------ challenges and password changes -----
-- A challenge issued before an admin or the user changed the password state
-- must not open a session: admin_set_password ends sessions and requires a
-- password change, expire_password expires it, change_password ends sessions.
SELECT ok(pg_temp.enrol_new('regress_mfa_stale') IS NOT NULL, 'setup: regress_mfa_stale enrolled');
SELECT pg_temp.put('ch_s1', pg_temp.challenge('regress_mfa_stale')) IS NOT NULL AS ok \gset
SELECT lives_ok($$SELECT secpolicy.admin_set_password('regress_mfa_stale', 'Temporary-Pass-93#', 'helpdesk')$$,
                'admin_set_password while a challenge is outstanding');
SELECT is(pg_temp.verify(pg_temp.get('ch_s1'), pg_temp.code(pg_temp.secret('regress_mfa_stale'), 1)), 'expired_challenge',
          'after admin_set_password the earlier challenge opens no session');
SELECT is(count(*), 0::bigint, 'no live session after admin_set_password')
  FROM secpolicy.sessions s WHERE s.user_id = pg_temp.uid('regress_mfa_stale') AND s.ended_at IS NULL;
SELECT ok(pg_temp.enrol_new('regress_mfa_stale2') IS NOT NULL, 'setup: regress_mfa_stale2 enrolled');
SELECT pg_temp.put('ch_s2', pg_temp.challenge('regress_mfa_stale2')) IS NOT NULL AS ok \gset
SELECT lives_ok($$SELECT secpolicy.expire_password('regress_mfa_stale2', 'audit finding')$$,
                'expire_password while a challenge is outstanding');
SELECT is(pg_temp.verify(pg_temp.get('ch_s2'), pg_temp.code(pg_temp.secret('regress_mfa_stale2'), 1)), 'expired_challenge',
          'after expire_password the earlier challenge opens no session');
SELECT ok(pg_temp.enrol_new('regress_mfa_stale3') IS NOT NULL, 'setup: regress_mfa_stale3 enrolled');
SELECT pg_temp.put('ch_s3', pg_temp.challenge('regress_mfa_stale3')) IS NOT NULL AS ok \gset
SELECT is(status, 'ok', 'the user changes the password (with a code) while a challenge is outstanding')
  FROM secpolicy.change_password('regress_mfa_stale3', pg_temp.pw(), 'Another-Lantern-58$', NULL, NULL,
                                 pg_temp.code(pg_temp.secret('regress_mfa_stale3'), 1));
SELECT is(pg_temp.verify(pg_temp.get('ch_s3'), pg_temp.code(pg_temp.secret('regress_mfa_stale3'), 1)), 'expired_challenge',
          'after change_password the challenge obtained with the old password opens no session');

SELECT * FROM finish();
ROLLBACK;
