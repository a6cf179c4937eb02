#!/usr/bin/env bash
# Scenario: every route by which a password reaches the server log or the
# activity string, with the library preloaded and everything logged
# (log_statement = all, log_min_duration_statement = 0, bind parameters in
# full).  For each route the statement really runs (a login attempt is
# recorded with its own user agent) and its password is nowhere in the log:
#   - PREPARE q AS ... login('...') then a separate EXECUTE q (the "prepare:"
#     DETAIL); EXECUTE/**/q(...) with a comment; SELECT 1; EXECUTE q(...) in one
#     query string; EXPLAIN ANALYZE EXECUTE q(...);
#   - SELECT * FROM "login"(...) through search_path; a bare password_match();
#   - a DO block; an SQL and a PL/pgSQL wrapper of the application called
#     through the extended protocol (bind parameters), also as the first
#     statement of a connection, and a wrapper of a wrapper; a wrapper running
#     dynamic SQL, declared in secpolicy.redact_functions;
#   - CREATE ROLE / ALTER ROLE ... PASSWORD;
#   - auto_explain with log_verbose and nested statements;
#   - a deadlock report, which quotes the other backend's statement;
#   - pg_stat_activity while a login runs, and the postmaster's "Failed
#     process was running" line after the backend is killed (kill -9).
# And what carries no secret stays in the log as written (CREATE ROLE ... IN
# ROLE secpolicy_app, a report query).  Last, a 2 MB DO block raising 300
# warnings costs the hook one classification, not 300 (guarded by a
# statement_timeout 30 times what it needs; 1.0 took over a minute).
# The cluster is restarted with the library preloaded and restored at the end.
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
restarts_cluster PGBIN

db=scen_log_routes_$$
PGBENCH=$PGBIN/pgbench
work=$(mktemp -d "${TMPDIR:-/tmp}/scen_logroutes.XXXXXX")
chmod 755 "$work"
at_exit 'rm -rf "$work"'
MARK='[redacted by secpolicy]'
RUN=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
LOG_SETTINGS=(log_statement log_min_duration_statement log_min_error_statement
              log_parameter_max_length log_parameter_max_length_on_error secpolicy.redact_functions)

cleanup() {
    local s resets=()
    for s in "${LOG_SETTINGS[@]}"; do resets+=("RESET $s"); done
    alter_system "${resets[@]}" 2>/dev/null
    q "DROP ROLE IF EXISTS regress_routes_r1" postgres >/dev/null 2>&1
    q "DROP ROLE IF EXISTS regress_routes_r2" postgres >/dev/null 2>&1
    sp_cluster_restart >/dev/null 2>&1
    wait 2>/dev/null
}
# Login attempts recorded with user agent $1 (the statement ran).
ran() { q "SELECT count(*) FROM secpolicy.login_attempts WHERE user_agent = '$1'"; }
# "ran|leaked": the route ran once and logged no secret
route() { local off=$1 tag=$2; shift 2; sleep 0.2; echo "$(ran "$tag")|$(found_in_log "$off" "$@")"; }

plan 21

setup_db
at_exit cleanup
if ! sp_cluster_restart -c shared_preload_libraries=secpolicy >/dev/null 2>&1; then
    echo "Bail out! cannot restart with shared_preload_libraries=secpolicy"
    exit 1
fi
q "UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = false, max_failed_attempts = 100;
   SELECT secpolicy.create_user('bob', 'Zq-Setup-Pass-1!'), secpolicy.create_user('carl', 'Zq-Setup-Pass-1!');
   CREATE SCHEMA app;
   CREATE FUNCTION app.sign_in(u text, p text, tag text) RETURNS text LANGUAGE sql
       AS \$\$ SELECT status FROM secpolicy.login(u, p, NULL, tag) \$\$;
   CREATE FUNCTION app.sign_in_pl(u text, p text, tag text) RETURNS text LANGUAGE plpgsql
       AS \$\$ BEGIN RETURN (SELECT l.status FROM secpolicy.login(u, p, NULL, tag) l); END \$\$;
   CREATE FUNCTION app.outer_sign_in(u text, p text, tag text) RETURNS text LANGUAGE sql
       AS \$\$ SELECT app.sign_in(u, p, tag) \$\$;
   CREATE FUNCTION app.dyn_sign_in(u text, p text, tag text) RETURNS text LANGUAGE plpgsql
       AS \$\$ DECLARE r text; BEGIN
           EXECUTE format('SELECT status FROM secpolicy.' || 'log' || 'in(%L, %L, NULL, %L)', u, p, tag) INTO r;
           RETURN r; END \$\$;" >/dev/null
alter_system "SET log_statement = 'all'" "SET log_min_duration_statement = 0" \
             "SET log_min_error_statement = 'error'" "SET log_parameter_max_length = -1" \
             "SET log_parameter_max_length_on_error = -1" "SET secpolicy.redact_functions = 'app.dyn_sign_in'"
is "$(q "SELECT current_setting('shared_preload_libraries') || ',' || current_setting('log_statement')")" \
   "secpolicy,all" "library preloaded, every statement logged"

# --- prepared statements ----------------------------------------------------------
off=$(log_offset)
psql -X -q -At -d "$db" -c "PREPARE q AS SELECT status FROM secpolicy.login('bob', '$(sec p1)', NULL, 'prep-sep')" \
    -c "EXECUTE q" >/dev/null 2>&1
is "$(route "$off" prep-sep "$(needle p1)")" "1|" "PREPARE ... login('...') then a separate EXECUTE: not in the log (nor in its DETAIL prepare: line)"
off=$(log_offset)
psql -X -q -At -d "$db" -c "PREPARE q(text, text) AS SELECT status FROM secpolicy.login(\$1, \$2, NULL, 'prep-comment')" \
    -c "EXECUTE/**/q('bob', '$(sec p2)')" >/dev/null 2>&1
is "$(route "$off" prep-comment "$(needle p2)")" "1|" "EXECUTE/**/q('bob', '...'): not in the log"
off=$(log_offset)
psql -X -q -At -d "$db" -c "PREPARE q(text, text) AS SELECT status FROM secpolicy.login(\$1, \$2, NULL, 'prep-multi')" \
    -c "SELECT 1; EXECUTE q('bob', '$(sec p3)')" >/dev/null 2>&1
is "$(route "$off" prep-multi "$(needle p3)")" "1|" "SELECT 1; EXECUTE q('bob', '...') in one query string: not in the log"
off=$(log_offset)
psql -X -q -At -d "$db" -c "PREPARE q(text, text) AS SELECT status FROM secpolicy.login(\$1, \$2, NULL, 'prep-explain')" \
    -c "EXPLAIN ANALYZE EXECUTE q('bob', '$(sec p4)')" >/dev/null 2>&1
is "$(route "$off" prep-explain "$(needle p4)")" "1|" "EXPLAIN ANALYZE EXECUTE q('bob', '...'): not in the log"

# --- names --------------------------------------------------------------------------
off=$(log_offset)
psql -X -q -At -d "$db" -c "SET search_path = secpolicy" \
    -c "SELECT status FROM \"login\"('bob', '$(sec n1)', NULL, 'quoted-name')" >/dev/null 2>&1
is "$(route "$off" quoted-name "$(needle n1)")" "1|" "SELECT * FROM \"login\"(...) through search_path: not in the log"
hash=$(q "SELECT password_hash FROM secpolicy.users WHERE username = 'bob'")
off=$(log_offset)
is "$(q "SET search_path = secpolicy, public; SELECT password_match('$(sec n2)', '$hash') IS NULL; SELECT secpolicy.password_match('$(sec n3)', '$hash') IS NULL" | paste -sd,)|$(found_in_log "$off" "$(needle n2)" "$(needle n3)")" \
   "t,t|" "password_match('...', hash), bare and qualified: not in the log"

# --- DO blocks and wrappers ------------------------------------------------------------
off=$(log_offset)
q "DO \$\$ BEGIN PERFORM secpolicy.login('bob', '$(sec w1)', NULL, 'do-block'); END \$\$" >/dev/null 2>&1
is "$(route "$off" do-block "$(needle w1)")" "1|" "a DO block calling login: not in the log"
for w in sign_in sign_in_pl outer_sign_in dyn_sign_in; do
    echo "SELECT app.$w(:u, :p, :tag);" >"$work/$w.sql"
done
off=$(log_offset)
for w in sign_in sign_in_pl outer_sign_in dyn_sign_in; do
    "$PGBENCH" -n -M extended -t 1 -f "$work/$w.sql" -D u=bob -D p="$(sec "x$w")" -D tag="wrap-$w" "$db" \
        >"$work/$w.out" 2>&1
done
sleep 0.2
is "$(ran wrap-sign_in)$(ran wrap-sign_in_pl)$(ran wrap-outer_sign_in)$(ran wrap-dyn_sign_in)|$(found_in_log "$off" "$(needle xsign_in)" "$(needle xsign_in_pl)" "$(needle xouter_sign_in)" "$(needle xdyn_sign_in)")" \
   "1111|" \
   "SQL, PL/pgSQL, nested and (declared) dynamic-SQL wrappers through the extended protocol, each the first statement of its connection: their bind parameters are not logged"
off=$(log_offset)
q "SELECT app.sign_in('bob', '$(sec w2)', 'wrap-literal'); SELECT app.outer_sign_in('bob', '$(sec w3)', 'wrap-literal2')" >/dev/null 2>&1
sleep 0.2
is "$(ran wrap-literal)$(ran wrap-literal2)|$(found_in_log "$off" "$(needle w2)" "$(needle w3)")" "11|" \
   "a wrapper called with literal passwords as the first statement of a connection (log_statement held back until it is read): not in the log"

# --- roles ------------------------------------------------------------------------------
off=$(log_offset)
q "CREATE ROLE regress_routes_r1 LOGIN PASSWORD '$(sec r1)'; ALTER ROLE regress_routes_r1 PASSWORD '$(sec r2)'" postgres >/dev/null 2>&1
is "$(q "SELECT count(*) FROM pg_roles WHERE rolname = 'regress_routes_r1'")|$(found_in_log "$off" "$(needle r1)" "$(needle r2)")" "1|" \
   "CREATE ROLE / ALTER ROLE ... PASSWORD '...': not in the log"

# --- auto_explain ----------------------------------------------------------------------
off=$(log_offset)
psql -X -q -At -d "$db" -c "LOAD 'auto_explain'" -c "SET auto_explain.log_min_duration = 0" \
    -c "SET auto_explain.log_verbose = on" -c "SET auto_explain.log_nested_statements = on" \
    -c "SELECT status FROM secpolicy.login('bob', '$(sec a1)', NULL, 'auto-explain')" >/dev/null 2>&1
is "$(route "$off" auto-explain "$(needle a1)")|$(log_since "$off" | grep -c 'duration: .* ms  plan: \[redacted by secpolicy\]' | awk '{print ($1 > 0)}')" \
   "1||1" "auto_explain with log_verbose: the plan (and its constants) is not logged; the duration is"

# --- a deadlock report names the other backend's statement --------------------------------------
db_q() { psql -X -q -At -d "$db" "$@"; }
ctl_open "BEGIN; SELECT 1 FROM secpolicy.users WHERE username = 'carl' FOR UPDATE;"
wait_for "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db' AND state = 'idle in transaction'" 1 10
off=$(log_offset)
db_q -c "BEGIN; SELECT pg_advisory_xact_lock(4242); SELECT status FROM secpolicy.login('carl', '$(sec d1)', NULL, 'deadlock'); COMMIT" \
    >"$work/deadlock.out" 2>&1 &
wait_for "SELECT count(*) FROM pg_locks WHERE locktype IN ('transactionid', 'tuple') AND NOT granted" 1 10
echo "SELECT pg_advisory_xact_lock(4242);" >&"${CTL[1]}"
wait_for "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db' AND state = 'idle in transaction (aborted)'" 1 15
ctl_close "ROLLBACK;"
wait
sleep 0.2
region=$(log_since "$off")
is "$(grep -c 'deadlock detected' <<<"$region")|$(grep -cE 'Process [0-9]+: \[redacted by secpolicy\]' <<<"$region")|$(grep -cE 'Process [0-9]+: SELECT pg_advisory_xact_lock\(4242\)' <<<"$region")|$(found_in_log "$off" "$(needle d1)")" \
   "1|1|1|" \
   "a deadlock report shows the login's backend as the marker (and the other statement as written): the password is not in it"

# --- pg_stat_activity, and a crash ------------------------------------------------------------------
db_q -c "SELECT pg_sleep(30) FROM secpolicy.login('bob', '$(sec c1)', NULL, 'crash')" >"$work/crash.out" 2>&1 &
wait_for "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db' AND wait_event = 'PgSleep'" 1 10
activity=$(q "SELECT query FROM pg_stat_activity WHERE datname = '$db' AND wait_event = 'PgSleep'")
is "$activity" "$MARK" "pg_stat_activity shows the marker, not the running login"
off=$(log_offset)
kill -9 "$(q "SELECT pid FROM pg_stat_activity WHERE datname = '$db' AND wait_event = 'PgSleep'")"
wait
for _ in $(seq 1 100); do q "SELECT 1" >/dev/null 2>&1 && break; sleep 0.2; done
sleep 0.3
is "$(log_since "$off" | grep -c 'terminated by signal 9')|$(log_since "$off" | grep -cF "Failed process was running: $MARK")|$(found_in_log "$off" "$(needle c1)")" \
   "1|1|" "after kill -9 the postmaster's \"Failed process was running\" line shows the marker, not the password"

# --- what carries no secret stays in the log ------------------------------------------
off=$(log_offset)
q "CREATE ROLE regress_routes_r2 IN ROLE secpolicy_app" postgres >/dev/null 2>&1
q "SELECT count(*) FROM secpolicy.failed_logins_daily" >/dev/null
sleep 0.2
region=$(log_since "$off")
ok "$(grep -qF 'statement: CREATE ROLE regress_routes_r2 IN ROLE secpolicy_app' <<<"$region" && echo 1)" \
   "CREATE ROLE ... IN ROLE secpolicy_app is logged as written"
ok "$(grep -qF 'statement: SELECT count(*) FROM secpolicy.failed_logins_daily' <<<"$region" && echo 1)" \
   "a report query on secpolicy's views is logged as written"

# --- one classification per statement ----------------------------------------------------------
# a 2 MB DO block (its text, a comment of padding) raising 300 warnings
off=$(log_offset)
out=$({ echo "SET statement_timeout = '30s';"
        echo "DO \$\$ BEGIN /*"
        head -c 2000000 /dev/zero | tr '\0' 'x'
        echo " */ FOR i IN 1 .. 300 LOOP RAISE WARNING 'warning %', i; END LOOP;"
        echo "PERFORM secpolicy.login('bob', '$(sec q1)', NULL, 'long-do'); END \$\$;"
      } | psql -X -q -At -d "$db" 2>&1 | grep -c 'WARNING:  warning')
is "$out|$(ran long-do)|$(found_in_log "$off" "$(needle q1)")" "300|1|" \
   "a 2 MB DO block raising 300 warnings finishes within its statement_timeout, and its password is not logged"
is "$(log_since "$off" | grep -c 'WARNING:  warning')" 300 "... its warnings are logged"

# --- and overall ---------------------------------------------------------------------------------
ok "$(log_since 0 | grep -cF "$MARK" | awk '{print ($1 > 20)}')" "the marker shows where statements were redacted"
is "$(q "SELECT count(DISTINCT user_agent) FROM secpolicy.login_attempts WHERE user_agent IS NOT NULL")" 14 \
   "fourteen routes recorded their attempt (those of the deadlock's victim and of the killed backend died with them)"

finish
