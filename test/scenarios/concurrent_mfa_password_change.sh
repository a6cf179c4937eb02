#!/usr/bin/env bash
# Scenario: verify_mfa and change_password on the same account at the same
# moment neither deadlock nor fail.  Eight rounds: a verify_mfa with a TOTP
# code and one with a recovery code (on two challenges) and a change_password
# (from a session opened with the second factor) are released together at a
# barrier: nothing raises (no 40P01 deadlock), each verify_mfa answers a
# status, every change succeeds, and the account is usable with the last
# password.
# Environment (scripts/test): PGHOST/PGPORT/PGUSER of a superuser.
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

db=scen_mfa_pw_change_$$
work=$(mktemp -d "${TMPDIR:-/tmp}/scen_mfa_pw_change.XXXXXX")
at_exit 'rm -rf "$work"'
out=$work                       # where barrier_client writes
BARRIER=5457091

# the account's password after round $1
pw_of() { printf 'Kestrel-%s-Wing!q' "$1"; }

plan 6

setup_db
at_exit 'wait 2>/dev/null'
setup_sql "UPDATE secpolicy.policy SET hash_opslimit = 2, hash_memlimit = 8388608, require_mfa = true, totp_window = 1,
                  max_failed_attempts = 5;
           SELECT secpolicy.create_user('dl_user', '$(pw_of 0)') > 0"
dl_uid=$(q "SELECT id FROM secpolicy.users WHERE username = 'dl_user'")
ch=$(q "SELECT challenge_token FROM secpolicy.login('dl_user', '$(pw_of 0)')")
read -r secret rest <<<"$(q "SELECT e.secret || ' ' || array_to_string(c.recovery_codes, ' ')
                               FROM secpolicy.totp_enroll('$ch') e,
                                    LATERAL secpolicy.totp_confirm('$ch', secpolicy.totp_code(e.secret)) c")"
read -r -a rcodes <<<"$rest"
queued=1
for r in 1 2 3 4 5 6 7 8; do
    q "UPDATE secpolicy.totp_credentials SET last_used_step = -1 WHERE user_id = $dl_uid" >/dev/null
    # the change is made from a session opened with the second factor (step T-1)
    ch0=$(q "SELECT challenge_token FROM secpolicy.login('dl_user', '$(pw_of $((r - 1)))')")
    s2f=$(q "SELECT session_token FROM secpolicy.verify_mfa('$ch0', secpolicy.totp_code('$secret', now() - interval '30 seconds'))")
    ch1=$(q "SELECT challenge_token FROM secpolicy.login('dl_user', '$(pw_of $((r - 1)))')")
    ch2=$(q "SELECT challenge_token FROM secpolicy.login('dl_user', '$(pw_of $((r - 1)))')")
    barrier_hold || queued=0
    barrier_client "dl$r-verify-totp" "SELECT status FROM secpolicy.verify_mfa('$ch1', secpolicy.totp_code('$secret'))" &
    barrier_client "dl$r-verify-rc" "SELECT status FROM secpolicy.verify_mfa('$ch2', '${rcodes[$((r - 1))]:-none}')" &
    barrier_client "dl$r-change" "SELECT status FROM secpolicy.change_password('dl_user', '$(pw_of $((r - 1)))', '$(pw_of $r)', NULL, '$s2f')" &
    barrier_release 3 || queued=0
    wait
done
ok "$queued" "eight rounds of three clients queued at the barrier and were released together"
errors=$(grep -l ERROR "$work"/dl*-* 2>/dev/null | xargs -r -n1 basename | tr '\n' ' ')
ok "$([ -z "$errors" ] && echo 1)" "no call raised" "$(grep -h ERROR "$work"/dl*-* 2>/dev/null | sort | uniq -c | head -3 | tr '\n' ' ')"
is "$(cat "$work"/dl*-* | grep -c 'deadlock detected')" 0 "no deadlock (40P01)"
bad_verify=$(for f in "$work"/dl*-verify-*; do sed -n 1p "$f"; done | grep -cvE '^(ok|expired_challenge|invalid_code)$')
is "$bad_verify" 0 "every verify_mfa answered ok, expired_challenge or invalid_code ($(statuses dl))"
is "$(for f in "$work"/dl*-change; do sed -n 1p "$f"; done | sort | uniq -c | awk '{print $2 " x" $1}')" "ok x8" \
   "every change_password answered ok"
is "$(q "SELECT status FROM secpolicy.login('dl_user', '$(pw_of 8)')")" mfa_required \
   "the account is usable with the last password"

finish
