#!/usr/bin/env bash
# Scenario: a distributed installation on Citus (issue 14).  Starts a
# coordinator and two workers (three throwaway clusters of this installation,
# on local ports, secpolicy and pg_cron preloaded, one sealing key) and:
#   1. without Citus in a database, distribute() raises 55000;
#   2. distribute() places every table (reference, distributed by account,
#      each node's own) and every delegated function, and runs again as a no-op;
#   3. user ids are the account keys of the names, and the accounts lie on
#      both workers;
#   4. logins through the coordinator run on the worker owning the account:
#      the workers' function statistics count them there, and the
#      coordinator ran no argon2 verification;
#   5. an unknown name answers as an account does (status, lockout), and is
#      counted and verified on the worker its account would be on;
#   6. 30 parallel wrong guesses through the coordinator: exactly 5
#      evaluated (the attempt log and the worker's argon2 count agree);
#      guesses rolled back by the caller are still counted (the worker's ledger);
#   7. second factor: enrolment, a TOTP code accepted once, a recovery code once;
#   8. tokens name their account; reset tokens are single-use; sessions:
#      touch, list, logout; change of password;
#   9. offboarding ends the leaver's session at once, through the coordinator;
#  10. administration, incidents, attack detection and maintain() from the
#      coordinator; every node's audit chain is verified from it, and a row
#      edited on a worker is found;
#  11. the reports of a distributed installation equal those of a single
#      node holding the same generated data;
#  12. pg_cron on the coordinator runs maintain() (waits for the next minute);
#  13. a worker restarts: its accounts fail loudly while it is down (the
#      others answer), and answer again, lockouts intact, when it is back.
# Skips unless Citus is installed in this PostgreSQL (see the SKIP message).
# Environment: SP_PGBIN (scripts/test); the clusters are its own.
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
# shellcheck source=../../scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/common.sh"
set +e

if ! sp_citus_available; then
    echo "1..0 # SKIP Citus is not installed in $PGBIN/.. (install it with ../shared/vendor/install-citus, PG_CONFIG=$PG_CONFIG)"
    exit 0
fi

db=scen_citus
rdb=scen_citus_reports
sdb=scen_single
PW='Corr3ct-Horse!Pass'
out=$(mktemp -d "${TMPDIR:-/tmp}/scen_citus.XXXXXX")
at_exit 'rm -rf "$out"'
at_exit sp_citus_stop
at_exit 'wait 2>/dev/null'

plan 70

if ! sp_citus_start 2 -c "shared_preload_libraries = 'citus,pg_cron,secpolicy'" -c "cron.database_name = '$db'" \
        -c "cron.use_background_workers = on" || ! sp_citus_db "$db" || ! sp_citus_db "$rdb"; then
    echo "Bail out! cannot start the Citus cluster"
    exit 1
fi
C=$(sp_citus_port 0)
W1=$(sp_citus_port 1)
W2=$(sp_citus_port 2)
export PGHOST=$SP_CITUS_DIR PGPORT=$C PGUSER=postgres
# SQL on a node: qn PORT SQL [DB]; the error's SQLSTATE only: qs SQL [DB]
qn() { psql -X -q -At -v ON_ERROR_STOP=1 -p "$1" -d "${3:-$db}" -c "$2" 2>&1; }
qs() { psql -X -q -At -v VERBOSITY=sqlstate -d "${2:-$db}" -c "$1" 2>&1 | sed 's/^ERROR: *//'; }
# Calls of a function (by signature) a node's statistics count: fcalls PORT SIGNATURE
fcalls() { qn "$1" "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE funcid = '$2'::regprocedure"; }
# Wait until fcalls PORT SIGNATURE shows VALUE (statistics reach the shared
# counters when the backends that counted go idle or exit).
wait_calls() {
    local i
    for ((i = 0; i < 300; i++)); do
        [ "$(fcalls "$1" "$2")" = "$3" ] && return 0
        sleep 0.1
    done
    return 1
}
# The value of fcalls PORT SIGNATURE once it stops moving (at most 20 s).
settled_calls() {
    local a b i
    a=$(fcalls "$1" "$2")
    for ((i = 0; i < 20; i++)); do
        sleep 1
        b=$(fcalls "$1" "$2")
        [ "$a" = "$b" ] && break
        a=$b
    done
    echo "$a"
}
# The worker port owning account key $1
node_of() {
    q "SELECT n.nodeport FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid)
        WHERE p.shardid = get_shard_id_for_distribution_column('secpolicy.users', $1::bigint)"
}
LOGIN='secpolicy.login(bigint,text,text,inet,text)'
MATCH='secpolicy.password_match(text,text)'
VERIFY='secpolicy.verify_password(text,text)'

# --- 1. no Citus in the database -------------------------------------------------
createdb "$sdb" 2>/dev/null
q "CREATE EXTENSION secpolicy" "$sdb" >/dev/null
is "$(qs "SELECT secpolicy.distribute()" "$sdb")" 55000 "without Citus in the database, distribute() raises 55000"
msg=$(psql -X -q -At -d "$sdb" -c "SELECT secpolicy.distribute()" 2>&1)
ok "$(grep -q 'Citus is not installed' <<<"$msg" && echo 1)" \
   "... saying that Citus is not installed"

# --- 2. distribute() -------------------------------------------------------------
q "CREATE EXTENSION secpolicy;
   UPDATE secpolicy.policy SET hash_opslimit = 2, hash_memlimit = 8388608, require_mfa = false" >/dev/null
is "$(q "SELECT jsonb_array_length(r->'distributed') || ' tables, ' || (r->>'functions') || ' functions'
           FROM secpolicy.distribute() r")" "15 tables, 13 functions" "distribute() distributes 15 tables and 13 functions"
PLANNED="SELECT 'secpolicy.' || table_name FROM secpolicy.citus_table_plan()"
# (pg_dist_partition: the view citus_tables leaves out the tables of extensions)
is "$(q "SELECT string_agg(t || ':' || n, ', ' ORDER BY t) || '; colocation groups: '
                || (SELECT count(DISTINCT colocationid) FROM pg_dist_partition
                     WHERE partmethod = 'h' AND logicalrelid::text IN ($PLANNED))
           FROM (SELECT CASE partmethod WHEN 'h' THEN 'distributed' WHEN 'n' THEN 'reference' END t, count(*) n
                   FROM pg_dist_partition WHERE logicalrelid::text IN ($PLANNED) GROUP BY 1) s")" \
   "distributed:11, reference:4; colocation groups: 1" \
   "4 reference tables and 11 distributed ones, all co-located"
is "$(q "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text IN
           (SELECT 'secpolicy.' || table_name FROM secpolicy.citus_table_plan() WHERE placement = 'node')")" 0 \
   "the audit log (and what else each node keeps for itself) is no Citus table"
is "$(q "SELECT count(*) FROM pg_dist_object o JOIN secpolicy.citus_function_plan() f ON f.function_name = o.objid
          WHERE o.classid = 'pg_proc'::regclass AND o.force_delegation
            AND o.distribution_argument_index = 0")" 13 \
   "13 functions are delegated by their first argument (the account key), with force_delegation"
is "$(q "SELECT jsonb_array_length(r->'distributed') FROM secpolicy.distribute() r")" 0 "distribute() again changes nothing"
is "$(qn "$W1" "SELECT count(*) FROM pg_attribute WHERE attrelid = 'secpolicy.login_attempts'::regclass AND attname = 'account_key'")$(qn "$W2" "SELECT count(*) FROM pg_attribute WHERE attrelid = 'secpolicy.login_attempts'::regclass AND attname = 'account_key'")" \
   11 "both workers' copies of the extension were prepared (the attempt log's distribution key)"

# --- 3. accounts ------------------------------------------------------------------
q "SELECT secpolicy.create_user('u' || lpad(g::text, 2, '0'), '$PW') FROM generate_series(1, 12) g" >/dev/null
is "$(q "SELECT count(*) || ' ' || bool_and(id = secpolicy.account_key(username)) FROM secpolicy.users")" "12 true" \
   "every user id is the account key of the username"
declare -A NODE
for u in $(q "SELECT username FROM secpolicy.users ORDER BY username"); do
    NODE[$u]=$(node_of "secpolicy.account_key('$u')")
done
on_w1=$(for u in "${!NODE[@]}"; do [ "${NODE[$u]}" = "$W1" ] && echo "$u"; done | sort)
on_w2=$(for u in "${!NODE[@]}"; do [ "${NODE[$u]}" = "$W2" ] && echo "$u"; done | sort)
n1=$(echo "$on_w1" | grep -c .)
n2=$(echo "$on_w2" | grep -c .)
ok "$([ "$n1" -gt 0 ] && [ "$n2" -gt 0 ] && [ $((n1 + n2)) = 12 ] && echo 1)" \
   "the accounts lie on both workers ($n1 and $n2)"

# --- 4. logins run on the worker owning the account --------------------------------
statuses=$(for u in "${!NODE[@]}"; do q "SELECT status FROM secpolicy.login(upper('$u'), '$PW')"; done | sort | uniq -c | awk '{print $2 " x" $1}')
is "$statuses" "ok x12" "12 logins through the coordinator (names typed in capitals): ok"
if wait_calls "$W1" "$LOGIN" "$n1" && wait_calls "$W2" "$LOGIN" "$n2"; then
    pass "each worker ran login() for the accounts it owns ($n1 and $n2), by its statistics"
else
    fail "each worker ran login() for the accounts it owns" "worker 1: $(fcalls "$W1" "$LOGIN") of $n1" "worker 2: $(fcalls "$W2" "$LOGIN") of $n2"
fi
is "$(fcalls "$C" "$LOGIN") $(fcalls "$C" "$MATCH") $(fcalls "$C" "$VERIFY") $(( $(fcalls "$W1" "$MATCH") + $(fcalls "$W2" "$MATCH") ))" "0 0 0 12" \
   "the coordinator ran neither the login nor any argon2 verification; the workers ran 12"

# --- 5. an unknown name answers as an account does --------------------------------
u_last=$(echo "$on_w1" | tail -1)
st_u=$(for i in 1 2 3 4 5 6; do q "SELECT status FROM secpolicy.login('$u_last', 'Wrong-Guess-$i!')"; done | paste -sd,)
gw=$(node_of "secpolicy.account_key('ghost')")
gother=$([ "$gw" = "$W1" ] && echo "$W2" || echo "$W1")
v_own=$(settled_calls "$gw" "$VERIFY")
v_other=$(settled_calls "$gother" "$VERIFY")
st_g=$(for i in 1 2 3 4 5 6; do q "SELECT status FROM secpolicy.login('ghost', 'Wrong-Guess-$i!')"; done | paste -sd,)
is "$st_g|$st_u" "invalid_credentials,invalid_credentials,invalid_credentials,invalid_credentials,reset_required,reset_required|invalid_credentials,invalid_credentials,invalid_credentials,invalid_credentials,reset_required,reset_required" \
   "an unknown name and an account answer alike, lockout included"
if wait_calls "$gw" "$VERIFY" $((v_own + 5)) && [ "$(fcalls "$gother" "$VERIFY")" = "$v_other" ]; then
    pass "the unknown name was verified 5 times, on the worker its account would be on"
else
    fail "the unknown name was verified 5 times, on the worker its account would be on" \
         "owner: $(fcalls "$gw" "$VERIFY") (from $v_own), other: $(fcalls "$gother" "$VERIFY") (from $v_other)"
fi
is "$(q "SELECT string_agg(a.node_group::text, ',') FROM secpolicy.cluster_audit_log() a
          WHERE a.action = 'account_locked' AND a.username = 'ghost'")" \
   "$(q "SELECT groupid FROM pg_dist_node WHERE nodeport = $gw")" \
   "the unknown name's lockout is audited once, in that worker's chain"

# --- 6. thirty parallel guesses through the coordinator ------------------------
BARRIER=5457014
q "SELECT secpolicy.create_user('victim', '$PW')" >/dev/null
vw=$(node_of "secpolicy.account_key('victim')")
m_before=$(settled_calls "$vw" "$MATCH")
barrier_hold || fail "controller holds the barrier"
for i in $(seq -w 1 30); do
    psql -X -q -At -d "$db" -c "SELECT pg_advisory_lock_shared($BARRIER)" \
         -c "SELECT status FROM secpolicy.login('victim', 'Wrong-Guess!$i', '10.1.1.1', 'p-$i')" 2>&1 | grep -v '^$' >"$out/p-$i" &
done
barrier_release 30 || fail "30 clients queued on the barrier"
wait
is "$(cat "$out"/p-* | sort | uniq -c | awk '{printf "%s%s x%s", s, $2, $1; s=", "}')" \
   "invalid_credentials x4, reset_required x26" "30 parallel wrong guesses: 4 invalid_credentials, then reset_required"
is "$(q "SELECT string_agg(outcome || ' x' || n, ', ' ORDER BY outcome)
           FROM (SELECT outcome, count(*) n FROM secpolicy.login_attempts WHERE username = 'victim' GROUP BY 1) s")" \
   "invalid_password x4, locked x25, lockout x1" "the attempt log: 5 evaluated guesses, 25 refused unevaluated"
if wait_calls "$vw" "$MATCH" $((m_before + 5)); then
    sleep 1
    is "$(fcalls "$vw" "$MATCH")" $((m_before + 5)) "exactly 5 argon2 verifications ran, on the worker owning the account"
else
    fail "exactly 5 argon2 verifications ran, on the worker owning the account" "$(fcalls "$vw" "$MATCH") from $m_before"
fi
is "$(q "SELECT count(*) FROM secpolicy.cluster_audit_log() WHERE action = 'account_locked' AND username = 'victim'")" 1 \
   "the lockout is audited once"
q "SELECT secpolicy.create_user('rolly', '$PW')" >/dev/null
st=$(for i in 1 2 3 4 5; do psql -X -q -At -d "$db" -c "BEGIN" -c "SELECT status FROM secpolicy.login('rolly', 'Wrong-Guess-$i!')" -c "ROLLBACK" 2>&1 | grep -v '^$'; done | paste -sd,)
is "$st,$(q "SELECT status FROM secpolicy.login('rolly', '$PW')")" \
   "invalid_credentials,invalid_credentials,invalid_credentials,invalid_credentials,invalid_credentials,reset_required" \
   "guesses the caller rolled back still count: the worker's ledger refuses the sixth, the right password"
is "$(qn "$(node_of "secpolicy.account_key('rolly')")" "SELECT active FROM secpolicy.ledger_status()")" t \
   "the guess ledger is active on the worker"

# --- 7. second factor --------------------------------------------------------------
q "SELECT secpolicy.create_user('mfa', '$PW')" >/dev/null
# one flow per statement, as an application calls them (each runs on the worker)
mtok=$(q "SELECT session_token FROM secpolicy.login('mfa', '$PW')")
secret=$(q "SELECT secret FROM secpolicy.totp_enroll('$mtok')")
code=$(q "SELECT secpolicy.totp_code('$secret')")
read -r st ncodes rc <<<"$(q "SELECT status || ' ' || cardinality(recovery_codes) || ' ' || recovery_codes[1]
                               FROM secpolicy.totp_confirm('$mtok', '$code')")"
is "$st $ncodes" "ok 10" "a second factor is enrolled through the coordinator (10 recovery codes)"
code=$(q "SELECT secpolicy.totp_code('$secret', now() + interval '30 seconds')")
mfa() { q "SELECT status FROM secpolicy.verify_mfa('$(q "SELECT challenge_token FROM secpolicy.login('mfa', '$PW')")', '$1')"; }
is "$(mfa "$code"),$(mfa "$code")" "ok,invalid_code" "a TOTP code is accepted once"
is "$(mfa "$rc"),$(mfa "$rc")" "ok,invalid_code" "a recovery code is accepted once"
is "$(q "SELECT count(*) FROM secpolicy.login_attempts WHERE username = 'mfa' AND stage = 'mfa' AND outcome = 'replayed_code'")" 1 \
   "the replayed TOTP code is recorded as such"

# --- 8. tokens and sessions --------------------------------------------------------
tok=$(q "SELECT session_token FROM secpolicy.login('u01', '$PW')")
key=$(q "SELECT secpolicy.account_key('u01')")
ok "$([[ $tok =~ ^sps_[A-Za-z0-9_-]{43}\.$key$ ]] && echo 1)" "a session token names its account: sps_<43>.<key>" "$tok"
is "$(q "SELECT status || ' ' || (user_id = $key) FROM secpolicy.session_touch('$tok')")" "active true" \
   "session_touch() through the coordinator: active"
TOUCH='secpolicy.session_touch(bigint,text)'
tw=$(node_of "$key")
q "UPDATE secpolicy.sessions SET last_seen_at = now() WHERE user_id = $key AND token_digest = secpolicy.token_digest('$tok')" >/dev/null
c0=$(settled_calls "$tw" "$TOUCH")
st=$(q "SELECT status FROM secpolicy.session_touch('$tok')"),$(q "SELECT status FROM secpolicy.session_touch('$tok')")
c1=$(settled_calls "$tw" "$TOUCH")
is "$st|$((c1 - c0))" "active,active|0" \
   "a touch that needs no write is answered from one read on the worker (the worker's session_touch body did not run)"
q "UPDATE secpolicy.sessions SET last_seen_at = now() - interval '10 seconds' WHERE user_id = $key AND token_digest = secpolicy.token_digest('$tok')" >/dev/null
is "$(q "SELECT status FROM secpolicy.session_touch('$tok')")|$(q "SELECT last_seen_at > now() - interval '5 seconds' FROM secpolicy.sessions WHERE user_id = $key AND token_digest = secpolicy.token_digest('$tok')")" \
   "active|t" "a touch after the touch interval moves the idle deadline, on the worker"
# the policy is read from this node's placement of the reference table: a change is seen at once
q "UPDATE secpolicy.sessions SET last_seen_at = now() - interval '3 minutes' WHERE user_id = $key AND token_digest = secpolicy.token_digest('$tok')" >/dev/null
is "$(q "BEGIN; UPDATE secpolicy.policy SET session_idle_timeout = interval '2 minutes';
         SELECT status FROM secpolicy.session_touch('$tok'); ROLLBACK;")|$(q "SELECT status FROM secpolicy.session_touch('$tok')")" \
   "expired|active" "a touch reads the policy of its own transaction (idle timeout cut to 2 minutes, rolled back)"
# a hostile search_path: an operator = on bytea (the token digest) that is always true
forged="sps_$(printf 'A%.0s' $(seq 1 43)).$key"
is "$(q "SET client_min_messages = warning; CREATE SCHEMA hostile;
         CREATE FUNCTION hostile.always(bytea, bytea) RETURNS boolean LANGUAGE sql AS 'SELECT true';
         CREATE OPERATOR hostile.= (FUNCTION = hostile.always, LEFTARG = bytea, RIGHTARG = bytea);
         SET search_path = hostile, pg_catalog;
         SELECT status FROM secpolicy.session_touch('$forged');
         SELECT status FROM secpolicy.session_touch('$tok');
         RESET search_path; DROP SCHEMA hostile CASCADE" | tr '\n' ' ')" "unknown active " \
   "a caller's search_path with an always-true = does not make a forged token find a session"
# the read on this backend's own connection to the worker (a statement prepared there once):
# outside a transaction block Citus sends nothing; inside one the read goes through Citus,
# and sees what the transaction did (a session login() just created, not yet committed)
tok7=$(q "SELECT session_token FROM secpolicy.login('u07', '$PW')")
key7=$(q "SELECT secpolicy.account_key('u07')")
fresh7="UPDATE secpolicy.sessions SET last_seen_at = now() WHERE user_id = $key7 AND token_digest = secpolicy.token_digest('$tok7')"
q "$fresh7" >/dev/null
is "$(psql -X -q -At -d "$db" -c "SET citus.log_remote_commands = on" -c "SELECT status FROM secpolicy.session_touch('$tok7')" 2>&1 | grep -c -e 'sessions_' -e '^active')|$(q "BEGIN; SET LOCAL citus.log_remote_commands = on; SELECT status FROM secpolicy.session_touch('$tok7'); COMMIT" | grep -c 'FROM secpolicy.sessions_')|$(psql -X -q -At -d "$db" -c "SET secpolicy.citus_direct_reads = off" -c "SET citus.log_remote_commands = on" -c "SELECT status FROM secpolicy.session_touch('$tok7')" 2>&1 | grep -c 'FROM secpolicy.sessions_')" \
   "1|1|1" "a touch outside a transaction block is read on the coordinator's own connection (Citus sends nothing); inside one, or with secpolicy.citus_direct_reads off, through Citus"
is "$(psql -X -q -At -d "$db" 2>&1 <<SQL | tr '\n' ' '
BEGIN;
SELECT session_token AS t7 FROM secpolicy.login('u07', '$PW') \\gset
SELECT status FROM secpolicy.session_touch(:'t7');
ROLLBACK;
SQL
)" "active " "in a transaction block, a session login() created in it is found"
q "CREATE FUNCTION public.login_then_touch(u text, p text) RETURNS text LANGUAGE plpgsql AS \$f\$
   DECLARE t text;
   BEGIN
       SELECT session_token INTO t FROM secpolicy.login(u, p);
       RETURN (SELECT status FROM secpolicy.session_touch(t));
   END \$f\$" >/dev/null
is "$(q "SELECT public.login_then_touch('u07', '$PW')")" active \
   "one statement that logs in and then touches (an application function): the new session is found"
tok8=$(q "SELECT session_token FROM secpolicy.login('u08', '$PW')")
key8=$(q "SELECT secpolicy.account_key('u08')")
is "$(q "DO \$\$ BEGIN UPDATE secpolicy.sessions SET ended_at = now(), end_reason = 'logout' WHERE user_id = $key8;
               RAISE NOTICE 'touch: %', (secpolicy.session_touch('$tok8')).status; END \$\$" | grep -o 'touch: .*')" "touch: revoked" \
   "a DO block that ends the sessions and then touches (a plpgsql expression, no statement of its own): revoked"
# a worker that stops answering mid-read: statement_timeout cancels the wait, the connection
# is dropped, and the next touch connects anew
tw7=$(node_of "$key7")
wpid="psql -X -At -p $tw7 -d $db -c \"SELECT pid FROM pg_stat_activity WHERE application_name = 'secpolicy session read'\""
q "$fresh7" >/dev/null
is "$(psql -X -q -At -v VERBOSITY=sqlstate -d "$db" 2>&1 <<SQL | tr '\n' ' '
SELECT status FROM secpolicy.session_touch('$tok7');
\\! kill -STOP \$($wpid)
SET statement_timeout = '1s';
SELECT status FROM secpolicy.session_touch('$tok7');
\\! kill -CONT \$($wpid)
RESET statement_timeout;
SELECT status FROM secpolicy.session_touch('$tok7');
SQL
)" "active ERROR:  57014 active " "a worker stopped mid-read: the touch is cancelled by statement_timeout (57014), and the next one answers"
# a shard moved to the other worker, then the session ended there: the same backend reads the new placement
q "$fresh7" >/dev/null
shard7=$(q "SELECT get_shard_id_for_distribution_column('secpolicy.sessions', $key7)")
to7=$([ "$tw7" = "$W1" ] && echo "$W2" || echo "$W1")
is "$(psql -X -q -At -v VERBOSITY=sqlstate -d "$db" 2>&1 <<SQL | tr '\n' ' '
SELECT status FROM secpolicy.session_touch('$tok7');
\\! psql -X -q -At -d $db -c "SELECT citus_move_shard_placement($shard7, '127.0.0.1', $tw7, '127.0.0.1', $to7, 'block_writes')" >/dev/null
\\! psql -X -q -At -d $db -c "SELECT secpolicy.logout('$tok7')" >/dev/null
SELECT status FROM secpolicy.session_touch('$tok7');
SQL
)|$(node_of "$key7")" "active revoked |$to7" "a shard moved to the other worker and the session ended there: the next touch of the same backend answers revoked"
tokx=$(q "SELECT session_token FROM secpolicy.login('u05', '$PW')")
q "UPDATE secpolicy.sessions SET last_seen_at = now() - interval '20 minutes', created_at = now() - interval '20 minutes'
    WHERE token_digest = secpolicy.token_digest('$tokx')" >/dev/null
is "$(q "SELECT status FROM secpolicy.session_touch('$tokx')")|$(q "SELECT end_reason FROM secpolicy.sessions WHERE token_digest = secpolicy.token_digest('$tokx')")|$(q "SELECT status FROM secpolicy.session_touch('$tokx')")" \
   "expired|idle|expired" "a session idle for 20 minutes answers expired and is ended on the worker (idle sign-out)"
is "$(q "SELECT count(*) FILTER (WHERE current) FROM secpolicy.list_sessions('$tok')"),$(q "SELECT secpolicy.logout('$tok')"),$(q "SELECT status FROM secpolicy.session_touch('$tok')")" \
   "1,t,revoked" "list_sessions, logout, and the session is revoked"
rt=$(q "SELECT secpolicy.request_password_reset('u02')")
ok "$([[ $rt =~ ^spr_[A-Za-z0-9_-]{43}\.$(q "SELECT secpolicy.account_key('u02')")$ ]] && echo 1)" \
   "a reset token names its account" "$rt"
is "$(q "SELECT status FROM secpolicy.reset_password('$rt', 'Brand-New-Pass-42!')"),$(q "SELECT status FROM secpolicy.reset_password('$rt', 'Other-New-Pass-43!')"),$(q "SELECT secpolicy.request_password_reset('nobody') IS NULL")" \
   "ok,invalid_token,t" "a reset token is single-use; an unknown name gets no token"
is "$(q "SELECT status FROM secpolicy.change_password('u03', '$PW', 'Changed-Pass-44!')"),$(q "SELECT status FROM secpolicy.login('u03', 'Changed-Pass-44!')")" \
   "ok,ok" "change_password, then a login with the new password"

# Citus's citus.log_remote_commands (any user may set it) logs each command sent to a worker:
# the delegated login carries the password, the delegated touch the token
lpw='Remote-Log-Pass-77!'
q "SELECT secpolicy.create_user('remotelog', '$lpw')" >/dev/null
ltok=$(q "SELECT session_token FROM secpolicy.login('remotelog', '$lpw')")
for w in "$W1" "$W2"; do   # and on the workers, where the delegated bodies run shard commands locally
    for c in "ALTER SYSTEM SET citus.log_local_commands = on" "ALTER SYSTEM SET log_min_messages = notice" "SELECT pg_reload_conf()"; do
        qn "$w" "$c" >/dev/null
    done
done
sleep 1
q "SET citus.log_remote_commands = on; SET citus.log_local_commands = on; SET log_min_messages = notice;
   SELECT status FROM secpolicy.login('remotelog', '$lpw');
   SELECT status FROM secpolicy.change_password('remotelog', '$lpw', '$lpw-2');
   SELECT secpolicy.create_user('remotelog2', '$lpw-3')" >/dev/null 2>&1
q "UPDATE secpolicy.sessions SET last_seen_at = now() - interval '1 minute' WHERE token_digest = secpolicy.token_digest('$ltok')" >/dev/null
q "SET citus.log_remote_commands = on; SET log_min_messages = notice;
   SELECT status FROM secpolicy.session_touch('$ltok')" >/dev/null 2>&1
for w in "$W1" "$W2"; do
    for c in "ALTER SYSTEM RESET citus.log_local_commands" "ALTER SYSTEM RESET log_min_messages" "SELECT pg_reload_conf()"; do
        qn "$w" "$c" >/dev/null
    done
done
is "$(cat "$SP_CITUS_DIR"/n[012].log | grep -c -e "$lpw" -e "${ltok%%.*}")" 0 \
   "citus.log_remote_commands and log_local_commands with log_min_messages = notice: no password or token in any node's log"
ok "$([ "$(grep -c 'issuing' "$SP_CITUS_DIR/n0.log")" -gt 0 ] && [ "$(cat "$SP_CITUS_DIR"/n[12].log | grep -c 'executing the command locally')" -gt 0 ] && echo 1)" \
   "(and the remote and local commands were logged: the test saw them)"

# --- 9. offboarding ----------------------------------------------------------------
tok=$(q "SELECT session_token FROM secpolicy.login('u04', '$PW')")
q "SELECT secpolicy.add_shared_credential('vault'); SELECT secpolicy.grant_shared_credential('u04', 'vault');
   SELECT secpolicy.grant_access('u04', 'billing.read')" >/dev/null
before=$(q "SELECT status FROM secpolicy.session_touch('$tok')")
q "SELECT secpolicy.offboard('u04', 'left the company')" >/dev/null
is "$before,$(q "SELECT status FROM secpolicy.session_touch('$tok')")" "active,revoked" \
   "offboarding ends the leaver's session at once"
is "$(q "SELECT status FROM secpolicy.login('u04', '$PW')")" disabled "the leaver's right password answers disabled"
is "$(q "SELECT name || ' ' || active_holders FROM secpolicy.credentials_due_rotation")" "vault 0" \
   "the shared credential the leaver knew is due for rotation"

# --- 10. administration, incidents, maintenance, audit chains --------------------
q "UPDATE secpolicy.policy SET brute_force_min_failures = 25" >/dev/null
is "$(q "SELECT count(DISTINCT node_group) FROM secpolicy.cluster_audit_log() WHERE action = 'policy_changed'
           AND details ? 'brute_force_min_failures'")" 3 "a change of the policy is audited on every node"
q "SELECT secpolicy.record_database_attempts(ARRAY[now()], ARRAY['dbrole_x'], ARRAY['$db'], ARRAY['10.7.7.7'],
            ARRAY['scram-sha-256'], ARRAY[false], ARRAY[false], ARRAY['invalid_password'], ARRAY['psql'])" >/dev/null
is "$(q "SELECT count(*) || ' ' || bool_and(account_key = secpolicy.account_key('dbrole_x')) FROM secpolicy.login_attempts
          WHERE stage = 'database' AND username = 'dbrole_x'")" "1 true" \
   "a database login recorded by the role policy's worker lands in the distributed log, keyed by the role's name"
q "SELECT secpolicy.unlock_user('victim', 'verified by phone')" >/dev/null
is "$(q "SELECT status FROM secpolicy.login('victim', '$PW')")" ok "unlock_user() from the coordinator: the account logs in again"
for i in $(seq -w 1 10); do q "SELECT status FROM secpolicy.login('spray$i', 'Summer2024!', '10.9.9.9')" >/dev/null; done
is "$(q "SELECT string_agg(kind || ':' || subject, ',') FROM secpolicy.detect_attacks()
          WHERE new_incident AND kind = 'password_spraying'")" \
   "password_spraying:10.9.9.9" "detect_attacks() finds the spraying source over every worker's attempts"
is "$(q "SELECT (r->'nodes_unreachable')::text || ' ' || (r ? 'partitions_created') FROM secpolicy.maintain() r")" "[] true" \
   "maintain() runs from the coordinator and reaches every worker"
is "$(q "SELECT intact FROM secpolicy.verify_audit_chain()") $(q "SELECT count(*) || ' ' || bool_and(intact) || ' ' || bool_and(rows_chained > 0) FROM secpolicy.audit_chains()")" \
   "t 3 true true" "verify_audit_chain() from the coordinator: three chains, each intact"
qn "$W1" "ALTER TABLE secpolicy.audit_log DISABLE TRIGGER audit_append_only;
          UPDATE secpolicy.audit_log SET reason = 'tampered' WHERE id = (SELECT min(id) FROM secpolicy.audit_log WHERE row_hash IS NOT NULL);
          ALTER TABLE secpolicy.audit_log ENABLE TRIGGER audit_append_only" >/dev/null
is "$(q "SELECT intact FROM secpolicy.verify_audit_chain()") $(q "SELECT node || ':' || intact FROM secpolicy.audit_chains() WHERE NOT intact")" \
   "f 127.0.0.1:$W1:false" "a row edited on a worker breaks that worker's chain, found from the coordinator"

# --- 11. reports: distributed = single node on the same data --------------------
q "CREATE EXTENSION secpolicy" "$rdb" >/dev/null
q "SELECT secpolicy.distribute()" "$rdb" >/dev/null
T0=$(q "SELECT now()")
H=$(q "UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192; SELECT secpolicy.hash_password('Generated-Pass-1!')" "$sdb" | tail -1)
gen() {   # gen DB EXTRA_COLUMN EXTRA_VALUE: the same accounts, sessions, grants and attempts
    q "UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, detection_window = '7 days',
                                   spray_min_accounts = 3, stuffing_min_sources = 2, brute_force_min_failures = 3;
       INSERT INTO secpolicy.users (id, username, password_hash, password_changed_at, failed_attempts, reset_required,
                                    disabled_at, last_login_at, created_at)
       SELECT secpolicy.account_key('user' || g), 'user' || g, '$H', '$T0'::timestamptz - (g % 200) * interval '1 day',
              g % 7, g % 50 = 0, CASE WHEN g % 97 = 0 THEN '$T0'::timestamptz END,
              '$T0'::timestamptz - (g % 120) * interval '1 day', '$T0'::timestamptz - interval '300 days'
         FROM generate_series(1, 500) g;
       INSERT INTO secpolicy.sessions (user_id, token_digest, created_at, last_seen_at)
       SELECT secpolicy.account_key('user' || g), sha256(convert_to('t' || g, 'UTF8')), '$T0', '$T0'
         FROM generate_series(1, 500, 3) g;
       INSERT INTO secpolicy.totp_credentials (user_id, sealed_secret, algorithm, digits, period, confirmed_at)
       SELECT secpolicy.account_key('user' || g), (secpolicy.totp_new_secret()).sealed, 'sha1', 6, 30, '$T0'
         FROM generate_series(4, 500, 4) g;
       INSERT INTO secpolicy.user_access (user_id, access, granted_at, granted_by)
       SELECT secpolicy.account_key('user' || g), 'app.read', '$T0', 'gen' FROM generate_series(5, 500, 5) g;
       INSERT INTO secpolicy.login_attempts (attempted_at, user_id, username, client_addr, user_agent, success, outcome, stage $2)
       SELECT '$T0'::timestamptz - k * interval '7 minutes' - interval '1 second', a.uid, a.name,
              ('10.' || (k % 5) || '.' || (k % 11) || '.' || (k % 3))::inet, 'agent', k % 3 = 0,
              CASE WHEN k % 3 = 0 THEN 'ok' WHEN k % 23 = 0 THEN 'lockout' ELSE 'invalid_password' END, 'password' $3
         FROM generate_series(1, 7000) k,
              LATERAL (SELECT CASE WHEN k % 10 = 0 THEN NULL ELSE secpolicy.account_key('user' || (1 + (k * 7919) % 500)) END AS uid,
                              CASE WHEN k % 10 = 0 THEN 'Ghost' || (k % 37) ELSE 'user' || (1 + (k * 7919) % 500) END AS name) a" "$1"
}
gen "$sdb" "" ""
gen "$rdb" ", account_key" ", coalesce(a.uid, secpolicy.account_key(a.name))"
same() {   # same DESCRIPTION QUERY: the query's output in both databases
    local a b
    a=$(q "$2" "$sdb" | md5sum)
    b=$(q "$2" "$rdb" | md5sum)
    if [ "$a" = "$b" ] && [ "$(q "SELECT count(*) FROM ($2) x" "$sdb")" -gt 0 ]; then pass "$1"
    else fail "$1" "single: $(q "SELECT count(*) FROM ($2) x" "$sdb") rows, distributed: $(q "SELECT count(*) FROM ($2) x" "$rdb") rows"; fi
}
same "failed_logins_daily: distributed = single node" "SELECT * FROM secpolicy.failed_logins_daily ORDER BY day"
same "failed_logins_by_user: distributed = single node" \
     "SELECT * FROM secpolicy.failed_logins_by_user ORDER BY user_id NULLS FIRST, username"
same "failed_logins_by_source: distributed = single node" "SELECT * FROM secpolicy.failed_logins_by_source ORDER BY client_addr"
same "account_status: distributed = single node" "SELECT * FROM secpolicy.account_status ORDER BY user_id"
same "access_review: distributed = single node" "SELECT * FROM secpolicy.access_review ORDER BY user_id, access"
same "failed_login_report, 30 days by day: distributed = single node" \
     "SELECT * FROM secpolicy.failed_login_report('$T0'::timestamptz - interval '30 days', '$T0', '1 day')"
same "failed_login_report, 24 hours by hour: distributed = single node" \
     "SELECT * FROM secpolicy.failed_login_report('$T0'::timestamptz - interval '24 hours', '$T0', '1 hour')"
same "attack_patterns: distributed = single node" \
     "SELECT * FROM secpolicy.attack_patterns('$T0'::timestamptz - interval '3 days') ORDER BY kind, subject"
same "compliance (accounts, sessions, grants): distributed = single node" \
     "SELECT statement, setting, in_scope, compliant FROM secpolicy.compliance
       WHERE statement NOT LIKE 'Only staff%' AND statement NOT LIKE 'The audit trail%' ORDER BY statement"

# --- 12. pg_cron on the coordinator ------------------------------------------------
q "CREATE EXTENSION pg_cron" >/dev/null
job=$(q "SELECT secpolicy.schedule_maintenance('* * * * *')")
is "$(q "SELECT jobid = $job FROM cron.job WHERE jobname = 'secpolicy-maintain'")" t \
   "schedule_maintenance() on the coordinator schedules maintain() with pg_cron"
q "UPDATE secpolicy.maintenance_state SET last_run_at = NULL" >/dev/null
if wait_for "SELECT last_run_at IS NOT NULL FROM secpolicy.maintenance_state" t 130; then
    pass "pg_cron ran maintain() on the coordinator"
else
    fail "pg_cron ran maintain() on the coordinator" \
         "$(q "SELECT status || ': ' || coalesce(return_message, '') FROM cron.job_run_details ORDER BY runid DESC LIMIT 1")"
fi

# --- 13. a worker restarts ---------------------------------------------------------
# names whose accounts lie on a worker: placed PORT N
placed() {
    local i=0 found=()
    while [ ${#found[@]} -lt "$2" ] && [ $i -lt 500 ]; do
        i=$((i + 1))
        [ "$(node_of "secpolicy.account_key('restart$i')")" = "$1" ] && found+=("restart$i")
    done
    echo "${found[@]}"
}
read -r w2_user w2_locked <<<"$(placed "$W2" 2)"
w1_user=$(placed "$W1" 1)
for u in "$w2_user" "$w2_locked" "$w1_user"; do q "SELECT secpolicy.create_user('$u', '$PW')" >/dev/null; done
for i in 1 2 3 4 5; do q "SELECT status FROM secpolicy.login('$w2_locked', 'Wrong-Guess-$i!')" >/dev/null; done
w2_tok=$(q "SELECT session_token FROM secpolicy.login('$w2_user', '$PW')")
sp_citus_node_stop 2 immediate
is "$(q "SELECT status FROM secpolicy.login('$w1_user', '$PW')")" ok "with worker 2 down, an account of worker 1 logs in"
st=$(qs "SELECT status FROM secpolicy.login('$w2_user', '$PW')")
st2=$(qs "SELECT status FROM secpolicy.session_touch('$w2_tok')")
ok "$([[ $st =~ ^[0-9A-Z]{5}$ ]] && [ "$st" != 00000 ] && [[ $st2 =~ ^[0-9A-Z]{5}$ ]] && [ "$st2" != 00000 ] && echo 1)" \
   "an account of the stopped worker gets an error, not an answer (login, session_touch)" "$st $st2"
sp_citus_node_start 2
back=0
for i in $(seq 1 30); do
    [ "$(q "SELECT status FROM secpolicy.login('$w2_user', '$PW')")" = ok ] && { back=1; break; }
    sleep 1
done
ok "$back" "worker 2 back: its account logs in again"
is "$(q "SELECT status FROM secpolicy.login('$w2_locked', '$PW')")" reset_required "and the lockout made before the restart holds"

finish
