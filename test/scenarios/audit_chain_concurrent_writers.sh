#!/usr/bin/env bash
# Scenario: concurrent writers of audit rows never fork the audit chain, at
# any isolation level.  Two admins (login roles in secpolicy_admin) write
# audit rows (add_shared_credential): first one in REPEATABLE READ with a
# snapshot older than the newest row, which succeeds in order or gets 40001;
# then four rounds of three REPEATABLE READ and three READ COMMITTED writers
# released together at a barrier after a concurrent commit: every writer
# answers ok or 40001 (READ COMMITTED ones ok).  After each part
# verify_audit_chain() is intact, no two rows share a prev_hash, and every
# credential added has its audit row.
# Environment (scripts/test): PGHOST/PGPORT/PGUSER of a superuser.
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

db=scen_audit_writers_$$
work=$(mktemp -d "${TMPDIR:-/tmp}/scen_audit_writers.XXXXXX")
at_exit 'rm -rf "$work"'
BARRIER=5457091
adm1=regress_acw_adm1_$$
adm2=regress_acw_adm2_$$
at_exit "dropuser --if-exists $adm1 >/dev/null 2>&1; dropuser --if-exists $adm2 >/dev/null 2>&1"

# psql that reports errors as 'ERROR:  <SQLSTATE>' (stderr merged); $2: role
qs() { psql -X -q -At -v VERBOSITY=sqlstate -U "${2:-postgres}" -d "$db" -c "$1" 2>&1; }
# One writer: BEGIN at isolation $3, take a snapshot, wait at the barrier, add
# a shared credential (an audited action), COMMIT.  Output in $work/$1.
writer() {
    psql -X -q -At -v VERBOSITY=sqlstate -U "$2" -d "$db" \
        -c "BEGIN ISOLATION LEVEL $3" -c "SELECT count(*) >= 0 FROM secpolicy.audit_log" \
        -c "SELECT pg_advisory_lock_shared($BARRIER)" \
        -c "SELECT secpolicy.add_shared_credential('$1') > 0" -c "COMMIT" >"$work/$1" 2>&1
}
# ok, 40001, or what else the writer printed
outcome() {
    if grep -q '^ERROR:  40001$' "$work/$1"; then echo 40001
    elif grep -q ERROR "$work/$1"; then grep ERROR "$work/$1" | head -1
    elif [ "$(grep -c '^t$' "$work/$1")" = 2 ]; then echo ok
    else echo "unexpected: $(tr '\n' ' ' <"$work/$1")"; fi
}
waiting="SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $BARRIER AND NOT granted"
chain_checks() { # prefix
    is "$(q "SELECT intact FROM secpolicy.verify_audit_chain()")" t "$1: verify_audit_chain() is intact"
    is "$(q "SELECT count(*) = count(DISTINCT prev_hash) FROM secpolicy.audit_log")" t "$1: no two audit rows chain to the same row (no fork)"
    is "$(q "SELECT (SELECT count(*) FROM secpolicy.shared_credentials)
                    = (SELECT count(*) FROM secpolicy.audit_log WHERE action = 'shared_credential_added')")" t \
       "$1: every credential added has its audit row, and no more"
}

plan 11

setup_db
at_exit 'wait 2>/dev/null'
setup_sql "CREATE ROLE $adm1 LOGIN IN ROLE secpolicy_admin; CREATE ROLE $adm2 LOGIN IN ROLE secpolicy_admin"

# --- a REPEATABLE READ writer with an older snapshot ---------------------------
barrier_hold || true
writer rr-a "$adm1" "REPEATABLE READ" &
wait_for "$waiting" 1 10 || true
is "$(qs "SELECT secpolicy.add_shared_credential('rr-b') > 0" "$adm2")" t \
   "the other admin writes an audit row and commits after the REPEATABLE READ writer's snapshot"
barrier_release 1 || true
wait
a=$(outcome rr-a)
ok "$([[ $a == ok || $a == 40001 ]] && echo 1)" \
   "the REPEATABLE READ writer with the older snapshot succeeds in order or gets 40001" "got: $a"
chain_checks "after the older snapshot"

# --- rounds of writers at both isolation levels --------------------------------
rounds_ok=1 bad=() rc_bad=() n40001=0 nok=0
for r in 1 2 3 4; do
    barrier_hold || rounds_ok=0
    for i in 1 2 3; do writer "rr$r-rr-$i" "$adm1" "REPEATABLE READ" & done
    for i in 1 2 3; do writer "rr$r-rc-$i" "$adm2" "READ COMMITTED" & done
    wait_for "$waiting" 6 10 || rounds_ok=0
    qs "SELECT secpolicy.add_shared_credential('rr$r-between') > 0" "$adm2" >/dev/null
    barrier_release 6 || rounds_ok=0
    wait
    for f in "$work"/rr"$r"-r?-*; do
        o=$(outcome "$(basename "$f")")
        case "$o" in ok) nok=$((nok + 1)) ;; 40001) n40001=$((n40001 + 1)) ;; *) bad+=("$(basename "$f"): $o") ;; esac
        [[ $f == *-rc-* && $o != ok ]] && rc_bad+=("$(basename "$f"): $o")
    done
done
ok "$rounds_ok" "four rounds of six writers queued at the barrier after a concurrent commit"
ok "$([ ${#bad[@]} = 0 ] && echo 1)" "every writer answered ok or 40001 ($nok ok, $n40001 40001)" "${bad[@]}"
ok "$([ ${#rc_bad[@]} = 0 ] && echo 1)" "every READ COMMITTED writer succeeded" "${rc_bad[@]}"
chain_checks "after the rounds"

finish
