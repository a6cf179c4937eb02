-- pgTAP: the fixes of the security review that one session can show (the
-- ones that need several connections are in test/scenarios/review_races.sh).
--   S2  the audit chain and detect_attacks() are serialised on rows that only
--       the extension's owner can lock: a role with no privilege, and a role
--       in all three groups, get 42501 locking secpolicy.audit_head or
--       secpolicy.maintenance_state (LOCK TABLE, SELECT ... FOR SHARE/UPDATE);
--       an audited action and detect_attacks() leave no advisory lock of
--       class 5457731 behind; rows take no chain lock, sealing one write of audit_head;
--   S3  an unknown username reaching the failure limit writes one
--       'account_locked' audit row (user_id NULL, the username as typed, the
--       reason of an account's lockout), a later failure none, chain intact;
--   S6  admin_set_password accepts the user's current (or a previous)
--       password as the temporary one, still checks the rules (22023), while
--       change_password refuses the reuse; reset_password counts its
--       reused_password answers in password_resets.reuse_rejections (other
--       rejections do not count) and revokes the token at max_failed_attempts
--       of them, the password staying what it was; fewer leave it usable;
--   S7  a verify challenge followed by password ageing (password_changed_at
--       moved back): verify_mfa answers expired_challenge with the right code,
--       opens no session, spends the challenge, counts no failure; an
--       enrolment challenge followed by expire_password() or by ageing:
--       totp_confirm answers expired_challenge, no session, nothing
--       confirmed; expire_password() voids every open challenge;
--   S10 after an active session_touch, session_touch(NULL) and
--       session_touch(repeat('x', 200)) answer unknown and clear
--       current_session_user(), current_session_id() and has_access();
--   re-enrolment: with a confirmed factor, totp_enroll/totp_confirm accept a
--       session token only when that session was opened with the second
--       factor (sessions.mfa) within mfa_enrollment_lifetime; a session
--       without it, or an older one (created_at moved back), gets NULLs /
--       expired_challenge and leaves the factor alone.
BEGIN;
\ir lib/helpers.psql
SELECT plan(72);

UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192;
DO $$ BEGIN PERFORM secpolicy.apply_preset('org'); END $$;
UPDATE secpolicy.policy SET require_mfa = false, max_failed_attempts = 5, totp_window = 1,
       mfa_challenge_lifetime = '5 minutes', mfa_enrollment_lifetime = '15 minutes';

-- (Statements ending in \gset rf_ print nothing: tokens and secrets stay out
-- of the output.)

-- '00000', or the SQLSTATE that a statement raises when run as role r
-- advisory locks of class 5457731 ('SEC') that this backend holds
CREATE FUNCTION pg_temp.sec_advisory_locks() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM pg_locks
     WHERE locktype = 'advisory' AND classid = 5457731 AND pid = pg_backend_pid() AND granted;
$$;
-- the digest lookups of sessions and challenges
CREATE FUNCTION pg_temp.session_of(t text) RETURNS secpolicy.sessions LANGUAGE sql AS $$
    SELECT * FROM secpolicy.sessions WHERE token_digest = secpolicy.token_digest(t);
$$;
CREATE FUNCTION pg_temp.challenge_of(t text) RETURNS secpolicy.mfa_challenges LANGUAGE sql AS $$
    SELECT * FROM secpolicy.mfa_challenges WHERE token_digest = secpolicy.token_digest(t);
$$;
CREATE FUNCTION pg_temp.sessions_of(uname text) RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM secpolicy.sessions WHERE user_id = pg_temp.uid(uname);
$$;
-- 'status,violations' of reset_password / change_password
CREATE FUNCTION pg_temp.reset(t text, p text) RETURNS text LANGUAGE sql AS $$
    SELECT r.status || ':' || coalesce(array_to_string(r.violations, ','), '') FROM secpolicy.reset_password(t, p) r;
$$;
CREATE FUNCTION pg_temp.change(u text, o text, n text) RETURNS text LANGUAGE sql AS $$
    SELECT c.status || ':' || coalesce(array_to_string(c.violations, ','), '') FROM secpolicy.change_password(u, o, n) c;
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

-- =================================================== S2: the chain's lock ====
CREATE ROLE regress_rf_nobody;
CREATE ROLE regress_rf_groups IN ROLE secpolicy_app, secpolicy_admin, secpolicy_analyst;

SELECT is(pg_temp.sqlstate_as('regress_rf_nobody', 'LOCK TABLE secpolicy.audit_head IN SHARE MODE'), '42501',
          'S2: a role with no privilege cannot LOCK secpolicy.audit_head');
SELECT is(pg_temp.sqlstate_as('regress_rf_nobody', 'SELECT 1 FROM secpolicy.audit_head FOR UPDATE'), '42501',
          'S2: a role with no privilege cannot lock the audit_head row (FOR UPDATE)');
SELECT is(pg_temp.sqlstate_as('regress_rf_nobody', 'LOCK TABLE secpolicy.maintenance_state IN SHARE MODE'), '42501',
          'S2: a role with no privilege cannot LOCK secpolicy.maintenance_state');
SELECT is(pg_temp.sqlstate_as('regress_rf_nobody', 'SELECT 1 FROM secpolicy.maintenance_state FOR UPDATE'), '42501',
          'S2: a role with no privilege cannot lock the maintenance_state row (FOR UPDATE)');
SELECT is(pg_temp.sqlstate_as('regress_rf_groups', 'LOCK TABLE secpolicy.audit_head IN SHARE MODE'), '42501',
          'S2: a member of app, admin and analyst cannot LOCK audit_head either');
SELECT is(pg_temp.sqlstate_as('regress_rf_groups', 'SELECT 1 FROM secpolicy.audit_head FOR SHARE'), '42501',
          'S2: a member of app, admin and analyst cannot lock the audit_head row (FOR SHARE)');
SELECT is(pg_temp.sqlstate_as('regress_rf_groups', 'LOCK TABLE secpolicy.maintenance_state IN SHARE MODE'), '42501',
          'S2: a member of app, admin and analyst cannot LOCK maintenance_state');
SELECT is(pg_temp.sqlstate_as('regress_rf_groups', 'SELECT 1 FROM secpolicy.maintenance_state FOR SHARE'), '42501',
          'S2: a member of app, admin and analyst cannot lock the maintenance_state row (FOR SHARE)');

SELECT secpolicy.create_user('regress_rf_sess', 'Heron-Marsh-83!') AS sess_uid \gset
SELECT pg_temp.put('head0', (SELECT writes FROM secpolicy.audit_head)::text) \gset rf_
SELECT pg_temp.put('audit0', (SELECT max(id) FROM secpolicy.audit_log)::text) \gset rf_
SELECT secpolicy.unlock_user('regress_rf_sess', 'regress: audited') \gset rf_
SELECT secpolicy.grant_access('regress_rf_sess', 'reports.read', 'regress: audited') \gset rf_
SELECT is(pg_temp.sec_advisory_locks(), 0::bigint,
          'S2: audited actions hold no advisory lock of class 5457731 until the end of the transaction');
SELECT is((SELECT writes FROM secpolicy.audit_head) - pg_temp.get('head0')::bigint, 0::bigint,
          'S2: writing audit rows takes no lock of the chain (it is taken at commit)');
SELECT ok(secpolicy.audit_seal() >= 2, 'S2: audit_seal() chains the rows of the transaction, as the commit does');
SELECT is((SELECT writes FROM secpolicy.audit_head) - pg_temp.get('head0')::bigint, 1::bigint,
          'S2: chaining a transaction''s rows takes one write of the audit_head row');
SELECT ok((SELECT count(*) FROM secpolicy.detect_attacks()) >= 0 AND pg_temp.sec_advisory_locks() = 0,
          'S2: detect_attacks() holds no advisory lock of class 5457731 either');

-- ============================= S10: session_touch(NULL) clears the session ====
SELECT pg_temp.put('s', session_token) FROM secpolicy.login('regress_rf_sess', 'Heron-Marsh-83!') \gset rf_
SELECT is(status, 'active', 'S10: a fresh session is active') FROM secpolicy.session_touch(pg_temp.get('s'));
SELECT is(secpolicy.current_session_user(), :sess_uid::bigint, 'S10: and proves its user for the transaction');
SELECT ok(secpolicy.has_access('reports.read'), 'S10: has_access() answers for that user');
SELECT is(status, 'unknown', 'S10: session_touch(NULL) answers unknown') FROM secpolicy.session_touch(NULL);
SELECT is(secpolicy.current_session_user(), NULL::bigint, 'S10: after session_touch(NULL) current_session_user() is NULL');
SELECT is(secpolicy.current_session_id(), NULL::bigint, 'S10: and current_session_id() is NULL');
SELECT ok(NOT secpolicy.has_access('reports.read'), 'S10: and has_access() is false');
SELECT is(status, 'active', 'S10: touched again, the session is active') FROM secpolicy.session_touch(pg_temp.get('s'));
SELECT is(secpolicy.current_session_user(), :sess_uid::bigint, 'S10: and proven again');
SELECT is(status, 'unknown', 'S10: session_touch of a 200-character token answers unknown')
  FROM secpolicy.session_touch(repeat('x', 200));
SELECT is(secpolicy.current_session_user(), NULL::bigint, 'S10: after an oversized token current_session_user() is NULL');
SELECT is(secpolicy.current_session_id(), NULL::bigint, 'S10: and current_session_id() is NULL');

-- ======================= S3: an unknown username's lockout is audited ====
SELECT secpolicy.create_user('regress_rf_real', 'Bittern-Reed-52!') AS real_uid \gset
CREATE TEMP TABLE rf_unknown AS
    SELECT i, pg_temp.status('Regress.Ghost_Typed', 'Wrong-Guess-' || i || '!x') AS st FROM generate_series(1, 5) i;
CREATE TEMP TABLE rf_real AS
    SELECT i, pg_temp.status('regress_rf_real', 'Wrong-Guess-' || i || '!x') AS st FROM generate_series(1, 5) i;
SELECT is((SELECT string_agg(st, ',' ORDER BY i) FROM rf_unknown),
          'invalid_credentials,invalid_credentials,invalid_credentials,invalid_credentials,reset_required',
          'S3: five wrong passwords on an unknown name end in reset_required');
SELECT is((SELECT string_agg(st, ',' ORDER BY i) FROM rf_unknown), (SELECT string_agg(st, ',' ORDER BY i) FROM rf_real),
          'S3: as they do on a real account');
SELECT is((SELECT count(*) FROM secpolicy.audit_log WHERE action = 'account_locked' AND user_id IS NULL
              AND username = 'Regress.Ghost_Typed'), 1::bigint,
          'S3: the unknown name''s lockout writes one account_locked row, user_id NULL, the username as typed');
SELECT is((SELECT ROW(a.action, a.reason, a.details)::text FROM secpolicy.audit_log a
            WHERE a.action = 'account_locked' AND a.username = 'Regress.Ghost_Typed'),
          (SELECT ROW(a.action, a.reason, a.details)::text FROM secpolicy.audit_log a
            WHERE a.action = 'account_locked' AND a.user_id = :real_uid),
          'S3: with the action, reason and details of an account''s lockout');
SELECT is(pg_temp.status('REGRESS.GHOST_TYPED', 'Wrong-Guess-6!x'), 'reset_required',
          'S3: a sixth failure (other case) answers reset_required');
SELECT is((SELECT count(*) FROM secpolicy.audit_log WHERE action = 'account_locked' AND user_id IS NULL
              AND lower(username) = 'regress.ghost_typed'), 1::bigint,
          'S3: and writes no second account_locked row');
SELECT is((SELECT intact FROM secpolicy.verify_audit_chain()), true, 'S3: the audit chain is intact');

-- ========================== S6: no reused-password oracle for admins ====
SELECT secpolicy.create_user('regress_rf_pw', 'Plover-Dune-61!') AS pw_uid \gset
SELECT lives_ok($$SELECT secpolicy.admin_set_password('regress_rf_pw', 'Plover-Dune-61!', 'regress')$$,
                'S6: admin_set_password accepts the user''s current password as the temporary one');
SELECT is(pg_temp.status('regress_rf_pw', 'Plover-Dune-61!'), 'password_change_required',
          'S6: it was set as a temporary password (the user must change it)');
SELECT is(pg_temp.change('regress_rf_pw', 'Plover-Dune-61!', 'Plover-Dune-61!'), 'rejected:reused_password',
          'S6: change_password still refuses the current password');
SELECT is(pg_temp.change('regress_rf_pw', 'Plover-Dune-61!', 'Curlew-Flat-72!'), 'ok:',
          'S6: change_password to a new password');
SELECT lives_ok($$SELECT secpolicy.admin_set_password('regress_rf_pw', 'Plover-Dune-61!', 'regress')$$,
                'S6: admin_set_password accepts a previous password too (no history answer)');
SELECT throws_ok($$SELECT secpolicy.admin_set_password('regress_rf_pw', 'short', 'regress')$$, '22023', NULL,
                 'S6: admin_set_password still enforces the rules (22023)');

SELECT secpolicy.create_user('regress_rf_rst', 'Godwit-Bank-94!') AS rst_uid \gset
SELECT pg_temp.put('t1', secpolicy.request_password_reset('regress_rf_rst')) \gset rf_
SELECT is(pg_temp.reset(pg_temp.get('t1'), 'Godwit-Bank-94!'), 'rejected:reused_password',
          'S6: reset_password answers reused_password for the current password');
SELECT is(r.reuse_rejections, 1, 'S6: that answer is counted against the token')
  FROM secpolicy.password_resets r WHERE r.token_digest = secpolicy.token_digest(pg_temp.get('t1'));
SELECT is(pg_temp.reset(pg_temp.get('t1'), 'Ab1!x'), 'rejected:too_short',
          'S6: a password rejected for its rules');
SELECT is(r.reuse_rejections, 1, 'S6: is not counted as a reuse answer')
  FROM secpolicy.password_resets r WHERE r.token_digest = secpolicy.token_digest(pg_temp.get('t1'));
SELECT is((SELECT string_agg(pg_temp.reset(pg_temp.get('t1'), 'Godwit-Bank-94!'), ',' ORDER BY i)
             FROM generate_series(1, 3) i),
          'rejected:reused_password,rejected:reused_password,rejected:reused_password',
          'S6: three more reuse answers');
SELECT is(ROW(r.reuse_rejections, r.revoked_at IS NULL)::text, '(4,t)', 'S6: four answers, the token is still live')
  FROM secpolicy.password_resets r WHERE r.token_digest = secpolicy.token_digest(pg_temp.get('t1'));
SELECT is(pg_temp.reset(pg_temp.get('t1'), 'Godwit-Bank-94!'), 'rejected:reused_password',
          'S6: the fifth reuse answer');
SELECT is(ROW(r.reuse_rejections, r.revoked_at IS NOT NULL, r.used_at IS NULL)::text, '(5,t,t)',
          'S6: revokes the token at max_failed_attempts answers, in the same transaction (no rollback needed)')
  FROM secpolicy.password_resets r WHERE r.token_digest = secpolicy.token_digest(pg_temp.get('t1'));
SELECT is(pg_temp.reset(pg_temp.get('t1'), 'Avocet-Creek-35!'), 'invalid_token:',
          'S6: a revoked token sets no password, not even a new one');
SELECT is(pg_temp.status('regress_rf_rst', 'Godwit-Bank-94!'), 'ok', 'S6: the password is still the old one');
SELECT pg_temp.put('t2', secpolicy.request_password_reset('regress_rf_rst')) \gset rf_
SELECT is((SELECT string_agg(pg_temp.reset(pg_temp.get('t2'), 'Godwit-Bank-94!'), ',' ORDER BY i)
             FROM generate_series(1, 4) i) || ',' || pg_temp.reset(pg_temp.get('t2'), 'Avocet-Creek-35!'),
          'rejected:reused_password,rejected:reused_password,rejected:reused_password,rejected:reused_password,ok:',
          'S6: below the limit a token still sets a new password');

-- ====================== re-enrolment takes a fresh two-factor session ====
SELECT secpolicy.create_user('regress_rf_re', pg_temp.pw()) AS re_uid \gset
SELECT pg_temp.put('re_s0', session_token) FROM secpolicy.login('regress_rf_re', pg_temp.pw()) \gset rf_
SELECT pg_temp.put('re_sec1', secret) FROM secpolicy.totp_enroll(pg_temp.get('re_s0')) \gset rf_
SELECT is(c.status, 'ok', 're-enrolment: a first factor can be enrolled from a session without one')
  FROM secpolicy.totp_confirm(pg_temp.get('re_s0'), pg_temp.code(pg_temp.get('re_sec1'))) c;
SELECT pg_temp.put('re_sealed', encode(sealed_secret, 'hex')) FROM secpolicy.totp_credentials WHERE user_id = :re_uid \gset rf_
SELECT is(ROW(e.secret, e.otpauth_uri)::text, '(,)',
          're-enrolment: with a confirmed factor, a session opened without it gets NULLs from totp_enroll')
  FROM secpolicy.totp_enroll(pg_temp.get('re_s0')) e;
SELECT is(c.status, 'expired_challenge', 're-enrolment: and expired_challenge from totp_confirm')
  FROM secpolicy.totp_confirm(pg_temp.get('re_s0'), pg_temp.code(pg_temp.get('re_sec1'))) c;
UPDATE secpolicy.totp_credentials SET last_used_step = -1 WHERE user_id = :re_uid;
SELECT pg_temp.put('re_ch', challenge_token) FROM secpolicy.login('regress_rf_re', pg_temp.pw()) \gset rf_
SELECT pg_temp.put('re_s1', session_token)
  FROM secpolicy.verify_mfa(pg_temp.get('re_ch'), pg_temp.code(pg_temp.get('re_sec1'))) \gset rf_
SELECT is((pg_temp.session_of(pg_temp.get('re_s1'))).mfa, true, 're-enrolment: verify_mfa opened a two-factor session');
UPDATE secpolicy.sessions SET created_at = now() - interval '16 minutes'
 WHERE token_digest = secpolicy.token_digest(pg_temp.get('re_s1'));
SELECT is(ROW(e.secret, e.otpauth_uri)::text, '(,)',
          're-enrolment: a two-factor session older than mfa_enrollment_lifetime gets NULLs')
  FROM secpolicy.totp_enroll(pg_temp.get('re_s1')) e;
SELECT is(c.status, 'expired_challenge', 're-enrolment: and expired_challenge from totp_confirm')
  FROM secpolicy.totp_confirm(pg_temp.get('re_s1'), pg_temp.code(pg_temp.get('re_sec1'))) c;
SELECT is(ROW(encode(sealed_secret, 'hex') = pg_temp.get('re_sealed'), pending_secret IS NULL)::text, '(t,t)',
          're-enrolment: the refused calls left the factor as it was, nothing pending')
  FROM secpolicy.totp_credentials WHERE user_id = :re_uid;
UPDATE secpolicy.sessions SET created_at = now() - interval '14 minutes'
 WHERE token_digest = secpolicy.token_digest(pg_temp.get('re_s1'));
SELECT pg_temp.put('re_sec2', secret) FROM secpolicy.totp_enroll(pg_temp.get('re_s1')) \gset rf_
SELECT ok(pg_temp.get('re_sec2') ~ '^[A-Z2-7]{32}$' AND pg_temp.get('re_sec2') <> pg_temp.get('re_sec1'),
          're-enrolment: a two-factor session within mfa_enrollment_lifetime gets a new secret');
SELECT is(ROW(c.status, c.session_token IS NULL, cardinality(c.recovery_codes))::text, '(ok,t,10)',
          're-enrolment: and confirms it (no new session, new recovery codes)')
  FROM secpolicy.totp_confirm(pg_temp.get('re_s1'), pg_temp.code(pg_temp.get('re_sec2'))) c;
SELECT is(details->>'via', 'session', 're-enrolment: audited as made through a session')
  FROM secpolicy.audit_log WHERE action = 'mfa_enrolled' AND user_id = :re_uid ORDER BY id DESC LIMIT 1;
UPDATE secpolicy.sessions SET mfa = false WHERE token_digest = secpolicy.token_digest(pg_temp.get('re_s1'));
SELECT is(ROW(e.secret, e.otpauth_uri)::text, '(,)', 're-enrolment: a recent session without the second factor gets NULLs')
  FROM secpolicy.totp_enroll(pg_temp.get('re_s1')) e;

-- ============ S7: no session for a password that expired since its challenge ====
UPDATE secpolicy.policy SET require_mfa = true;
SELECT secpolicy.create_user('regress_rf_ver', pg_temp.pw()) AS ver_uid \gset
SELECT pg_temp.put('v_sec', pg_temp.enrol('regress_rf_ver')) \gset rf_
SELECT pg_temp.put('v_sessions', pg_temp.sessions_of('regress_rf_ver')::text) \gset rf_
CREATE TEMP TABLE v_login AS SELECT * FROM secpolicy.login('regress_rf_ver', pg_temp.pw());
SELECT is(status, 'mfa_required', 'S7: an enrolled user gets a verify challenge') FROM v_login;
UPDATE secpolicy.users SET password_changed_at = now() - interval '7 months' WHERE id = :ver_uid;
CREATE TEMP TABLE v_mfa AS
    SELECT * FROM secpolicy.verify_mfa((SELECT challenge_token FROM v_login), pg_temp.code(pg_temp.get('v_sec')));
SELECT is(status, 'expired_challenge', 'S7: the password aged past max_password_age: verify_mfa answers expired_challenge')
  FROM v_mfa;
SELECT ok(session_token IS NULL AND user_id IS NULL, 'S7: with no session token') FROM v_mfa;
SELECT is(pg_temp.sessions_of('regress_rf_ver'), pg_temp.get('v_sessions')::bigint, 'S7: and no session was opened');
SELECT ok((pg_temp.challenge_of((SELECT challenge_token FROM v_login))).used_at IS NOT NULL
          AND pg_temp.failed('regress_rf_ver') = 0,
          'S7: the challenge is spent, no failure is counted');
UPDATE secpolicy.users SET password_changed_at = now() WHERE id = :ver_uid;
SELECT pg_temp.put('v_ch2', pg_temp.challenge('regress_rf_ver')) \gset rf_
SELECT pg_temp.put('v_ch3', pg_temp.challenge('regress_rf_ver')) \gset rf_
SELECT is((SELECT count(*) FROM secpolicy.mfa_challenges WHERE user_id = :ver_uid AND used_at IS NULL), 2::bigint,
          'S7: two open verify challenges');
SELECT secpolicy.expire_password('regress_rf_ver', 'regress') \gset rf_
SELECT is((SELECT count(*) FROM secpolicy.mfa_challenges WHERE user_id = :ver_uid AND used_at IS NULL), 0::bigint,
          'S7: expire_password() voids every open challenge');
SELECT is(m.status, 'expired_challenge', 'S7: verify_mfa after expire_password answers expired_challenge')
  FROM secpolicy.verify_mfa(pg_temp.get('v_ch2'), pg_temp.code(pg_temp.get('v_sec'))) m;

SELECT secpolicy.create_user('regress_rf_enr', pg_temp.pw()) AS enr_uid \gset
SELECT pg_temp.put('e_ch', pg_temp.challenge('regress_rf_enr')) \gset rf_
SELECT pg_temp.put('e_sec', secret) FROM secpolicy.totp_enroll(pg_temp.get('e_ch')) \gset rf_
SELECT secpolicy.expire_password('regress_rf_enr', 'regress') \gset rf_
CREATE TEMP TABLE e_conf AS SELECT * FROM secpolicy.totp_confirm(pg_temp.get('e_ch'), pg_temp.code(pg_temp.get('e_sec')));
SELECT is(status, 'expired_challenge', 'S7: enrolment challenge, then expire_password(): totp_confirm answers expired_challenge')
  FROM e_conf;
SELECT is(ROW(c.session_token IS NULL, c.recovery_codes IS NULL, pg_temp.sessions_of('regress_rf_enr'),
              (SELECT t.confirmed_at IS NULL FROM secpolicy.totp_credentials t WHERE t.user_id = :enr_uid))::text,
          '(t,t,0,t)', 'S7: no session, no recovery codes, nothing confirmed') FROM e_conf c;

SELECT secpolicy.create_user('regress_rf_enr2', pg_temp.pw()) AS enr2_uid \gset
SELECT pg_temp.put('e2_ch', pg_temp.challenge('regress_rf_enr2')) \gset rf_
SELECT pg_temp.put('e2_sec', secret) FROM secpolicy.totp_enroll(pg_temp.get('e2_ch')) \gset rf_
UPDATE secpolicy.users SET password_changed_at = now() - interval '7 months' WHERE id = :enr2_uid;
CREATE TEMP TABLE e2_conf AS SELECT * FROM secpolicy.totp_confirm(pg_temp.get('e2_ch'), pg_temp.code(pg_temp.get('e2_sec')));
SELECT is(status, 'expired_challenge', 'S7: enrolment challenge, then the password ages: totp_confirm answers expired_challenge')
  FROM e2_conf;
SELECT is(ROW(c.session_token IS NULL, pg_temp.sessions_of('regress_rf_enr2'),
              (SELECT t.confirmed_at IS NULL FROM secpolicy.totp_credentials t WHERE t.user_id = :enr2_uid),
              (pg_temp.challenge_of(pg_temp.get('e2_ch'))).used_at IS NOT NULL)::text,
          '(t,0,t,t)', 'S7: no session, nothing confirmed, the challenge spent') FROM e2_conf c;

SELECT * FROM finish();
ROLLBACK;
