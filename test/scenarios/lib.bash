#!/usr/bin/env bash
# shellcheck disable=SC2154  # $db, $out, $work, $RUN and $BARRIER are set by the scenario
# Shared by the scenarios (test/scenarios/*.sh): TAP output, a psql wrapper,
# the scenario database, clean-up on exit and the controller session that
# holds other connections back.  Source it from a scenario:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
#
# It sets no shell options (each scenario keeps its own `set` line) and
# installs an EXIT trap that runs what was registered with at_exit.
#
# Cluster:  restarts_cluster [VAR...] (skip without scripts/test's cluster;
#           loads scripts/common.sh for sp_cluster_restart).
# TAP:      plan N; pass DESC; fail DESC [DIAG...]; is GOT EXPECTED DESC;
#           ok 1|other DESC [DIAG...]; finish (exit status: all planned
#           assertions ran and passed).
# SQL:      q SQL [DB] (database $db by default; stderr is merged into the output).
# Database: setup_db [DB] creates it with CREATE EXTENSION secpolicy, or bails
#           out; it is dropped on exit (drop_db_on_exit DB for others).
#           setup_sql SQL runs set-up that no assertion checks, or bails out.
# Clean-up: at_exit 'COMMAND' (eval'ed on exit, the last registered first).
# Log:      log_offset; log_since OFFSET (the cluster's server log);
#           found_in_log OFFSET STRING... (scratch file in $work);
#           alter_system SETTING... (ALTER SYSTEM and reload); sec TAG and
#           needle TAG (a distinctive password with $RUN in it, and the part
#           to grep for).
# Control:  ctl_open SQL / ctl_close SQL: a controller session (a coprocess)
#           that takes a lock and keeps it until closed; wait_for SQL VALUE
#           [SECONDS]; barrier_hold / barrier_release N: the advisory-lock
#           barrier ($BARRIER) that releases N clients at the same instant;
#           barrier_client TAG SQL (output in $out/TAG), statuses TAG-PREFIX,
#           verifications TAG-PREFIX.

T=0
FAILS=0
PLAN=
CTL_PID=
SCEN_AT_EXIT=()

# ---- TAP --------------------------------------------------------------------

plan() { PLAN=$1; echo "1..$1"; }
pass() { T=$((T + 1)); echo "ok $T - $1"; }
# fail DESC [DIAG...]: one "#   " comment line per diagnostic.
fail() {
    T=$((T + 1)); FAILS=$((FAILS + 1)); echo "not ok $T - $1"; shift
    local l; for l in "$@"; do echo "#   $l"; done
}
is() { if [ "$1" = "$2" ]; then pass "$3"; else fail "$3" "got:      '$1'" "expected: '$2'"; fi; }
# ok COND DESC [DIAG...]: passes when COND is 1.
ok() { local c=$1 d=$2; shift 2; if [ "$c" = 1 ]; then pass "$d"; else fail "$d" "$@"; fi; }
# The scenario's last command: exits 0 only when every planned assertion ran and passed.
finish() {
    [ "$T" = "$PLAN" ] || echo "# ran $T assertions, planned $PLAN"
    if [ "$FAILS" = 0 ] && [ "$T" = "$PLAN" ]; then exit 0; fi
    exit 1
}

# ---- scenarios that restart the cluster of scripts/test ---------------------

# restarts_cluster [VAR...]: skip the scenario (TAP "1..0 # SKIP") unless the
# environment of scripts/test's cluster is set (SP_TMP, SP_SERVER_OPTS and the
# named variables), then load scripts/common.sh (sp_cluster_restart,
# sp_as_owner, SP_ROOT, PG_CONFIG) without its `set -e`.
restarts_cluster() {
    local v
    for v in SP_TMP SP_SERVER_OPTS "$@"; do
        [ -n "${!v:-}" ] && continue
        echo "1..0 # SKIP needs the cluster environment of scripts/test ($v)"
        exit 0
    done
    # shellcheck source=../../scripts/common.sh
    source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/common.sh"
    set +e
}

# ---- SQL and the scenario database ------------------------------------------

q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "${2:-$db}" -c "$1" 2>&1; }

at_exit() { SCEN_AT_EXIT+=("$1"); }
drop_db_on_exit() { at_exit "dropdb --if-exists $(printf %q "$1") >/dev/null 2>&1"; }

# setup_db [DB]: create database DB ($db by default) with the extension, to be
# dropped on exit; a TAP "Bail out!" and exit 1 when that fails.
setup_db() {
    local d=${1:-$db}
    drop_db_on_exit "$d"
    if ! createdb "$d" || ! q "CREATE EXTENSION secpolicy" "$d" >/dev/null; then
        echo "Bail out! cannot create database $d with secpolicy"
        exit 1
    fi
}

# setup_sql SQL: run SQL in $db, printing nothing; a TAP "Bail out!" (with
# the first line of the error) and exit 1 when it fails.
setup_sql() {
    local r
    if ! r=$(q "$1"); then
        echo "Bail out! set-up failed: $(head -1 <<<"$r")"
        exit 1
    fi
}

scen_on_exit() {
    local rc=$? i
    if [ -n "${CTL_PID:-}" ]; then kill "$CTL_PID" 2>/dev/null || true; fi
    for ((i = ${#SCEN_AT_EXIT[@]} - 1; i >= 0; i--)); do
        eval "${SCEN_AT_EXIT[i]}" || true
    done
    exit "$rc"
}
trap scen_on_exit EXIT

# ---- the server log of scripts/test's cluster ($SP_TMP/server.log) ----------

# Its size in bytes now (an offset for log_since).
log_offset() { stat -c %s "$SP_TMP/server.log"; }
# What was written to it since byte offset $1.
log_since() { tail -c +"$(($1 + 1))" "$SP_TMP/server.log"; }
# Which of the strings $2... occur in it since offset $1 (space-separated).
found_in_log() {
    local off=$1 s hits=(); shift
    log_since "$off" >"$work/region"
    for s in "$@"; do grep -qF -- "$s" "$work/region" && hits+=("$s"); done
    echo "${hits[*]:-}"
}
# ALTER SYSTEM each argument (one statement per -c: it cannot run in a
# transaction block), then reload.
alter_system() {
    local args=() s
    for s in "$@"; do args+=(-c "ALTER SYSTEM $s"); done
    psql -X -q -d postgres "${args[@]}" -c "SELECT pg_reload_conf()" >/dev/null
    sleep 0.3
}
# A distinctive password (policy-compliant, unique to the run) and the part
# of it to grep for.
sec() { printf 'Zq%s%sVx!7' "$1" "$RUN"; }
needle() { printf 'Zq%s%sVx' "$1" "$RUN"; }

# ---- the controller session and the barrier ---------------------------------

# Poll until query $1 prints $2 (at most $3 seconds, 60 by default); false on timeout.
wait_for() {
    local i
    for ((i = 0; i < ${3:-60} * 10; i++)); do
        [ "$(q "$1")" = "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

# Open the controller session (psql as a coprocess) and send it SQL $1.
ctl_open() {
    coproc CTL { psql -X -q -At -d "$db" >/dev/null 2>&1; }
    echo "$1" >&"${CTL[1]}"
}

# Send SQL $1 to the controller, end its session and wait until it is gone.
ctl_close() {
    local fd=${CTL[1]:-} pid=${CTL_PID:-}
    if [ -n "$fd" ]; then
        echo "$1" >&"$fd"
        exec {fd}>&-
    fi
    if [ -n "$pid" ]; then wait "$pid" 2>/dev/null || true; fi
    CTL_PID=
}

# The controller takes the advisory lock $BARRIER and keeps its session open.
barrier_hold() {
    ctl_open "SELECT pg_advisory_lock($BARRIER);"
    wait_for "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $BARRIER AND granted" 1
}

# Wait until $1 clients queue on the barrier (clients take the lock shared
# first), then let them all go at once; false when they did not all queue.
barrier_release() {
    local ok=0
    wait_for "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $BARRIER AND NOT granted" "$1" && ok=1
    ctl_close "SELECT pg_advisory_unlock($BARRIER);"
    [ $ok = 1 ]
}

# One client at the barrier: waits for it, runs SQL $2 (which prints a
# status), then prints how many argon2 verifications its backend ran; the
# two lines go to file $out/$1 (its tag).
barrier_client() {
    psql -X -q -At -d "$db" \
        -c "SELECT pg_advisory_lock_shared($BARRIER)" \
        -c "$2" \
        -c "SELECT verifications FROM secpolicy.hash_stats()" 2>&1 | grep -v '^$' >"$out/$1"
}
# "status xN, ..." over the clients whose tag starts with $1.
statuses() { for f in "$out/$1"*; do sed -n 1p "$f"; done | sort | uniq -c | awk '{printf "%s%s x%s", sep, $2, $1; sep=", "}'; }
# Sum of the verifications reported by the clients whose tag starts with $1.
verifications() { for f in "$out/$1"*; do sed -n 2p "$f"; done | awk '{s += $1} END {print s + 0}'; }
