-- pgTAP: daily partitions of the attempt log, retention, pseudonymisation and
-- maintain() (src/sql/50_attempts.sql, src/sql/95_maintenance.sql).
-- Covers create_attempt_partitions(days_ahead, from_day): daily UTC
-- partitions (pg_inherits and bounds), rows moved out of the default
-- partition, idempotence, argument errors; partition pruning of a query on
-- the last 24 hours and of the 30-day report views (EXPLAIN does not mention
-- old partitions, also with the rollups built); apply_retention(): drops the partitions wholly older than
-- attempt_retention (and deletes old rows of the default partition) and
-- pseudonymises the rows older than pseudonymise_after to their /24 or /48
-- network without user agent, once; forgets failure counters below the limit
-- (unknown names and accounts alike) last raised before attempt_retention and
-- at least 90 days ago, keeping those at the limit; and maintain()'s JSON summary.
-- Pre-existing daily partitions are dropped first (inside the transaction),
-- so the counts are exact.
BEGIN;
SELECT plan(53);

UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192;
SET LOCAL TimeZone = 'UTC';

CREATE FUNCTION pg_temp.today() RETURNS date
    LANGUAGE sql STABLE AS $$ SELECT (now() AT TIME ZONE 'UTC')::date $$;
CREATE FUNCTION pg_temp.pname(d date) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$ SELECT 'login_attempts_p' || to_char(d, 'YYYYMMDD') $$;
CREATE FUNCTION pg_temp.parts() RETURNS bigint
    LANGUAGE sql AS $$
    SELECT count(*) FROM pg_inherits WHERE inhparent = 'secpolicy.login_attempts'::regclass
       AND inhrelid <> 'secpolicy.login_attempts_default'::regclass $$;
CREATE FUNCTION pg_temp.has_part(d date) RETURNS boolean
    LANGUAGE sql AS $$
    SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = 'secpolicy.login_attempts'::regclass
                      AND inhrelid = to_regclass('secpolicy.' || pg_temp.pname(d))) $$;
CREATE FUNCTION pg_temp.plan_of(q text) RETURNS text
    LANGUAGE plpgsql AS $$
DECLARE
    line text;
    result text := '';
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
        result := result || line || E'\n';
    END LOOP;
    RETURN result;
END
$$;
-- names the plan of q any partition of the days older than today - k?
CREATE FUNCTION pg_temp.plan_mentions_before(q text, k integer) RETURNS boolean
    LANGUAGE sql AS $$
    WITH p AS MATERIALIZED (SELECT pg_temp.plan_of(q) AS text)
    SELECT EXISTS (SELECT 1 FROM p, generate_series(k + 1, 60) j
                    WHERE strpos(p.text, pg_temp.pname(pg_temp.today() - j)) > 0) $$;
-- where a row of the log lives
CREATE FUNCTION pg_temp.home(tag text) RETURNS text
    LANGUAGE sql AS $$
    SELECT a.tableoid::regclass::text FROM secpolicy.login_attempts a WHERE a.user_agent = $1 OR a.username = $1 $$;
CREATE FUNCTION pg_temp.row_of(tag text) RETURNS secpolicy.login_attempts
    LANGUAGE sql AS $$ SELECT a.* FROM secpolicy.login_attempts a WHERE a.username = $1 $$;

-- drop every daily partition (rows of the default partition stay)
CREATE FUNCTION pg_temp.drop_daily_partitions() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r regclass;
BEGIN
    FOR r IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'secpolicy.login_attempts'::regclass
                AND inhrelid <> 'secpolicy.login_attempts_default'::regclass LOOP
        EXECUTE format('DROP TABLE %s', r);
    END LOOP;
END
$$;

-- a clean slate: no daily partitions, no rows
SELECT pg_temp.drop_daily_partitions();
DELETE FROM secpolicy.login_attempts;
UPDATE secpolicy.maintenance_state SET pseudonymised_until = '-infinity', last_run_at = NULL;
UPDATE secpolicy.policy SET attempt_retention = '10 days', pseudonymise_after = '5 days';

-- rows (all in the default partition for now); username is the tag
INSERT INTO secpolicy.login_attempts (attempted_at, username, client_addr, user_agent, success, outcome) VALUES
    (now() - interval '50 days', 'r_50d', '198.51.100.1', 'ua', false, 'unknown_user'),
    ((pg_temp.today() - 20)::timestamp AT TIME ZONE 'UTC' + interval '12 hours', 'r_20d', '198.51.100.2', 'ua', false, 'unknown_user'),
    ((pg_temp.today() - 10)::timestamp AT TIME ZONE 'UTC', 'r_10d_start', '198.51.100.3', 'ua', false, 'unknown_user'),
    (now() - interval '7 days', 'r_7d_v4', '203.0.113.77', 'Mozilla/5.0', false, 'unknown_user'),
    (now() - interval '7 days', 'r_7d_v6', '2001:db8:abcd:12:1::5', 'curl/8', false, 'unknown_user'),
    (now() - interval '7 days', 'r_7d_null', NULL, 'ua', false, 'unknown_user'),
    (now() - interval '7 days', 'r_7d_net', '10.0.0.0/8', NULL, false, 'unknown_user'),
    (now() - interval '5 days' - interval '1 minute', 'r_5d_older', '203.0.113.78', 'ua', true, 'ok'),
    (now() - interval '5 days' + interval '1 minute', 'r_5d_newer', '203.0.113.79', 'ua', true, 'ok'),
    (now() - interval '3 days', 'r_3d', '203.0.113.80', 'ua', false, 'invalid_password'),
    (now() - interval '1 hour', 'r_1h', '203.0.113.81', 'ua', false, 'invalid_password'),
    (now() + interval '30 days', 'r_future', '203.0.113.82', 'ua', false, 'invalid_password');

-- ---------------------------------------------------------------- create_attempt_partitions
SELECT is(pg_temp.parts(), 0::bigint, 'no daily partition before the first call');
SELECT is(pg_temp.home('r_7d_v4'), 'secpolicy.login_attempts_default', 'rows land in the default partition at first');
SELECT is(secpolicy.create_attempt_partitions(2, pg_temp.today() - 40), 43,
          'create_attempt_partitions(2, today - 40) creates 43 daily partitions');
SELECT is(pg_temp.parts(), 43::bigint, 'pg_inherits lists 43 daily partitions besides the default one');
SELECT ok(pg_temp.has_part(pg_temp.today() - 40) AND pg_temp.has_part(pg_temp.today()) AND pg_temp.has_part(pg_temp.today() + 2),
          'the first, today''s and the last partition exist');
SELECT ok(NOT pg_temp.has_part(pg_temp.today() - 41) AND NOT pg_temp.has_part(pg_temp.today() + 3),
          'none before from_day nor after days_ahead');
SELECT is(pg_get_expr(c.relpartbound, c.oid),
          format('FOR VALUES FROM (%L) TO (%L)', pg_temp.today()::timestamp AT TIME ZONE 'UTC',
                 (pg_temp.today() + 1)::timestamp AT TIME ZONE 'UTC'),
          'today''s partition covers today 00:00 UTC to tomorrow 00:00 UTC')
  FROM pg_class c WHERE c.oid = to_regclass('secpolicy.' || pg_temp.pname(pg_temp.today()));
SELECT is(pg_temp.home('r_7d_v4'), 'secpolicy.' || pg_temp.pname((now() - interval '7 days')::date),
          'a row of 7 days ago moved into its day''s partition');
SELECT is(pg_temp.home('r_1h'), 'secpolicy.' || pg_temp.pname((now() - interval '1 hour')::date),
          'a row of an hour ago moved into its day''s partition');
SELECT is(pg_temp.home('r_50d'), 'secpolicy.login_attempts_default', 'a row before from_day stays in the default partition');
SELECT is(pg_temp.home('r_future'), 'secpolicy.login_attempts_default', 'a row after the last partition stays in the default partition');
SELECT is((SELECT count(*) FROM secpolicy.login_attempts), 12::bigint, 'no row was lost or duplicated by the move');
SELECT is((SELECT count(*) FROM ONLY secpolicy.login_attempts_default), 2::bigint, 'only those 2 rows remain in the default partition');
SELECT is(secpolicy.create_attempt_partitions(2, pg_temp.today() - 40), 0, 'a second call creates nothing');
SELECT is(pg_temp.parts(), 43::bigint, 'and leaves the partitions as they were');
SELECT is((SELECT count(*) FROM secpolicy.login_attempts), 12::bigint, 'and the rows');
SELECT is(secpolicy.create_attempt_partitions(3), 1, 'create_attempt_partitions(3) from today adds only the missing day');
INSERT INTO secpolicy.login_attempts (username, success, outcome) VALUES ('r_now', false, 'unknown_user');
SELECT is(pg_temp.home('r_now'), 'secpolicy.' || pg_temp.pname(pg_temp.today()), 'a new attempt lands in today''s partition');
SELECT throws_ok('SELECT secpolicy.create_attempt_partitions(NULL)', '22023', NULL, 'days_ahead NULL raises 22023');
SELECT throws_ok('SELECT secpolicy.create_attempt_partitions(-1)', '22023', NULL, 'negative days_ahead raises 22023');
SELECT throws_ok('SELECT secpolicy.create_attempt_partitions(367)', '22023', NULL, 'days_ahead over 366 raises 22023');

-- ---------------------------------------------------------------- partition pruning
SELECT ok(strpos(pg_temp.plan_of($$SELECT count(*) FROM secpolicy.login_attempts WHERE attempted_at >= now() - interval '24 hours'$$),
                 pg_temp.pname(pg_temp.today())) > 0, 'a query on the last 24 hours reads today''s partition');
SELECT ok(NOT pg_temp.plan_mentions_before($$SELECT count(*) FROM secpolicy.login_attempts WHERE attempted_at >= now() - interval '24 hours'$$, 1),
          'and no partition older than yesterday');
-- the report views read their rows in functions, whose plans EXPLAIN does not
-- show: the partitions they read are those whose scan counters (this
-- transaction's statistics) rise
CREATE FUNCTION pg_temp.scans() RETURNS TABLE (rel text, n bigint) LANGUAGE sql AS $$
    SELECT relname::text, coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables
     WHERE schemaname = 'secpolicy' AND relname LIKE 'login_attempts_p%' $$;
CREATE FUNCTION pg_temp.partitions_read(q text) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    result text[];
BEGIN
    CREATE TEMP TABLE scans_before AS SELECT * FROM pg_temp.scans();
    EXECUTE q;
    SELECT array_agg(a.rel ORDER BY a.rel) INTO result FROM pg_temp.scans() a
      LEFT JOIN scans_before b ON b.rel = a.rel WHERE a.n > coalesce(b.n, 0);
    DROP TABLE scans_before;
    RETURN coalesce(result, '{}');
END
$$;
CREATE FUNCTION pg_temp.reads_before(q text, k integer) RETURNS boolean LANGUAGE sql AS $$
    SELECT EXISTS (SELECT 1 FROM unnest(pg_temp.partitions_read(q)) r, generate_series(k + 1, 60) j
                    WHERE r = pg_temp.pname(pg_temp.today() - j)) $$;
SELECT ok(NOT pg_temp.reads_before('SELECT * FROM secpolicy.failed_logins_by_user', 31),
          'failed_logins_by_user reads no partition older than 31 days');
SELECT ok(NOT pg_temp.reads_before('SELECT * FROM secpolicy.failed_logins_by_source', 31),
          'failed_logins_by_source reads no partition older than 31 days');
SELECT ok(pg_temp.pname(pg_temp.today() - 29) = ANY (pg_temp.partitions_read('SELECT * FROM secpolicy.failed_logins_by_source')),
          'but does read the partition of 29 days ago');
SELECT is(secpolicy.refresh_rollups() IS NOT NULL, true, 'with the rollups built');
-- With the rollups built, the views read the rows not counted yet (the tail)
-- of their 30-day windows.  A log of fewer partitions than 4 x (31 + 4) has
-- them read through every partition's logged_xid index, with a plan made
-- once (cheaper than planning the window's 31 partitions at each call); a
-- longer log (the default retention keeps 400) reads the window's only:
-- tested on a log of 150 days, then rolled back (apply_retention below counts
-- the partitions).
SAVEPOINT long_log;
SELECT secpolicy.create_attempt_partitions(2, pg_temp.today() - 150) > 100 AS long_log_made \gset
SELECT NOT pg_temp.reads_before('SELECT * FROM secpolicy.failed_logins_by_user', 31)
       AND NOT pg_temp.reads_before('SELECT * FROM secpolicy.failed_logins_by_source', 31) AS long_log_window \gset
SELECT pg_temp.pname(pg_temp.today() - 100) = ANY (pg_temp.partitions_read('SELECT * FROM secpolicy.failed_logins_by_user'))
    AS long_log_old_read \gset
ROLLBACK TO SAVEPOINT long_log;
SELECT ok(:'long_log_made' AND :'long_log_window' AND NOT :'long_log_old_read',
          'on a log of 150 days the views read no partition older than 31 days either');
SELECT ok(pg_temp.pname(pg_temp.today() - 40) = ANY (pg_temp.partitions_read('SELECT * FROM secpolicy.failed_logins_by_user')),
          'on this log of 43 partitions they read the tail through every partition (a plan made once per session)');
-- the tail (rows logged since the refresh) is read in the report's range only
SELECT secpolicy.record_attempt(NULL, 'r_tail', '192.0.2.9', NULL, false, 'unknown_user');
SELECT ok(NOT pg_temp.reads_before($$SELECT * FROM secpolicy.failed_login_report(date_trunc('hour', now()) - interval '23 hours', now(), '1 hour')$$, 2),
          'a report of the last day reads the tail in no partition older than 2 days');

-- ---------------------------------------------------------------- apply_retention
-- failure counters: forgotten below the limit after attempt_retention, but
-- never before 90 days (here retention is 10 days)
INSERT INTO secpolicy.unknown_user_failures (username_key, failed_attempts, first_failed_at, last_failed_at)
VALUES ('r_gone', 4, now() - interval '120 days', now() - interval '91 days'),
       ('r_gone_null', 0, now() - interval '91 days', NULL),
       ('r_locked', 5, now() - interval '120 days', now() - interval '100 days'),
       ('r_floor', 2, now() - interval '60 days', now() - interval '30 days'),
       ('r_kept', 2, now() - interval '30 days', now() - interval '9 days');
SELECT FROM unnest(ARRAY['r_acc_old', 'r_acc_floor', 'r_acc_forced', 'r_acc_locked']) n, secpolicy.create_user(n, 'Vb8#kT2q!Lm4zR');
UPDATE secpolicy.users SET failed_attempts = 4, last_failed_at = now() - interval '91 days' WHERE username = 'r_acc_old';
UPDATE secpolicy.users SET failed_attempts = 4, last_failed_at = now() - interval '30 days' WHERE username = 'r_acc_floor';
UPDATE secpolicy.users SET failed_attempts = 2, reset_required = true, last_failed_at = now() - interval '91 days'
 WHERE username = 'r_acc_forced';
UPDATE secpolicy.users SET failed_attempts = 5, reset_required = true, last_failed_at = now() - interval '100 days'
 WHERE username = 'r_acc_locked';
SELECT results_eq('SELECT dropped_partitions, deleted_rows, pseudonymised_rows, forgotten_counters FROM secpolicy.apply_retention()',
                  $$VALUES (30, 1::bigint, 5::bigint, 4::bigint)$$,
                  'apply_retention drops 30 partitions, deletes 1 old default row, pseudonymises 5 rows, forgets 4 failure counters');
SELECT results_eq('SELECT username_key, failed_attempts FROM secpolicy.unknown_user_failures WHERE username_key LIKE ''r\_%'' ORDER BY 1',
                  $$VALUES ('r_floor', 2), ('r_kept', 2), ('r_locked', 5)$$,
                  'unknown names below the limit last tried over 90 days ago are forgotten; younger ones and one at the limit stay');
SELECT results_eq($$SELECT username, failed_attempts, reset_required FROM secpolicy.users WHERE username LIKE 'r\_acc\_%' ORDER BY 1$$,
                  $$VALUES ('r_acc_floor', 4, false), ('r_acc_forced', 0, true), ('r_acc_locked', 5, true), ('r_acc_old', 0, false)$$,
                  'the same rule for accounts (a forced reset stays required, its old count goes); a lockout stays');
SELECT ok(NOT pg_temp.has_part(pg_temp.today() - 11) AND NOT pg_temp.has_part(pg_temp.today() - 40),
          'partitions wholly older than attempt_retention are gone');
SELECT is(to_regclass('secpolicy.' || pg_temp.pname(pg_temp.today() - 11)), NULL, 'dropped, not just detached');
SELECT ok(pg_temp.has_part(pg_temp.today() - 10), 'the partition holding the retention cut-off stays');
SELECT is(pg_temp.home('r_10d_start'), 'secpolicy.' || pg_temp.pname(pg_temp.today() - 10),
          'with its rows, although one is older than the cut-off (only whole partitions are dropped)');
SELECT is(pg_temp.home('r_20d'), NULL, 'a row in a dropped partition is gone');
SELECT is(pg_temp.home('r_50d'), NULL, 'an old row of the default partition is deleted');
SELECT is(pg_temp.home('r_future'), 'secpolicy.login_attempts_default', 'a future row of the default partition is kept');
SELECT results_eq($$SELECT client_addr, user_agent FROM secpolicy.login_attempts WHERE username = 'r_7d_v4'$$,
                  $$VALUES ('203.0.113.0/24'::inet, NULL::text)$$, 'an old IPv4 address keeps its /24, the user agent goes');
SELECT results_eq($$SELECT client_addr, user_agent FROM secpolicy.login_attempts WHERE username = 'r_7d_v6'$$,
                  $$VALUES ('2001:db8:abcd::/48'::inet, NULL::text)$$, 'an old IPv6 address keeps its /48');
SELECT results_eq($$SELECT client_addr, user_agent FROM secpolicy.login_attempts WHERE username = 'r_7d_null'$$,
                  $$VALUES (NULL::inet, NULL::text)$$, 'a NULL address stays NULL');
SELECT is((pg_temp.row_of('r_7d_net')).client_addr, '10.0.0.0/8'::inet, 'a network wider than /24 is kept as it is');
SELECT is((pg_temp.row_of('r_5d_older')).client_addr, '203.0.113.0/24'::inet, 'a row just older than pseudonymise_after is pseudonymised');
SELECT results_eq($$SELECT client_addr, user_agent FROM secpolicy.login_attempts WHERE username = 'r_5d_newer'$$,
                  $$VALUES ('203.0.113.79'::inet, 'ua'::text)$$, 'a row just younger than pseudonymise_after is untouched');
SELECT is((SELECT pseudonymised_until FROM secpolicy.maintenance_state), now() - interval '5 days',
          'maintenance_state remembers how far pseudonymisation got');
SELECT results_eq('SELECT dropped_partitions, deleted_rows, pseudonymised_rows, forgotten_counters FROM secpolicy.apply_retention()',
                  $$VALUES (0, 0::bigint, 0::bigint, 0::bigint)$$, 'a second apply_retention does nothing (each row pseudonymised once)');
UPDATE secpolicy.policy SET require_mfa = false;
SELECT results_eq($$SELECT (secpolicy.login('r_locked', 'Vb8#kT2q!Lm4zR')).status, (secpolicy.login('r_acc_locked', 'Wrong-Pass-99!')).status$$,
                  $$VALUES ('reset_required', 'reset_required')$$,
                  'after retention a locked unknown name still answers like a locked account');

-- ---------------------------------------------------------------- maintain
SELECT FROM secpolicy.create_user('regress_ret_ann', 'Vb8#kT2q!Lm4zR');
UPDATE secpolicy.policy SET require_mfa = false;
SELECT FROM secpolicy.login('regress_ret_ann', 'Vb8#kT2q!Lm4zR');
UPDATE secpolicy.sessions SET last_seen_at = now() - interval '1 hour', created_at = now() - interval '2 hours'
 WHERE user_id = (SELECT id FROM secpolicy.users WHERE username = 'regress_ret_ann');
CREATE TEMP TABLE m AS SELECT secpolicy.maintain() AS j;
SELECT set_eq('SELECT jsonb_object_keys(j) FROM m',
              ARRAY['partitions_created', 'rollup_rows_counted', 'dropped_partitions', 'deleted_rows', 'pseudonymised_rows', 'forgotten_counters', 'sessions_expired',
                    'sessions_deleted', 'challenges_deleted', 'reset_tokens_deleted', 'incidents_opened',
                    'disclosure_partitions_created', 'disclosure_partitions_dropped', 'disclosure_rows_deleted',
                    'protection_worker'],
              'maintain() returns its JSON summary');
SELECT results_eq($$SELECT (j ->> 'partitions_created')::int, (j ->> 'sessions_expired')::int, (j ->> 'dropped_partitions')::int
                      FROM m$$,
                  $$VALUES (4, 1, 0)$$, 'maintain() created the partitions up to 7 days ahead and expired the idle session');
SELECT is((SELECT last_run_at FROM secpolicy.maintenance_state), now(), 'maintain() records when it ran');

-- ---------------------------------------------------------------- partition bounds and the session's settings
-- partition bounds do not depend on the session's DateStyle and TimeZone
-- (German style prints zone abbreviations; IST is read back as Israel time)
SELECT pg_temp.drop_daily_partitions();
SET LOCAL DateStyle = 'German';
SET LOCAL TimeZone = 'Asia/Kolkata';
SELECT FROM secpolicy.create_attempt_partitions(1, pg_temp.today() - 1);
SET LOCAL DateStyle = 'ISO, YMD';
SET LOCAL TimeZone = 'UTC';
INSERT INTO secpolicy.login_attempts (attempted_at, username, success, outcome)
VALUES (pg_temp.today() + time '00:30', 'r_early', false, 'unknown_user'),
       (pg_temp.today() + time '23:30', 'r_late', false, 'unknown_user');
SELECT results_eq($$SELECT pg_temp.home('r_early'), pg_temp.home('r_late')$$,
                  $$SELECT 'secpolicy.' || pg_temp.pname(pg_temp.today()), 'secpolicy.' || pg_temp.pname(pg_temp.today())$$,
                  'partitions created under DateStyle German and TimeZone Asia/Kolkata still cover whole UTC days');

SELECT * FROM finish();
ROLLBACK;
