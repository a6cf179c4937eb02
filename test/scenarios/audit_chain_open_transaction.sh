#!/usr/bin/env bash
# Scenario: an application that holds its transaction open stalls no audited
# action.  A client makes five wrong logins in one open transaction (the
# fifth locks the account and writes its audit row) and then waits; an
# admin's disable_user and maintain() on other accounts finish within a
# statement_timeout of 3 seconds meanwhile (in 1.0 they waited for the open
# transaction's lock on the audit chain).  The chain follows the commits:
# the admin's row is chained first although its id is larger, and after the
# client commits, verify_audit_chain() is intact over every row.  (maintain()
# has made the day's partitions first, as it does when it is scheduled: the
# only lock it then takes is the chain's.)
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

db=scen_audit_open_$$
PW='Osprey-Rock-57!x'
plan 5

setup_db
q "UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = false;
   SELECT secpolicy.create_user('held', '$PW'), secpolicy.create_user('other', '$PW');
   SELECT secpolicy.maintain()" >/dev/null

ctl_open "BEGIN; SELECT count(*) FROM generate_series(1, 5) g, secpolicy.login('held', 'Wrong-Guess-' || g || '!');"
wait_for "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db' AND state = 'idle in transaction'" 1 20
is "$(q "SELECT count(*) FROM secpolicy.audit_log WHERE action = 'account_locked'")" 0 \
   "the open transaction's lockout is not visible yet"
out=$(psql -X -q -At -d "$db" -c "SET statement_timeout = '3s'" \
          -c "SELECT secpolicy.disable_user('other', 'left') IS NULL" \
          -c "SELECT (secpolicy.maintain()) ? 'incidents_opened'" 2>&1 | paste -sd,)
is "$out" "f,t" "an admin's disable_user and maintain() finish while that transaction is open"
ctl_close "COMMIT;"
is "$(q "SELECT string_agg(action, ',' ORDER BY coalesce(chain_seq, id))
          FROM secpolicy.audit_log WHERE action IN ('account_locked', 'user_disabled')")" \
   "user_disabled,account_locked" "the chain follows the commits: the admin's row comes first"
is "$(q "SELECT (SELECT id FROM secpolicy.audit_log WHERE action = 'account_locked')
                < (SELECT id FROM secpolicy.audit_log WHERE action = 'user_disabled')")" t \
   "... although the lockout's row was written (and numbered) first"
is "$(q "SELECT intact::text || ',' || (rows_checked = (SELECT count(*) FROM secpolicy.audit_log))::text
          FROM secpolicy.verify_audit_chain()")" "true,true" "the chain is intact over every row"
finish
