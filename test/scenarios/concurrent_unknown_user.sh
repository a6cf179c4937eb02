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
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

db=scen_concurrent_unknown_user_$$
out=$(mktemp -d "${TMPDIR:-/tmp}/scen_unknown.XXXXXX")
at_exit 'rm -rf "$out"'
# (the barrier, its clients, statuses and verifications: lib.bash; each
# attacker is a barrier_client running one SQL call that returns a status)
BARRIER=5457002

plan 15

setup_db
at_exit 'wait 2>/dev/null'
RIGHT='Corr3ct-Unknown!Pw'
is "$(q "UPDATE secpolicy.policy SET hash_opslimit = 2, hash_memlimit = 8388608, require_mfa = false;
         SELECT secpolicy.create_user('realuser', '$RIGHT') > 0;")" t "setup: one existing account"

# --- 1. unknown and existing username side by side ------------------------
cases=(ghost Ghost GHOST gHoSt)
barrier_hold || fail "controller holds the barrier"
for i in $(seq -w 1 30); do
    barrier_client "ghost-$i" "SELECT status FROM secpolicy.login('${cases[$((10#$i % 4))]}', 'Wr0ng-Ghost!$i', '127.0.0.2')" &
    barrier_client "real-$i" "SELECT status FROM secpolicy.login('realuser', 'Wr0ng-Real!$i', '127.0.0.2')" &
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
    barrier_client "phantom-$i" "SELECT status FROM secpolicy.change_password('phantom', 'Wr0ng-Phantom!$i', 'N3w-Phantom!Pass$i')" &
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

finish
