#!/usr/bin/env bash
# Scenario: the initial encryption of a protected column survives a cancel
# and a crash, and resumes (issue 11).
#   1. 80,000 rows in clear; protect_column() starts the background worker,
#      throttled here (small batches, a pause between them) so that it can be
#      interrupted half-way.
#   2. Cancel (pg_cancel_backend) the worker half-way: it stops; every value
#      is either its plaintext or a ciphertext that reveals to it; the
#      progress is kept; resume_protection() starts a new worker.
#   3. kill -9 the worker half-way: the postmaster crashes every backend and
#      runs crash recovery; again every value is either in clear or encrypted
#      and readable (no value half-written, none lost), the progress is kept,
#      and no worker runs.
#   4. maintain() resumes: a worker finishes the pass; every value is
#      encrypted exactly once (values_written = the number of rows: the batch
#      the crash interrupted was rolled back and done again), and reveals.
# Needs the cluster of scripts/test (SP_TMP, SP_SERVER_OPTS); crashes it and
# lets it restart; changes settings with ALTER SYSTEM and puts them back.
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
restarts_cluster

db=scen_protected_crash_$$
N=80000

settings() {
    local a=(-c "LOAD 'secpolicy'") s
    for s in "$@"; do a+=(-c "ALTER SYSTEM $s"); done
    psql -X -q -d postgres "${a[@]}" -c "SELECT pg_reload_conf()" >/dev/null 2>&1
}
at_exit 'settings "RESET secpolicy.protection_batch_rows" "RESET secpolicy.protection_batch_delay"'

# Wait (at most 60 s) until the server accepts connections and is out of recovery.
wait_ready() {
    local i
    for ((i = 0; i < 300; i++)); do
        [ "$(psql -X -At -d postgres -c 'SELECT NOT pg_is_in_recovery()' 2>/dev/null)" = t ] && return 0
        sleep 0.2
    done
    return 1
}
worker() { q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'secpolicy encryption' AND datname = current_database()"; }
# "encrypted,in clear,wrong": values encrypted, in clear, and neither their plaintext nor revealing to it
census() {
    q "SELECT count(*) FILTER (WHERE left(email, 5) = '\$sp2\$') || ',' || count(*) FILTER (WHERE email = 'crash-' || id || '@example.org')
              || ',' || count(*) FILTER (WHERE secpolicy.reveal('app.people', 'email', email, id::text)
                                               IS DISTINCT FROM 'crash-' || id || '@example.org')
         FROM app.people"
}
# is the pass half-way: some values encrypted, some still in clear?
half_way() { local c; c=$(census); IFS=, read -r e p w <<<"$c"; [ "$w" = 0 ] && [ "$e" -gt 0 ] && [ "$p" -gt 0 ]; }

plan 12

setup_db
settings "SET secpolicy.protection_batch_rows = 2000" "SET secpolicy.protection_batch_delay = 60"
q "CREATE SCHEMA app;
   CREATE TABLE app.people (id integer PRIMARY KEY, email text);
   INSERT INTO app.people SELECT g, 'crash-' || g || '@example.org' FROM generate_series(1, $N) g;
   SELECT secpolicy.grant_reveal('postgres', 'people.contact');" >/dev/null

# --- 1, 2. cancel ----------------------------------------------------------------
is "$(q "SELECT secpolicy.protect_column('app.people', 'email', 'people.contact')")" t "protect_column() starts the worker"
wait_for "SELECT blocks_done > 0 FROM secpolicy.protection_status" t 60
pid=$(worker)
is "$(q "SELECT pg_cancel_backend($pid)")" t "the worker is cancelled half-way"
wait_for "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'secpolicy encryption'" 0 30
if half_way; then pass "after the cancel: every value in clear or encrypted and readable, both kinds present ($(census))"
else fail "after the cancel: every value in clear or encrypted and readable, both kinds present" "$(census)"; fi
done1=$(q "SELECT blocks_done FROM secpolicy.protection_status")
is "$(q "SELECT state FROM secpolicy.protection_status")|$([ "$done1" -gt 0 ] && echo kept)" "encrypting|kept" \
   "the column is still encrypting, its progress kept"
is "$(q "SELECT secpolicy.resume_protection()")" t "resume_protection() starts a new worker"

# --- 3. kill -9 ---------------------------------------------------------------------
wait_for "SELECT blocks_done > $done1 FROM secpolicy.protection_status" t 60
pid=$(worker)
off=$(log_offset)
if [ -n "$pid" ] && kill -9 "$pid" && sleep 1 && wait_ready; then
    pass "kill -9 of the worker half-way; the server recovered"
else
    fail "kill -9 of the worker half-way; the server recovered" "worker pid '$pid'"
fi
is "$(log_since "$off" | grep -c -e 'terminated by signal 9' -e 'all server processes terminated; reinitializing')" 2 \
   "the log shows the crash and the reinitialisation"
if half_way; then pass "after the crash: every value in clear or encrypted and readable, both kinds present ($(census))"
else fail "after the crash: every value in clear or encrypted and readable, both kinds present" "$(census)"; fi
done2=$(q "SELECT blocks_done FROM secpolicy.protection_status")
is "$(q "SELECT state FROM secpolicy.protection_status")|$([ "$done2" -gt "$done1" ] && echo kept)|$(worker)" \
   "encrypting|kept|" "the progress committed before the crash is kept; no worker runs"

# --- 4. resume -------------------------------------------------------------------
settings "SET secpolicy.protection_batch_delay = 0"
is "$(q "SELECT secpolicy.maintain() ->> 'protection_worker'")" true "maintain() resumes the encryption"
if wait_for "SELECT state FROM secpolicy.protection_status" protected 120; then pass "the pass completes"
else fail "the pass completes" "$(q "SELECT * FROM secpolicy.protection_status")"; fi
is "$(census)|$(q "SELECT values_written FROM secpolicy.protection_status")" "$N,0,0|$N" \
   "every value is encrypted, exactly once, and reveals"

finish
