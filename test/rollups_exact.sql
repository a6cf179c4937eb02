-- pgTAP: the report rollups (src/sql/89_rollups.sql) give exactly the
-- numbers of the raw log.  On random attempts (accounts, unknown usernames in
-- several cases, NULL usernames and addresses, lockouts, successes, rows in
-- the future, back-dated rows), every report view and failed_login_report()
-- over many random ranges and buckets (aligned on the UTC hour or day or not,
-- cut at now) equal the 1.0 definitions computed from the log
-- (test/lib/reports_reference.psql): before the first build (the reports read
-- the log), after it, with a tail of rows not counted yet, after incremental
-- refreshes (back-dated rows land in old, closed days), with the windows
-- anchored an hour and two days in the past (moved by timestamps), in
-- America/New_York and Asia/Kolkata; incremental rollups equal a rebuild from
-- scratch; rows this transaction logs after a refresh stay in the tail;
-- retention drops the rollup rows of the partitions it drops and recounts
-- pseudonymised hours; failed_login_report refuses a bucket that does not
-- move forward on the calendar (it looped forever in 1.0), and
-- rebuild_rollups() checks its argument, is audited and is for admins.
BEGIN;
\ir lib/helpers.psql
\ir lib/reports_reference.psql
SELECT plan(69);

SET LOCAL TimeZone = 'UTC';
SELECT setseed(0.13);
DELETE FROM secpolicy.login_attempts;
SELECT FROM secpolicy.create_attempt_partitions(2, current_date - 45);

-- n random attempts between now() - back and now() + ahead
CREATE FUNCTION pg_temp.attempts(n integer, back interval, ahead interval DEFAULT '0') RETURNS void
    LANGUAGE sql AS $$
    INSERT INTO secpolicy.login_attempts (attempted_at, user_id, username, client_addr, success, outcome, stage)
    SELECT now() - random() * back + random() * ahead,
           CASE WHEN r.k % 3 = 0 THEN NULL ELSE r.k % 40 END,
           CASE WHEN r.k % 13 = 0 THEN NULL WHEN r.k % 2 = 0 THEN 'User' || (r.k % 50) ELSE 'user' || (r.k % 50) END,
           CASE WHEN r.k % 11 = 0 THEN NULL ELSE ('10.' || (r.k % 3) || '.0.' || (r.k % 17))::inet END,
           r.k % 4 = 0,
           CASE WHEN r.k % 4 = 0 THEN 'ok' WHEN r.k % 9 = 0 THEN 'lockout' ELSE 'invalid_password' END,
           CASE WHEN r.k % 5 = 0 THEN 'mfa' ELSE 'password' END
      FROM (SELECT (random() * 1000)::int AS k FROM generate_series(1, n)) r $$;

-- how many rows of each view differ from the 1.0 definition, and how many of
-- k random report ranges do
CREATE FUNCTION pg_temp.mismatches(k integer) RETURNS text LANGUAGE sql AS $$
    SELECT format('daily %s, by_user %s, by_source %s, report %s',
        pg_temp.diff_rows('SELECT * FROM secpolicy.failed_logins_daily', 'SELECT * FROM pg_temp.ref_daily()'),
        pg_temp.diff_rows('SELECT * FROM secpolicy.failed_logins_by_user', 'SELECT * FROM pg_temp.ref_by_user()'),
        pg_temp.diff_rows('SELECT * FROM secpolicy.failed_logins_by_source', 'SELECT * FROM pg_temp.ref_by_source()'),
        pg_temp.report_mismatches(k, now() - interval '45 days', now() + interval '1 day')) $$;
CREATE FUNCTION pg_temp.rollups() RETURNS text LANGUAGE sql AS $$
    SELECT md5(concat_ws('|', (SELECT string_agg(h::text, ',' ORDER BY h.hour) FROM secpolicy.rollup_hourly h),
                              (SELECT string_agg(o::text, ',' ORDER BY o::text) FROM secpolicy.rollup_outcomes o),
                              (SELECT string_agg(d::text, ',' ORDER BY d.day) FROM secpolicy.rollup_daily d),
                              (SELECT string_agg(k::text, ',' ORDER BY k::text) FROM secpolicy.rollup_day_keys k),
                              (SELECT string_agg(k::text, ',' ORDER BY k::text) FROM secpolicy.rollup_hour_keys k),
                              (SELECT string_agg(w::text, ',' ORDER BY w::text) FROM secpolicy.rollup_user_windows w),
                              (SELECT string_agg(s::text, ',' ORDER BY s::text) FROM secpolicy.rollup_source_names s),
                              (SELECT string_agg(s::text, ',' ORDER BY s::text) FROM secpolicy.rollup_sources s),
                              (SELECT string_agg(n::text, ',' ORDER BY n::text) FROM secpolicy.rollup_user_names n))) $$;
-- the anchor of the stored windows moved back by d (windows rebuilt for it)
CREATE FUNCTION pg_temp.anchor_back(d interval) RETURNS void LANGUAGE sql AS $$
    UPDATE secpolicy.rollup_state SET refreshed_at = refreshed_at - d, from_24h = from_24h - d,
                                      from_7d = from_7d - d, from_30d = from_30d - d;
    SELECT secpolicy.rollup_windows_rebuild() $$;
CREATE FUNCTION pg_temp.rollup_hours_before(t timestamptz) RETURNS bigint LANGUAGE sql AS $$
    SELECT (SELECT count(*) FROM secpolicy.rollup_hourly h WHERE h.hour < t)
         + (SELECT count(*) FROM secpolicy.rollup_daily d WHERE d.day::timestamptz < t) $$;

-- ---------------------------------------------------------------- never built: the log
UPDATE secpolicy.rollup_state SET built = false;
SELECT pg_temp.attempts(1500, '44 days', '2 hours');
INSERT INTO secpolicy.unknown_user_failures (username_key, failed_attempts) VALUES ('user7', 5)
    ON CONFLICT (username_key) DO UPDATE SET failed_attempts = 5;
SELECT is(pg_temp.mismatches(10), 'daily 0, by_user 0, by_source 0, report 0',
          'not built yet: every report equals the log (read from the log)');

-- ---------------------------------------------------------------- first build
SELECT is((SELECT counted_rows FROM secpolicy.refresh_rollups()), 1500::bigint, 'the first refresh counts all 1500 rows');
SELECT ok((SELECT built FROM secpolicy.rollup_state), 'the rollups are built');
SELECT is((SELECT sum(attempts) FROM secpolicy.rollup_hourly), 1500::numeric, 'the hourly rollups hold every attempt once');
SELECT is((SELECT sum(attempts) FROM secpolicy.rollup_outcomes), 1500::numeric, 'and so do the outcomes');
SELECT is((SELECT sum(attempts) FROM secpolicy.rollup_daily), 1500::numeric, 'and the daily rollups');
SELECT is(pg_temp.mismatches(8), 'daily 0, by_user 0, by_source 0, report 0', 'built: every report equals the log');
SELECT is((SELECT count(*) FROM secpolicy.rollup_day_keys WHERE day < current_date - 1), 0::bigint,
          'only the open days (yesterday on) keep their distinct keys');
SELECT ok((SELECT bool_and(keyed = (day >= current_date - 1)) FROM secpolicy.rollup_daily), 'exactly the open days are keyed');
SELECT is((SELECT count(*) FROM secpolicy.rollup_hour_keys
            WHERE hour < date_bin('1 hour', now(), '2000-01-01 00:00+00') - interval '1 hour'), 0::bigint,
          'only the open hours (the hour before the refresh''s on) keep their distinct keys');
SELECT ok((SELECT bool_and(keyed = (hour >= date_bin('1 hour', now(), '2000-01-01 00:00+00') - interval '1 hour'))
             FROM secpolicy.rollup_hourly), 'exactly the open hours are keyed');
SELECT is((SELECT count(*) FROM secpolicy.rollup_hourly h,
                   LATERAL (SELECT count(*) FILTER (WHERE k.kind = 'a') AS a, count(*) FILTER (WHERE k.kind = 'u') AS u,
                                   count(*) FILTER (WHERE k.kind = 's') AS s
                              FROM secpolicy.rollup_hour_keys k WHERE k.hour = h.hour) k
            WHERE h.keyed AND (h.distinct_accounts, h.distinct_usernames, h.distinct_sources) IS DISTINCT FROM (k.a, k.u, k.s)), 0::bigint,
          'a keyed hour holds one key per distinct account, username and source it counts');

-- ---------------------------------------------------------------- the tail
SELECT pg_temp.attempts(400, '2 hours');
SELECT pg_temp.attempts(100, '44 days');
SELECT is(pg_temp.mismatches(8), 'daily 0, by_user 0, by_source 0, report 0',
          'with 500 rows logged after the refresh (in this transaction): every report equals the log');
SELECT is((SELECT sum(attempts) FROM secpolicy.rollup_hourly), 1500::numeric,
          'rows this transaction logs after a refresh are not in the rollups (they stay in the tail)');
SELECT is((SELECT attempts FROM secpolicy.failed_login_report(date_trunc('hour', now()), now() + interval '3 hours', '1 hour') LIMIT 1),
          (SELECT count(*) FROM secpolicy.login_attempts WHERE attempted_at >= date_trunc('hour', now())
              AND attempted_at < date_trunc('hour', now()) + interval '1 hour'),
          'the current hour counts the attempts up to this moment');

-- ---------------------------------------------------------------- incremental
SELECT is((SELECT counted_rows FROM secpolicy.refresh_rollups()), 500::bigint, 'the next refresh counts the 500 new rows');
SELECT is((SELECT sum(attempts) FROM secpolicy.rollup_hourly), 2000::numeric, 'the hourly rollups now hold 2000 attempts');
SELECT is((SELECT count(*) FROM (
              (SELECT hour, stage, outcome, success, attempts FROM secpolicy.rollup_outcomes
               EXCEPT SELECT date_bin('1 hour', attempted_at, '2000-01-01 00:00+00'), stage, outcome, success, count(*)
                        FROM secpolicy.login_attempts GROUP BY 1, 2, 3, 4)
              UNION ALL
              (SELECT date_bin('1 hour', attempted_at, '2000-01-01 00:00+00'), stage, outcome, success, count(*)
                 FROM secpolicy.login_attempts GROUP BY 1, 2, 3, 4
               EXCEPT SELECT hour, stage, outcome, success, attempts FROM secpolicy.rollup_outcomes)) d), 0::bigint,
          'the outcome rollups equal the log per hour, stage, outcome and success (the open hours counted on)');
SELECT is(pg_temp.mismatches(8), 'daily 0, by_user 0, by_source 0, report 0', 'after the refresh: every report equals the log');
SELECT is((SELECT counted_rows FROM secpolicy.refresh_rollups()), 0::bigint, 'a refresh with nothing new counts nothing');
-- hours that close: a refresh three hours later (the watermark moved back, the
-- hours since keyed) drops their keys and the mark
UPDATE secpolicy.rollup_state SET refreshed_at = refreshed_at - interval '3 hours';
SELECT secpolicy.rollup_recount_range(now() - interval '5 hours', 'infinity');
SELECT ok((SELECT count(*) FROM secpolicy.rollup_hour_keys WHERE hour < date_trunc('hour', now()) - interval '1 hour') > 0,
          'hours keyed while they were open');
SELECT FROM secpolicy.refresh_rollups();
SELECT is((SELECT count(*) FROM secpolicy.rollup_hourly
            WHERE keyed <> (hour >= date_bin('1 hour', now(), '2000-01-01 00:00+00') - interval '1 hour')), 0::bigint,
          'a refresh unmarks the hours that closed');
-- sources that nothing touched since the refresh: whether they spray follows
-- the time (one sprayed 50 minutes ago, one 70 minutes ago: detection_window 1 h)
INSERT INTO secpolicy.login_attempts (attempted_at, user_id, username, client_addr, success, outcome)
SELECT now() - interval '50 minutes' - g * interval '1 second', NULL::bigint, 'spray' || g, inet '192.0.2.77', false, 'unknown_user'
  FROM generate_series(1, 12) g
UNION ALL
SELECT now() - interval '70 minutes' - g * interval '1 second', NULL, 'spray' || g, inet '192.0.2.78', false, 'unknown_user'
  FROM generate_series(1, 12) g
UNION ALL
-- (15 usernames in 30 days, but 9 of them within the window)
SELECT now() - CASE WHEN g <= 9 THEN interval '30 minutes' ELSE interval '3 hours' END - g * interval '1 second',
       NULL, 'spray' || g, inet '192.0.2.79', false, 'unknown_user'
  FROM generate_series(1, 15) g;
SELECT FROM secpolicy.refresh_rollups();
SELECT is((SELECT string_agg(client_addr || ' ' || spraying, ', ' ORDER BY client_addr) FROM secpolicy.failed_logins_by_source
            WHERE client_addr << '192.0.2.0/24'),
          '192.0.2.77/32 true, 192.0.2.78/32 false, 192.0.2.79/32 false',
          'an untouched source sprays while spray_min_accounts of its usernames failed within the detection window');
-- whether stored sources spray is found once per query, not by a lookup per
-- stored row (which made the view's plan look costly enough to be
-- JIT-compiled: 0.2 s of 0.4 s at 350,000 sources)
SELECT ok(pg_temp.plan_of('SELECT * FROM secpolicy.failed_logins_by_source') ~ 'hashed SubPlan.*rollup_spraying_sources'
          AND pg_temp.plan_of('SELECT * FROM secpolicy.failed_logins_by_source') !~ 'rollup_source_names',
          'failed_logins_by_source: which stored sources spray is one hashed set per query');
SELECT is(pg_temp.mismatches(4), 'daily 0, by_user 0, by_source 0, report 0', 'and every report equals the log');
-- back-dated rows (an import, clock skew) in closed days and in the future
INSERT INTO secpolicy.login_attempts (attempted_at, user_id, username, client_addr, success, outcome)
VALUES (now() - interval '40 days', 3, 'user3', '10.9.9.9', false, 'invalid_password'),
       (now() - interval '20 days', NULL, 'Brand-New', '10.9.9.9', false, 'unknown_user'),
       (now() - interval '20 days', NULL, 'brand-new', NULL, false, 'unknown_user'),
       (now() + interval '30 minutes', 5, 'user5', '10.9.9.8', false, 'lockout');
SELECT is((SELECT counted_rows FROM secpolicy.refresh_rollups()), 4::bigint, 'back-dated rows are counted');
SELECT is((SELECT distinct_sources FROM secpolicy.rollup_daily WHERE day = (now() - interval '20 days')::date),
          (SELECT count(DISTINCT client_addr) FROM secpolicy.login_attempts
            WHERE NOT success AND attempted_at::date = (now() - interval '20 days')::date),
          'in the right closed day, once (its distinct sources recounted)');
SELECT is(pg_temp.mismatches(8), 'daily 0, by_user 0, by_source 0, report 0', 'with back-dated rows: every report equals the log');
SELECT is(pg_temp.rollups(), (SELECT pg_temp.rollups() FROM (SELECT secpolicy.rebuild_rollups('-infinity')) r),
          'the incrementally refreshed rollups equal those rebuilt from scratch');

-- ---------------------------------------------------------------- windows moved to now
SELECT pg_temp.anchor_back('1 hour');
SELECT is(pg_temp.mismatches(10), 'daily 0, by_user 0, by_source 0, report 0',
          'windows refreshed an hour ago: moved to now, the views equal the log');
INSERT INTO secpolicy.login_attempts (attempted_at, user_id, username, client_addr, success, outcome)
SELECT now() - interval '24 hours' + g * interval '1 minute', g % 40, 'user' || (g % 40), '10.8.0.1', false, 'invalid_password'
  FROM generate_series(-90, 90) g;
SELECT is(pg_temp.mismatches(10), 'daily 0, by_user 0, by_source 0, report 0',
          'with rows around the 24-hour bound in the tail: the views equal the log');
SELECT is((SELECT counted_rows FROM secpolicy.refresh_rollups()), 181::bigint, 'a refresh an hour later counts them');
SELECT is(pg_temp.mismatches(10), 'daily 0, by_user 0, by_source 0, report 0',
          'the windows advanced by an hour: the views equal the log');
SELECT is(pg_temp.rollups(), (SELECT pg_temp.rollups() FROM (SELECT secpolicy.rebuild_rollups('-infinity')) r),
          'windows advanced incrementally equal windows rebuilt');
-- sources whose first failure left the 30-day window since the refresh: the
-- first failure is then the next one, found on the window's first day, later
-- in the window or ahead of now, or the one failure left
INSERT INTO secpolicy.login_attempts (attempted_at, user_id, username, client_addr, success, outcome)
SELECT now() - o.back, NULL, 'stale' || o.src, ('10.7.0.' || o.src)::inet, false, 'unknown_user'
  FROM (VALUES (1, interval '30 days 30 minutes'), (1, '28 days 12 hours'), (1, '10 days'),
               (2, '30 days 30 minutes'), (2, '29 days 12 hours'), (2, '10 days'),
               (3, '30 days 30 minutes'), (3, '10 days'),
               -- (and one whose failures left in the window lie ahead of now: a clock ahead)
               (4, '30 days 30 minutes'), (4, '-2 hours'), (4, '-3 hours')) o(src, back);
SELECT FROM secpolicy.refresh_rollups();
SELECT pg_temp.anchor_back('1 hour');
SELECT is((SELECT string_agg(host(client_addr) || ' ' || (now() - first_failure_at) || ' ' || failures_30d, ', '
                             ORDER BY client_addr)
             FROM secpolicy.failed_logins_by_source WHERE client_addr << '10.7.0.0/24'),
          '10.7.0.1 28 days 12:00:00 2, 10.7.0.2 29 days 12:00:00 2, 10.7.0.3 10 days 1, 10.7.0.4 -02:00:00 2',
          'a first failure that left the window: the next one (on the window''s first day, later, or ahead of now), or the one left');
SELECT is(pg_temp.mismatches(4), 'daily 0, by_user 0, by_source 0, report 0', 'and every report equals the log');
-- the refresh moves them too: the next first failure on the window's first
-- day, later, ahead of the refresh, or the one left (each found otherwise)
SELECT FROM secpolicy.refresh_rollups();
SELECT is((SELECT string_agg(host(client_addr) || ' ' || (now() - first_failure_at) || ' ' || failures_30d, ', '
                             ORDER BY client_addr)
             FROM secpolicy.rollup_source_names WHERE client_addr << '10.7.0.0/24'),
          '10.7.0.1 28 days 12:00:00 2, 10.7.0.2 29 days 12:00:00 2, 10.7.0.3 10 days 1, 10.7.0.4 -02:00:00 2',
          'a refresh an hour later stores the next first failures');
SELECT is(pg_temp.rollups(), (SELECT pg_temp.rollups() FROM (SELECT secpolicy.rebuild_rollups('-infinity')) r),
          'and its windows equal windows rebuilt');
-- the top of either view by failures reads the stored rows in the order of
-- their index (the views are plain views over the two parts), as many as it
-- shows; and equals the top of the log
SET LOCAL enable_seqscan = off;
SELECT ok(pg_temp.plan_of('SELECT * FROM secpolicy.failed_logins_by_source ORDER BY failures_30d DESC LIMIT 10')
              ~ 'Merge Append.*Index Scan Backward using rollup_sources_failures_idx',
          'the top of failed_logins_by_source merges the stored rows in index order');
SELECT ok(pg_temp.plan_of('SELECT * FROM secpolicy.failed_logins_by_user ORDER BY failures_30d DESC LIMIT 10')
              ~ 'Merge Append.*Index Scan Backward using rollup_user_names_failures_idx',
          'the top of failed_logins_by_user merges the stored rows in index order');
RESET enable_seqscan;
SELECT is(pg_temp.diff_rows('SELECT * FROM (SELECT * FROM secpolicy.failed_logins_by_source
                                              ORDER BY failures_30d DESC, client_addr LIMIT 10) t',
                            'SELECT * FROM (SELECT * FROM pg_temp.ref_by_source()
                                              ORDER BY failures_30d DESC, client_addr LIMIT 10) t'),
          0::bigint, 'the top 10 sources by failures equal the log''s');
SELECT is(pg_temp.diff_rows('SELECT * FROM (SELECT * FROM secpolicy.failed_logins_by_user
                                              ORDER BY failures_30d DESC, user_id, username LIMIT 10) t',
                            'SELECT * FROM (SELECT * FROM pg_temp.ref_by_user()
                                              ORDER BY failures_30d DESC, user_id, username LIMIT 10) t'),
          0::bigint, 'the top 10 names by failures equal the log''s');
-- the rows changed since the refresh are read once per query, though each
-- view uses them two or three times (src/rollups.c), and read again when what
-- the query sees changes: a row logged in a subtransaction, and its rollback
CREATE FUNCTION pg_temp.change_reads() RETURNS bigint LANGUAGE sql AS $$
    SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions
     WHERE schemaname = 'secpolicy' AND funcname = 'rollup_window_changes_read' $$;
SET LOCAL track_functions = 'all';
CREATE TEMP TABLE change_reads_before AS SELECT pg_temp.change_reads() AS n;
SELECT FROM secpolicy.failed_logins_by_source;
SELECT is(pg_temp.change_reads() - (SELECT n FROM change_reads_before), 1::bigint,
          'a query of failed_logins_by_source reads the changed rows once');
SAVEPOINT memo;
INSERT INTO secpolicy.login_attempts (attempted_at, user_id, username, client_addr, success, outcome)
VALUES (now(), NULL, 'memo-name', '10.6.0.1', false, 'unknown_user');
SELECT is((SELECT failures_30d FROM secpolicy.failed_logins_by_source WHERE client_addr = '10.6.0.1'), 1::bigint,
          'an attempt logged in a subtransaction is in the view at once');
ROLLBACK TO SAVEPOINT memo;
SELECT is((SELECT count(*) FROM secpolicy.failed_logins_by_source WHERE client_addr = '10.6.0.1'), 0::bigint,
          'and gone once the subtransaction is rolled back');
-- (no write between the two reads: the same command, the same snapshot)
SELECT lives_ok($t$DO $do$
    DECLARE inside bigint; after bigint;
    BEGIN
        BEGIN
            INSERT INTO secpolicy.login_attempts (attempted_at, user_id, username, client_addr, success, outcome)
            VALUES (now(), NULL, 'memo-name', '10.6.0.2', false, 'unknown_user');
            SELECT count(*) INTO inside FROM secpolicy.failed_logins_by_source WHERE client_addr = '10.6.0.2';
            RAISE EXCEPTION 'undo';
        EXCEPTION WHEN raise_exception THEN NULL;
        END;
        SELECT count(*) INTO after FROM secpolicy.failed_logins_by_source WHERE client_addr = '10.6.0.2';
        IF inside <> 1 OR after <> 0 THEN
            RAISE EXCEPTION 'seen inside the block: %, after its rollback: %', inside, after;
        END IF;
    END $do$$t$, 'an exception block rolled back: its attempt is gone from the next query, in the same command');
RESET track_functions;

SELECT pg_temp.anchor_back('2 days');
SELECT is(pg_temp.mismatches(10), 'daily 0, by_user 0, by_source 0, report 0',
          'windows refreshed two days ago: the views read the window from the log and equal it');
SELECT is((SELECT counted_rows FROM secpolicy.refresh_rollups()), 0::bigint, 'a refresh two days later');
SELECT is(pg_temp.mismatches(10), 'daily 0, by_user 0, by_source 0, report 0', 'rebuilds the windows, equal to the log');

-- ---------------------------------------------------------------- other time zones
SET LOCAL TimeZone = 'America/New_York';
SELECT is(pg_temp.mismatches(8), 'daily 0, by_user 0, by_source 0, report 0', 'in America/New_York: every report equals the log');
SET LOCAL TimeZone = 'Asia/Kolkata';
SELECT is(pg_temp.mismatches(8), 'daily 0, by_user 0, by_source 0, report 0', 'in Asia/Kolkata (UTC+5:30): every report equals the log');
SET LOCAL TimeZone = 'UTC';

-- ---------------------------------------------------------------- retention
UPDATE secpolicy.policy SET attempt_retention = '10 days', pseudonymise_after = '5 days';
UPDATE secpolicy.maintenance_state SET pseudonymised_until = '-infinity';
SELECT ok(pg_temp.rollup_hours_before(current_date - 9) > 0, 'rollups hold hours and days older than the retention');
SELECT ok((SELECT dropped_partitions FROM secpolicy.apply_retention()) > 0, 'apply_retention drops old partitions');
SELECT is(pg_temp.rollup_hours_before((SELECT date_trunc('day', min(attempted_at)) FROM secpolicy.login_attempts)), 0::bigint,
          'and the rollup rows of the hours and days it dropped');
SELECT is(pg_temp.mismatches(10), 'daily 0, by_user 0, by_source 0, report 0',
          'after retention and pseudonymisation (fewer distinct sources): every report equals the log');
SELECT is(pg_temp.rollups(), (SELECT pg_temp.rollups() FROM (SELECT secpolicy.rebuild_rollups('-infinity')) r),
          'the rollups after retention equal those rebuilt');

-- ---------------------------------------------------------------- rebuild_rollups
SELECT is((secpolicy.rebuild_rollups(now() - interval '3 days'))->>'since', to_jsonb(now() - interval '3 days') #>> '{}',
          'rebuild_rollups(since) recounts from since on');
SELECT is((SELECT count(*) FROM secpolicy.audit_log WHERE action = 'rollups_rebuilt'), 5::bigint, 'each rebuild is audited');
SELECT throws_ok('SELECT secpolicy.rebuild_rollups(NULL)', '22004', NULL, 'rebuild_rollups(NULL) raises 22004');
SELECT is(pg_temp.sqlstate_as('secpolicy_analyst', $$SELECT secpolicy.rebuild_rollups('-infinity')$$), '42501',
          'an analyst cannot rebuild the rollups');
SELECT is(pg_temp.sqlstate_as('secpolicy_analyst', 'SELECT secpolicy.refresh_rollups()'), '42501',
          'nor refresh them');
SELECT is(pg_temp.sqlstate_as('secpolicy_analyst', 'SELECT * FROM secpolicy.rollup_hourly'), '42501',
          'nor read the rollup tables (only the reports)');
SELECT is(pg_temp.sqlstate_as('secpolicy_analyst', 'SELECT * FROM secpolicy.rollup_status'), '00000',
          'but may see how fresh they are');

-- ---------------------------------------------------------------- no JIT
-- The planner estimates the rollups' and reports' statements over the
-- partitioned log far above jit_above_cost (a generic hour bound matches a
-- whole partition), and JIT compiled each: 5 s per statement at 30 M
-- attempts, a 12 s refresh that reads 4,000 rows (0.4 s without).  The
-- statements read few rows: every one of these functions runs without JIT,
-- whatever the server's setting.
SELECT is((SELECT string_agg(p.proname, ', ' ORDER BY p.proname)
             FROM pg_proc p
            WHERE p.pronamespace = 'secpolicy'::regnamespace
              AND p.prolang = (SELECT l.oid FROM pg_language l WHERE l.lanname = 'plpgsql')
              AND p.proname ~ '^(rollup_|refresh_rollups$|rebuild_rollups$|failed_login|first_failure|failure_span$)'
              AND NOT coalesce(p.proconfig @> '{jit=off}', false)),
          NULL, 'every plpgsql function of the rollups and the reports over the log is SET jit = off');

-- ---------------------------------------------------------------- buckets that do not move forward
SET LOCAL statement_timeout = '5s';
SELECT is(pg_temp.sqlstate_of($$SELECT * FROM secpolicy.failed_login_report('2023-01-30', '2023-02-10', '1 mon -29 days')$$),
          '22023', '''1 mon -29 days'' from January 30 comes back to January 30: 22023, not an endless loop');
SELECT is(pg_temp.sqlstate_of($$SELECT * FROM secpolicy.failed_login_report('2023-01-30', '2023-03-10', '1 mon -30 days 1 hour')$$),
          '22023', 'a bucket that moves backwards on the calendar: 22023');
SELECT is((SELECT count(*) FROM secpolicy.failed_login_report('2023-01-01', '2023-03-01', '1 mon -27 days')),
          (SELECT count(*) FROM generate_series(timestamptz '2023-01-01', '2023-03-01', '1 mon -27 days') g WHERE g < '2023-03-01'),
          'a calendar bucket that does move forward (1 month less 27 days: 4, then 1 to 3 days) is accepted');
RESET statement_timeout;

-- ---------------------------------------------------------------- the tail of an unbounded range
SELECT secpolicy.record_attempt(NULL, 'tail_inf', '192.0.2.200', NULL, false, 'unknown_user');
SELECT ok((SELECT count(*) FROM secpolicy.rollup_tail_all((SELECT s FROM secpolicy.rollup_state s))) > 0, 'with a tail');
SELECT is((SELECT count(*) FROM secpolicy.rollup_tail((SELECT s FROM secpolicy.rollup_state s), '-infinity', 'infinity')),
          (SELECT count(*) FROM secpolicy.rollup_tail_all((SELECT s FROM secpolicy.rollup_state s))),
          'rollup_tail from -infinity to infinity is the whole tail (no error from the partition rule''s arithmetic)');

SELECT * FROM finish();
ROLLBACK;
