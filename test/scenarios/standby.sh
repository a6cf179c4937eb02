#!/usr/bin/env bash
# Scenario: a hot standby (pg_basebackup -R of scripts/test's cluster, started
# on a port of its own).  The flows write, so on the standby they raise a
# clear 25006 with a hint naming the primary (1.0 raised 25006 from deep
# inside, with an internal CONTEXT and no hint): login, change_password,
# verify_mfa, totp_enroll, totp_confirm, request_password_reset,
# reset_password, logout, end_other_sessions.  session_touch answers on the
# standby (active for a live session, without extending it: the primary's
# last_seen_at stays), and reports can be read there.  The same flows in a
# read-only transaction on the primary raise 25006 with their own hint.
# The standby is stopped and removed at the end.
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
restarts_cluster PGBIN

db=scen_standby_$$
standby=$SP_TMP/standby_$$
PW='Harbour-Standby-41!'
plan 8

setup_db
q "UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = false;
   SELECT secpolicy.create_user('sam', '$PW')" >/dev/null
token=$(q "SELECT session_token FROM secpolicy.login('sam', '$PW')")
seen=$(q "SELECT last_seen_at FROM secpolicy.sessions WHERE ended_at IS NULL")

port=$((PGPORT + 1))
while ! sp_port_free "$port"; do port=$((port + 1)); done
at_exit "sp_as_owner '$PGBIN/pg_ctl' -D '$standby' -m immediate -w stop >/dev/null 2>&1; rm -rf '$standby'"
if sp_as_owner "$PGBIN/pg_basebackup" -h "$PGHOST" -p "$PGPORT" -U postgres -D "$standby" -R -X stream -c fast >/dev/null 2>&1 &&
   sp_as_owner "$PGBIN/pg_ctl" -D "$standby" -l "$standby.log" -w -t 60 \
       -o "-p $port -k $SP_TMP -c listen_addresses='' -c hot_standby=on" start >/dev/null 2>&1; then
    pass "a hot standby of the cluster runs on port $port"
else
    fail "a hot standby of the cluster runs on port $port" "$(tail -5 "$standby.log" 2>/dev/null)"
fi
wait_for "SELECT count(*) FROM pg_stat_replication" 1 30 || true
sq() { psql -X -q -At -v ON_ERROR_STOP=1 -p "$port" -d "$db" -c "$1" 2>&1; }
wait_for_standby() { local i; for i in $(seq 1 100); do [ "$(sq "SELECT count(*) FROM secpolicy.sessions")" = 1 ] && return 0; sleep 0.1; done; return 1; }
wait_for_standby

is "$(sq "SELECT pg_is_in_recovery()")" t "it is in recovery"

# every flow: the error (with its SQLSTATE) and the hint
flows=("SELECT * FROM secpolicy.login('sam', '$PW')"
       "SELECT * FROM secpolicy.change_password('sam', '$PW', 'Another-Harbour-42!')"
       "SELECT * FROM secpolicy.verify_mfa('spc_x', '123456')"
       "SELECT * FROM secpolicy.totp_enroll('$token')"
       "SELECT * FROM secpolicy.totp_confirm('$token', '123456')"
       "SELECT secpolicy.request_password_reset('sam')"
       "SELECT * FROM secpolicy.reset_password('spr_x', 'Another-Harbour-42!')"
       "SELECT secpolicy.logout('$token')"
       "SELECT secpolicy.end_other_sessions('$token')")
answers=()
for f in "${flows[@]}"; do
    out=$(psql -X -q -At -p "$port" -d "$db" -v VERBOSITY=verbose -c "$f" 2>&1)
    grep -q 'ERROR:  25006: secpolicy\.[a-z_]* must run on the primary' <<<"$out" &&
        grep -q 'HINT:  Connect to the primary (libpq: target_session_attrs=read-write)' <<<"$out" &&
        answers+=(ok) || answers+=("$(head -1 <<<"$out")")
done
is "${answers[*]}" "ok ok ok ok ok ok ok ok ok" \
   "every flow raises 25006 on the standby, saying to connect to the primary"
is "$(sq "SELECT status FROM secpolicy.session_touch('$token')")" active "session_touch answers active on the standby"
is "$(q "SELECT last_seen_at FROM secpolicy.sessions WHERE ended_at IS NULL")" "$seen" \
   "... without extending the session (the primary's last_seen_at is unchanged)"
is "$(sq "SELECT count(*) >= 0 FROM secpolicy.failed_logins_daily")" t "reports can be read on the standby"

# a read-only transaction on the primary
out=$(psql -X -q -At -d "$db" -c "SET default_transaction_read_only = on" \
          -c "SELECT * FROM secpolicy.login('sam', '$PW')" 2>&1)
ok "$(grep -q 'ERROR:  secpolicy.login writes, and this transaction is read-only' <<<"$out" &&
      grep -q 'HINT:  Call it in a read-write transaction.' <<<"$out" && echo 1)" \
   "in a read-only transaction on the primary, login raises 25006 with its own hint" "$out"
is "$(q "SELECT status FROM secpolicy.login('sam', '$PW')")" ok "and on the primary it logs in"

finish
