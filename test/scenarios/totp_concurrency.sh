#!/usr/bin/env bash
# Scenario: a second factor is accepted at most once under concurrency
# (security invariant 6).  A controller session holds the account's row lock
# (SELECT ... FOR UPDATE in an open transaction) while several psql clients
# submit at the same moment; once every client is queued on that lock the
# controller commits and they race:
#   1. the same valid TOTP code on 4 different verify challenges of one user:
#      exactly one ok (one mfa session), three invalid_code logged as
#      replayed_code and audited as totp_replay_rejected;
#   2. the same valid code on one challenge from 3 clients: one ok, two
#      expired_challenge, no failure counted;
#   3. the same recovery code on 3 challenges: exactly one ok, the code is
#      used once;
#   4. the same enrolment challenge confirmed by 2 clients with the right
#      code: one ok, one expired_challenge, one set of recovery codes;
#   5. 8 wrong codes at once: exactly 5 evaluated (4 invalid_code, then
#      reset_required), the counter stops at 5.
# Environment: PGHOST/PGPORT/PGUSER of a superuser (scripts/test).
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

db=scen_totp_concurrency_$$
out=$(mktemp -d "${TMPDIR:-/tmp}/scen_totp_conc.XXXXXX")
at_exit 'rm -rf "$out"'
app=sp_totp_race_$$

# The controller locks user $1's row and keeps its transaction open.
hold_user() {
    ctl_open "BEGIN; SELECT 1 FROM secpolicy.users WHERE username = '$1' FOR UPDATE;
          SELECT set_config('application_name', '${app}_ctl', false);"
    wait_for "SELECT count(*) FROM pg_stat_activity WHERE application_name = '${app}_ctl'
                 AND state = 'idle in transaction'" 1 30
}

# Wait until $1 clients are blocked on a lock, then commit the controller.
release_when_queued() {
    local ok=0
    wait_for "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$app' AND wait_event_type = 'Lock'" "$1" 30 && ok=1
    ctl_close "COMMIT;"
    [ $ok = 1 ]
}

# Start one client in the background: SQL $2 (prints one status), output to file $1.
client() {
    PGAPPNAME=$app psql -X -q -At -d "$db" -c "$2" >"$out/$1" 2>&1 &
}

# Sorted, comma-joined contents of the output files matching $1.
results() { cat "$out"/$1 | sort | paste -sd, -; }

plan 24

setup_db
at_exit 'wait 2>/dev/null'
q "UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = true,
          max_failed_attempts = 5, totp_window = 1, totp_period = 30, totp_digits = 6, totp_algorithm = 'sha1'" >/dev/null
PW='Quartz-Lantern-47!'

# Enrol user $1 through the flows; prints "secret recovery_code_1".
enrol() {
    local ch
    q "SELECT secpolicy.create_user('$1', '$PW')" >/dev/null
    ch=$(q "SELECT challenge_token FROM secpolicy.login('$1', '$PW')")
    q "SELECT e.secret || ' ' || c.recovery_codes[1]
         FROM secpolicy.totp_enroll('$ch') e,
              LATERAL secpolicy.totp_confirm('$ch', secpolicy.totp_code(e.secret)) c"
}
challenge() { q "SELECT challenge_token FROM secpolicy.login('$1', '$PW')"; }
uid() { q "SELECT id FROM secpolicy.users WHERE username = '$1'"; }

# ---- 1. one code, four challenges
read -r secret _ <<<"$(enrol race_totp)"
u=$(uid race_totp)
code=$(q "SELECT secpolicy.totp_code('$secret', now() + interval '30 seconds')")
step=$(q "SELECT floor(extract(epoch FROM now() + interval '30 seconds') / 30)::bigint")
chs=()
for i in 1 2 3 4; do chs+=("$(challenge race_totp)"); done
sessions_before=$(q "SELECT count(*) FROM secpolicy.sessions WHERE user_id = $u")
hold_user race_totp || fail "controller could not lock the account"
for i in 1 2 3 4; do client "r1_$i" "SELECT status FROM secpolicy.verify_mfa('${chs[$((i - 1))]}', '$code')"; done
release_when_queued 4 && pass "four clients were queued on the account at the same moment" \
    || fail "four clients were queued on the account at the same moment"
wait
is "$(results 'r1_*')" "invalid_code,invalid_code,invalid_code,ok" "same code on 4 challenges: exactly one ok"
is "$(( $(q "SELECT count(*) FROM secpolicy.sessions WHERE user_id = $u") - sessions_before ))" 1 "exactly one new session"
is "$(q "SELECT string_agg(outcome, ',' ORDER BY outcome) FROM secpolicy.login_attempts WHERE user_id = $u AND stage = 'mfa'")" \
   "ok,ok,replayed_code,replayed_code,replayed_code" "mfa attempts: the enrolment's ok, one ok, three replayed_code"
is "$(q "SELECT count(*) FROM secpolicy.audit_log WHERE action = 'totp_replay_rejected' AND user_id = $u")" 3 \
   "three totp_replay_rejected audit rows"
is "$(q "SELECT last_used_step FROM secpolicy.totp_credentials WHERE user_id = $u")" "$step" "last_used_step is the code's step"
is "$(q "SELECT failed_attempts FROM secpolicy.users WHERE id = $u")" 3 "the three replays count as failures"
is "$(q "SELECT count(*) FROM secpolicy.mfa_challenges WHERE user_id = $u AND purpose = 'verify' AND used_at IS NULL")" 3 \
   "the three losing challenges stay unused"

# ---- 2. one code, one challenge, three clients
read -r secret _ <<<"$(enrol race_same)"
u=$(uid race_same)
code=$(q "SELECT secpolicy.totp_code('$secret', now() + interval '30 seconds')")
ch=$(challenge race_same)
hold_user race_same || fail "controller could not lock the account"
for i in 1 2 3; do client "r2_$i" "SELECT status FROM secpolicy.verify_mfa('$ch', '$code')"; done
release_when_queued 3 && pass "three clients queued on one challenge" || fail "three clients queued on one challenge"
wait
is "$(results 'r2_*')" "expired_challenge,expired_challenge,ok" "same challenge and code from 3 clients: one ok, two expired_challenge"
is "$(q "SELECT count(*) FROM secpolicy.sessions WHERE user_id = $u AND mfa")" 2 "one new session (plus the enrolment's)"
is "$(q "SELECT failed_attempts FROM secpolicy.users WHERE id = $u")" 0 "no failure counted"

# ---- 3. one recovery code, three challenges
read -r secret rc <<<"$(enrol race_rc)"
u=$(uid race_rc)
chs=()
for i in 1 2 3; do chs+=("$(challenge race_rc)"); done
hold_user race_rc || fail "controller could not lock the account"
for i in 1 2 3; do client "r3_$i" "SELECT status FROM secpolicy.verify_mfa('${chs[$((i - 1))]}', '$rc')"; done
release_when_queued 3 && pass "three clients queued with one recovery code" || fail "three clients queued with one recovery code"
wait
is "$(results 'r3_*')" "invalid_code,invalid_code,ok" "same recovery code on 3 challenges: exactly one ok"
is "$(q "SELECT count(*) FROM secpolicy.recovery_codes WHERE user_id = $u AND used_at IS NOT NULL")" 1 "the code is used once"
is "$(q "SELECT count(*) FROM secpolicy.audit_log WHERE action = 'recovery_code_used' AND user_id = $u")" 1 \
   "one recovery_code_used audit row"

# ---- 4. one enrolment challenge confirmed twice
q "SELECT secpolicy.create_user('race_enrol', '$PW')" >/dev/null
u=$(uid race_enrol)
ch=$(challenge race_enrol)
secret=$(q "SELECT secret FROM secpolicy.totp_enroll('$ch')")
code=$(q "SELECT secpolicy.totp_code('$secret')")
hold_user race_enrol || fail "controller could not lock the account"
for i in 1 2; do client "r4_$i" "SELECT status FROM secpolicy.totp_confirm('$ch', '$code')"; done
release_when_queued 2 && pass "two confirmations queued" || fail "two confirmations queued"
wait
is "$(results 'r4_*')" "expired_challenge,ok" "same enrolment challenge confirmed twice: one ok, one expired_challenge"
is "$(q "SELECT count(*) FROM secpolicy.recovery_codes WHERE user_id = $u")" 10 "one set of 10 recovery codes"
is "$(q "SELECT count(*) FROM secpolicy.sessions WHERE user_id = $u")" 1 "one session"

# ---- 5. eight wrong codes at once
read -r secret _ <<<"$(enrol race_wrong)"
u=$(uid race_wrong)
wrong=$(q "SELECT c FROM unnest(ARRAY['000000','111111','222222','333333','444444']) c
            WHERE secpolicy.totp_match('$secret', c, now(), 3) IS NULL LIMIT 1")
chs=()
for i in 1 2 3 4 5 6 7 8; do chs+=("$(challenge race_wrong)"); done
hold_user race_wrong || fail "controller could not lock the account"
for i in 1 2 3 4 5 6 7 8; do client "r5_$i" "SELECT status FROM secpolicy.verify_mfa('${chs[$((i - 1))]}', '$wrong')"; done
release_when_queued 8 && pass "eight wrong codes queued" || fail "eight wrong codes queued"
wait
is "$(results 'r5_*')" "invalid_code,invalid_code,invalid_code,invalid_code,reset_required,reset_required,reset_required,reset_required" \
   "8 wrong codes at once: 4 invalid_code, then reset_required"
is "$(q "SELECT failed_attempts || '/' || reset_required FROM secpolicy.users WHERE id = $u")" "5/true" \
   "the counter stops at the limit"
is "$(q "SELECT string_agg(outcome || ':' || n, ',' ORDER BY outcome) FROM (SELECT outcome, count(*) n FROM secpolicy.login_attempts
          WHERE user_id = $u AND stage = 'mfa' AND NOT success GROUP BY outcome) x")" "invalid_code:4,locked:3,lockout:1" \
   "exactly 5 codes evaluated (4 invalid_code, 1 lockout), 3 refused as locked"

finish
