#!/usr/bin/env bash
# Scenario: the fixes of the security review that need several connections,
# commits or the server log (the rest is in test/review_fixes.sql).
#   1. S2: a login role with no privilege holds pg_advisory_lock(5457731, 1)
#      and (5457731, 2), the keys the audit chain and detect_attacks() used to
#      take: five wrong logins (statement_timeout = 2s) still answer, the
#      fifth commits the lockout and its audit row; detect_attacks(),
#      maintain() and an audited admin action finish within the timeout too;
#      the role cannot lock secpolicy.audit_head or maintenance_state (42501).
#   2. S3: LISTEN secpolicy_lockout: five failures on an account and five on
#      an unknown name send one notification each, {"audit_id": n} only,
#      leading to the account_locked row (user_id NULL and the name as typed
#      for the unknown one); a sixth failure sends nothing.
#   3. S5: two admins (login roles in secpolicy_admin) write audit rows, one
#      in REPEATABLE READ with a snapshot older than the newest row: it
#      succeeds in order or gets 40001, never forks the chain; then rounds of
#      REPEATABLE READ and READ COMMITTED writers released together at a
#      barrier after a concurrent commit: every writer answers ok or 40001
#      (READ COMMITTED ones ok), verify_audit_chain() is intact, no two rows
#      share a prev_hash, and every credential added has its audit row.
#   4. S11: verify_mfa (a TOTP code and a recovery code, on two challenges)
#      and change_password on the same account, released together at a
#      barrier, eight rounds: nothing raises (no 40P01 deadlock), each call
#      answers a status, every change succeeds.
#   5. S9: with log_min_duration_statement = 0 (ALTER SYSTEM, restored at the
#      end) and the library loaded in the backend (a first secpolicy call, or
#      session_preload_libraries): a SQL wrapper public.app_login(u, p)
#      calling secpolicy.login, and EXECUTE of prepared statements with quoted
#      names ("Auth", and one with a doubled quote), also with
#      log_statement = all: no plaintext reaches $SP_TMP/server.log.
#      Last, two wrapper cases that no C code marks (kept as they fail):
#      app_login on a locked account, and a wrapper of session_touch.
# Environment (scripts/test): PGHOST/PGPORT/PGUSER of a superuser, SP_TMP.
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

db=scen_review_races_$$
work=$(mktemp -d "${TMPDIR:-/tmp}/scen_review.XXXXXX")
chmod 755 "$work"
at_exit 'rm -rf "$work"'
out=$work                       # where barrier_client writes
BARRIER=5457091
RUN=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
MARK='[redacted by secpolicy]'
nobody=regress_rr_nobody_$$
adm1=regress_rr_adm1_$$
adm2=regress_rr_adm2_$$
at_exit "dropuser --if-exists $nobody >/dev/null 2>&1; dropuser --if-exists $adm1 >/dev/null 2>&1; dropuser --if-exists $adm2 >/dev/null 2>&1"
PW='Quartz-Lantern-47!'

# psql that reports errors as 'ERROR:  <SQLSTATE>' (stderr merged); $2: role
qs() { psql -X -q -At -v VERBOSITY=sqlstate -U "${2:-postgres}" -d "$db" -c "$1" 2>&1; }
# the same with statement_timeout = 2s
qt() { PGOPTIONS='-c statement_timeout=2s' qs "$@"; }
# ALTER SYSTEM each argument, then reload
alter_system() {
    local args=() s
    for s in "$@"; do args+=(-c "ALTER SYSTEM $s"); done
    psql -X -q -d postgres "${args[@]}" -c "SELECT pg_reload_conf()" >/dev/null 2>&1
    sleep 0.3
}
restore_log_settings() { alter_system "RESET log_min_duration_statement" "RESET log_statement"; }

plan 41

setup_db
at_exit 'wait 2>/dev/null'
is "$(q "CREATE ROLE $nobody LOGIN; CREATE ROLE $adm1 LOGIN IN ROLE secpolicy_admin;
         CREATE ROLE $adm2 LOGIN IN ROLE secpolicy_admin;
         UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = false,
                max_failed_attempts = 5;
         SELECT secpolicy.create_user('adv_victim', '$PW') > 0;")" t \
   "setup: roles, policy and an account" || true

# --- 1. S2: a role with no privilege holds the old advisory keys ---------------
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
       "S2: with a role holding advisory locks (5457731,1) and (5457731,2), five wrong logins answer within 2 s"
else
    fail "S2: with a role holding advisory locks (5457731,1) and (5457731,2), five wrong logins answer within 2 s" \
         "the role did not get the locks"
fi
is "$(q "SELECT u.failed_attempts || ',' || u.reset_required || ',' ||
                (SELECT count(*) FROM secpolicy.audit_log a WHERE a.action = 'account_locked' AND a.user_id = u.id)
           FROM secpolicy.users u WHERE u.username = 'adv_victim'")" "5,true,1" \
   "S2: the fifth committed the lockout and its audit row"
is "$(qt "SELECT count(*) >= 0 FROM secpolicy.detect_attacks()")" t \
   "S2: detect_attacks() finishes within 2 s"
is "$(qt "SELECT secpolicy.maintain() ? 'incidents_opened'")" t "S2: maintain() finishes within 2 s"
is "$(qt "SELECT count(*) FROM (SELECT secpolicy.unlock_user('adv_victim', 'regress')) x" "$adm1")" 1 \
   "S2: an audited admin action finishes within 2 s"
is "$(qs "BEGIN; LOCK TABLE secpolicy.audit_head IN SHARE MODE;" "$nobody")" "ERROR:  42501" \
   "S2: the role cannot LOCK secpolicy.audit_head (42501)"
is "$(qs "SELECT 1 FROM secpolicy.maintenance_state FOR UPDATE" "$nobody")" "ERROR:  42501" \
   "S2: nor lock the maintenance_state row (42501)"
is "$(q "$held")" 2 "S2: the role held both advisory locks throughout"
ctl_close "SELECT pg_advisory_unlock_all();"

# --- 2. S3: an unknown name announces its lockout like an account -------------
q "SELECT secpolicy.create_user('ntf_real', '$PW') > 0" >/dev/null
other="psql -X -q -At -d $db"
wrong5() { local i s=""; for i in 1 2 3 4 5; do s+=" -c \"SELECT (secpolicy.login('$1', 'wrong-guess-$i')).status\""; done; echo "$s"; }
cat >"$work/listener.sql" <<SQL
LISTEN secpolicy_lockout;
SELECT 'mark:start';
\\! $other $(wrong5 ntf_real) >/dev/null
SELECT 'mark:real';
\\! $other $(wrong5 Ntf.Unknown_Typed) >/dev/null
SELECT 'mark:unknown';
\\! $other -c "SELECT (secpolicy.login('Ntf.Unknown_Typed', 'wrong-guess-6')).status" >/dev/null
SELECT 'mark:unknown_again';
SQL
psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -f "$work/listener.sql" >"$work/listener.out" 2>"$work/listener.err"
perl -ne 'if (/^mark:(.*)$/) { $step = $1; next }
          print "$step\t$1\n" if /^Asynchronous notification "secpolicy_lockout" with payload "(.*)" received/' \
    "$work/listener.out" >"$work/notes.tsv"
notes() { awk -F'\t' -v s="$1" '$1 == s' "$work/notes.tsv" | wc -l | tr -d ' '; }
payload() { awk -F'\t' -v s="$1" '$1 == s { print $2; exit }' "$work/notes.tsv"; }
# the audit row a payload names: 'action|user_id|username', and the payload's keys
row_of() { printf "SELECT a.action || '|' || coalesce(a.user_id::text, 'NULL') || '|' || a.username FROM secpolicy.audit_log a WHERE a.id = ((:'p')::jsonb ->> 'audit_id')::bigint;\n" | psql -X -q -At -d "$db" -v p="$1" 2>&1; }
keys_of() { printf "SELECT string_agg(k, ',' ORDER BY k) FROM jsonb_object_keys((:'p')::jsonb) k;\n" | psql -X -q -At -d "$db" -v p="$1" 2>&1; }

ok "$([ -s "$work/listener.err" ] || echo 1)" "S3: the listener ran every step" "$(head -3 "$work/listener.err" | tr '\n' ' ')"
is "$(notes real)" 1 "S3: five failures on an account send one notification"
is "$(row_of "$(payload real)")" "account_locked|$(q "SELECT id FROM secpolicy.users WHERE username = 'ntf_real'")|ntf_real" \
   "S3: it names the account's account_locked audit row"
is "$(notes unknown)" 1 "S3: five failures on an unknown name send one notification too"
is "$(row_of "$(payload unknown)")|$(keys_of "$(payload unknown)")|$(keys_of "$(payload real)")" \
   "account_locked|NULL|Ntf.Unknown_Typed|audit_id|audit_id" \
   "S3: it names an account_locked row with user_id NULL and the name as typed; both payloads are {\"audit_id\": n} only"
is "$(notes unknown_again)" 0 "S3: a sixth failure on the unknown name sends nothing"

# --- 3. S5: a REPEATABLE READ writer with an older snapshot --------------------
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

barrier_hold || true
writer rr-a "$adm1" "REPEATABLE READ" &
wait_for "$waiting" 1 10 || true
is "$(qs "SELECT secpolicy.add_shared_credential('rr-b') > 0" "$adm2")" t \
   "S5: the other admin writes an audit row and commits after the REPEATABLE READ writer's snapshot"
barrier_release 1 || true
wait
a=$(outcome rr-a)
ok "$([[ $a == ok || $a == 40001 ]] && echo 1)" \
   "S5: the REPEATABLE READ writer with the older snapshot succeeds in order or gets 40001" "got: $a"
chain_checks "S5"

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
ok "$rounds_ok" "S5: four rounds of six writers queued at the barrier after a concurrent commit"
ok "$([ ${#bad[@]} = 0 ] && echo 1)" "S5: every writer answered ok or 40001 ($nok ok, $n40001 40001)" "${bad[@]}"
ok "$([ ${#rc_bad[@]} = 0 ] && echo 1)" "S5: every READ COMMITTED writer succeeded" "${rc_bad[@]}"
chain_checks "S5 (rounds)"

# --- 4. S11: verify_mfa and change_password on one account --------------------
pw_of() { printf 'Kestrel-%s-Wing!q' "$1"; }
q "UPDATE secpolicy.policy SET hash_opslimit = 2, hash_memlimit = 8388608, require_mfa = true, totp_window = 1;
   SELECT secpolicy.create_user('dl_user', '$(pw_of 0)') > 0" >/dev/null
dl_uid=$(q "SELECT id FROM secpolicy.users WHERE username = 'dl_user'")
ch=$(q "SELECT challenge_token FROM secpolicy.login('dl_user', '$(pw_of 0)')")
read -r secret rest <<<"$(q "SELECT e.secret || ' ' || array_to_string(c.recovery_codes, ' ')
                               FROM secpolicy.totp_enroll('$ch') e,
                                    LATERAL secpolicy.totp_confirm('$ch', secpolicy.totp_code(e.secret)) c")"
read -r -a rcodes <<<"$rest"
queued=1
for r in 1 2 3 4 5 6 7 8; do
    q "UPDATE secpolicy.totp_credentials SET last_used_step = -1 WHERE user_id = $dl_uid" >/dev/null
    # the change is made from a session opened with the second factor (step T-1)
    ch0=$(q "SELECT challenge_token FROM secpolicy.login('dl_user', '$(pw_of $((r - 1)))')")
    s2f=$(q "SELECT session_token FROM secpolicy.verify_mfa('$ch0', secpolicy.totp_code('$secret', now() - interval '30 seconds'))")
    ch1=$(q "SELECT challenge_token FROM secpolicy.login('dl_user', '$(pw_of $((r - 1)))')")
    ch2=$(q "SELECT challenge_token FROM secpolicy.login('dl_user', '$(pw_of $((r - 1)))')")
    barrier_hold || queued=0
    barrier_client "dl$r-verify-totp" "SELECT status FROM secpolicy.verify_mfa('$ch1', secpolicy.totp_code('$secret'))" &
    barrier_client "dl$r-verify-rc" "SELECT status FROM secpolicy.verify_mfa('$ch2', '${rcodes[$((r - 1))]:-none}')" &
    barrier_client "dl$r-change" "SELECT status FROM secpolicy.change_password('dl_user', '$(pw_of $((r - 1)))', '$(pw_of $r)', NULL, '$s2f')" &
    barrier_release 3 || queued=0
    wait
done
ok "$queued" "S11: eight rounds of three clients queued at the barrier and were released together"
errors=$(grep -l ERROR "$work"/dl*-* 2>/dev/null | xargs -r -n1 basename | tr '\n' ' ')
ok "$([ -z "$errors" ] && echo 1)" "S11: no call raised" "$(grep -h ERROR "$work"/dl*-* 2>/dev/null | sort | uniq -c | head -3 | tr '\n' ' ')"
is "$(cat "$work"/dl*-* | grep -c 'deadlock detected')" 0 "S11: no deadlock (40P01)"
bad_verify=$(for f in "$work"/dl*-verify-*; do sed -n 1p "$f"; done | grep -cvE '^(ok|expired_challenge|invalid_code)$')
is "$bad_verify" 0 "S11: every verify_mfa answered ok, expired_challenge or invalid_code ($(statuses dl))"
is "$(for f in "$work"/dl*-change; do sed -n 1p "$f"; done | sort | uniq -c | awk '{print $2 " x" $1}')" "ok x8" \
   "S11: every change_password answered ok"
is "$(q "SELECT status FROM secpolicy.login('dl_user', '$(pw_of 8)')")" mfa_required \
   "S11: the account is usable with the last password"

# --- 5. S9: wrappers and quoted prepared statements stay out of the log --------
q "UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = false;
   SELECT secpolicy.create_user('lg_user', 'Zq${RUN}Lg-Right!7') > 0, secpolicy.create_user('lg_locked', '$PW') > 0,
          secpolicy.create_user('lg_sess', '$PW') > 0;
   SELECT count(*) FROM generate_series(1, 5) i, secpolicy.login('lg_locked', 'wrong-guess-' || i);
   CREATE FUNCTION public.app_login(u text, p text) RETURNS text LANGUAGE sql AS
       \$\$ SELECT status FROM secpolicy.login(u, p) \$\$;
   CREATE FUNCTION public.app_touch(t text) RETURNS text LANGUAGE sql AS
       \$\$ SELECT status FROM secpolicy.session_touch(t) \$\$;" >/dev/null
sess_token=$(q "SELECT session_token FROM secpolicy.login('lg_sess', '$PW')")
at_exit restore_log_settings
alter_system "SET log_min_duration_statement = 0" "SET log_statement = 'none'"
sec() { printf 'Zq%s%sVx!7' "$1" "$RUN"; }
needle() { printf 'Zq%s%sVx' "$1" "$RUN"; }
# which of the strings occur in the log since offset $1
found_in_log() {
    local off=$1 s hits=(); shift
    log_since "$off" >"$work/region"
    for s in "$@"; do grep -qF -- "$s" "$work/region" && hits+=("$s"); done
    echo "${hits[*]:-}"
}
preloaded() { PGOPTIONS='-c session_preload_libraries=secpolicy' psql -X -q -At -d "$db" "$@" 2>&1; }
auth='PREPARE "Auth"(text, text) AS SELECT status FROM secpolicy.login($1, $2)'
quoted='PREPARE "Sign ""In"" Now"(text, text) AS SELECT status FROM secpolicy.login($1, $2)'

off=$(log_offset)
res=$(psql -X -q -At -d "$db" -c "SELECT secpolicy.password_needs_rehash('x') IS NOT NULL" \
          -c "SELECT app_login('lg_user', 'Zq${RUN}Lg-Right!7')" \
          -c "SELECT app_login('lg_user', '$(sec a2)')" \
          -c "SELECT app_login('Lg_Nobody_$RUN', '$(sec a3)')" 2>&1 | tr '\n' ' ')
is "$res" "t ok invalid_credentials invalid_credentials " \
   "S9: app_login(u, p), a SQL wrapper of login, ran (right, wrong password, unknown name; library loaded first)"
sleep 0.3
is "$(found_in_log "$off" "Zq${RUN}Lg-Right" "$(needle a2)" "$(needle a3)")" "" \
   "S9: with log_min_duration_statement = 0 no password passed to the wrapper is logged"
n=$(log_since "$off" | grep -cF "statement: $MARK")
ok "$([ "$n" -ge 3 ] && echo 1)" "S9: the wrapper's duration lines carry the marker instead" "markers: $n"

off=$(log_offset)
res=$(preloaded -c "$auth" -c "EXECUTE \"Auth\"('lg_user', '$(sec a4)')" \
          -c "EXECUTE \"Auth\"('lg_locked', '$(sec a5)')" \
          -c "$quoted" -c "EXECUTE \"Sign \"\"In\"\" Now\"('lg_locked', '$(sec a6)')" | tr '\n' ' ')
is "$res" "invalid_credentials reset_required reset_required " \
   "S9: EXECUTE of prepared statements with quoted names ran (preloaded)"
sleep 0.3
is "$(found_in_log "$off" "$(needle a4)" "$(needle a5)" "$(needle a6)")" "" \
   "S9: EXECUTE \"Auth\"(...) and EXECUTE \"Sign \"\"In\"\" Now\"(...): no password in the duration lines"

alter_system "SET log_statement = 'all'"
off=$(log_offset)
res=$(preloaded -c "$auth" -c "EXECUTE \"Auth\"('lg_locked', '$(sec a7)')" \
          -c "EXECUTE \"Auth\"('lg_user', '$(sec a8)')" | tr '\n' ' ')
sleep 0.3
is "$res|$(found_in_log "$off" "$(needle a7)" "$(needle a8)")" "reset_required invalid_credentials |" \
   "S9: with log_statement = all too, EXECUTE \"Auth\"(...) logs no password"
n=$(log_since "$off" | grep -cF "statement: $MARK")
ok "$([ "$n" -ge 3 ] && echo 1)" "S9: its statement lines (PREPARE, both EXECUTEs) carry the marker" "markers: $n"
alter_system "SET log_statement = 'none'"

# Known gaps, kept last: wrappers that reach no C code marking the statement.
off=$(log_offset)
res=$(preloaded -c "SELECT app_login('lg_locked', '$(sec a9)')" -c "SELECT app_touch('$sess_token')" | tr '\n' ' ')
sleep 0.3
is "$res|$(found_in_log "$off" "$(needle a9)")" "reset_required active |" \
   "S9 (gap): app_login on a locked account logs no password"
is "${sess_token:0:4}|$(found_in_log "$off" "$sess_token")" "sps_|" \
   "S9 (gap): a SQL wrapper of session_touch logs no session token"
restore_log_settings

finish
