#!/usr/bin/env bash
# Scenario: housekeeping scheduled with pg_cron (Debian's postgresql-15-cron).
#   1. without pg_cron in the database, schedule_maintenance() raises 55000
#      and its hint names the alternative;
#   2. the server restarts with shared_preload_libraries = 'pg_cron' and
#      cron.database_name = the scenario's database; after CREATE EXTENSION
#      pg_cron, schedule_maintenance() creates one job, secpolicy-maintain,
#      running SELECT secpolicy.maintain() every 5 minutes; a second call with
#      another schedule changes that job instead of adding one; an admin
#      (secpolicy_admin, not superuser) may not call it (42501);
#   3. scheduled every minute, the job runs maintain(): an idle session is
#      expired and maintenance_state.last_run_at is set, with no one calling
#      it (this waits for pg_cron's next minute: a minute or so);
#   4. the server is restarted as scripts/test started it (also on failure).
# Needs the cluster of scripts/test (SP_TMP, SP_SERVER_OPTS): it restarts that
# cluster, so it must not run in parallel with others.
set -u -o pipefail

# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
restarts_cluster

db=scen_pg_cron_$$
restarted=0
# Put the server back as scripts/test started it (registered after setup_db,
# so it runs before the database is dropped: pg_cron keeps a connection to it).
restore_server() { [ "$restarted" = 1 ] && sp_cluster_restart >/dev/null 2>&1; }
q_state() { psql -X -q -At -v VERBOSITY=sqlstate -d "$db" -c "$1" 2>&1 | sed 's/^ERROR: *//'; }

plan 8

if [ ! -f "$($PG_CONFIG --pkglibdir)/pg_cron.so" ]; then
    echo "Bail out! pg_cron is not installed (apt-get install postgresql-$PGVERSION-cron)"
    exit 1
fi
setup_db
at_exit restore_server

# --- 1. without pg_cron -------------------------------------------------------
out=$(psql -X -q -At -d "$db" -c "SELECT secpolicy.schedule_maintenance()" 2>&1)
is "$(q_state "SELECT secpolicy.schedule_maintenance()")" 55000 "without pg_cron: 55000"
ok "$(grep -q 'call SELECT secpolicy.maintain() every few minutes from another scheduler' <<<"$out" && echo 1)" \
   "and the hint names the alternative" "$out"

# --- 2. with pg_cron ------------------------------------------------------------
restarted=1
if sp_cluster_restart -c shared_preload_libraries=pg_cron -c "cron.database_name=$db" -c "cron.host=$SP_TMP" >/dev/null 2>&1 &&
   q "CREATE EXTENSION pg_cron" >/dev/null; then
    pass "the server runs pg_cron for the scenario's database"
else
    fail "the server runs pg_cron for the scenario's database" "$(tail -5 "$SP_TMP/server.log")"
fi
job=$(q "SELECT secpolicy.schedule_maintenance()")
is "$(q "SELECT jobid = $job, schedule, command FROM cron.job WHERE jobname = 'secpolicy-maintain'")" \
   "t|*/5 * * * *|SELECT secpolicy.maintain()" "schedule_maintenance() creates job secpolicy-maintain every 5 minutes"
q "SELECT secpolicy.schedule_maintenance('*/10 * * * *')" >/dev/null
is "$(q "SELECT count(*), min(schedule) FROM cron.job WHERE jobname = 'secpolicy-maintain'")" "1|*/10 * * * *" \
   "a second call changes the schedule of the same job"
q "CREATE ROLE scen_cron_admin IN ROLE secpolicy_admin" >/dev/null
at_exit "psql -X -q -d postgres -c 'DROP ROLE IF EXISTS scen_cron_admin' >/dev/null 2>&1"
is "$(q_state "SET ROLE scen_cron_admin; SELECT secpolicy.schedule_maintenance()")" 42501 \
   "secpolicy_admin may not schedule jobs (superuser only)"

# --- 3. the job runs ------------------------------------------------------------
q "UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = false;
   SELECT secpolicy.create_user('carl', 'Cron-Job-Pass-42!');
   SELECT secpolicy.login('carl', 'Cron-Job-Pass-42!');
   UPDATE secpolicy.sessions SET last_seen_at = now() - interval '1 hour';
   UPDATE secpolicy.maintenance_state SET last_run_at = NULL" >/dev/null
q "SELECT secpolicy.schedule_maintenance('* * * * *')" >/dev/null
if wait_for "SELECT last_run_at IS NOT NULL FROM secpolicy.maintenance_state" t 130; then
    pass "pg_cron ran maintain() on its own"
else
    fail "pg_cron ran maintain() on its own" \
         "$(q "SELECT status || ': ' || coalesce(return_message, '') FROM cron.job_run_details ORDER BY runid DESC LIMIT 1")"
fi
is "$(q "SELECT count(*) FILTER (WHERE ended_at IS NOT NULL AND end_reason = 'idle'), count(*) FROM secpolicy.sessions")" \
   "1|1" "and maintain() expired the idle session"

finish
