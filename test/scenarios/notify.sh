#!/usr/bin/env bash
# Scenario: LISTEN/NOTIFY of lockouts and incidents.  A listener connection
# (psql: LISTEN secpolicy_lockout; LISTEN secpolicy_incident) runs the other
# steps through \! in separate connections and prints what it received after
# each step's marker query.  Checks: a lockout (five wrong passwords, each in
# its own transaction) sends one payload, the id of its audit row, a sixth
# failure sends nothing more; a lockout in a rolled-back transaction sends
# nothing; open_incident sends the incident's id, a
# rolled-back open_incident sends nothing; detect_attacks sends one for the
# incident it opens and nothing on a repeat; no payload carries a password
# or token; a role with no secpolicy privilege that also listens learns no
# username or address (PUBLIC has nothing); two concurrent detect_attacks
# calls both succeed and open one incident.
set -euo pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

db=scen_notify_$$
work=$(mktemp -d)
chmod 755 "$work"
at_exit 'rm -rf "$work"'
nobody=regress_notify_nobody_$$
at_exit 'dropuser --if-exists "$nobody" >/dev/null 2>&1'

plan 21

setup_db
psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = false;
SELECT secpolicy.create_user('scen_notify_u', 'Vb8#kT2q!Lm4zR');
SELECT secpolicy.create_user('scen_notify_v', 'Hw5@pZ9r$Nc3xY');
SQL

# the other connection's commands, one psql per step (each -c in autocommit unless wrapped)
other="psql -X -q -At -d $db"
cat >"$work/listener.sql" <<SQL
LISTEN secpolicy_lockout;
LISTEN secpolicy_incident;
SELECT 'mark:start';
\\! $other -c "SELECT (secpolicy.login('scen_notify_u', 'wrong-guess-1')).status" -c "SELECT (secpolicy.login('scen_notify_u', 'wrong-guess-2')).status" -c "SELECT (secpolicy.login('scen_notify_u', 'wrong-guess-3')).status" -c "SELECT (secpolicy.login('scen_notify_u', 'wrong-guess-4')).status" -c "SELECT (secpolicy.login('scen_notify_u', 'wrong-guess-5')).status" >/dev/null
SELECT 'mark:lockout';
\\! $other -c "SELECT (secpolicy.login('scen_notify_u', 'wrong-guess-6')).status" >/dev/null
SELECT 'mark:after_lockout';
\\! $other -c "BEGIN" -c "SELECT count(*) FROM generate_series(1, 5) i, secpolicy.login('scen_notify_v', 'wrong-guess-' || i)" -c "ROLLBACK" >/dev/null
SELECT 'mark:rolled_back_lockout';
\\! $other -c "BEGIN" -c "SELECT secpolicy.open_incident('phishing', 'high', 'rolled back incident')" -c "ROLLBACK" >/dev/null
SELECT 'mark:rolled_back_incident';
\\! $other -c "SELECT secpolicy.open_incident('phishing', 'high', 'Phishing mail to staff')" >/dev/null
SELECT 'mark:incident';
\\! $other -c "SELECT count(*) FROM generate_series(1, 10) i, secpolicy.login('spray_' || i, 'wrong-guess', '198.51.100.7')" -c "SELECT count(*) FROM secpolicy.detect_attacks()" >/dev/null
SELECT 'mark:detected';
\\! $other -c "SELECT count(*) FROM secpolicy.detect_attacks()" >/dev/null
SELECT 'mark:detected_again';
SQL
# a second listener: a login role with no secpolicy privilege at all
q "CREATE ROLE $nobody LOGIN; CREATE TABLE scen_flag (done boolean); GRANT SELECT ON scen_flag TO $nobody" >/dev/null
cat >"$work/nobody.sql" <<'SQL'
LISTEN secpolicy_lockout;
LISTEN secpolicy_incident;
DO $$ BEGIN WHILE NOT EXISTS (SELECT 1 FROM scen_flag) LOOP PERFORM pg_sleep(0.1); END LOOP; END $$;
SELECT 'mark:end';
SQL
psql -X -q -At -U "$nobody" -d "$db" -f "$work/nobody.sql" >"$work/nobody.out" 2>&1 &
nobody_pid=$!
wait_for "SELECT count(*) FROM pg_stat_activity WHERE usename = '$nobody' AND query LIKE 'DO%'" 1 10 || true

psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -f "$work/listener.sql" >"$work/listener.out" 2>"$work/listener.err" || true
q "INSERT INTO scen_flag VALUES (true)" >/dev/null
wait "$nobody_pid" || true

# notifications, tagged with the step (the marker printed just before them)
perl -ne 'if (/^mark:(.*)$/) { $step = $1; next }
           print "$step\t$1\t$2\n"
               if /^Asynchronous notification "([^"]+)" with payload "(.*)" received from server process with PID \d+\.$/' \
    "$work/listener.out" >"$work/notes.tsv"
count() { awk -F'\t' -v s="$1" -v c="$2" '$1 == s && $2 == c' "$work/notes.tsv" | wc -l | tr -d ' '; }
payload() { awk -F'\t' -v s="$1" -v c="$2" '$1 == s && $2 == c { print $3; exit }' "$work/notes.tsv"; }
# json_field(payload, field): the field's text, through the server's JSON parser
json_field() { printf "SELECT (:'p')::jsonb ->> :'f';\n" | psql -X -q -At -d "$db" -v p="$1" -v f="$2" 2>&1; }

ok "$([ -s "$work/listener.err" ] || echo 1)" "the listener ran every step without error" "$(head -3 "$work/listener.err" | tr '\n' ' ')"
check_count() { # description step channel expected
    local got
    got=$(count "$2" "$3")
    if [ "$got" = "$4" ]; then pass "$1"; else fail "$1" "got $got notification(s)"; fi
}

check_count "a lockout sends one notification on secpolicy_lockout" lockout secpolicy_lockout 1
p=$(payload lockout secpolicy_lockout)
uid=$(q "SELECT id FROM secpolicy.users WHERE username = 'scen_notify_u'")
aid=$(json_field "$p" audit_id)
if [ -n "$aid" ] && [ "$(q "SELECT action || ':' || user_id FROM secpolicy.audit_log WHERE id = $aid")" = "account_locked:$uid" ]; then
    pass "the lockout payload is the id of the account_locked audit row of the account"
else
    fail "the lockout payload is the id of the account_locked audit row of the account" "payload: $p"
fi
if [ "$(q "SELECT count(*) FROM jsonb_object_keys(('$p')::jsonb)")" = 1 ]; then
    pass "the lockout payload carries nothing but that id (LISTEN needs no privilege)"
else
    fail "the lockout payload carries nothing but that id (LISTEN needs no privilege)" "payload: $p"
fi
check_count "the lockout step sends no incident notification" lockout secpolicy_incident 0
check_count "a failure after the lockout sends nothing more" after_lockout secpolicy_lockout 0
check_count "a lockout in a rolled-back transaction sends nothing" rolled_back_lockout secpolicy_lockout 0
check_count "a rolled-back open_incident sends nothing" rolled_back_incident secpolicy_incident 0
check_count "open_incident sends one notification on secpolicy_incident" incident secpolicy_incident 1
p=$(payload incident secpolicy_incident)
iid=$(q "SELECT id FROM secpolicy.incidents WHERE title = 'Phishing mail to staff'")
if [ -n "$iid" ] && [ "$(json_field "$p" incident_id)" = "$iid" ]; then
    pass "the incident payload is the incident's id"
else
    fail "the incident payload is the incident's id" "payload: $p"
fi
if [ "$(q "SELECT count(*) FROM jsonb_object_keys(('$p')::jsonb)")" = 1 ]; then
    pass "the incident payload carries nothing but the id"
else
    fail "the incident payload carries nothing but the id" "payload: $p"
fi
check_count "detect_attacks sends one notification for the incident it opens" detected secpolicy_incident 1
p=$(payload detected secpolicy_incident)
if [ "$(q "SELECT kind FROM secpolicy.incidents WHERE id = '$(json_field "$p" incident_id)'")" = password_spraying ]; then
    pass "its id leads to the password_spraying incident"
else
    fail "its id leads to the password_spraying incident" "payload: $p"
fi
check_count "a repeat detection (an update) sends nothing" detected_again secpolicy_incident 0
check_count "the 10 failed logins of the spraying step send no lockout" detected secpolicy_lockout 0
if grep -q -e 'wrong-guess' -e 'sps_' -e 'spr_' -e 'spc_' -e 'argon2' "$work/notes.tsv"; then
    fail "no payload carries a password, token or hash" "$(cat "$work/notes.tsv")"
else
    pass "no payload carries a password, token or hash"
fi
total=$(wc -l <"$work/notes.tsv" | tr -d ' ')
if [ "$total" = 3 ]; then pass "exactly 3 notifications in all"; else fail "exactly 3 notifications in all" "$(cat "$work/notes.tsv")"; fi

# what the role without privileges heard
heard=$(grep -c '^Asynchronous notification' "$work/nobody.out" || true)
if [ "$heard" -ge 1 ]; then
    pass "the unprivileged listener ran (it heard $heard notification(s))"
else
    fail "the unprivileged listener ran" "$(head -5 "$work/nobody.out" | tr '\n' ' ')"
fi
if grep -q -e 'scen_notify_u' -e 'spray_' -e '198\.51\.100\.7' -e 'Phishing mail' "$work/nobody.out"; then
    fail "a role without any secpolicy privilege learns no username, address or incident title from LISTEN" \
        "$(grep '^Asynchronous' "$work/nobody.out" | head -3 | tr '\n' ' ')"
else
    pass "a role without any secpolicy privilege learns no username, address or incident title from LISTEN"
fi

# two detect_attacks at once (a scheduled maintain() and a manual run)
# (only this pattern in the window, no open incident: the two runs share nothing but the new incident)
q "UPDATE secpolicy.login_attempts SET attempted_at = attempted_at - interval '2 hours'" >/dev/null
q "SELECT count(*) FROM secpolicy.incidents i, secpolicy.close_incident(i.id, 'test') WHERE i.status <> 'closed'" >/dev/null
q "SELECT count(*) FROM generate_series(1, 10) i, secpolicy.login('spraz_' || i, 'wrong-guess', '198.51.100.8')" >/dev/null
psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "BEGIN" -c "SELECT count(*) FROM secpolicy.detect_attacks()" \
    -c "SELECT pg_sleep(2)" -c "COMMIT" >"$work/detect1.out" 2>&1 &
first=$!
sleep 0.5
if q "SELECT count(*) FROM secpolicy.detect_attacks()" >"$work/detect2.out" 2>&1; then rc2=0; else rc2=1; fi
if wait "$first"; then rc1=0; else rc1=1; fi
if [ "$rc1$rc2" = 00 ]; then
    pass "two concurrent detect_attacks both succeed"
else
    fail "two concurrent detect_attacks both succeed" "$(cat "$work/detect1.out" "$work/detect2.out" | grep ERROR | head -2 | tr '\n' ' ')"
fi
got=$(q "SELECT count(*) FROM secpolicy.incidents WHERE dedup_key = 'password_spraying:198.51.100.8'")
if [ "$got" = 1 ]; then pass "and open exactly one incident"; else fail "and open exactly one incident" "got $got"; fi

finish
