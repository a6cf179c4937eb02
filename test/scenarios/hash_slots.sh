#!/usr/bin/env bash
# Scenario: the cluster-wide bound on concurrent argon2 computations
# (secpolicy.max_concurrent_hashes, src/hash.c).  Each computation first
# takes one of N advisory-lock "slots" in database 0 (cluster-wide), and
# waits when all are busy.  Four clients, in two databases, hash and verify
# at a large cost (t=3, 64 MiB) at the same time, while a sampler session
# reads pg_locks and pg_stat_activity every few milliseconds:
#   1. N = 1 set with ALTER SYSTEM + reload: every backend sees it, never more
#      than one slot is held in the whole cluster, clients queue for it and
#      their hash_stats().slot_waits add up to more than zero;
#   2. N = 2 set per session (SET, superuser): never more than two held;
#   3. N = 0 (no limit): no slot lock is ever taken, no client waits, and
#      several computations run at the same moment;
#   4. the wait is interruptible: with N = 1 and a long computation holding
#      the slot, another client's statement_timeout cancels its wait (57014)
#      and the long one still finishes.
# The ALTER SYSTEM setting is reset at the end.
# Environment: PGHOST/PGPORT/PGUSER of a superuser (scripts/test).
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

db=scen_hash_slots_$$
db2=scen_hash_slots_b_$$
work=$(mktemp -d "${TMPDIR:-/tmp}/scen_slots.XXXXXX")
at_exit 'rm -rf "$work"'
SLOT_CLASS=5457219      # 0x534543, "SEC": first key of the slot locks

set_system_limit() {
    psql -X -q -d "$db" -c "LOAD 'secpolicy'" -c "ALTER SYSTEM $1" -c "SELECT pg_reload_conf()" >/dev/null 2>&1
    sleep 0.3
}

# Run on exit, before the databases are dropped.
cleanup() {
    set_system_limit "RESET secpolicy.max_concurrent_hashes"
    wait 2>/dev/null
}

plan 17

for d in "$db" "$db2"; do
    setup_db "$d"
    q "UPDATE secpolicy.policy SET hash_opslimit = 3, hash_memlimit = 67108864" "$d" >/dev/null
done
at_exit cleanup
HASH=$(q "SELECT secpolicy.hash_password('Slot-Verify!Pw1')")

# The sampler: until the clients (application_name slotclient) are gone,
# the most slot locks held at once, the most clients waiting for a slot (wait
# event type Extension) and the most running a computation (no wait event).
q "CREATE FUNCTION scen_sample_slots(OUT held int, OUT waiting int, OUT computing int, OUT samples int)
   LANGUAGE plpgsql AS \$\$
   DECLARE g int; w int; c int; seen boolean := false; deadline timestamptz := clock_timestamp() + interval '60 s';
   BEGIN
       held := 0; waiting := 0; computing := 0; samples := 0;
       LOOP
           PERFORM pg_stat_clear_snapshot();   -- pg_stat_activity is cached per transaction
           SELECT count(*) INTO g
             FROM pg_locks WHERE locktype = 'advisory' AND database = 0 AND classid = $SLOT_CLASS AND objsubid = 2;
           -- a client waiting for a slot shows wait event type Extension; one computing shows none
           SELECT count(*) FILTER (WHERE state = 'active' AND wait_event_type IS NULL),
                  count(*) FILTER (WHERE wait_event_type = 'Extension'),
                  count(*) INTO c, w, samples
             FROM pg_stat_activity WHERE application_name = 'slotclient';
           IF samples > 0 THEN seen := true; END IF;
           EXIT WHEN (seen AND samples = 0) OR clock_timestamp() > deadline;
           held := greatest(held, g); waiting := greatest(waiting, w); computing := greatest(computing, c);
           PERFORM pg_sleep(0.005);
       END LOOP;
       samples := CASE WHEN seen THEN 1 ELSE 0 END;
   END \$\$" >/dev/null

# One client: optional SET, then 4 argon2 computations (hash or verify), then
# its setting, hash count and slot waits.  Args: name, database, kind, SET.
client() {
    local sql set=()
    [ -n "$4" ] && set=(-c "$4")
    if [ "$3" = hash ]; then
        sql="SELECT count(secpolicy.hash_password('Slot-Client!' || g)) FROM generate_series(1, 4) g"
    else
        sql="SELECT count(*) FILTER (WHERE secpolicy.verify_password('Slot-Verify!Pw1', '$HASH')) FROM generate_series(1, 4) g"
    fi
    PGAPPNAME=slotclient psql -X -q -At -d "$2" "${set[@]}" -c "$sql" \
        -c "SELECT current_setting('secpolicy.max_concurrent_hashes') || ' ' || (hashes + verifications) || ' ' || slot_waits
              FROM secpolicy.hash_stats()" >"$work/$1" 2>&1
}

# Run the four clients and the sampler; sets HELD WAITING COMPUTING SEEN,
# SETTINGS (sorted unique), COMPUTATIONS and WAITS (sums).  Arg: SET or "".
run_clients() {
    local f
    q "SELECT held || ' ' || waiting || ' ' || computing || ' ' || samples FROM scen_sample_slots()" >"$work/sampler" &
    sleep 0.2
    client c1 "$db" hash "$1" &
    client c2 "$db" verify "$1" &
    client c3 "$db2" hash "$1" &
    client c4 "$db2" verify "$1" &
    wait
    read -r HELD WAITING COMPUTING SEEN <"$work/sampler"
    SETTINGS=$(for f in "$work"/c?; do tail -1 "$f" | cut -d' ' -f1; done | sort -u | paste -sd,)
    COMPUTATIONS=$(for f in "$work"/c?; do tail -1 "$f" | cut -d' ' -f2; done | awk '{s += $1} END {print s + 0}')
    WAITS=$(for f in "$work"/c?; do tail -1 "$f" | cut -d' ' -f3; done | awk '{s += $1} END {print s + 0}')
    RESULTS=$(for f in "$work"/c?; do head -1 "$f"; done | paste -sd,)
    echo "# sampler: most slots held $HELD, waiting $WAITING, computing $COMPUTING; slot_waits $WAITS"
}

# --- 1. N = 1, cluster-wide through ALTER SYSTEM ---------------------------
set_system_limit "SET secpolicy.max_concurrent_hashes = 1"
run_clients ""
is "$SETTINGS|$RESULTS|$COMPUTATIONS" "1|4,4,4,4|16" "N=1 (ALTER SYSTEM): every client saw 1 and did its 4 computations"
is "$SEEN|$HELD" "1|1" "N=1: never more than one slot held in the cluster (two databases)"
ok "$([ "$WAITING" -ge 1 ] && echo 1)" "N=1: clients were seen waiting for a slot (pg_stat_activity wait event type Extension)" "most waiting: $WAITING"
ok "$([ "$WAITS" -ge 1 ] && echo 1)" "N=1: hash_stats().slot_waits add up to more than zero" "sum: $WAITS"

# --- 2. N = 2 per session ------------------------------------------------
set_system_limit "RESET secpolicy.max_concurrent_hashes"
run_clients "SET secpolicy.max_concurrent_hashes = 2"
is "$SETTINGS|$RESULTS|$COMPUTATIONS" "2|4,4,4,4|16" "N=2 (SET): every client saw 2 and did its 4 computations"
is "$SEEN|$HELD" "1|2" "N=2: at most (and at some moment exactly) two slots held"
ok "$([ "$WAITS" -ge 1 ] && [ "$WAITING" -ge 1 ] && echo 1)" "N=2: with four clients some waited" \
   "slot_waits: $WAITS, most waiting: $WAITING"

# --- 3. no limit -----------------------------------------------------------
run_clients "SET secpolicy.max_concurrent_hashes = 0"
is "$SETTINGS|$RESULTS|$COMPUTATIONS" "0|4,4,4,4|16" "N=0: every client saw 0 and did its 4 computations"
is "$SEEN|$HELD|$WAITING" "1|0|0" "N=0: no slot lock was ever taken"
is "$WAITS" 0 "N=0: slot_waits is 0 for every client"
ok "$([ "$COMPUTING" -ge 2 ] && echo 1)" "N=0: computations ran at the same moment" "most at once: $COMPUTING"

# --- 4. the wait is interruptible -------------------------------------------
set_system_limit "SET secpolicy.max_concurrent_hashes = 1"
q "UPDATE secpolicy.policy SET hash_opslimit = 12, hash_memlimit = 268435456" >/dev/null
PGAPPNAME=slotlong psql -X -q -At -d "$db" -c "SELECT length(secpolicy.hash_password('Slot-Long!Pw1')) > 0" \
    >"$work/long" 2>&1 &
long_pid=$!
held=0
for ((i = 0; i < 200; i++)); do
    [ "$(q "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = 0
              AND classid = $SLOT_CLASS AND objsubid = 2 AND granted")" = 1 ] && { held=1; break; }
    sleep 0.02
done
ok "$held" "a long computation (t=12, 256 MiB) holds the only slot"
waiter=$(PGAPPNAME=slotwaiter psql -X -q -At -v VERBOSITY=sqlstate -d "$db2" \
            -c "SET statement_timeout = 1000" -c "SELECT secpolicy.hash_password('Slot-Waiter!Pw1')" 2>&1)
long_state=$(q "SELECT state || ',' || coalesce(wait_event_type, 'cpu') FROM pg_stat_activity WHERE application_name = 'slotlong'")
is "$waiter" "ERROR:  57014" "a client waiting for the slot is cancelled by its statement_timeout (57014)"
is "$long_state" "active,cpu" "the long computation was still running when the waiter gave up"
wait "$long_pid"
is "$(cat "$work/long")" t "the long computation finished normally"
is "$(q "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = 0 AND classid = $SLOT_CLASS")" 0 \
   "no slot lock is left behind"
q "UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192" >/dev/null
is "$(q "SELECT length(secpolicy.hash_password('Slot-After!Pw1')) > 0")" t "the slot is free for the next computation"

finish
