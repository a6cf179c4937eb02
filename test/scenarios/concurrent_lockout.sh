#!/usr/bin/env bash
# Scenario: security invariant 5 under parallel attack.  Many separate
# connections guess the password of one account at the same instant (they all
# wait on an advisory lock held by a controller session, which then releases
# it), and at most max_failed_attempts (5) guesses may ever be evaluated:
#   1. 40 wrong guesses at once: exactly 5 are evaluated (4 invalid_password,
#      1 lockout, 35 locked), exactly 5 argon2 verifications run in all, the
#      account needs a reset and is audited as locked once;
#   2. after the lockout, 20 wrong and 5 right passwords at once: nothing is
#      evaluated, nobody gets ok, no session opens;
#   3. a fresh account under 30 wrong and 6 right passwords at once: replaying
#      the attempts in the order they took the account's row lock (attempt id)
#      against the policy's state machine gives exactly the recorded outcomes,
#      so no guess beyond the limit was evaluated and no right password got ok
#      after the lockout.
# The hash cost is moderate (t=2, 8 MiB) so verifications take a few
# milliseconds and really overlap.  Environment: PGHOST/PGPORT/PGUSER of a
# superuser (scripts/test).
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

db=scen_concurrent_lockout_$$
out=$(mktemp -d "${TMPDIR:-/tmp}/scen_lockout.XXXXXX")
at_exit 'rm -rf "$out"'
# (the barrier, its clients, statuses and verifications: lib.bash)
BARRIER=5457001

# One attacker: wait at the barrier, log in once, report status and how many
# argon2 verifications its backend ran.  Args: file tag, username, password.
client() { barrier_client "$1" "SELECT status FROM secpolicy.login('$2', '$3', '127.0.0.1', '$1')"; }

plan 18

setup_db
at_exit 'wait 2>/dev/null'
RIGHT='Corr3ct-Lockout!Pw'
setup=$(q "UPDATE secpolicy.policy SET hash_opslimit = 2, hash_memlimit = 8388608, require_mfa = false;
           SELECT secpolicy.create_user('victim', '$RIGHT') > 0, secpolicy.create_user('mixed', '$RIGHT') > 0;
           SELECT max_failed_attempts FROM secpolicy.policy;")
is "$setup" $'t|t\n5' "setup: two accounts, max_failed_attempts is 5"

# --- 1. forty wrong guesses at once --------------------------------------
barrier_hold || fail "controller holds the barrier"
for i in $(seq -w 1 40); do client "p1-wrong-$i" victim "Wr0ng-Guess!$i" & done
if barrier_release 40; then pass "40 clients queued on the barrier and were released together"
else fail "40 clients queued on the barrier and were released together"; fi
wait

is "$(statuses p1-)" "invalid_credentials x4, reset_required x36" \
   "phase 1: clients saw invalid_credentials 4 times, then reset_required"
is "$(q "SELECT string_agg(outcome || ' x' || n, ', ' ORDER BY outcome)
           FROM (SELECT outcome, count(*) n FROM secpolicy.login_attempts
                  WHERE username = 'victim' GROUP BY 1) s")" \
   "invalid_password x4, locked x35, lockout x1" \
   "phase 1: attempt log has 5 evaluated guesses (4 invalid_password + 1 lockout), 35 locked"
is "$(verifications p1-)" 5 "phase 1: exactly 5 argon2 verifications ran across the 40 backends"
is "$(q "SELECT failed_attempts, reset_required, locked_at IS NOT NULL FROM secpolicy.users WHERE username = 'victim'")" \
   "5|t|t" "phase 1: failed_attempts = 5, reset_required, locked_at set"
is "$(q "SELECT count(*) FROM secpolicy.audit_log WHERE action = 'account_locked' AND username = 'victim'")" 1 \
   "phase 1: the lockout is audited exactly once"
is "$(q "SELECT max(id) FILTER (WHERE outcome <> 'locked') < min(id) FILTER (WHERE outcome = 'locked')
           FROM secpolicy.login_attempts WHERE username = 'victim'")" t \
   "phase 1: every locked attempt came after the 5 evaluated ones (row-lock order)"

# --- 2. right and wrong passwords after the lockout -----------------------
barrier_hold || fail "controller holds the barrier"
for i in $(seq -w 1 20); do client "p2-wrong-$i" victim "Wr0ng-Again!$i" & done
for i in $(seq 1 5); do client "p2-right-$i" victim "$RIGHT" & done
barrier_release 25 || fail "25 clients queued on the barrier"
wait

is "$(statuses p2-)" "reset_required x25" "phase 2: every client, right password or not, got reset_required"
is "$(q "SELECT count(*), count(*) FILTER (WHERE outcome = 'locked') FROM secpolicy.login_attempts
          WHERE username = 'victim' AND user_agent LIKE 'p2-%'")" "25|25" \
   "phase 2: all 25 attempts were refused unevaluated (locked)"
is "$(verifications p2-)" 0 "phase 2: no argon2 verification ran"
is "$(q "SELECT u.failed_attempts, u.last_login_at IS NULL, (SELECT count(*) FROM secpolicy.sessions s WHERE s.user_id = u.id)
           FROM secpolicy.users u WHERE username = 'victim'")" "5|t|0" \
   "phase 2: counter still 5, never logged in, no session"

# --- 3. a mixed crowd on a fresh account ----------------------------------
barrier_hold || fail "controller holds the barrier"
for i in $(seq -w 1 30); do client "p3-wrong-$i" mixed "Wr0ng-Mixed!$i" & done
for i in $(seq 1 6); do client "p3-right-$i" mixed "$RIGHT" & done
barrier_release 36 || fail "36 clients queued on the barrier"
wait

# Replay the attempts in row-lock order (id) through the policy's rules.
lim=5 cnt=0 bad=0 evaluated_after_lock=0 ok_after_lockout=0 seen_lockout=0 n=0
while IFS='|' read -r agent outcome; do
    n=$((n + 1))
    if [ $cnt -ge $lim ]; then
        want=locked
        [ "$outcome" != locked ] && evaluated_after_lock=$((evaluated_after_lock + 1))
    elif [[ $agent == p3-right-* ]]; then
        want=ok; cnt=0
    else
        cnt=$((cnt + 1))
        if [ $cnt -eq $lim ]; then want=lockout; else want=invalid_password; fi
    fi
    [ "$outcome" = lockout ] && seen_lockout=1
    [ $seen_lockout = 1 ] && [ "$outcome" = ok ] && ok_after_lockout=$((ok_after_lockout + 1))
    if [ "$outcome" != "$want" ]; then
        bad=$((bad + 1)); echo "# attempt $n ($agent): outcome $outcome, expected $want"
    fi
done < <(q "SELECT user_agent, outcome FROM secpolicy.login_attempts WHERE username = 'mixed' ORDER BY id")

is "$n" 36 "phase 3: 36 attempts recorded"
is "$bad" 0 "phase 3: every recorded outcome is what the policy allows in row-lock order"
is "$evaluated_after_lock" 0 "phase 3: no guess was evaluated once 5 consecutive failures were reached"
is "$ok_after_lockout" 0 "phase 3: no right password got ok after the lockout"
is "$(q "SELECT failed_attempts FROM secpolicy.users WHERE username = 'mixed'")" "$cnt" \
   "phase 3: users.failed_attempts equals the replayed counter"
ok_clients=$(for f in "$out"/p3-*; do sed -n 1p "$f"; done | grep -c '^ok$')
is "$ok_clients" "$(q "SELECT count(*) FROM secpolicy.login_attempts WHERE username = 'mixed' AND outcome = 'ok'")" \
   "phase 3: clients that got ok match the ok rows of the log"

finish
