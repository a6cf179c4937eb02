#!/usr/bin/env bash
# Scenario: an unknown username announces its lockout like an account.  A
# listener (psql: LISTEN secpolicy_lockout) runs the failures through \! in
# other connections: five failures on an account and five on an unknown name
# send one notification each, {"audit_id": n} only, leading to the
# account_locked audit row (user_id NULL and the name as typed for the
# unknown one); a sixth failure on the unknown name sends nothing.  The
# audit rows themselves: test/unknown_name_lockout_audit.sql.
# Environment (scripts/test): PGHOST/PGPORT/PGUSER of a superuser.
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

db=scen_unknown_lockout_notify_$$
work=$(mktemp -d "${TMPDIR:-/tmp}/scen_unknown_notify.XXXXXX")
at_exit 'rm -rf "$work"'
PW='Quartz-Lantern-47!'

plan 6

setup_db
setup_sql "UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = false,
                  max_failed_attempts = 5;
           SELECT secpolicy.create_user('ntf_real', '$PW') > 0"

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
# the number of notifications received after step $1, and the first one's payload
notes() { awk -F'\t' -v s="$1" '$1 == s' "$work/notes.tsv" | wc -l | tr -d ' '; }
payload() { awk -F'\t' -v s="$1" '$1 == s { print $2; exit }' "$work/notes.tsv"; }
# the audit row a payload names: 'action|user_id|username', and the payload's keys
row_of() { printf "SELECT a.action || '|' || coalesce(a.user_id::text, 'NULL') || '|' || a.username FROM secpolicy.audit_log a WHERE a.id = ((:'p')::jsonb ->> 'audit_id')::bigint;\n" | psql -X -q -At -d "$db" -v p="$1" 2>&1; }
keys_of() { printf "SELECT string_agg(k, ',' ORDER BY k) FROM jsonb_object_keys((:'p')::jsonb) k;\n" | psql -X -q -At -d "$db" -v p="$1" 2>&1; }

ok "$([ -s "$work/listener.err" ] || echo 1)" "the listener ran every step" "$(head -3 "$work/listener.err" | tr '\n' ' ')"
is "$(notes real)" 1 "five failures on an account send one notification"
is "$(row_of "$(payload real)")" "account_locked|$(q "SELECT id FROM secpolicy.users WHERE username = 'ntf_real'")|ntf_real" \
   "it names the account's account_locked audit row"
is "$(notes unknown)" 1 "five failures on an unknown name send one notification too"
is "$(row_of "$(payload unknown)")|$(keys_of "$(payload unknown)")|$(keys_of "$(payload real)")" \
   "account_locked|NULL|Ntf.Unknown_Typed|audit_id|audit_id" \
   "it names an account_locked row with user_id NULL and the name as typed; both payloads are {\"audit_id\": n} only"
is "$(notes unknown_again)" 0 "a sixth failure on the unknown name sends nothing"

finish
