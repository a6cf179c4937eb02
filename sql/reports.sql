-- Reports on failed authentication: the daily view in three time zones, the
-- per-account and per-source views, account states, failed_login_report()
-- (empty buckets, cut last bucket, DST days, errors), attack patterns and
-- incidents, and what secpolicy_analyst may read.  Attempt rows are inserted
-- directly with fixed or now()-relative times; only counts, states, fixed
-- dates and booleans are printed.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS secpolicy;
RESET client_min_messages;
\set SHOW_CONTEXT never
SELECT preset FROM secpolicy.apply_preset('org');
UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = false;
SET TimeZone = 'UTC';

SELECT count(*) AS created FROM unnest(ARRAY['rep_ann', 'rep_bob', 'rep_cat', 'rep_dan', 'rep_eve']) n,
       secpolicy.create_user(n, 'Lapwing-Pass-01x', n = 'rep_eve');
SELECT count(*) AS wrong_guesses FROM generate_series(1, 5) i, secpolicy.login('rep_bob', 'Wrong-Guess-' || i);
SELECT secpolicy.disable_user('rep_cat', 'left the company');
UPDATE secpolicy.users SET password_changed_at = now() - interval '7 months' WHERE username = 'rep_dan';
SELECT status FROM secpolicy.login('rep_ann', 'Lapwing-Pass-01x');

DELETE FROM secpolicy.login_attempts;
DELETE FROM secpolicy.unknown_user_failures;
INSERT INTO secpolicy.unknown_user_failures (username_key, failed_attempts) VALUES ('zed', 5);
INSERT INTO secpolicy.login_attempts (attempted_at, user_id, username, client_addr, success, outcome)
SELECT at, (SELECT id FROM secpolicy.users WHERE username = lower(name)), name, addr::inet, ok, outcome
  FROM (VALUES
    ('2025-01-15 03:00+00'::timestamptz, 'rep_ann', '10.0.0.1', false, 'invalid_password'),
    ('2025-01-15 13:00+00', 'Ghost', '10.0.0.2', false, 'unknown_user'),
    ('2025-01-15 13:30+00', 'ghost', NULL, false, 'unknown_user'),
    ('2025-01-15 16:00+00', 'rep_bob', '10.0.0.1', false, 'lockout'),
    ('2025-01-15 17:00+00', 'rep_ann', '10.0.0.1', true, 'ok'),
    ('2025-01-16 02:00+00', 'REP_ANN', '10.0.0.3', false, 'invalid_password'),
    ('2024-03-10 12:00-04', 'dst', NULL, false, 'unknown_user'),
    ('2024-03-11 00:30-04', 'dst', NULL, false, 'unknown_user'),
    ('2024-11-03 23:30-05', 'dst', NULL, false, 'unknown_user'),
    (now() - interval '1 hour', 'rep_ann', '192.0.2.1', false, 'invalid_password'),
    (now() - interval '2 days', 'Rep_Ann', '192.0.2.1', false, 'invalid_password'),
    (now() - interval '20 days', 'rep_ann', NULL, false, 'invalid_password'),
    (now() - interval '40 days', 'rep_ann', NULL, false, 'invalid_password'),
    (now() - interval '3 hours', 'rep_bob', '192.0.2.5', false, 'locked'),
    (now() - interval '2 hours', 'Mallory.X', '192.0.2.9', false, 'unknown_user'),
    (now() - interval '1 hour', 'Zed', NULL, false, 'unknown_user')
  ) AS v(at, name, addr, ok, outcome);
INSERT INTO secpolicy.login_attempts (attempted_at, username, client_addr, success, outcome)
SELECT now() - interval '10 minutes', 'spray_' || i, '10.1.0.1', false, 'unknown_user' FROM generate_series(1, 10) i;
INSERT INTO secpolicy.login_attempts (attempted_at, username, client_addr, success, outcome)
SELECT now() - interval '10 minutes', 'sprb_' || i, '10.1.0.2', false, 'unknown_user' FROM generate_series(1, 9) i;

-- failures per day of the session's time zone
SELECT * FROM secpolicy.failed_logins_daily WHERE day BETWEEN '2025-01-13' AND '2025-01-17' ORDER BY day;
SET TimeZone = 'America/New_York';
SELECT * FROM secpolicy.failed_logins_daily WHERE day BETWEEN '2025-01-13' AND '2025-01-17' ORDER BY day;
SET TimeZone = 'Asia/Tokyo';
SELECT * FROM secpolicy.failed_logins_daily WHERE day BETWEEN '2025-01-13' AND '2025-01-17' ORDER BY day;
SET TimeZone = 'UTC';

-- per account or unknown username, per source
SELECT username, known_account, failures_24h, failures_7d, failures_30d, currently_locked
  FROM secpolicy.failed_logins_by_user WHERE username NOT LIKE 'spr%' ORDER BY lower(username);
SELECT client_addr, failures_24h, failures_30d, distinct_usernames_24h, distinct_accounts_30d, spraying
  FROM secpolicy.failed_logins_by_source ORDER BY client_addr NULLS FIRST;

-- account states
SELECT username, state, enabled, locked, password_expired, password_expiring, mfa_enrolled, hash_current, live_sessions
  FROM secpolicy.account_status ORDER BY username;

-- failed_login_report: empty buckets, the last one cut at until
SELECT bucket_start, bucket_end, attempts, failures, distinct_accounts, distinct_usernames, distinct_sources, lockouts
  FROM secpolicy.failed_login_report('2025-01-15 00:00+00', '2025-01-15 20:00+00', '6 hours');
-- '1 day' buckets follow the calendar of the session's time zone across DST
SET TimeZone = 'America/New_York';
SELECT bucket_start, bucket_end - bucket_start AS length, failures
  FROM secpolicy.failed_login_report('2024-03-09', '2024-03-12', '1 day');
SELECT bucket_start, bucket_end - bucket_start AS length, failures
  FROM secpolicy.failed_login_report('2024-11-02', '2024-11-05', '1 day');
SET TimeZone = 'UTC';
-- errors
SELECT * FROM secpolicy.failed_login_report(NULL, '2025-01-16', '1 day');
SELECT * FROM secpolicy.failed_login_report('2025-01-16', '2025-01-16', '1 day');
SELECT * FROM secpolicy.failed_login_report('2025-01-15', '2025-01-16', '30 seconds');
SELECT * FROM secpolicy.failed_login_report('2024-01-01', '2025-01-01', '1 minute');

-- attack patterns in the hour before now, and the incidents they open
SELECT kind, subject, failures FROM secpolicy.attack_patterns() ORDER BY kind, subject;
SELECT kind, subject, new_incident FROM secpolicy.detect_attacks() ORDER BY kind, subject;
SELECT kind, subject, new_incident FROM secpolicy.detect_attacks() ORDER BY kind, subject;
SELECT kind, severity, status, personal_data_breach, dedup_key FROM secpolicy.incidents ORDER BY id;
SELECT count(*) AS incident_audit_rows FROM secpolicy.audit_log WHERE action = 'incident_opened';

-- the analyst reads the reports and nothing else
CREATE ROLE regress_reports_analyst NOLOGIN;
GRANT secpolicy_analyst TO regress_reports_analyst;
SET ROLE regress_reports_analyst;
SELECT count(*) > 0 AS reads_daily FROM secpolicy.failed_logins_daily;
SELECT count(*) > 0 AS reads_by_user FROM secpolicy.failed_logins_by_user;
SELECT count(*) > 0 AS reads_by_source FROM secpolicy.failed_logins_by_source;
SELECT count(*) AS accounts FROM secpolicy.account_status;
SELECT count(*) AS buckets FROM secpolicy.failed_login_report('2025-01-15', '2025-01-16', '1 hour');
SELECT count(*) AS compliance_rows FROM secpolicy.compliance_report();
SELECT count(*) FROM secpolicy.users;
SELECT count(*) FROM secpolicy.login_attempts;
SELECT count(*) FROM secpolicy.sessions;
SELECT count(*) FROM secpolicy.audit_log;
SELECT secpolicy.unlock_user('rep_bob');
SELECT * FROM secpolicy.detect_attacks();
RESET ROLE;
DROP ROLE regress_reports_analyst;

DROP EXTENSION secpolicy;
