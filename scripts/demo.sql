-- The walk-through run by scripts/demo: what an application and an admin do.
-- A web application connects as demo_app (member of secpolicy_app); a help
-- desk connects as demo_admin (member of secpolicy_admin).
\pset footer off
\set QUIET on

CREATE EXTENSION secpolicy;
CREATE ROLE demo_app LOGIN IN ROLE secpolicy_app;
CREATE ROLE demo_admin LOGIN IN ROLE secpolicy_admin;
SELECT 'alice@example.com' AS alice \gset

\echo
\echo '1. The admin creates an account.  A weak password is refused with the rules it breaks (SQLSTATE 22023):'
SET ROLE demo_admin;
\set ON_ERROR_STOP off
SELECT secpolicy.create_user(:'alice', 'alice2024');
\set ON_ERROR_STOP on
SELECT secpolicy.create_user(:'alice', 'Tr0pical-Orchid-42') AS alice_id;
RESET ROLE;

\echo
\echo '2. Alice mistypes her password five times: the fifth failure locks the account.'
SET ROLE demo_app;
SELECT n AS attempt, (secpolicy.login(:'alice', 'tropical-orchid-' || n, '203.0.113.7', 'demo')).status
  FROM generate_series(1, 5) AS n;
\echo 'Even the right password is now answered reset_required (nothing more is evaluated):'
SELECT status FROM secpolicy.login(:'alice', 'Tr0pical-Orchid-42', '203.0.113.7');

\echo
\echo '3. She asks for a reset.  The token goes to her mailbox (printed here); a weak new password is rejected:'
SELECT secpolicy.request_password_reset(:'alice', '203.0.113.7') AS reset_token \gset
\echo 'reset token: ' :reset_token
SELECT * FROM secpolicy.reset_password(:'reset_token', 'password1234');
SELECT * FROM secpolicy.reset_password(:'reset_token', 'Tr0pical-Orchid-42');
SELECT * FROM secpolicy.reset_password(:'reset_token', 'Violet-Harbour-77');
\echo 'The token is single-use:'
SELECT status FROM secpolicy.reset_password(:'reset_token', 'Another-Harbour-78');

\echo
\echo '4. She logs in.  Two-factor authentication is mandatory, so she must enrol an authenticator:'
SELECT status, challenge_token FROM secpolicy.login(:'alice', 'Violet-Harbour-77', '203.0.113.7', 'demo') \gset
\echo 'status: ' :status
SELECT secret, otpauth_uri FROM secpolicy.totp_enroll(:'challenge_token') \gset
\echo 'otpauth URI (shown as a QR code): ' :otpauth_uri
\echo 'Her app computes the current code (here: oathtool, an independent implementation):'
\set code `oathtool --totp -b :secret`
SELECT status, session_token, array_length(recovery_codes, 1) AS recovery_codes,
       recovery_codes[1] AS first_recovery_code, recovery_codes[2] AS second_recovery_code
  FROM secpolicy.totp_confirm(:'challenge_token', :'code') \gset
\echo 'totp_confirm: ' :status ', recovery codes issued: ' :recovery_codes
SELECT status, user_id, idle_expires_at FROM secpolicy.session_touch(:'session_token');
SELECT secpolicy.logout(:'session_token') AS logged_out;

\echo
\echo '5. Next login: password, then a code.  Replaying the code she already used is refused:'
SELECT challenge_token FROM secpolicy.login(:'alice', 'Violet-Harbour-77', '203.0.113.7', 'demo') \gset
SELECT status FROM secpolicy.verify_mfa(:'challenge_token', :'code');
\echo 'Her app shows the next code (oathtool, 30 seconds ahead: within the drift window); it opens a session:'
\set next_code `oathtool --totp -b -N '+30 seconds' :secret`
SELECT status, session_token FROM secpolicy.verify_mfa(:'challenge_token', :'next_code') \gset
\echo 'verify_mfa: ' :status
SELECT status FROM secpolicy.session_touch(:'session_token');
SELECT secpolicy.logout(:'session_token') AS logged_out;
\echo 'Another day her phone is flat: she uses a recovery code instead (single-use):'
SELECT challenge_token FROM secpolicy.login(:'alice', 'Violet-Harbour-77', '203.0.113.7', 'demo') \gset
SELECT status, session_token FROM secpolicy.verify_mfa(:'challenge_token', :'first_recovery_code') \gset
\echo 'verify_mfa: ' :status
RESET ROLE;

\echo
\echo '6. She leaves her desk.  Sixteen minutes pass (the demo moves the clock of her session back):'
UPDATE secpolicy.sessions SET last_seen_at = last_seen_at - interval '16 minutes'
 WHERE token_digest = secpolicy.token_digest(:'session_token');
SET ROLE demo_app;
SELECT status FROM secpolicy.session_touch(:'session_token');
RESET ROLE;

\echo
\echo '7. Six months later (the demo ages her password): the password has expired and must change.'
\echo '   A change takes her password and her second factor (a code; here her second recovery code);'
\echo '   her old password is refused (history), which does not spend the code:'
UPDATE secpolicy.users SET password_changed_at = now() - interval '6 months 1 day' WHERE username = :'alice';
SET ROLE demo_app;
SELECT status, password_expires_at::date FROM secpolicy.login(:'alice', 'Violet-Harbour-77', '203.0.113.7');
SELECT * FROM secpolicy.change_password(:'alice', 'Violet-Harbour-77', 'Silver-Estuary-19');
SELECT * FROM secpolicy.change_password(:'alice', 'Violet-Harbour-77', 'Violet-Harbour-77', '203.0.113.7', NULL,
                                        :'second_recovery_code');
SELECT * FROM secpolicy.change_password(:'alice', 'Violet-Harbour-77', 'Silver-Estuary-19', '203.0.113.7', NULL,
                                        :'second_recovery_code');
SELECT status FROM secpolicy.login(:'alice', 'Silver-Estuary-19', '203.0.113.7');
RESET ROLE;

\echo
\echo '8. Someone sprays one password over many account names, most of which do not exist:'
\echo '   the answers (and the time taken) are the same for real and unknown names.'
SET ROLE demo_app;
SELECT name, (secpolicy.login(name, 'Summer2026!', '198.51.100.23')).status
  FROM unnest(ARRAY['alice@example.com', 'bob@example.com', 'carol@example.com', 'dave@example.com',
                    'erin@example.com', 'frank@example.com', 'grace@example.com', 'heidi@example.com',
                    'ivan@example.com', 'judy@example.com', 'mallory@example.com', 'oscar@example.com']) AS name;
RESET ROLE;

\echo
\echo '9. Reports for the analyst, and the attack detection that a scheduler runs (maintain()):'
SET ROLE demo_admin;
SELECT day, failures, distinct_accounts, distinct_usernames, distinct_sources, lockouts
  FROM secpolicy.failed_logins_daily;
SELECT username, known_account, failures_24h, currently_locked
  FROM secpolicy.failed_logins_by_user ORDER BY failures_24h DESC, username LIMIT 5;
SELECT client_addr, failures_24h, distinct_usernames_24h, spraying FROM secpolicy.failed_logins_by_source;
SELECT incident_id, kind, subject FROM secpolicy.detect_attacks();
SELECT id, kind, severity, title, deadline_state FROM secpolicy.incident_report
  LEFT JOIN secpolicy.incidents_due USING (id, kind, severity, title);
SELECT user_id, username, state, mfa_enrolled, password_expires_at::date, last_login_at IS NOT NULL AS logged_in
  FROM secpolicy.account_status;

\echo
\echo '10. A leaver: the admin offboards Alice.  Her sessions end at once and the shared'
\echo '    credentials she knew fall due for rotation.'
SELECT secpolicy.add_shared_credential('supplier-portal', 'the team login at our supplier') AS credential_id;
SELECT secpolicy.grant_shared_credential(:'alice', 'supplier-portal');
SELECT secpolicy.offboard(:'alice', 'left the company');
SELECT name, rotation_reason FROM secpolicy.credentials_due_rotation;
RESET ROLE;
SET ROLE demo_app;
SELECT status FROM secpolicy.login(:'alice', 'Silver-Estuary-19');
RESET ROLE;

\echo
\echo '11. Evidence for the auditor: the compliance view and the tamper-evident audit trail.'
SET ROLE demo_admin;
SELECT statement, setting_ok, in_scope, compliant FROM secpolicy.compliance;
SELECT id, action, username, actor_role, reason FROM secpolicy.audit_log ORDER BY id;
SELECT intact, rows_checked FROM secpolicy.verify_audit_chain();
RESET ROLE;
