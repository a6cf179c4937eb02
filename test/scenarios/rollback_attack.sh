#!/usr/bin/env bash
# Scenario: a caller that rolls back its own failed guesses.  The flows count
# failures in the caller's transaction, so a caller that rolls back (or makes
# its own autocommit statement fail, e.g. with a cast of the status) erases
# them.  With secpolicy in shared_preload_libraries the ledger in shared
# memory counts every evaluated guess outside any transaction: the limit
# holds for passwords, second-factor codes, unknown usernames and the
# "reused password" answers of reset_password, the lockout is committed as
# soon as a caller lets a statement commit, and the server log says that
# guesses were rolled back; a counter that retention forgets is forgotten by
# the ledger too.  Without preloading, ledger_active() is false
# (the documented limitation).  The cluster is restarted with the library
# preloaded and restored at the end.
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
restarts_cluster

db=scen_rollback_attack_$$
PW='Corr3ct-Horse!Pass'
plan 19

setup_db
is "$(q "SELECT secpolicy.ledger_active()")" f "without shared_preload_libraries the ledger is not active"

at_exit "sp_cluster_restart >/dev/null 2>&1"
if ! sp_cluster_restart -c shared_preload_libraries=secpolicy >/dev/null 2>&1; then
    echo "Bail out! cannot restart with shared_preload_libraries=secpolicy"
    exit 1
fi
is "$(q "SELECT secpolicy.ledger_active()")" t "with shared_preload_libraries the ledger is active"

q "UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = false;
   SELECT secpolicy.create_user('bob', '$PW'), secpolicy.create_user('carol', '$PW'),
          secpolicy.create_user('erin', '$PW')" >/dev/null
off=$(log_offset)

# --- 1. BEGIN; login(wrong); ROLLBACK, six times --------------------------------
statuses=()
for i in 1 2 3 4 5 6; do
    statuses+=("$(psql -X -q -At -d "$db" -c "BEGIN" \
                   -c "SELECT status FROM secpolicy.login('bob', 'Wrong-Guess-$i!')" -c "ROLLBACK" 2>&1)")
done
is "${statuses[*]}" "invalid_credentials invalid_credentials invalid_credentials invalid_credentials invalid_credentials reset_required" \
   "rolled-back wrong guesses still count: the sixth is refused"
is "$(q "SELECT status FROM secpolicy.login('bob', '$PW')")" reset_required \
   "then the right password is refused too"
is "$(q "SELECT failed_attempts || ',' || reset_required FROM secpolicy.users WHERE username = 'bob'")" "5,true" \
   "and the lockout is committed by the first statement that commits"
is "$(q "SELECT count(*) FROM secpolicy.audit_log WHERE action = 'account_locked' AND username = 'bob'")" 1 \
   "the lockout is audited once"
is "$(q "SELECT string_agg(outcome, ',' ORDER BY id) FROM secpolicy.login_attempts WHERE username = 'bob'")" lockout \
   "the attempt that committed it is logged as lockout (the reports count it)"
sleep 0.3
ok "$(log_since "$off" | grep -Eq 'failed guess(es)? on account .* (was|were) rolled back by the caller' && echo 1)" \
   "the server log says that guesses were rolled back"

# --- 2. an autocommit statement that fails after the call --------------------
for i in 1 2 3 4 5 6; do
    q "SELECT (secpolicy.login('carol', 'Wrong-Guess-$i!')).status::int" >/dev/null
done
is "$(q "SELECT status FROM secpolicy.login('carol', '$PW')")" reset_required \
   "failing the statement on purpose (a cast of the status) does not erase the guesses"

# --- 3. unknown usernames -------------------------------------------------------
for i in 1 2 3 4 5; do
    psql -X -q -At -d "$db" -c "BEGIN" -c "SELECT status FROM secpolicy.login('nobody', 'Wrong-Guess-$i!')" \
        -c "ROLLBACK" >/dev/null 2>&1
done
is "$(q "SELECT status FROM secpolicy.login('nobody', 'Another-Guess-1!')")" reset_required \
   "an unknown username is refused after rolled-back guesses, as an account is"
is "$(q "SELECT failed_attempts FROM secpolicy.unknown_user_failures WHERE username_key = 'nobody'")" 5 \
   "and its lockout is committed"

# --- 4. second-factor codes -----------------------------------------------------
q "UPDATE secpolicy.policy SET require_mfa = true" >/dev/null
ch=$(q "SELECT challenge_token FROM secpolicy.login('erin', '$PW')")
secret=$(q "SELECT secret FROM secpolicy.totp_enroll('$ch')")
q "SELECT status FROM secpolicy.totp_confirm('$ch', secpolicy.totp_code('$secret'))" >/dev/null
ch=$(psql -X -q -At -d "$db" -c "UPDATE secpolicy.totp_credentials SET last_used_step = -1" \
        -c "SELECT challenge_token FROM secpolicy.login('erin', '$PW')" 2>&1 | tail -1)
for i in 1 2 3 4 5; do
    psql -X -q -At -d "$db" -c "BEGIN" -c "SELECT status FROM secpolicy.verify_mfa('$ch', '00000$i')" \
        -c "ROLLBACK" >/dev/null 2>&1
done
is "$(q "SELECT status FROM secpolicy.verify_mfa('$ch', secpolicy.totp_code('$secret'))")" reset_required \
   "rolled-back wrong codes count: the right code is refused after five"
is "$(q "SELECT failed_attempts || ',' || reset_required FROM secpolicy.users WHERE username = 'erin'")" "5,true" \
   "and the account is locked"

# --- 5. an unlock clears the ledger too ----------------------------------------
q "UPDATE secpolicy.policy SET require_mfa = false; SELECT secpolicy.unlock_user('bob', 'regress')" >/dev/null
is "$(q "SELECT status FROM secpolicy.login('bob', '$PW')")" ok "after unlock_user the account logs in"

# --- 6. the reused-password answers of reset_password ---------------------------
tok=$(q "SELECT secpolicy.request_password_reset('bob')")
answers=()
for i in 1 2 3 4 5 6; do
    answers+=("$(psql -X -q -At -d "$db" -c "BEGIN" \
                  -c "SELECT status || ':' || coalesce(array_to_string(violations, ','), '') FROM secpolicy.reset_password('$tok', '$PW')" \
                  -c "ROLLBACK" 2>&1)")
done
is "${answers[0]}" "rejected:reused_password" "reset_password says when the new password is the current one"
is "${answers[5]}" "invalid_token:" "but after five such answers, rolled back, the token is refused"
is "$(q "SELECT status FROM secpolicy.reset_password('$tok', 'Fresh-Harbour-77!')")" invalid_token \
   "and stays refused"
is "$(q "SELECT revoked_at IS NOT NULL FROM secpolicy.password_resets WHERE token_digest = secpolicy.token_digest('$tok')")" t \
   "the token is revoked"

# --- 7. retention forgets an old counter in the ledger too -----------------------
q "INSERT INTO secpolicy.users (username, password_hash) VALUES ('fred', '$PW');
   UPDATE secpolicy.users SET failed_attempts = 4, last_failed_at = now() - interval '500 days'
    WHERE username = 'fred'" >/dev/null
psql -X -q -At -d "$db" -c "BEGIN" -c "SELECT status FROM secpolicy.login('fred', 'Wrong-Guess-9!')" -c "ROLLBACK" >/dev/null 2>&1
q "SELECT forgotten_counters FROM secpolicy.apply_retention()" >/dev/null
is "$(q "SELECT failed_attempts FROM secpolicy.users WHERE username = 'fred'"),$(q "SELECT status FROM secpolicy.login('fred', 'Wrong-Guess-10!')")" \
   "0,invalid_credentials" \
   "a counter forgotten by retention (4 failures 500 days ago, and one rolled back) is forgotten by the ledger too"

finish
