#!/usr/bin/env bash
# Scenario: security invariant 8.  A committed lockout, session end or audit
# row survives a crash (kill -9), and what was not committed does not appear.
#   1. commit a lockout, a logout and audit rows while another transaction
#      (a failed login and a disable_user) is still open; kill -9 that
#      backend, which makes the postmaster kill every process and run crash
#      recovery; check that every committed state is there, the open
#      transaction left nothing, and the audit chain is intact with the
#      same head;
#   2. commit more (a logout, a lockout, a disable); kill -9 the postmaster
#      and all its processes; start the cluster again; check the same;
#   3. flows that end sessions or count second-factor failures after an
#      internal session_touch() must commit synchronously too: session_touch
#      (through session_mark) switches synchronous_commit off for its whole
#      transaction, so the check is that the setting is back (or was never
#      changed) when such a flow returns, and that a session end committed
#      by end_other_sessions() is still there after a kill -9 that follows
#      it (for that step the WAL writer is paused with SIGSTOP and the
#      background writer writes no buffers, so only the commit itself can
#      have written its WAL).
# The cluster of scripts/test runs with fsync=off.  That does not weaken
# this test: kill -9 ends processes, not the kernel, so whatever a commit
# wrote to the WAL files is still in the OS page cache for the recovery to
# read; what the test proves is that each commit wrote its WAL before it
# returned (and that recovery replays it), which is exactly what a process
# crash can break.  It cannot prove survival of a power loss.
# The cluster is left running (other scenarios follow).
# Environment (scripts/test): PGHOST/PGPORT/PGUSER, SP_TMP (data in
# $SP_TMP/data, log in $SP_TMP/server.log), PGBIN, SP_SERVER_OPTS.
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
restarts_cluster

db=scen_crash_survival_$$
PW='Corr3ct-Horse!Pass'

# Run on exit, before the database is dropped.
cleanup() {
    [ -n "${walwriter:-}" ] && kill -CONT "$walwriter" 2>/dev/null
    psql -X -q -d postgres -c "ALTER SYSTEM RESET bgwriter_lru_maxpages" -c "SELECT pg_reload_conf()" >/dev/null 2>&1
    wait 2>/dev/null
}

# Wait (at most 60 s) until the server accepts connections and is out of recovery.
wait_ready() {
    local i
    for ((i = 0; i < 300; i++)); do
        [ "$(psql -X -At -d postgres -c 'SELECT NOT pg_is_in_recovery()' 2>/dev/null)" = t ] && return 0
        sleep 0.2
    done
    return 1
}

# Poll until query $1 prints something non-empty (at most 30 s); print it.
poll() {
    local i r
    for ((i = 0; i < 300; i++)); do
        r=$(q "$1")
        [ -n "$r" ] && { echo "$r"; return 0; }
        sleep 0.1
    done
    return 1
}

# kill -9 the postmaster and every process it started; wait until they are
# gone.  The postmaster is reparented to init, which reaps it; where init
# does not reap it within 30 s, its lock files are removed by hand (the
# process is dead), or pg_ctl and the new postmaster would think it is alive.
kill_cluster() {
    local pm kids p i alive
    pm=$(head -1 "$SP_TMP/data/postmaster.pid")
    kids=$(ps -o pid= --ppid "$pm")
    # shellcheck disable=SC2086
    kill -9 "$pm" $kids || return 1
    for ((i = 0; i < 300; i++)); do
        alive=0
        for p in $pm $kids; do [ -e "/proc/$p" ] && alive=1; done
        [ $alive = 0 ] && return 0
        sleep 0.1
    done
    for p in $pm $kids; do
        [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" = Z ] || return 1
    done
    echo "# postmaster $pm is an unreaped zombie: removing its lock files"
    sp_as_owner rm -f "$SP_TMP/data/postmaster.pid" "$PGHOST/.s.PGSQL.$PGPORT.lock"
}

chain() { q "SELECT intact, rows_checked, head_hash FROM secpolicy.verify_audit_chain()"; }
touch_status() { q "SELECT status FROM secpolicy.session_touch('$1')"; }
login_status() { q "SELECT status FROM secpolicy.login('$1', '$2')"; }

plan 21

setup_db
at_exit cleanup
q "UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = false;
   SELECT secpolicy.create_user(u, '$PW') FROM unnest(ARRAY['locky', 'sessy', 'lockytwo', 'multi']) u;" >/dev/null

# --- committed state before the first crash --------------------------------
for i in 1 2 3 4 5; do login_status locky "Wr0ng-Guess!$i"; done >/dev/null
tok1=$(q "SELECT session_token FROM secpolicy.login('sessy', '$PW')")
tok2=$(q "SELECT session_token FROM secpolicy.login('sessy', '$PW')")
setup=$(q "SELECT secpolicy.logout('$tok1')")
setup+=$(q "SELECT secpolicy.grant_access('sessy', 'crash.marker', 'crash-survival marker')")
setup+=$(q "SELECT failed_attempts || ',' || reset_required FROM secpolicy.users WHERE username = 'locky'")
is "$setup" "tt5,true" "committed: locky locked out, sessy logged out of one session, an audited grant"
chain1=$(chain)
attempts1=$(q "SELECT count(*) FROM secpolicy.login_attempts WHERE username = 'sessy'")

# --- crash 1: kill -9 a backend in the middle of a transaction -------------
psql -X -q -d "$db" >/dev/null 2>&1 <<EOF &
BEGIN;
SELECT secpolicy.login('sessy', 'Wr0ng-InFlight!1');
SELECT secpolicy.disable_user('sessy', 'in-flight, never committed');
SELECT pg_sleep(600);
EOF
victim=$(poll "SELECT pid FROM pg_stat_activity WHERE datname = current_database()
                 AND query LIKE 'SELECT pg_sleep(600)%' AND state = 'active' AND backend_xid IS NOT NULL")
off=$(log_offset)
if [ -n "$victim" ] && kill -9 "$victim" && wait_ready; then
    pass "kill -9 of a backend with an open transaction; the server recovered"
else
    fail "kill -9 of a backend with an open transaction; the server recovered" "backend pid '$victim'"
fi
wait
is "$(log_since "$off" | grep -c -e 'terminated by signal 9' -e 'all server processes terminated; reinitializing' \
                                   -e 'automatic recovery in progress')" 3 \
   "the log shows the crash, the reinitialisation and the crash recovery"

is "$(q "SELECT failed_attempts, reset_required, locked_at IS NOT NULL FROM secpolicy.users WHERE username = 'locky'")" \
   "5|t|t" "crash 1: the committed lockout survived"
is "$(login_status locky "$PW")" reset_required "crash 1: the locked account still refuses its right password"
is "$(q "SELECT ended_at IS NOT NULL, end_reason FROM secpolicy.sessions s
          WHERE s.token_digest = secpolicy.token_digest('$tok1')")|$(touch_status "$tok1")" "t|logout|revoked" \
   "crash 1: the committed logout survived"
is "$(touch_status "$tok2")" active "crash 1: the live session is still live"
is "$(q "SELECT count(*) FROM secpolicy.audit_log
          WHERE (action = 'access_granted' AND reason = 'crash-survival marker')
             OR (action = 'account_locked' AND username = 'locky')")" 2 \
   "crash 1: the committed audit rows survived"
is "$(chain)" "$chain1" "crash 1: audit chain intact, same length and head hash"
is "$(q "SELECT u.disabled_at IS NULL, u.failed_attempts,
                (SELECT count(*) FROM secpolicy.audit_log a WHERE a.reason LIKE 'in-flight%'),
                (SELECT count(*) FROM secpolicy.login_attempts a WHERE a.username = 'sessy')
           FROM secpolicy.users u WHERE u.username = 'sessy'")" "t|0|0|$attempts1" \
   "crash 1: the open transaction left nothing (no disable, no failure, no audit or attempt row)"

# --- crash 2: kill -9 the postmaster and all its processes -----------------
setup=$(q "SELECT secpolicy.logout('$tok2')")
for i in 1 2 3 4 5; do login_status lockytwo "Wr0ng-Guess!$i"; done >/dev/null
q "SELECT secpolicy.disable_user('lockytwo', 'crash-survival marker 2')" >/dev/null
setup+=$(q "SELECT failed_attempts || ',' || (disabled_at IS NOT NULL) FROM secpolicy.users WHERE username = 'lockytwo'")
is "$setup" "t5,true" "committed: the other session logged out, lockytwo locked out and disabled"
chain2=$(chain)

off=$(log_offset)
if kill_cluster; then pass "kill -9 of the postmaster and all its processes"
else fail "kill -9 of the postmaster and all its processes"; fi
if restart_out=$(sp_cluster_restart 2>&1) && wait_ready; then pass "the cluster starts again"
else fail "the cluster starts again" "$restart_out" "$(log_since "$off" | tail -5)"; fi
is "$(log_since "$off" | grep -c 'automatic recovery in progress')" 1 "the restart ran crash recovery"

is "$(touch_status "$tok2")|$(q "SELECT end_reason FROM secpolicy.sessions s WHERE s.token_digest = secpolicy.token_digest('$tok2')")" \
   "revoked|logout" "crash 2: the committed logout survived"
is "$(q "SELECT failed_attempts, reset_required, disabled_reason FROM secpolicy.users WHERE username = 'lockytwo'")" \
   "5|t|crash-survival marker 2" "crash 2: the committed lockout and disable survived"
is "$(q "SELECT failed_attempts, reset_required FROM secpolicy.users WHERE username = 'locky'")" "5|t" \
   "crash 2: the first lockout is still there"
is "$(chain)" "$chain2" "crash 2: audit chain intact, same length and head hash"

# --- 3. no asynchronous commit for flows that end sessions or count failures
# (bug area: session_touch() sets synchronous_commit = off for its whole
# transaction, and end_other_sessions() / totp_confirm() call it first).
reset_val=$(q "SELECT reset_val FROM pg_settings WHERE name = 'synchronous_commit'")
tok3=$(q "SELECT session_token FROM secpolicy.login('multi', '$PW')")
tok4=$(q "SELECT session_token FROM secpolicy.login('multi', '$PW')")
q "UPDATE secpolicy.sessions SET last_seen_at = now() - interval '1 minute' WHERE ended_at IS NULL" >/dev/null
is "$(q "BEGIN; SELECT secpolicy.end_other_sessions('$tok3'); SELECT current_setting('synchronous_commit'); ROLLBACK;")" \
   $'1\n'"$reset_val" "end_other_sessions() commits its session end with synchronous_commit = $reset_val"
q "SELECT secpolicy.totp_enroll('$tok3')" >/dev/null
q "UPDATE secpolicy.sessions SET last_seen_at = now() - interval '1 minute' WHERE ended_at IS NULL" >/dev/null
is "$(q "BEGIN; SELECT status FROM secpolicy.totp_confirm('$tok3', '000000');
         SELECT failed_attempts FROM secpolicy.users WHERE username = 'multi';
         SELECT current_setting('synchronous_commit'); ROLLBACK;")" \
   $'invalid_code\n1\n'"$reset_val" "totp_confirm() counts a failed code with synchronous_commit = $reset_val"

# A session end committed by end_other_sessions(), then kill -9 at once.
# Nothing but the commit itself may write its WAL: the WAL writer is stopped
# (SIGSTOP) for the step and gets SIGCONT after the crash, when the SIGQUIT
# that the postmaster sent it makes it exit; the background writer writes
# no buffers (bgwriter_lru_maxpages = 0).
psql -X -q -d "$db" -c "ALTER SYSTEM SET bgwriter_lru_maxpages = 0" -c "SELECT pg_reload_conf()" >/dev/null
q "UPDATE secpolicy.sessions SET last_seen_at = now() - interval '1 minute' WHERE ended_at IS NULL" >/dev/null
sleep 0.5
walwriter=$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'")
kill -STOP "$walwriter"
psql -X -q -At -d "$db" -c "SELECT secpolicy.end_other_sessions('$tok3')" -c "SELECT pg_sleep(600)" \
    >"$SP_TMP/scen_crash_$$.out" 2>/dev/null &
victim=$(poll "SELECT pid FROM pg_stat_activity WHERE datname = current_database()
                 AND query LIKE 'SELECT pg_sleep(600)%' AND state = 'active'")
ended=$(head -1 "$SP_TMP/scen_crash_$$.out")
[ -n "$victim" ] && kill -9 "$victim"
sleep 0.5
kill -CONT "$walwriter"
wait_ready || fail "the server recovered after the third crash"
wait
rm -f "$SP_TMP/scen_crash_$$.out"
psql -X -q -d "$db" -c "ALTER SYSTEM RESET bgwriter_lru_maxpages" -c "SELECT pg_reload_conf()" >/dev/null
is "$ended|$(touch_status "$tok4")" "1|revoked" \
   "a session end committed by end_other_sessions() survives a kill -9 right after it"

finish
