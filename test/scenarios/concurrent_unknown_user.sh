#!/usr/bin/env bash
# Scenario: the lockout of a username that does not exist, under parallel
# attack (security invariants 4 and 5).  Separate connections released at the
# same instant by a barrier (an advisory lock a controller session holds and
# then releases):
#   1. 30 wrong logins on an unknown username (typed in mixed case) and, at
#      the same time, 30 on an existing account: both crowds see exactly the
#      same statuses (invalid_credentials x4, then reset_required), the
#      per-username counter in secpolicy.unknown_user_failures stops at 5 and
#      exactly 5 dummy argon2 verifications run for the unknown name, as 5
#      real ones run for the account;
#   2. 20 change_password calls at once on another unknown username share
#      that rule: invalid_credentials x4, then reset_required, counter 5;
#   3. creating the account afterwards clears its unknown-user counter, and
#      it can log in.
# The hash cost is moderate (t=2, 8 MiB) so verifications overlap.
# Environment: PGHOST/PGPORT/PGUSER of a superuser (scripts/test).
set -u -o pipefail

db=scen_concurrent_unknown_user_$$
out=$(mktemp -d "${TMPDIR:-/tmp}/scen_unknown.XXXXXX")
T=0
FAILS=0
CTL_PID=

pass() { T=$((T + 1)); echo "ok $T - $1"; }
fail() {
    T=$((T + 1)); FAILS=$((FAILS + 1)); echo "not ok $T - $1"; shift
    local l; for l in "$@"; do echo "#   $l"; done
}
is() { if [ "$1" = "$2" ]; then pass "$3"; else fail "$3" "got:      '$1'" "expected: '$2'"; fi; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1" 2>&1; }

cleanup() {
    [ -n "$CTL_PID" ] && kill "$CTL_PID" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$out"
    dropdb --if-exists "$db" >/dev/null 2>&1
}
trap cleanup EXIT

# Poll until query $1 prints $2 (at most 60 s); false on timeout.
wait_for() {
    local i
    for ((i = 0; i < 600; i++)); do
        [ "$(q "$1")" = "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

BARRIER=5457002

# The controller takes the barrier lock and keeps its session open.
barrier_hold() {
    coproc CTL { psql -X -q -At -d "$db" >/dev/null 2>&1; }
    echo "SELECT pg_advisory_lock($BARRIER);" >&"${CTL[1]}"
    wait_for "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $BARRIER AND granted" 1
}

# Wait until $1 clients queue on the barrier, then let them all go at once.
barrier_release() {
    local ok=0 fd=${CTL[1]}
    wait_for "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $BARRIER AND NOT granted" "$1" && ok=1
    echo "SELECT pg_advisory_unlock($BARRIER);" >&"$fd"
    exec {fd}>&-
    wait "$CTL_PID" 2>/dev/null
    CTL_PID=
    [ $ok = 1 ]
}

# One attacker: wait at the barrier, run one SQL call returning a status,
# report it and the argon2 verifications of its backend.  Args: tag, SQL.
client() {
    psql -X -q -At -d "$db" \
        -c "SELECT pg_advisory_lock_shared($BARRIER)" \
        -c "$2" \
        -c "SELECT verifications FROM secpolicy.hash_stats()" 2>&1 | grep -v '^$' >"$out/$1"
}

# "status xN, ..." over the clients whose tag starts with $1.
statuses() { for f in "$out/$1"*; do sed -n 1p "$f"; done | sort | uniq -c | awk '{printf "%s%s x%s", sep, $2, $1; sep=", "}'; }
# Sum of the verifications reported by the clients whose tag starts with $1.
verifications() { for f in "$out/$1"*; do sed -n 2p "$f"; done | awk '{s += $1} END {print s + 0}'; }

echo "1..15"

if ! createdb "$db" || ! q "CREATE EXTENSION secpolicy" >/dev/null; then
    echo "Bail out! cannot create database $db with secpolicy"
    exit 1
fi
RIGHT='Corr3ct-Unknown!Pw'
is "$(q "UPDATE secpolicy.policy SET hash_opslimit = 2, hash_memlimit = 8388608, require_mfa = false;
         SELECT secpolicy.create_user('realuser', '$RIGHT') > 0;")" t "setup: one existing account"

# --- 1. unknown and existing username side by side ------------------------
cases=(ghost Ghost GHOST gHoSt)
barrier_hold || fail "controller holds the barrier"
for i in $(seq -w 1 30); do
    client "ghost-$i" "SELECT status FROM secpolicy.login('${cases[$((10#$i % 4))]}', 'Wr0ng-Ghost!$i', '127.0.0.2')" &
    client "real-$i" "SELECT status FROM secpolicy.login('realuser', 'Wr0ng-Real!$i', '127.0.0.2')" &
done
if barrier_release 60; then pass "60 clients queued on the barrier and were released together"
else fail "60 clients queued on the barrier and were released together"; fi
wait

is "$(statuses ghost-)" "invalid_credentials x4, reset_required x26" \
   "unknown username: invalid_credentials 4 times, then reset_required"
is "$(statuses real-)" "$(statuses ghost-)" "existing account under the same attack: the very same statuses"
is "$(q "SELECT string_agg(username_key || '=' || failed_attempts, ',') FROM secpolicy.unknown_user_failures")" \
   "ghost=5" "one case-folded counter for the unknown username, stopped at 5"
is "$(verifications ghost-)" 5 "exactly 5 dummy argon2 verifications ran for the unknown username"
is "$(verifications real-)" 5 "exactly 5 argon2 verifications ran for the existing account"
is "$(q "SELECT count(*), count(*) FILTER (WHERE user_id IS NULL AND outcome = 'unknown_user' AND NOT success)
           FROM secpolicy.login_attempts WHERE lower(username) = 'ghost'")" "30|30" \
   "all 30 attempts logged as unknown_user failures without a user id"
is "$(q "SELECT count(*) FROM secpolicy.login_attempts WHERE lower(username) = 'ghost' AND username = 'GHOST'")" \
   "$(ls "$out"/ghost-* | awk -F- '{ if ($NF % 4 == 2) n++ } END {print n + 0}')" \
   "usernames are logged as typed"
is "$(q "SELECT failed_attempts, reset_required FROM secpolicy.users WHERE username = 'realuser'")" "5|t" \
   "the existing account stopped at 5 as well"

# --- 2. change_password on an unknown username ----------------------------
barrier_hold || fail "controller holds the barrier"
for i in $(seq -w 1 20); do
    client "phantom-$i" "SELECT status FROM secpolicy.change_password('phantom', 'Wr0ng-Phantom!$i', 'N3w-Phantom!Pass$i')" &
done
barrier_release 20 || fail "20 clients queued on the barrier"
wait
is "$(statuses phantom-)" "invalid_credentials x4, reset_required x16" \
   "change_password on an unknown username: invalid_credentials 4 times, then reset_required"
is "$(q "SELECT failed_attempts FROM secpolicy.unknown_user_failures WHERE username_key = 'phantom'")" 5 \
   "its counter stopped at 5"
is "$(verifications phantom-)" 5 "exactly 5 dummy verifications ran"

# --- 3. the name becomes a real account -----------------------------------
is "$(q "SELECT secpolicy.create_user('Ghost', '$RIGHT') > 0;
         SELECT count(*) FROM secpolicy.unknown_user_failures WHERE username_key = 'ghost';")" $'t\n0' \
   "create_user clears the unknown-user counter of its name"
is "$(q "SELECT status FROM secpolicy.login('ghost', '$RIGHT')")" ok "the new account logs in"

exit $((FAILS > 0))
