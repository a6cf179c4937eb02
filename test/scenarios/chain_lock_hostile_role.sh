#!/usr/bin/env bash
# Scenario: a role with no privilege cannot stall the audit chain or the
# maintenance jobs.  It holds pg_advisory_lock(5457731, 1) and (5457731, 2),
# the keys the audit chain and detect_attacks() used to take, throughout:
# five wrong logins (statement_timeout = 2s) still answer, the fifth commits
# the lockout and its audit row; detect_attacks(), maintain() and an audited
# admin action finish within the timeout too; the role cannot lock
# secpolicy.audit_head or the maintenance_state row (42501).  Who may lock
# those rows, in one session: test/chain_lock_privileges.sql.
# Environment (scripts/test): PGHOST/PGPORT/PGUSER of a superuser.
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

db=scen_chain_lock_hostile_$$
nobody=regress_clh_nobody_$$
adm=regress_clh_adm_$$
at_exit "dropuser --if-exists $nobody >/dev/null 2>&1; dropuser --if-exists $adm >/dev/null 2>&1"
PW='Quartz-Lantern-47!'

# psql that reports errors as 'ERROR:  <SQLSTATE>' (stderr merged); $2: role
qs() { psql -X -q -At -v VERBOSITY=sqlstate -U "${2:-postgres}" -d "$db" -c "$1" 2>&1; }
# the same with statement_timeout = 2s
qt() { PGOPTIONS='-c statement_timeout=2s' qs "$@"; }

plan 9

setup_db
is "$(q "CREATE ROLE $nobody LOGIN; CREATE ROLE $adm LOGIN IN ROLE secpolicy_admin;
         UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = false,
                max_failed_attempts = 5;
         SELECT secpolicy.create_user('adv_victim', '$PW') > 0;")" t \
   "setup: roles, policy and an account" || true

PGUSER=$nobody ctl_open "SELECT pg_advisory_lock(5457731, 1), pg_advisory_lock(5457731, 2);"
held="SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
       WHERE l.locktype = 'advisory' AND l.classid = 5457731 AND l.objid IN (1, 2) AND l.objsubid = 2
         AND l.granted AND a.usename = '$nobody'"
held_before=0
wait_for "$held" 2 10 && held_before=1
answers=()
for i in 1 2 3 4 5; do
    answers+=("$(qt "SELECT status FROM secpolicy.login('adv_victim', 'Wrong-Guess-$i!x')")")
done
if [ $held_before = 1 ]; then
    is "${answers[*]}" "invalid_credentials invalid_credentials invalid_credentials invalid_credentials reset_required" \
       "with a role holding advisory locks (5457731,1) and (5457731,2), five wrong logins answer within 2 s"
else
    fail "with a role holding advisory locks (5457731,1) and (5457731,2), five wrong logins answer within 2 s" \
         "the role did not get the locks"
fi
is "$(q "SELECT u.failed_attempts || ',' || u.reset_required || ',' ||
                (SELECT count(*) FROM secpolicy.audit_log a WHERE a.action = 'account_locked' AND a.user_id = u.id)
           FROM secpolicy.users u WHERE u.username = 'adv_victim'")" "5,true,1" \
   "the fifth committed the lockout and its audit row"
is "$(qt "SELECT count(*) >= 0 FROM secpolicy.detect_attacks()")" t \
   "detect_attacks() finishes within 2 s"
is "$(qt "SELECT secpolicy.maintain() ? 'incidents_opened'")" t "maintain() finishes within 2 s"
is "$(qt "SELECT count(*) FROM (SELECT secpolicy.unlock_user('adv_victim', 'regress')) x" "$adm")" 1 \
   "an audited admin action finishes within 2 s"
is "$(qs "BEGIN; LOCK TABLE secpolicy.audit_head IN SHARE MODE;" "$nobody")" "ERROR:  42501" \
   "the role cannot LOCK secpolicy.audit_head (42501)"
is "$(qs "SELECT 1 FROM secpolicy.maintenance_state FOR UPDATE" "$nobody")" "ERROR:  42501" \
   "nor lock the maintenance_state row (42501)"
is "$(q "$held")" 2 "the role held both advisory locks throughout"
ctl_close "SELECT pg_advisory_unlock_all();"

finish
