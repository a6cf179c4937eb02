#!/usr/bin/env bash
# Scenario: database roles under the policy, with real password
# authentication.  The cluster of scripts/test is restarted with
# shared_preload_libraries = 'secpolicy', secpolicy.database set to this
# scenario's database, a pg_hba.conf of its own (scram-sha-256 for every role
# but postgres on 127.0.0.1 and the socket), SSL with a self-signed
# certificate when openssl is there, and log_statement = all; at the end it is
# restarted as it was (and the roles, the journal and the files go).
#   1. Password rules through check_password_hook: CREATE/ALTER ROLE ...
#      PASSWORD in plaintext checked (22023 with the rule codes), the role's
#      history, VALID UNTIL = now + max_password_age, pre-hashed passwords
#      refused with a hint naming set_role_password (unless
#      secpolicy.allow_prehashed_passwords), other databases refused with a
#      hint; set_role_password by the role itself and by secpolicy_admin.
#   2. Lockout: every failed password authentication counts once; at
#      max_failed_attempts the role is locked and even the right password is
#      refused with the message of a wrong one; the attempts reach
#      login_attempts (stage database) and the lock the audit log; the lock
#      survives a restart and a kill -9 of every process, so do counts below
#      the limit; unlock_role and set_role_password end it.  The restart
#      loads auth_delay and passwordcheck before secpolicy: both still act,
#      so secpolicy chains both hooks.
#   3. 20 parallel wrong logins count exactly 20; over SSL, sslmode=require,
#      prefer (libpq's retry without SSL counts once, 10 in parallel count 10)
#      and disable each count one.
#   4. Superusers: locked like others, but never the last one that can log in
#      (and a lock refuses password logins only: trust still works);
#      secpolicy.exempt_superusers lets a locked superuser in.
#   5. Two-factor access: a role linked with mfa_required connects only inside
#      a window opened by a session that passed the second factor (with a
#      message saying how, whatever the password), optionally bound to an
#      address; logout and a lockout of the role end the window; disabling
#      the account terminates the role's connection and takes LOGIN,
#      enabling gives it back; pgbouncer_auth applies the same refusals.
#   6. No password used here appears in the server log.
# Environment (scripts/test): PGHOST/PGPORT/PGUSER, SP_TMP, SP_SERVER_OPTS, PGBIN.
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
restarts_cluster

db=scen_roles_$$
dir=$SP_TMP/scen_roles_$$
PA='Violet-Harbour-77'        # scen_alice
PA2='Amber-Thistle-58%'
PB='Copper-Falcon-62&'        # scen_boss (superuser)
PB2='Copper-Falcon-63&'       # scen_boss2 (superuser)
PP='Shadow-Lantern-41#'       # postgres, on one database only
PC='Quiet-Lantern-93#'        # scen_carol (sets her own)
PC2='Quiet-Lantern-94$'
PD0='Mossy-Granite-41!'       # scen_dana, linked to scen.dana
PD='Mossy-Granite-42!'        # scen_dana's second (set by secpolicy_admin)
PAPP='Dana-App-Pass-1!x'      # scen.dana, the application account
PE='Erin-App-Pass-1!x'        # scen.erin
PS='Slate-Meadow-27@'         # scen_par (parallel)
ROLES="scen_alice scen_boss scen_boss2 scen_carol scen_dana scen_erin scen_par scen_admin scen_weak"

mkdir -p "$dir"
hba=$dir/pg_hba.conf
cat >"$hba" <<EOF
local all postgres trust
local all all scram-sha-256
host template1 postgres 127.0.0.1/32 scram-sha-256
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
EOF
ssl=0
ssl_opts=""
if command -v openssl >/dev/null &&
   openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/server.key" -out "$dir/server.crt" \
       -subj /CN=localhost -days 1 >/dev/null 2>&1; then
    chmod 600 "$dir/server.key"
    ssl=1
    ssl_opts="-c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key"
fi
[ "$(id -u)" = 0 ] && chown -R postgres: "$dir"
OPTS="-c shared_preload_libraries=secpolicy -c secpolicy.database=$db -c hba_file=$hba -c log_statement=all"
OPTS+=" -c password_encryption=scram-sha-256 $ssl_opts"

# Run on exit (before the database is dropped): the cluster as it was.
cleanup() {
    wait 2>/dev/null
    psql -X -q -d postgres -c "ALTER SYSTEM RESET secpolicy.exempt_superusers" -c "ALTER ROLE postgres LOGIN PASSWORD NULL" >/dev/null 2>&1
    sp_cluster_restart >/dev/null 2>&1
    for r in $ROLES; do psql -X -q -d postgres -c "DROP ROLE IF EXISTS $r" >/dev/null 2>&1; done
    sp_as_owner rm -f "$SP_TMP/data/secpolicy_roles.journal"
    rm -rf "$dir"
}

# conn ROLE PASSWORD [SSLMODE] [DB] [SQL]: connect over 127.0.0.1; the output
# (or the error) on one line
conn() {
    PGPASSWORD="$2" psql -X -q -At -v ON_ERROR_STOP=1 \
        "host=127.0.0.1 port=$PGPORT dbname=${4:-$db} user=$1 sslmode=${3:-disable} connect_timeout=10" \
        -c "${5:-SELECT current_user}" 2>&1 | paste -sd' '
}
# the FATAL line of a refused connection (the port stripped)
refusal() { conn "$@" | sed 's/^.*FATAL:/FATAL:/'; }
# a statement's SQLSTATE and message, as psql shows them verbosely
verbose() { psql -X -q -At -v VERBOSITY=verbose -d "${2:-$db}" -c "$1" 2>&1 | paste -sd' '; }
# the failure count of a role as the authentication hook sees it
live() { q "SELECT coalesce((SELECT failed_attempts || CASE WHEN locked_at IS NULL THEN '' ELSE ' locked' END
                              FROM secpolicy.role_state_live() WHERE role_oid = '$1'::regrole), '0')"; }
# attempts of a role in login_attempts (stage database), by outcome
attempts() { q "SELECT coalesce(string_agg(outcome || ' x' || n, ', ' ORDER BY outcome), '') FROM
                  (SELECT outcome, count(*) n FROM secpolicy.login_attempts
                    WHERE stage = 'database' AND username = '$1' AND attempted_at >= '$2' GROUP BY 1) t"; }
# wrong logins: wrong ROLE N [SSLMODE] [DB]
wrong() { local i; for ((i = 1; i <= $2; i++)); do conn "$1" "Wrong-Guess-$i!x" "${3:-disable}" "${4:-$db}" >/dev/null; done; }
wait_ready() {
    local i
    for ((i = 0; i < 300; i++)); do
        [ "$(psql -X -At -d postgres -c 'SELECT NOT pg_is_in_recovery()' 2>/dev/null)" = t ] && return 0
        sleep 0.2
    done
    return 1
}
# the role policy is up: the worker has found the extension
wait_active() { wait_for "SELECT active FROM secpolicy.role_policy_status()" t 30; }
restart() { sp_cluster_restart "$OPTS" "$@" >/dev/null 2>&1 && wait_ready && wait_active; }
# kill -9 the postmaster and every process it started (as crash_survival.sh does)
kill_cluster() {
    local pm kids p i alive
    pm=$(head -1 "$SP_TMP/data/postmaster.pid")
    kids=$(ps -o pid= --ppid "$pm")
    # shellcheck disable=SC2086
    kill -9 "$pm" $kids || return 1
    for ((i = 0; i < 300; i++)); do
        alive=0
        for p in $pm $kids; do [ -e "/proc/$p" ] && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    sp_as_owner rm -f "$SP_TMP/data/postmaster.pid" "$PGHOST/.s.PGSQL.$PGPORT.lock"
}
# a session of an application account that passed the second factor (a fresh enrolment)
mfa_session() {
    psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" <<EOF | tail -1
SELECT secpolicy.reset_mfa('$1', 'scenario: a fresh enrolment') \gset
SELECT challenge_token AS ch FROM secpolicy.login('$1', '$2') \gset
SELECT secret FROM secpolicy.totp_enroll(:'ch') \gset
SELECT session_token AS tok FROM secpolicy.totp_confirm(:'ch', secpolicy.totp_code(:'secret')) \gset
\echo :tok
EOF
}
open_window() { q "SELECT status FROM secpolicy.open_database_access('$1', '$2', '1 hour', ${3:-NULL})"; }

plan 55

setup_db
at_exit cleanup
log0=$(log_offset)
q "UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, history_depth = 3" >/dev/null
if restart; then pass "the cluster restarts with shared_preload_libraries = secpolicy and the role policy is active"
else fail "the cluster restarts with shared_preload_libraries = secpolicy and the role policy is active" "$(log_since "$log0" | tail -5)"; fi

# --- 1. password rules ------------------------------------------------------
is "$(verbose "CREATE ROLE scen_weak LOGIN PASSWORD 'short'" | grep -o '22023: [^D]*DETAIL:  rule codes: [a-z_, ]*[a-z_]')" \
   "22023: password does not meet the password policy DETAIL:  rule codes: too_short, missing_upper, missing_digit, missing_symbol, common_password" \
   "CREATE ROLE with a weak password: 22023 with the rule codes"
q "CREATE ROLE scen_alice LOGIN PASSWORD '$PA';
   CREATE ROLE scen_admin LOGIN IN ROLE secpolicy_admin PASSWORD 'Scen-Admin-Pass-8*';
   CREATE ROLE scen_carol LOGIN IN ROLE secpolicy_login PASSWORD '$PC';
   CREATE ROLE scen_dana LOGIN PASSWORD '$PD0';
   CREATE ROLE scen_par LOGIN PASSWORD '$PS';
   CREATE ROLE scen_boss SUPERUSER LOGIN PASSWORD '$PB';
   CREATE ROLE scen_boss2 SUPERUSER LOGIN PASSWORD '$PB2';" >/dev/null
is "$(q "SELECT (rolvaliduntil BETWEEN now() + interval '6 months' - interval '1 minute' AND now() + interval '6 months')::text
                || '/' || (SELECT count(*) FROM secpolicy.role_password_history h
                            WHERE h.role_name = 'scen_alice' AND h.password_hash LIKE '\$argon2id\$%')
           FROM pg_roles WHERE rolname = 'scen_alice'")" "true/1" \
   "a good password is accepted: VALID UNTIL is now + 6 months, its argon2id hash is in the history"
is "$(conn scen_alice "$PA")" scen_alice "the role logs in with it over scram-sha-256"
is "$(verbose "ALTER ROLE scen_alice PASSWORD '$PA'" | grep -o 'rule codes: [a-z_]*')" "rule codes: reused_password" \
   "ALTER ROLE with a password of the history: 22023 reused_password"
verifier=$(q "SELECT rolpassword FROM pg_authid WHERE rolname = 'scen_par'")
out=$(verbose "ALTER ROLE scen_alice PASSWORD '$verifier'")
ok "$([[ "$out" == *"22023: password does not meet the password policy"*"rule codes: prehashed_password"*"secpolicy.set_role_password('scen_alice',"* ]] && echo 1)" \
   "a pre-hashed SCRAM password (as psql's \\password sends): 22023, with a hint naming set_role_password" "$out"
is "$(psql -X -q -At -d "$db" -c "SET secpolicy.allow_prehashed_passwords = on" -c "ALTER ROLE scen_carol PASSWORD '$verifier'" 2>&1;
      conn scen_carol "$PS")" scen_carol "secpolicy.allow_prehashed_passwords = on (a superuser's setting) accepts it"
out=$(verbose "ALTER ROLE scen_carol PASSWORD '$PC2'" postgres)
ok "$([[ "$out" == *"55000: role passwords are set in the policy database \"$db\""*"secpolicy.set_role_password"* ]] && echo 1)" \
   "a password change in another database: 55000, with a hint" "$out"
is "$(conn scen_carol "$PS" disable "$db" "SELECT secpolicy.set_role_password('scen_carol', '$PC2')")|$(conn scen_carol "$PC2")" \
   "|scen_carol" "set_role_password: a member of secpolicy_login sets her own password, which then logs in"
is "$(conn scen_carol "$PC2" disable "$db" "SELECT secpolicy.set_role_password('scen_alice', '$PC2')" | grep -o 'ERROR:  permission denied[^"]*"[^"]*"')" \
   'ERROR:  permission denied to set the password of role "scen_alice"' "set_role_password: not another role's (42501)"
is "$(conn scen_admin 'Scen-Admin-Pass-8*' disable "$db" "SELECT secpolicy.set_role_password('scen_dana', '$PD')")|$(conn scen_dana "$PD")" \
   "|scen_dana" "set_role_password: secpolicy_admin sets another role's password"

# --- 2. lockout -------------------------------------------------------------
t0=$(q "SELECT now()")
wrong scen_alice 4
is "$(live scen_alice)" 4 "4 wrong passwords count 4, in shared memory at once"
wrong_msg=$(refusal scen_alice "Wrong-Guess-5!x")
is "$(live scen_alice)" "5 locked" "the 5th (max_failed_attempts) locks the role"
is "$(refusal scen_alice "$PA")" "$wrong_msg" "the right password is refused with exactly the message of a wrong one"
ok "$(wait_for "SELECT count(*) FROM secpolicy.login_attempts WHERE stage = 'database' AND username = 'scen_alice' AND attempted_at >= '$t0'" 6 10 && echo 1)" \
   "every attempt reaches login_attempts (stage database) within a few seconds"
is "$(attempts scen_alice "$t0")" "invalid_password x4, locked x1, lockout x1" "the attempts' outcomes: 4 failures, the lockout, a refusal while locked"
is "$(q "SELECT count(*) FROM secpolicy.audit_log WHERE action = 'role_locked' AND username = 'scen_alice'")|$(q "SELECT locked FROM secpolicy.role_status WHERE role = 'scen_alice'")" \
   "1|t" "the lock is audited and shows in role_status"
wrong scen_par 3
# restarted with auth_delay and passwordcheck loaded before secpolicy: their hooks must still run
restart -c "shared_preload_libraries=auth_delay,passwordcheck,secpolicy" -c auth_delay.milliseconds=400
is "$(refusal scen_alice "$PA")" "$wrong_msg" "after a restart the role is still locked"
start=$(date +%s%N)
conn scen_par "Chained-Wrong-4!x" >/dev/null
ms=$(( ($(date +%s%N) - start) / 1000000 ))
ok "$([ "$ms" -ge 400 ] && echo 1)" "auth_delay, loaded before secpolicy, still delays a failed login (${ms} ms)"
is "$(live scen_par)" 4 "3 failures survived the restart, and secpolicy counts the 4th after auth_delay's hook"
is "$(verbose "ALTER ROLE scen_par PASSWORD 'scen_par-Aa1!xyz'" | grep -o '22023: [a-z ]*[a-z]')" "22023: password must not contain user name" \
   "passwordcheck, loaded before secpolicy, still checks passwords"
kill_cluster
if restart; then pass "kill -9 of the postmaster and all its processes; the cluster starts again"
else fail "kill -9 of the postmaster and all its processes; the cluster starts again" "$(log_since "$log0" | tail -3)"; fi
is "$(refusal scen_alice "$PA")|$(live scen_par)" "$wrong_msg|4" \
   "after kill -9 the role is still locked (fsync'd before the refusal), and the 4 failures of another are all still counted"
q "SELECT secpolicy.unlock_role('scen_alice', 'scenario: forgotten password')" >/dev/null
is "$(conn scen_alice "$PA")|$(q "SELECT count(*) FROM secpolicy.audit_log WHERE action = 'role_unlocked' AND reason LIKE 'scenario%'")" \
   "scen_alice|1" "unlock_role ends the lock (audited); the right password logs in"
wrong scen_alice 5
is "$(refusal scen_alice "$PA")" "$wrong_msg" "5 more failures lock it again"
q "SELECT secpolicy.set_role_password('scen_alice', '$PA2')" >/dev/null
is "$(conn scen_alice "$PA2")|$(live scen_alice)" "scen_alice|0" "set_role_password ends the lock too"

# --- 3. parallel and SSL ----------------------------------------------------
q "UPDATE secpolicy.policy SET max_failed_attempts = 100" >/dev/null
wait_for "SELECT max_failed_attempts FROM secpolicy.role_policy_status()" 100 10
q "SELECT secpolicy.unlock_role('scen_par', 'scenario')" >/dev/null
t1=$(q "SELECT now()")
for i in $(seq 20); do conn scen_par "Parallel-Wrong-$i!x" >/dev/null & done
wait
is "$(live scen_par)" 20 "20 parallel wrong logins count exactly 20"
ok "$(wait_for "SELECT count(*) FROM secpolicy.login_attempts WHERE stage = 'database' AND username = 'scen_par' AND attempted_at >= '$t1'" 20 10 && echo 1)" \
   "and write exactly 20 attempts"
# the names of an attempt are the client's bytes, in no known encoding: they
# are written with \xNN for the bytes the database cannot hold (they were
# stored as received: rows the database could then not read, dump or restore)
t3=$(q "SELECT now()")
conn $'scen_\xff\xfe' 'Bytes-Wrong-1!x' >/dev/null
conn scen_alice 'Bytes-Wrong-2!x' disable $'db_\xe9' >/dev/null
conn scen_alice 'Bytes-Wrong-3!x' >/dev/null
ok "$(wait_for "SELECT count(*) FROM secpolicy.login_attempts WHERE stage = 'database' AND attempted_at >= '$t3' AND NOT success AND username <> 'scen_par'" 3 10 && echo 1)" \
   "attempts with user and database names of invalid bytes are logged with the others"
is "$(q "SELECT string_agg(username || ' ' || substring(user_agent from 'database=[^ ]*'), ',' ORDER BY id)
           FROM secpolicy.login_attempts WHERE stage = 'database' AND attempted_at >= '$t3' AND NOT success AND username <> 'scen_par'")" \
   "scen_\\xff\\xfe database=$db,scen_alice database=db_\\xe9,scen_alice database=$db" \
   "invalid bytes are written as \\xNN, valid in the database's encoding"
if [ $ssl = 1 ]; then
    q "SELECT secpolicy.unlock_role('scen_par', 'scenario')" >/dev/null
    # each in another database, so that no attempt looks like another's retry
    conn scen_par "Ssl-Wrong-1!x" require postgres >/dev/null
    is "$(live scen_par)" 1 "SSL: a wrong password with sslmode=require counts one"
    t2=$(q "SELECT now()")
    conn scen_par "Ssl-Wrong-2!x" prefer "$db" >/dev/null
    is "$(live scen_par)" 2 "SSL: with sslmode=prefer (refused over SSL, retried without) it counts one"
    conn scen_par "Ssl-Wrong-3!x" disable template1 >/dev/null
    is "$(live scen_par)" 3 "without SSL it counts one"
    for i in $(seq 10); do conn scen_par "Ssl-Parallel-$i!x" prefer "$db" >/dev/null & done
    wait
    is "$(live scen_par)" 13 "10 parallel wrong logins with sslmode=prefer count 10"
    wait_for "SELECT count(*) FROM secpolicy.login_attempts WHERE stage = 'database' AND username = 'scen_par' AND attempted_at >= '$t2'" 23 10
    is "$(attempts scen_par "$t2")" "invalid_password x12, ssl_retry x11" \
       "each retry without SSL is logged as ssl_retry, not counted"
else
    for i in 1 2 3 4 5; do pass "# SKIP no openssl to make a certificate"; done
fi
q "UPDATE secpolicy.policy SET max_failed_attempts = 5" >/dev/null
wait_for "SELECT max_failed_attempts FROM secpolicy.role_policy_status()" 5 10

# --- 4. superusers ----------------------------------------------------------
wrong scen_boss 5
is "$(refusal scen_boss "$PB")" "${wrong_msg//scen_alice/scen_boss}" "a superuser is locked like any role (postgres can still log in)"
q "ALTER ROLE postgres PASSWORD '$PP'" >/dev/null
wrong postgres 5 disable template1
is "$(live postgres)|$(refusal postgres "$PP" disable template1)|$(psql -X -At -h 127.0.0.1 -d "$db" -c 'SELECT 1')" \
   "5 locked|${wrong_msg//scen_alice/postgres}|1" "postgres locked: its password is refused, its trust login still works"
wrong scen_boss2 6
is "$(conn scen_boss2 "$PB2")|$(live scen_boss2)" "scen_boss2|0" \
   "the last superuser that can log in is never locked (its right password still works)"
ok "$(log_since "$log0" | grep -q 'role "scen_boss2" reached 5 failed password authentications but is not locked: it is the last superuser' && echo 1)" \
   "the server log says why it was spared"
psql -X -q -d postgres -c "ALTER SYSTEM SET secpolicy.exempt_superusers = on" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
is "$(conn scen_boss "$PB")" scen_boss "secpolicy.exempt_superusers = on lets a locked superuser in (the recovery)"
psql -X -q -d postgres -c "ALTER SYSTEM RESET secpolicy.exempt_superusers" -c "SELECT pg_reload_conf()" \
     -c "ALTER ROLE postgres PASSWORD NULL" >/dev/null
q "SELECT secpolicy.unlock_role(r, 'scenario') FROM unnest(ARRAY['postgres', 'scen_boss']) r" >/dev/null

# --- 5. two-factor access, offboarding, PgBouncer ---------------------------
q "SELECT secpolicy.create_user('scen.dana', '$PAPP'); SELECT secpolicy.create_user('scen.erin', '$PE');
   CREATE ROLE scen_erin LOGIN PASSWORD '$PE';
   SELECT secpolicy.link_role('scen_dana', 'scen.dana'); SELECT secpolicy.link_role('scen_erin', 'scen.erin');" >/dev/null
out=$(refusal scen_dana "$PD")
ok "$([[ "$out" == 'FATAL:  role "scen_dana" needs an open database access window'*"secpolicy.open_database_access(session_token, 'scen_dana')"* ]] && echo 1)" \
   "mfa_required: outside a window the right password is refused, saying how to open one" "$out"
is "$(refusal scen_dana "Wrong-Dana-1!x")" "$out" "a wrong password gets the same answer (it does not tell which it was)"
q "UPDATE secpolicy.policy SET require_mfa = false" >/dev/null
tok_erin=$(q "SELECT session_token FROM secpolicy.login('scen.erin', '$PE')")
q "UPDATE secpolicy.policy SET require_mfa = true" >/dev/null
is "$(open_window "$tok_erin" scen_erin)|$(open_window sps_not-a-token scen_dana)" "mfa_required|invalid_session" \
   "a window needs a session that passed the second factor"
tok=$(mfa_session scen.dana "$PAPP")
is "$(open_window "$tok" scen_erin)|$(open_window "$tok" scen_dana "'10.1.2.3'")|$(refusal scen_dana "$PD")" \
   "not_linked|ok|$out" "only for the account's own roles; a window bound to 10.1.2.3 refuses 127.0.0.1"
is "$(open_window "$tok" scen_dana "'127.0.0.0/8'")|$(conn scen_dana "$PD")" "ok|scen_dana" \
   "inside a window (bound to 127.0.0.0/8) the role connects"
q "SELECT secpolicy.logout('$tok')" >/dev/null
is "$(refusal scen_dana "$PD")" "$out" "the logout of the session ends its window"
tok=$(mfa_session scen.dana "$PAPP")
open_window "$tok" scen_dana >/dev/null
wrong scen_dana 5
q "SELECT secpolicy.unlock_role('scen_dana', 'scenario')" >/dev/null
wait_for "SELECT close_reason FROM secpolicy.database_access WHERE role_name = 'scen_dana' ORDER BY id DESC LIMIT 1" role_lockout 10
is "$(refusal scen_dana "$PD")|$(q "SELECT close_reason FROM secpolicy.database_access WHERE role_name = 'scen_dana' ORDER BY id DESC LIMIT 1")" \
   "$out|role_lockout" "a lockout of the role ends its window (also in the table)"
is "$(q "SELECT count(*) FROM secpolicy.pgbouncer_auth('scen_dana')")|$(q "SELECT usename FROM secpolicy.pgbouncer_auth('scen_carol')")" \
   "0|scen_carol" "pgbouncer_auth: no verifier for a role outside its window, one for a role the policy lets in"
tok=$(mfa_session scen.dana "$PAPP")
open_window "$tok" scen_dana >/dev/null
is "$(q "SELECT count(*) FROM secpolicy.pgbouncer_auth('scen_dana')")" 1 "pgbouncer_auth: inside the window, the verifier"
PGPASSWORD="$PD" psql -X -q -At "host=127.0.0.1 port=$PGPORT dbname=$db user=scen_dana sslmode=disable" \
    -c "SELECT pg_sleep(60)" >"$dir/dana.out" 2>&1 &
wait_for "SELECT count(*) FROM pg_stat_activity WHERE usename = 'scen_dana' AND state = 'active'" 1 10
q "SELECT secpolicy.disable_user('scen.dana', 'scenario: left the company')" >/dev/null
wait
is "$(grep -c 'terminating connection due to administrator command' "$dir/dana.out")|$(q "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'scen_dana'")" \
   "1|f" "disable_user terminates the linked role's connection at once and takes its LOGIN"
is "$(refusal scen_dana "$PD")|$(q "SELECT count(*) FROM secpolicy.database_access WHERE role_name = 'scen_dana' AND closed_at IS NULL")" \
   'FATAL:  role "scen_dana" is not permitted to log in|0' "the role cannot log in, and its windows are closed"
is "$(q "SELECT string_agg(action, ',' ORDER BY id) FROM secpolicy.audit_log WHERE username = 'scen.dana' AND action LIKE 'role_login%'")" \
   "role_login_revoked" "audited"
q "SELECT secpolicy.enable_user('scen.dana', 'scenario: back')" >/dev/null
is "$(q "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'scen_dana'")" t "enable_user gives LOGIN back"
q "SELECT secpolicy.offboard('scen.dana', 'scenario: offboarded')" >/dev/null
is "$(q "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'scen_dana'")" f "offboard takes it again"

# --- 6. the server log ------------------------------------------------------
leaks=()
for pw in "$PA" "$PA2" "$PB" "$PB2" "$PP" "$PC" "$PC2" "$PD0" "$PD" "$PAPP" "$PE" "$PS" Scen-Admin-Pass-8 Parallel-Wrong Wrong-Guess scen_par-Aa1; do
    log_since "$log0" | grep -qF -- "$pw" && leaks+=("${pw:0:8}...")
done
is "${#leaks[@]}" 0 "the server log (log_statement = all) holds none of the passwords used (${leaks[*]:-none})"

finish
