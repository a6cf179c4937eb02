-- Login flow end to end: login statuses, sessions (token format, digest only),
-- the lockout after 5 failures and its recovery by a reset token, password
-- change (other sessions end), expiry, admin actions, unknown users, the
-- attempt log and the audit chain.  Prints statuses, booleans and counts only.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS secpolicy;
RESET client_min_messages;
-- error context quotes line numbers of the install script: keep it out of the output
\set SHOW_CONTEXT never
SELECT preset FROM secpolicy.apply_preset('org');
UPDATE secpolicy.policy
   SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = false, max_failed_attempts = 5,
       reset_token_lifetime = '1 hour';

SELECT secpolicy.create_user('flow_ann', 'Lapwing-Pass-01x') > 0 AS created;
SELECT secpolicy.create_user('FLOW_ANN', 'Lapwing-Pass-01x');

-- a successful login
CREATE TEMP TABLE s1 AS SELECT * FROM secpolicy.login('Flow_Ann', 'Lapwing-Pass-01x', '192.0.2.1', 'regress');
SELECT status, user_id = (SELECT id FROM secpolicy.users WHERE username = 'flow_ann') AS right_user,
       session_token ~ '^sps_[A-Za-z0-9_-]{43}$' AS token_format, challenge_token IS NULL AS no_challenge,
       password_expires_at = (SELECT password_changed_at + interval '6 months' FROM secpolicy.users WHERE username = 'flow_ann') AS expiry
  FROM s1;
SELECT count(*) AS sessions_with_digest FROM secpolicy.sessions s, s1
 WHERE s.token_digest = secpolicy.token_digest(s1.session_token) AND s.ended_at IS NULL;
SELECT (secpolicy.session_touch(session_token)).status FROM s1;

-- wrong passwords, then the lockout
SELECT n, (secpolicy.login('flow_ann', 'Wrong-Guess-' || n)).status FROM generate_series(1, 5) n ORDER BY n;
SELECT failed_attempts, reset_required, locked_at IS NOT NULL AS locked FROM secpolicy.users WHERE username = 'flow_ann';
SELECT (secpolicy.login('flow_ann', 'Lapwing-Pass-01x')).status AS right_password_when_locked;
SELECT (secpolicy.session_touch(session_token)).status AS old_session FROM s1;
SELECT end_reason, count(*) FROM secpolicy.sessions
 WHERE user_id = (SELECT id FROM secpolicy.users WHERE username = 'flow_ann') GROUP BY end_reason;

-- recovery by a reset token
CREATE TEMP TABLE r1 AS SELECT secpolicy.request_password_reset('flow_ann', '192.0.2.1') AS token;
SELECT token ~ '^spr_[A-Za-z0-9_-]{43}$' AS token_format FROM r1;
SELECT r.* FROM r1, secpolicy.reset_password(r1.token, 'zqxvw') r;
SELECT r.* FROM r1, secpolicy.reset_password(r1.token, 'Lapwing-Pass-01x') r;
SELECT r.* FROM r1, secpolicy.reset_password(r1.token, 'Lapwing-Pass-02x') r;
SELECT r.* FROM r1, secpolicy.reset_password(r1.token, 'Lapwing-Pass-03x') r;
SELECT failed_attempts, reset_required, locked_at IS NOT NULL AS locked FROM secpolicy.users WHERE username = 'flow_ann';
SELECT (secpolicy.login('flow_ann', 'Lapwing-Pass-01x')).status AS old_password,
       (secpolicy.login('flow_ann', 'Lapwing-Pass-02x')).status AS new_password;
SELECT secpolicy.request_password_reset('flow_nobody') IS NULL AS unknown_user_gets_no_token;

-- change_password from one session ends the others
CREATE TEMP TABLE s2 AS SELECT n, (secpolicy.login('flow_ann', 'Lapwing-Pass-02x')).session_token FROM generate_series(1, 3) n;
SELECT c.* FROM secpolicy.change_password('flow_ann', 'Lapwing-Pass-02x', 'zqxvw', NULL, (SELECT session_token FROM s2 WHERE n = 1)) c;
SELECT c.* FROM secpolicy.change_password('flow_ann', 'Lapwing-Pass-02x', 'Lapwing-Pass-04x', NULL, (SELECT session_token FROM s2 WHERE n = 1)) c;
SELECT n, (secpolicy.session_touch(session_token)).status FROM s2 ORDER BY n;

-- expiry
UPDATE secpolicy.users SET password_changed_at = now() - interval '7 months' WHERE username = 'flow_ann';
SELECT status, user_id IS NOT NULL AS has_user, session_token IS NULL AS no_session
  FROM secpolicy.login('flow_ann', 'Lapwing-Pass-04x');
SELECT (secpolicy.login('flow_ann', 'Lapwing-Pass-99x')).status AS wrong_password_when_expired;
SELECT c.* FROM secpolicy.change_password('flow_ann', 'Lapwing-Pass-04x', 'Lapwing-Pass-05x') c;
SELECT (secpolicy.login('flow_ann', 'Lapwing-Pass-05x')).status;

-- admin actions
SELECT secpolicy.disable_user('flow_ann', 'regress: leaver');
SELECT (secpolicy.login('flow_ann', 'Lapwing-Pass-05x')).status AS right_password,
       (secpolicy.login('flow_ann', 'Lapwing-Pass-99x')).status AS wrong_password;
SELECT secpolicy.enable_user('flow_ann', 'regress: rehired');
SELECT secpolicy.unlock_user('flow_ann');
SELECT secpolicy.admin_set_password('flow_ann', 'Temporary-Pass-01x', 'regress');
SELECT (secpolicy.login('flow_ann', 'Temporary-Pass-01x')).status;
SELECT c.* FROM secpolicy.change_password('flow_ann', 'Temporary-Pass-01x', 'Lapwing-Pass-06x') c;
SELECT (secpolicy.login('flow_ann', 'Lapwing-Pass-06x')).status;
SELECT secpolicy.disable_user('flow_nobody', 'regress');
SELECT secpolicy.disable_user('flow_ann', NULL);

-- unknown users answer like accounts
SELECT n, (secpolicy.login('flow_nobody', 'Wrong-Guess-' || n)).status FROM generate_series(1, 6) n ORDER BY n;

-- the attempt log and the audit trail
SELECT stage, outcome, success, user_id IS NULL AS unknown, count(*)
  FROM secpolicy.login_attempts WHERE lower(username) LIKE 'flow\_%'
 GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4;
SELECT action, reason FROM secpolicy.audit_log WHERE username ILIKE 'flow\_%' ORDER BY id;
SELECT intact, rows_checked = (SELECT count(*) FROM secpolicy.audit_log) AS all_rows, first_broken_id
  FROM secpolicy.verify_audit_chain();

DROP EXTENSION secpolicy;
