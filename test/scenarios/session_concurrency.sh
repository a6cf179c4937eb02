#!/usr/bin/env bash
# Scenario: session_touch() under concurrency (pgbench, 8 clients).
#  1. Many concurrent touches of one session race with its logout, once with
#     session_touch_interval = 0 (every touch writes) and once with 5 s (touches
#     only read).  Each touch is logged with the time its statement started.
#     Afterwards the session is ended with reason logout, every touch that
#     started after the logout had committed answered revoked (none active),
#     and every touch over before the logout began answered active.
#  2. Concurrent touches of 50 sessions, all due for a write
#     (session_touch_interval = 1 minute, last_seen_at 2 minutes ago): every
#     touch answers active and each session's last_seen_at is written once
#     (a trigger logs each write; pg_stat_user_tables n_tup_upd agrees).
set -euo pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PGBENCH=$PGBIN/pgbench
[ -x "$PGBENCH" ] || PGBENCH=pgbench
db=scen_session_concurrency_$$
work=$(mktemp -d)
chmod 755 "$work"
at_exit 'rm -rf "$work"'

plan 18
# check(description, sql returning t)
check() {
    local got
    got=$(q "$2") || true
    if [ "$got" = t ]; then pass "$1"; else fail "$1" "got: $got"; fi
}

setup_db
psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = false;
SELECT secpolicy.create_user('scen_sess', 'Vb8#kT2q!Lm4zR');
CREATE TABLE scen_tok (n integer PRIMARY KEY, token text NOT NULL);
CREATE TABLE touch_log (round integer, started timestamptz, status text, finished timestamptz);
CREATE TABLE marks (round integer PRIMARY KEY, before_logout timestamptz, after_logout timestamptz, logout_result boolean);
SQL

# ---------------------------------------------------------------- 1. touches racing a logout
for round in 1 2; do
    if [ "$round" = 1 ]; then interval='0'; label='every touch writes'; else interval='5 seconds'; label='touches only read'; fi
    q "UPDATE secpolicy.policy SET session_touch_interval = '$interval'" >/dev/null
    q "DELETE FROM scen_tok WHERE n = 0;
       INSERT INTO scen_tok SELECT 0, session_token FROM secpolicy.login('scen_sess', 'Vb8#kT2q!Lm4zR')" >/dev/null
    cat >"$work/touch.sql" <<SQL
INSERT INTO touch_log SELECT $round, statement_timestamp(), s.status, clock_timestamp() FROM scen_tok t, secpolicy.session_touch(t.token) s WHERE t.n = 0;
SQL
    "$PGBENCH" -n -c 8 -j 8 -T 4 -f "$work/touch.sql" "$db" >"$work/pgbench$round.log" 2>&1 &
    bench=$!
    sleep 2
    # the logout between two time marks, in one connection (each -c commits on its
    # own): connecting three times took most of the rest of the pgbench run
    psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" \
        -c "INSERT INTO marks (round, before_logout) VALUES ($round, clock_timestamp())" \
        -c "UPDATE marks SET logout_result = (SELECT secpolicy.logout(token) FROM scen_tok WHERE n = 0) WHERE round = $round" \
        -c "UPDATE marks SET after_logout = clock_timestamp() WHERE round = $round" >/dev/null
    if wait "$bench"; then rc=0; else rc=$?; fi
    ok "$((rc == 0))" "round $round ($label): 8 pgbench clients touched without error" "$(tail -5 "$work/pgbench$round.log" | tr '\n' ' ')"

    check "round $round: logout returned true" "SELECT logout_result FROM marks WHERE round = $round"
    check "round $round: the session ended with reason logout while the logout ran" \
        "SELECT s.end_reason = 'logout' AND s.ended_at BETWEEN m.before_logout AND m.after_logout
           FROM secpolicy.sessions s, scen_tok t, marks m
          WHERE s.token_digest = secpolicy.token_digest(t.token) AND t.n = 0 AND m.round = $round"
    check "round $round: touches ran before and after the logout" \
        "SELECT count(*) FILTER (WHERE l.started < m.before_logout) >= 5 AND count(*) FILTER (WHERE l.started > m.after_logout) >= 5
           FROM touch_log l, marks m WHERE l.round = $round AND m.round = $round"
    check "round $round: every touch that started after the logout committed answered revoked (none active)" \
        "SELECT count(*) = 0 FROM touch_log l, marks m
          WHERE l.round = $round AND m.round = $round AND l.started > m.after_logout AND l.status <> 'revoked'"
    # (a touch that started before the logout but was still running when it
    # committed may answer either way: it is not counted)
    check "round $round: every touch that was over before the logout began answered active" \
        "SELECT count(*) = 0 FROM touch_log l, marks m
          WHERE l.round = $round AND m.round = $round AND l.finished < m.before_logout AND l.status <> 'active'"
done

# ---------------------------------------------------------------- 2. 50 sessions, one write each
psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
UPDATE secpolicy.policy SET session_touch_interval = '1 minute';
INSERT INTO scen_tok SELECT i, (secpolicy.login('scen_sess', 'Vb8#kT2q!Lm4zR')).session_token FROM generate_series(1, 50) i;
UPDATE secpolicy.sessions s SET last_seen_at = now() - interval '2 minutes'
  FROM scen_tok t WHERE s.token_digest = secpolicy.token_digest(t.token) AND t.n BETWEEN 1 AND 50;
CREATE TABLE write_log (session_id bigint, old_seen timestamptz, new_seen timestamptz);
CREATE FUNCTION log_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.write_log VALUES (NEW.id, OLD.last_seen_at, NEW.last_seen_at);
    RETURN NULL;
END
$$;
CREATE TRIGGER log_write AFTER UPDATE OF last_seen_at ON secpolicy.sessions
    FOR EACH ROW WHEN (OLD.last_seen_at IS DISTINCT FROM NEW.last_seen_at) EXECUTE FUNCTION log_write();
-- one transaction touches the 50 sessions in order and logs each answer
CREATE FUNCTION touch_all() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT * FROM scen_tok WHERE n BETWEEN 1 AND 50 ORDER BY n LOOP
        INSERT INTO touch_log VALUES (3, statement_timestamp(), (secpolicy.session_touch(t.token)).status);
    END LOOP;
END
$$;
SQL
# settled n_tup_upd of secpolicy.sessions (stats are flushed by backends with a delay)
updates() {
    local prev=-1 cur i
    for i in $(seq 1 20); do
        cur=$(q "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relid = 'secpolicy.sessions'::regclass")
        [ "$cur" = "$prev" ] && break
        prev=$cur
        sleep 0.5
    done
    echo "$cur"
}
sleep 1
before=$(updates)
echo "SELECT touch_all();" >"$work/touch_all.sql"
if "$PGBENCH" -n -c 8 -j 8 -t 5 -f "$work/touch_all.sql" "$db" >"$work/pgbench3.log" 2>&1; then rc=0; else rc=$?; fi
ok "$((rc == 0))" "8 clients touched 50 sessions 5 times each without error" "$(tail -5 "$work/pgbench3.log" | tr '\n' ' ')"
sleep 1
after=$(updates)

check "2000 touches were logged" "SELECT count(*) = 2000 FROM touch_log WHERE round = 3"
check "every touch of the 50 live sessions answered active" "SELECT count(*) = 0 FROM touch_log WHERE round = 3 AND status <> 'active'"
check "every session's last_seen_at was written" \
    "SELECT count(*) = 50 FROM secpolicy.sessions s JOIN scen_tok t ON s.token_digest = secpolicy.token_digest(t.token)
      WHERE t.n BETWEEN 1 AND 50 AND s.last_seen_at > now() - interval '1 minute'"
check "at most one last_seen_at write per session within session_touch_interval (trigger log)" \
    "SELECT coalesce(max(c), 0) <= 1 FROM (SELECT count(*) AS c FROM write_log GROUP BY session_id) w"
if [ "$((after - before))" -le 50 ]; then
    pass "pg_stat_user_tables counts at most 50 updates of secpolicy.sessions (counted $((after - before)))"
else
    fail "pg_stat_user_tables counts at most 50 updates of secpolicy.sessions" "counted $((after - before))"
fi

finish
