#!/usr/bin/env bash
# Scenario: the report rollups count every attempt exactly once, whenever its
# transaction commits, and nothing waits for them (src/sql/89_rollups.sql).
#   - A long transaction logs an attempt (its id below the rows logged after
#     it, its time an hour back) and stays open while other clients log and
#     commit rows and maintain() refreshes the rollups: the refresh does not
#     wait for it (lock_timeout), and the reports, which cannot see its row
#     yet, equal the log.
#   - It commits after the watermark passed its id and its time: every report
#     shows the row at once (the tail), and the next refresh counts it once,
#     in its own hour; a further refresh counts nothing.
#   - While a refresh holds its transaction open, login() and record_attempt()
#     run without waiting (lock_timeout).
#   - Rounds of random attempts committed by several clients (some back-dated
#     into closed days), with refreshes between: after each round, before and
#     after the refresh, every report view and failed_login_report() over 12
#     random ranges equal the 1.0 reports computed from the log.
# Environment: PGHOST/PGPORT/PGUSER of a superuser (scripts/test).
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
db=scen_rollup_watermark_$$
out=$(mktemp -d "${TMPDIR:-/tmp}/scen_rollup.XXXXXX")
at_exit 'rm -rf "$out"'

# the reports against the log: "daily N, by_user N, by_source N, report N"
mismatches() {
    psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" 2>&1 <<SQL | tail -1
SET client_min_messages = warning;
\ir $root/test/lib/reports_reference.psql
SELECT format('daily %s, by_user %s, by_source %s, report %s',
    pg_temp.diff_rows('SELECT * FROM secpolicy.failed_logins_daily', 'SELECT * FROM pg_temp.ref_daily()'),
    pg_temp.diff_rows('SELECT * FROM secpolicy.failed_logins_by_user', 'SELECT * FROM pg_temp.ref_by_user()'),
    pg_temp.diff_rows('SELECT * FROM secpolicy.failed_logins_by_source', 'SELECT * FROM pg_temp.ref_by_source()'),
    pg_temp.report_mismatches(${1:-30}, now() - interval '40 days', now() + interval '1 day'));
SQL
}
EXACT='daily 0, by_user 0, by_source 0, report 0'
# n random attempts logged by one client in one transaction, back to $2
random_attempts() {
    q "INSERT INTO secpolicy.login_attempts (attempted_at, user_id, username, client_addr, success, outcome)
       SELECT now() - random() * interval '$2', CASE WHEN k % 3 = 0 THEN NULL ELSE k % 30 END,
              CASE WHEN k % 2 = 0 THEN 'User' || (k % 40) ELSE 'user' || (k % 40) END,
              CASE WHEN k % 11 = 0 THEN NULL ELSE ('10.1.' || (k % 4) || '.' || (k % 9))::inet END,
              k % 4 = 0, CASE WHEN k % 4 = 0 THEN 'ok' WHEN k % 7 = 0 THEN 'lockout' ELSE 'invalid_password' END
         FROM (SELECT (random() * 1000)::int AS k FROM generate_series(1, $1)) r" >/dev/null
}

plan 17

setup_db
q "UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = false;
   SELECT secpolicy.create_user('watermark_ann', 'Vb8#kT2q!Lm4zR');
   SELECT secpolicy.create_attempt_partitions(2, current_date - 40);" >/dev/null
random_attempts 800 '38 days'
is "$(q "SELECT (secpolicy.maintain())->>'rollup_rows_counted'")" 800 "maintain() builds the rollups: 800 rows counted"

# --- a long transaction ------------------------------------------------------
coproc LONG { psql -X -q -At -d "$db" 2>&1; }
long_pid=$LONG_PID   # bash unsets LONG_PID when the coprocess exits
echo "BEGIN;
      INSERT INTO secpolicy.login_attempts (attempted_at, username, client_addr, success, outcome)
      VALUES (date_trunc('hour', now()) - interval '1 hour' + interval '10 minutes', 'late-row', '192.0.2.99', false, 'unknown_user');
      SELECT 'held';" >&"${LONG[1]}"
read -r -t 30 held <&"${LONG[0]}"
is "$held" held "a transaction logs an attempt an hour back and stays open"
late_id=$(q "SELECT last_value FROM secpolicy.login_attempts_id_seq")
random_attempts 300 '2 hours'
q "SELECT secpolicy.record_attempt(NULL, 'after-late', '192.0.2.98', NULL, false, 'unknown_user')" >/dev/null
is "$(q "SET lock_timeout = '2s'; SELECT (secpolicy.maintain())->>'rollup_rows_counted'")" 301 \
   "maintain() does not wait for the open transaction; it counts the 301 rows committed since"
is "$(q "SELECT max(id) > $late_id FROM secpolicy.login_attempts")|$(q "SELECT count(*) FROM secpolicy.login_attempts WHERE username = 'late-row'")" \
   "t|0" "the watermark is past the uncommitted row's id, which nobody sees yet"
is "$(mismatches 10)" "$EXACT" "the reports equal the log while it is open"
echo "COMMIT; SELECT 'committed';" >&"${LONG[1]}"
read -r -t 30 done_ <&"${LONG[0]}"
is "$done_" committed "the long transaction commits"
hour="date_trunc('hour', now()) - interval '1 hour'"
is "$(q "SELECT failures FROM secpolicy.failed_login_report($hour, $hour + interval '1 hour', '1 hour')")" \
   "$(q "SELECT count(*) FROM secpolicy.login_attempts WHERE NOT success AND attempted_at >= $hour AND attempted_at < $hour + interval '1 hour'")" \
   "its hour shows the late row at once (read from the tail)"
is "$(mismatches 10)" "$EXACT" "every report equals the log right after the commit"
is "$(q "SELECT counted_rows FROM secpolicy.refresh_rollups()")" 1 "the next refresh counts the late row"
is "$(q "SELECT h.failures = (SELECT count(*) FROM secpolicy.login_attempts a WHERE NOT a.success
                                AND a.attempted_at >= h.hour AND a.attempted_at < h.hour + interval '1 hour')
           FROM secpolicy.rollup_hourly h WHERE h.hour = $hour")" t "once, in its own hour"
is "$(q "SELECT counted_rows FROM secpolicy.refresh_rollups()")" 0 "a further refresh counts nothing"
is "$(mismatches 10)" "$EXACT" "every report equals the log"
exec {LONG[1]}>&-
wait "$long_pid" 2>/dev/null

# --- a refresh holds its transaction open: logins do not wait ------------------
coproc REFRESH { psql -X -q -At -d "$db" 2>&1; }
random_attempts 50 '1 hour'
echo "BEGIN; SELECT counted_rows FROM secpolicy.refresh_rollups();" >&"${REFRESH[1]}"
read -r -t 60 counted <&"${REFRESH[0]}"
is "$counted" 50 "a refresh counts 50 rows and keeps its transaction open"
is "$(q "SET lock_timeout = '2s'; SELECT status FROM secpolicy.login('watermark_ann', 'wrong-password');
         SELECT secpolicy.record_attempt(NULL, 'during-refresh', NULL, NULL, false, 'unknown_user');
         SELECT count(*) FROM secpolicy.failed_logins_by_user WHERE username IN ('watermark_ann', 'during-refresh')")" \
   $'invalid_credentials\n\n2' "meanwhile login() and record_attempt() do not wait, and the reports show both at once"
echo "COMMIT;" >&"${REFRESH[1]}"
exec {REFRESH[1]}>&-

# --- rounds of random attempts from several clients ---------------------------
bad=()
for round in 1 2 3; do
    for c in 1 2 3; do random_attempts 200 "$((round * 12)) days" & done
    wait
    m=$(mismatches 12); [ "$m" = "$EXACT" ] || bad+=("round $round before the refresh: $m")
    q "SELECT secpolicy.maintain()" >/dev/null
    m=$(mismatches 12); [ "$m" = "$EXACT" ] || bad+=("round $round after the refresh: $m")
done
is "${#bad[@]}" 0 "3 rounds of 600 attempts from 3 clients: the reports equal the log before and after each refresh (${bad[*]:-})"
is "$(q "SELECT sum(attempts) FROM secpolicy.rollup_hourly")" "$(q "SELECT count(*) FROM secpolicy.login_attempts")" \
   "the hourly rollups hold every row of the log once"
is "$(q "CREATE TEMP TABLE h AS SELECT * FROM secpolicy.rollup_hourly;
         SELECT secpolicy.rebuild_rollups('-infinity') IS NOT NULL;
         SELECT count(*) FROM ((TABLE h EXCEPT TABLE secpolicy.rollup_hourly) UNION ALL (TABLE secpolicy.rollup_hourly EXCEPT TABLE h)) d")" \
   $'t\n0' "and equal the rollups rebuilt from the log"

finish
