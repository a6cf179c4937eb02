#!/usr/bin/env bash
# Scenario: security invariant 1 for the server log.  With every statement,
# every duration, every error statement and all bind parameters logged
# (ALTER SYSTEM, restored at the end), passwords, TOTP secrets and tokens
# passed to login, change_password, create_user, hash_password,
# verify_password, totp_match and reset_password, through the simple and the
# extended protocol (pgbench -M extended and -M prepared, which send bind
# parameters), and an error raised inside login, never reach
# $SP_TMP/server.log, where the marker '[redacted by secpolicy]' shows
# instead.  Rounds:
#   1. library not preloaded, log_statement = all;
#   2. library not preloaded, log_statement = none and
#      log_min_duration_statement = 0 (statements in duration lines);
#   3. session_preload_libraries = secpolicy (ALTER DATABASE);
#   4. shared_preload_libraries = secpolicy (cluster restarted, restored).
# The known gap, asserted as it is: the redaction is an emit_log_hook that
# exists only once the library is loaded in the backend, and nothing loads
# it before the first C function of secpolicy runs.  Without a preload, the
# log_statement line of the first statement of a connection is written
# before it runs, so its secrets are logged in clear (simple protocol: the
# statement text; extended protocol: the parameters of its execute line and,
# with durations logged, of its bind line).  Every flow calls C code first (to
# mark its statement), so the gap is the first statement of a connection only:
# a login refused as locked loads the library too and its duration line is
# redacted (round 2).
# Preloading (shared_preload_libraries or session_preload_libraries) closes
# the gap (rounds 3 and 4).
# Last, with the library preloaded, cases the hook misses (bugs): SQL-level
# PREPARE/EXECUTE, bind parameters in the CONTEXT of an error
# (log_parameter_max_length_on_error), a plaintext written to an application
# table guarded by password_policy_trigger (accepted, and rejected with an
# error), personal data written to protected columns (INSERT, UPDATE, COPY,
# prepared; a column protected by another session meanwhile), unqualified calls of functions missing from the hook's name list,
# and debug_print_parse output.
# Environment (scripts/test): PGHOST/PGPORT/PGUSER, SP_TMP, PGBIN,
# SP_SERVER_OPTS; pgbench in $PGBIN.
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
restarts_cluster

db=scen_log_redaction_$$
PGBENCH=$PGBIN/pgbench
work=$(mktemp -d "${TMPDIR:-/tmp}/scen_logred.XXXXXX")
at_exit 'rm -rf "$work"'
PRELOADED=0
MARK='[redacted by secpolicy]'
RUN=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
LOG_SETTINGS=(log_statement log_min_duration_statement log_min_error_statement
              log_parameter_max_length log_parameter_max_length_on_error)

# Run on exit, before the database is dropped: the server as scripts/test started it.
cleanup() {
    local s resets=()
    for s in "${LOG_SETTINGS[@]}"; do resets+=("RESET $s"); done
    alter_system "${resets[@]}" 2>/dev/null
    [ $PRELOADED = 1 ] && sp_cluster_restart >/dev/null 2>&1
    wait 2>/dev/null
}

# A distinctive base32 TOTP secret.
b32() { head -c 20 /dev/urandom | base32 | tr -d '=\n'; }

marks_since() { log_since "$1" | grep -cF -- "$MARK"; }
# Login attempts recorded with user agent $1 (proves the statements ran).
attempts() { q "SELECT count(*) FROM secpolicy.login_attempts WHERE user_agent = '$1'"; }

# What the connections of a round need: reset tokens, TOTP secrets, a hash.
prepare_round() {
    RESET_TOKEN=$(q "SELECT secpolicy.request_password_reset('rsuser')")
    RESET_TOKEN2=$(q "SELECT secpolicy.request_password_reset('rsuser2')")
    TOTP=$(b32)
    TOTP2=$(b32)
    HASH=$(q "SELECT password_hash FROM secpolicy.users WHERE username = 'lruser'")
}

# Simple protocol, one connection.  $1 round, $2 "load" to run a harmless
# secpolicy call first (the library is then loaded), else the first statement
# carries a secret.
simple_conn() {
    local r=$1$2 cmds=()
    [ "$2" = load ] && cmds+=(-c "SELECT secpolicy.password_needs_rehash('x') IS NOT NULL")
    cmds+=(-c "SELECT status FROM secpolicy.login('lruser', '$(sec "${r}s1")', NULL, 'simple-$1-$2')"
           -c "SELECT status FROM secpolicy.change_password('chuser', '$CH_PW', '$(sec "${r}s2")')"
           -c "SELECT secpolicy.create_user('new$r', '$(sec "${r}s3")') > 0"
           -c "SELECT secpolicy.hash_password('$(sec "${r}s4")') IS NOT NULL"
           -c "SELECT secpolicy.verify_password('$(sec "${r}s5")', '$HASH')"
           -c "SELECT secpolicy.totp_match('$TOTP', '123456') IS NULL"
           -c "SELECT status FROM secpolicy.reset_password('$RESET_TOKEN', '$(sec "${r}s6")')"
           -c "SELECT status FROM secpolicy.login('lruser', '$(sec "${r}s7")', 'not-an-inet')")
    psql -X -q -At -d "$db" "${cmds[@]}" >"$work/simple-$1-$2.out" 2>&1
    CH_PW=$(sec "${r}s2")
    SIMPLE_NEEDLES=("$(needle "${r}s1")" "$(needle "${r}s2")" "$(needle "${r}s3")" "$(needle "${r}s4")"
                    "$(needle "${r}s5")" "$TOTP" "$RESET_TOKEN" "$(needle "${r}s6")" "$(needle "${r}s7")")
}

# Extended protocol, one connection (pgbench, bind parameters).  $1 round,
# $2 "load" or "first", $3 pgbench protocol (extended or prepared).
extended_conn() {
    local r=$1$2 tag="ext-$1-$2-$3"
    {
        [ "$2" = load ] && echo "SELECT secpolicy.password_needs_rehash('x') IS NOT NULL;"
        echo "SELECT status FROM secpolicy.login(:u, :p1, NULL, :tag);"
        echo "SELECT status FROM secpolicy.change_password(:cu, :cur, :p2);"
        echo "SELECT secpolicy.hash_password(:p3) IS NOT NULL;"
        echo "SELECT secpolicy.verify_password(:p4, :h);"
        echo "SELECT secpolicy.totp_match(:ts, '123456') IS NULL;"
        echo "SELECT status FROM secpolicy.reset_password(:rt, :p5);"
        echo "SELECT status FROM secpolicy.login(:u, :p6, :bad);"
    } >"$work/$tag.sql"
    "$PGBENCH" -n -M "$3" -t 1 -f "$work/$tag.sql" -D u=lruser -D tag="$tag" -D cu=chuser -D cur="$CH_PW" \
        -D p1="$(sec "${r}e1$3")" -D p2="$(sec "${r}e2$3")" -D p3="$(sec "${r}e3$3")" \
        -D p4="$(sec "${r}e4$3")" -D h="$HASH" -D ts="$TOTP2" -D rt="$RESET_TOKEN2" \
        -D p5="$(sec "${r}e5$3")" -D p6="$(sec "${r}e6$3")" -D bad=not-an-inet \
        "$db" >"$work/$tag.out" 2>&1
    EXT_CUR=${CH_PW%!7}
    CH_PW=$(sec "${r}e2$3")
    EXT_FIRST=$(needle "${r}e1$3")
    EXT_NEEDLES=("$EXT_CUR" "$(needle "${r}e2$3")" "$(needle "${r}e3$3")" "$(needle "${r}e4$3")" "$TOTP2"
                 "$RESET_TOKEN2" "$(needle "${r}e5$3")" "$(needle "${r}e6$3")")
}

plan 34

if ! [ -x "$PGBENCH" ]; then
    echo "Bail out! pgbench not found at $PGBENCH"
    exit 1
fi
setup_db
at_exit cleanup
CH_PW=$(sec setupch)
is "$(q "UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = false, history_depth = 0;
         SELECT count(secpolicy.create_user(u, '$(sec setup)')) FROM unnest(ARRAY['lruser', 'rsuser', 'rsuser2', 'tokuser']) u;
         SELECT secpolicy.create_user('chuser', '$CH_PW') > 0;")" $'4\nt' "setup: accounts"
alter_system "SET log_statement = 'all'" "SET log_min_duration_statement = 0" \
             "SET log_min_error_statement = 'error'" "SET log_parameter_max_length = -1" \
             "SET log_parameter_max_length_on_error = -1"
is "$(q "SELECT current_setting('log_statement') || ',' || current_setting('log_min_duration_statement')
            || ',' || current_setting('log_parameter_max_length')")" "all,0,-1" \
   "everything is logged: statements, durations, bind parameters"

# --- round 1: not preloaded, log_statement = all ---------------------------
prepare_round
off=$(log_offset)
simple_conn 1 first
first_simple=$(needle 1firsts1)
rest=("${SIMPLE_NEEDLES[@]:1}")
simple_conn 1 load
rest+=("${SIMPLE_NEEDLES[@]}")
prepare_round
extended_conn 1 first extended
first_ext=$EXT_FIRST
rest+=("${EXT_NEEDLES[@]}")
prepare_round
extended_conn 1 load extended
rest+=("$EXT_FIRST" "${EXT_NEEDLES[@]}")
prepare_round
extended_conn 1 load prepared
rest+=("$EXT_FIRST" "${EXT_NEEDLES[@]}")
sleep 0.3
is "$(attempts simple-1-first)$(attempts simple-1-load)$(attempts ext-1-first-extended)$(attempts ext-1-load-extended)$(attempts ext-1-load-prepared)" \
   11111 "round 1: every connection ran its logins"
is "$(found_in_log "$off" "${rest[@]}")" "" \
   "round 1 (not preloaded): no secret of any statement after the first of a connection is logged"
[ "$(marks_since "$off")" -ge 30 ] && pass "round 1: the redaction marker replaces them" \
    || fail "round 1: the redaction marker replaces them" "markers: $(marks_since "$off")"
is "$(found_in_log "$off" "$first_simple")" "$first_simple" \
   "round 1 (known gap): without a preload the first statement of a connection is logged in clear"
is "$(found_in_log "$off" "$first_ext")" "$first_ext" \
   "round 1 (known gap): without a preload the bind parameters of the first extended-protocol statement are logged"
is "$(log_since "$off" | grep -c 'STATEMENT: .*not-an-inet')" 0 \
   "round 1: the statement of the error raised in login (invalid inet) is not logged"
is "$(log_since "$off" | grep -c 'invalid input syntax for type inet')" 5 \
   "round 1: the errors themselves are logged (one per connection)"

# --- round 2: duration lines only -------------------------------------------
# lruser is locked out by now: a login refused as locked still loads the
# library (authenticate() marks the statement first).
alter_system "SET log_statement = 'none'"
prepare_round
off=$(log_offset)
simple_conn 2 load
rest=("${SIMPLE_NEEDLES[@]}")
extended_conn 2 load extended
rest+=("$EXT_FIRST" "${EXT_NEEDLES[@]}")
sleep 0.3
is "$(attempts simple-2-load)$(attempts ext-2-load-extended)" 11 "round 2: every connection ran its logins"
is "$(found_in_log "$off" "${rest[@]}")" "" \
   "round 2 (durations only, library loaded): no secret is logged"
[ "$(log_since "$off" | grep -c "duration: .*$(printf '%s' "$MARK" | sed 's/[][]/\\&/g')")" -ge 20 ] \
    && pass "round 2: duration lines carry the marker instead of the statement" \
    || fail "round 2: duration lines carry the marker instead of the statement"
prepare_round
off=$(log_offset)
simple_conn 2 first
first_simple=$(needle 2firsts1)
# (its second password is the old password that the extended client's second
# statement binds: it shows in that client's gap, checked below)
rest=("${SIMPLE_NEEDLES[@]:2}")
extended_conn 2 first extended
first_ext=("$EXT_FIRST" "${EXT_NEEDLES[0]}" "${EXT_NEEDLES[1]}")
rest+=("${EXT_NEEDLES[@]:2}")
sleep 0.3
is "$(attempts simple-2-first)$(attempts ext-2-first-extended)" 11 "round 2: every connection ran its logins"
is "$(found_in_log "$off" "${rest[@]}")" "" \
   "round 2 (durations only, not preloaded): once the library is loaded nothing more is logged"
is "$(found_in_log "$off" "$first_simple")" "" \
   "round 2: a first statement refused as locked still loads the library (the flow marks its statement first), so its duration line is redacted"
is "$(found_in_log "$off" "${first_ext[@]}")" "$EXT_FIRST" \
   "round 2 (known gap): extended protocol: only the bind line of the first statement, before the library is loaded, shows its parameters"
alter_system "SET log_statement = 'all'"

# --- round 3: session_preload_libraries -----------------------------------
q "ALTER DATABASE $db SET session_preload_libraries = 'secpolicy'" >/dev/null
prepare_round
off=$(log_offset)
simple_conn 3 first
rest=("${SIMPLE_NEEDLES[@]}")
extended_conn 3 first extended
rest+=("$EXT_FIRST" "${EXT_NEEDLES[@]}")
prepare_round
extended_conn 3 first prepared
rest+=("$EXT_FIRST" "${EXT_NEEDLES[@]}")
sleep 0.3
is "$(attempts simple-3-first)$(attempts ext-3-first-extended)$(attempts ext-3-first-prepared)" 111 \
   "round 3: every connection ran its logins"
is "$(found_in_log "$off" "${rest[@]}")" "" \
   "round 3 (session_preload_libraries): no secret is logged, first statements included"
[ "$(marks_since "$off")" -ge 20 ] && pass "round 3: the redaction marker replaces them" \
    || fail "round 3: the redaction marker replaces them" "markers: $(marks_since "$off")"
q "ALTER DATABASE $db RESET session_preload_libraries" >/dev/null

# --- round 4: shared_preload_libraries --------------------------------------
off=$(log_offset)
if sp_cluster_restart "-c shared_preload_libraries=secpolicy" >/dev/null 2>&1; then
    PRELOADED=1
    pass "cluster restarted with shared_preload_libraries = secpolicy"
else
    fail "cluster restarted with shared_preload_libraries = secpolicy" "$(log_since "$off" | tail -5)"
fi
prepare_round
off=$(log_offset)
simple_conn 4 first
rest=("${SIMPLE_NEEDLES[@]}")
extended_conn 4 first extended
rest+=("$EXT_FIRST" "${EXT_NEEDLES[@]}")
prepare_round
extended_conn 4 first prepared
rest+=("$EXT_FIRST" "${EXT_NEEDLES[@]}")
sleep 0.3
is "$(attempts simple-4-first)$(attempts ext-4-first-extended)$(attempts ext-4-first-prepared)" 111 \
   "round 4: every connection ran its logins"
is "$(found_in_log "$off" "${rest[@]}")" "" \
   "round 4 (shared_preload_libraries): no secret is logged, first statements included"
[ "$(marks_since "$off")" -ge 20 ] && pass "round 4: the redaction marker replaces them" \
    || fail "round 4: the redaction marker replaces them" "markers: $(marks_since "$off")"

# --- what the hook misses (library preloaded) -------------------------------
# SQL-level PREPARE / EXECUTE: the EXECUTE line names no secpolicy function.
off=$(log_offset)
psql -X -q -At -d "$db" -c "PREPARE signin(text, text) AS SELECT status FROM secpolicy.login(\$1, \$2, NULL, 'sql-execute')" \
    -c "EXECUTE signin('lruser', '$(sec b1)')" >/dev/null 2>&1
sleep 0.2
is "$(attempts sql-execute)|$(found_in_log "$off" "$(needle b1)")" "1|" \
   "SQL PREPARE/EXECUTE of login: the EXECUTE statement's password is not logged"

# An error inside login with bind parameters: PostgreSQL adds them to CONTEXT.
ctl_open "BEGIN; SELECT 1 FROM secpolicy.users WHERE username = 'lruser' FOR UPDATE;"
wait_for "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db' AND state = 'idle in transaction'" 1 10
echo "SELECT status FROM secpolicy.login(:u, :p, NULL, 'lock-timeout');" >"$work/locktimeout.sql"
off=$(log_offset)
PGOPTIONS="-c lock_timeout=300" "$PGBENCH" -n -M extended -t 1 -f "$work/locktimeout.sql" \
    -D u=lruser -D p="$(sec b2)" "$db" >"$work/locktimeout.out" 2>&1
ctl_close "ROLLBACK;"
sleep 0.2
is "$(log_since "$off" | grep -c 'canceling statement due to lock timeout')|$(found_in_log "$off" "$(needle b2)")" "1|" \
   "an error raised inside login (lock timeout): the bind parameters in its CONTEXT are not logged"

# An application table guarded by password_policy_trigger: found by the log
# filter without any setting (its log_statement line comes before the
# trigger runs, so the filter must know the table beforehand).
q "CREATE TABLE app_accounts (name text PRIMARY KEY, pw text);
   CREATE TRIGGER app_pw BEFORE INSERT OR UPDATE ON app_accounts
       FOR EACH ROW EXECUTE FUNCTION secpolicy.password_policy_trigger('pw', 'name');" >/dev/null
off=$(log_offset)
psql -X -q -d "$db" -c "INSERT INTO app_accounts VALUES ('appuser', '$(sec b3)')" >/dev/null 2>&1
psql -X -q -d "$db" -c "INSERT INTO app_accounts VALUES ('appuser2', 'Zqweak${RUN}')" >/dev/null 2>&1
sleep 0.2
is "$(q "SELECT count(*) FROM app_accounts WHERE pw LIKE '\$argon2id\$%'")|$(found_in_log "$off" "$(needle b3)")" "1|" \
   "a plaintext written to an application table under password_policy_trigger is not logged (no setting needed)"
is "$(log_since "$off" | grep -c 'password does not meet the password policy')|$(found_in_log "$off" "Zqweak${RUN}")" "1|" \
   "a password that trigger rejects is not logged with the error's STATEMENT"

# Personal data: the plaintext written to a protected column stays out of the
# log (INSERT, UPDATE, COPY, a prepared INSERT and its bind parameters), also
# in a session that began before the column was protected by another one, and
# a statement on an unprotected table stays in the log as written.
q "CREATE TABLE app_people (id integer PRIMARY KEY, email text, city text);
   CREATE TABLE app_plain (id integer PRIMARY KEY, city text);
   SELECT secpolicy.protect_column('app_people', 'email', 'people.read') IS NOT NULL;" >/dev/null
pd1="pd1-${RUN}@example.com" pd2="pd2-${RUN}@example.com" pd3="pd3-${RUN}@example.com"
pd4="pd4-${RUN}@example.com" pd5="pd5-${RUN}@example.com" pd6="pd6-${RUN}@example.com"
off=$(log_offset)
psql -X -q -d "$db" -c "INSERT INTO app_people VALUES (1, '$pd1', 'x')" \
    -c "UPDATE app_people SET email = '$pd2' WHERE id = 1" >/dev/null
printf '2\t%s\ty\n' "$pd3" | psql -X -q -d "$db" -c "COPY app_people FROM STDIN" >/dev/null
"$PGBENCH" -n -t 1 -M prepared -f <(echo "INSERT INTO app_people VALUES (3, '$pd4', 'z')") "$db" >/dev/null 2>&1
# a session that already read the list of guarded tables, then another protects one
psql -X -q -d "$db" -c "INSERT INTO app_plain VALUES (1, 'plain-${RUN}')" \
    -c "\\! psql -X -q -d $db -c \"SELECT secpolicy.protect_column('app_plain', 'city', 'people.read') IS NOT NULL\" >/dev/null" \
    -c "INSERT INTO app_plain VALUES (2, '$pd5')" \
    -c "UPDATE app_plain SET city = '$pd6' WHERE id = 1" >/dev/null
sleep 0.2
is "$(q "SELECT count(*) FROM app_people WHERE email LIKE '%${RUN}%'")|$(q "SELECT count(*) FROM app_plain WHERE city LIKE '%${RUN}%'")|$(found_in_log "$off" "$pd1" "$pd2" "$pd3" "$pd4" "$pd5" "$pd6")" "0|0|" \
   "plaintext written to protected columns is stored encrypted and not logged (INSERT, UPDATE, COPY, prepared, after protect_column in another session)"
ok "$([ "$(log_since "$off" | grep -c "plain-${RUN}")" -ge 1 ] && echo 1)" \
   "a write to a table not yet protected is logged as written"
# an application function whose body writes the protected table, called with a literal
q "CREATE FUNCTION app_add_person(i integer, e text) RETURNS void LANGUAGE sql
   AS \$f\$ INSERT INTO app_people VALUES (i, e, NULL) \$f\$" >/dev/null
pd7="pd7-${RUN}@example.com"
off=$(log_offset)
psql -X -q -d "$db" -c "SELECT app_add_person(7, '$pd7')" >/dev/null
sleep 0.2
is "$(q "SELECT count(*) FROM app_people WHERE id = 7 AND email NOT LIKE '%${RUN}%'")|$(found_in_log "$off" "$pd7")|$([ "$(log_since "$off" | grep -c 'redacted by secpolicy')" -ge 1 ] && echo marked)" "1||marked" \
   "a call of an application function that writes a protected table is redacted (its body is read)"

# Unqualified calls (search_path) of functions that take a token or secret.
tok=$(q "SELECT session_token FROM secpolicy.login('tokuser', '$(sec setup)')")
sec_b4=$(b32)
off=$(log_offset)
psql -X -q -d "$db" -c "SET search_path = secpolicy, public" \
    -c "SELECT count(*) FROM list_sessions('$tok')" \
    -c "SELECT otpauth_uri('$sec_b4', 'someone', 'issuer') IS NOT NULL" \
    -c "SELECT end_other_sessions('$tok')" >/dev/null 2>&1
sleep 0.2
is "${tok:0:4}|$(found_in_log "$off" "$tok" "$sec_b4")" "sps_|" \
   "unqualified list_sessions / otpauth_uri / end_other_sessions: token and secret are not logged"

# debug_print_parse (settable by any user) prints constants as byte lists.
bytes=$(printf '%s' "$(sec b5)" | od -An -tu1 | tr -d ' \n')
off=$(log_offset)
psql -X -q -d "$db" -c "SET debug_print_parse = on" \
    -c "SELECT status FROM secpolicy.login('lruser', '$(sec b5)', NULL, 'debug-parse')" >/dev/null 2>&1
sleep 0.2
is "$(attempts debug-parse)|$(log_since "$off" | grep -v '^[0-9-]* [0-9:.]* UTC' | tr -d ' \n\t' | grep -cF -- "$bytes")" "1|0" \
   "with debug_print_parse the password does not reach the log (not even as the byte list of a Const)"

# --- restore ---------------------------------------------------------------
off=$(log_offset)
if sp_cluster_restart >/dev/null 2>&1; then
    PRELOADED=0
    pass "cluster restarted without the preload"
else
    fail "cluster restarted without the preload" "$(log_since "$off" | tail -5)"
fi
is "$(q "SELECT current_setting('shared_preload_libraries')")" "" "shared_preload_libraries is empty again"

finish
