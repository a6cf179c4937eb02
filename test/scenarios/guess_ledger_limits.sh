#!/usr/bin/env bash
# Scenario: the guess ledger holds the failure limit against every sequence of
# calls of a caller that rolls back, whatever it floods the ledger with.
#   1. Rolled-back guesses on an account survive a flood of 15,000 rolled-back
#      guesses on 3,000 fresh unknown names (passwords over 4,096 bytes, so no
#      argon2 work) in a ledger of 1,024 entries: the account's fifth guess is
#      its last.  (In 1.0 the account's entry was evicted as the one with the
#      smallest count, and its guesses went on without limit.)
#   2. Guesses rolled back to a savepoint count (SAVEPOINT; login; ROLLBACK TO;
#      COMMIT), and an unlock rolled back to a savepoint clears nothing.
#   3. When rolled-back guesses on 3,000 accounts fill the ledger, a guess on an
#      account without an entry is refused without evaluation (outcome
#      ledger_full, a WARNING in the log, the account left as it was); no
#      account's count is pushed out.  ledger_status() shows it.
#   4. An entry belongs to one installation: after DROP EXTENSION and CREATE
#      EXTENSION, the new account 1 does not inherit the old account 1's
#      failures.
# The cluster is restarted with the library preloaded and a ledger of 1,024
# entries, and restored at the end.
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
restarts_cluster

db=scen_ledger_limits_$$
PW='Corr3ct-Horse!Pass'
plan 13

setup_db
at_exit "sp_cluster_restart >/dev/null 2>&1"
if ! sp_cluster_restart -c shared_preload_libraries=secpolicy -c secpolicy.ledger_size=1024 >/dev/null 2>&1; then
    echo "Bail out! cannot restart with shared_preload_libraries=secpolicy"
    exit 1
fi
q "UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = false;
   SELECT secpolicy.create_user('alice', '$PW'), secpolicy.create_user('bob', '$PW')" >/dev/null
is "$(q "SELECT active, size FROM secpolicy.ledger_status()")" "t|1024" "the ledger is active, with 1,024 entries"

# wrong guesses of `who`, each in a transaction that rolls back: a script for psql
rolled_back() { local i; for ((i = 1; i <= $2; i++)); do
    printf "BEGIN;\nSELECT status FROM secpolicy.login('%s', 'Wrong-Guess-%s!');\nROLLBACK;\n" "$1" "$i"; done; }

# --- 1. a flood of cheap rolled-back guesses on fresh names --------------------
out=$(rolled_back alice 4 | psql -X -q -At -d "$db" 2>&1 | paste -sd,)
is "$out" "invalid_credentials,invalid_credentials,invalid_credentials,invalid_credentials" \
   "alice: four wrong guesses, each rolled back"
flood=$(q "SET client_min_messages = error;
DO \$\$
DECLARE
    long text := repeat('x', 5000);
BEGIN
    FOR n IN 1 .. 3000 LOOP
        FOR g IN 1 .. 5 LOOP
            BEGIN
                PERFORM secpolicy.login('flood-' || n, long);
                RAISE EXCEPTION USING ERRCODE = 'P0004';     -- roll the guess back
            EXCEPTION WHEN assert_failure THEN NULL;
            END;
        END LOOP;
    END LOOP;
END \$\$;
SELECT used, pinned FROM secpolicy.ledger_status()")
ok "$(awk -F'|' '{print ($1 >= 1000 && $2 >= 1000)}' <<<"$flood")" \
   "15,000 rolled-back guesses on 3,000 fresh names fill the ledger ($flood used|pinned)"
is "$(q "SELECT status FROM secpolicy.login('alice', 'Wrong-Guess-5!')"),$(q "SELECT status FROM secpolicy.login('alice', 'Wrong-Guess-6!')")" \
   invalid_credentials,reset_required \
   "alice's fifth guess is her last: the flood did not push her count out"
is "$(q "SELECT status FROM secpolicy.login('alice', '$PW')")" reset_required "and then her right password is refused"

# --- 2. savepoints -----------------------------------------------------------------
savepointed() { local i; for ((i = 1; i <= $1; i++)); do
    printf "BEGIN;\nSAVEPOINT s;\nSELECT status FROM secpolicy.login('bob', 'Wrong-Guess-%s!');\nROLLBACK TO s;\nCOMMIT;\n" "$i"; done; }
out=$(savepointed 6 | psql -X -q -At -d "$db" 2>&1 | paste -sd,)
is "$out" "invalid_credentials,invalid_credentials,invalid_credentials,invalid_credentials,invalid_credentials,reset_required" \
   "guesses rolled back to a savepoint (then COMMIT) count: the sixth is refused"
is "$(printf "BEGIN;\nSAVEPOINT s;\nSELECT secpolicy.unlock_user('bob', 'test');\nROLLBACK TO s;\nCOMMIT;\nSELECT status FROM secpolicy.login('bob', '%s');\n" "$PW" \
      | psql -X -q -At -d "$db" 2>&1 | tail -1)" reset_required \
   "an unlock rolled back to a savepoint clears nothing in the ledger"

# --- 3. rolled-back guesses on accounts fill the ledger -------------------------------
q "SELECT count(secpolicy.create_user('acct' || g, '$PW')) FROM generate_series(1, 3000) g" >/dev/null
off=$(log_offset)
q "SET client_min_messages = error;
DO \$\$
BEGIN
    FOR n IN 1 .. 3000 LOOP
        BEGIN
            PERFORM secpolicy.login('acct' || n, 'Wrong-Guess-1!');
            RAISE EXCEPTION USING ERRCODE = 'P0004';
        EXCEPTION WHEN assert_failure THEN NULL;
        END;
    END LOOP;
END \$\$" >/dev/null 2>&1
status=$(q "SELECT pinned FROM secpolicy.ledger_status()")
is "$status" 1024 "a rolled-back guess on each of 3,000 accounts pins every entry"
refused=latecomer
q "SELECT secpolicy.create_user('$refused', '$PW')" >/dev/null
is "$(q "SELECT status FROM secpolicy.login('$refused', '$PW')")|$(q "SELECT outcome FROM secpolicy.login_attempts WHERE username = '$refused' ORDER BY id DESC LIMIT 1")" \
   "reset_required|ledger_full" \
   "an account that found no room is refused without evaluation (outcome ledger_full)"
is "$(q "SELECT failed_attempts || ',' || reset_required FROM secpolicy.users WHERE username = '$refused'")" "0,false" \
   "... and is left as it was (not locked)"
sleep 0.3
ok "$(log_since "$off" | grep -c "the guess ledger has no room" | awk "{print (\$1 > 0)}")" \
   "the server log warns that the ledger is full (and says to raise secpolicy.ledger_size)"
is "$(q "SELECT status FROM secpolicy.login('alice', '$PW')")" reset_required "alice is still locked"

# --- 4. one installation's entries do not follow the extension into the next -------------
q "DROP EXTENSION secpolicy CASCADE; CREATE EXTENSION secpolicy;
   UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = false;
   SELECT secpolicy.create_user('alice', '$PW')" >/dev/null 2>&1
is "$(q "SELECT id FROM secpolicy.users WHERE username = 'alice'" | tr -d ' ')|$(for i in 1 2 3 4 5; do q "SELECT status FROM secpolicy.login('alice', 'Wrong-Guess-$i!')"; done | paste -sd,)" \
   "1|invalid_credentials,invalid_credentials,invalid_credentials,invalid_credentials,reset_required" \
   "after DROP and CREATE EXTENSION the new account 1 starts from zero (the fifth failure locks, not the second)"

finish
