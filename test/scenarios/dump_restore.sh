#!/usr/bin/env bash
# Scenario: pg_dump -Fc of a database that uses secpolicy, restored with
# pg_restore into a new database, keeps the whole security state:
#   - a modified policy row (restored over the default one that CREATE
#     EXTENSION inserts) and the organisation's blocklist words;
#   - users with their hashes byte for byte (the hash-on-write trigger fires
#     during the COPY and must keep argon2id strings), password history,
#     a locked, a disabled and a TOTP-enrolled account with recovery codes;
#   - sessions (a live token still works), access grants;
#   - the audit log (chain intact, same head), login_attempts in the daily
#     partitions made by create_attempt_partitions(2) (tables attached to an
#     extension-owned parent) and in the default partition;
#   - the sequences (new rows in the copy get fresh ids);
#   - the failure counter of an unknown username at the limit;
#   - protected columns: the register, the reveal grants and the disclosure
#     log (in its default partition) of an application table whose column is
#     protected (test/scenarios/protected_dump.sh covers that table itself).
# pg_restore must run without errors, also as one transaction (a restore that
# only "works" with errors ignored fails under --single-transaction).
# Then the restored database works: the old password logs in unchanged,
# history refuses a reused password, the locked account stays locked, the
# TOTP user verifies a code and a recovery code.
# Environment: PGHOST/PGPORT/PGUSER of a superuser (scripts/test).
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

src=scen_dump_restore_$$
dst=scen_dump_restore_copy_$$
dst1=scen_dump_restore_single_$$
work=$(mktemp -d "${TMPDIR:-/tmp}/scen_dump.XXXXXX")
at_exit 'rm -rf "$work"'
drop_db_on_exit "$dst1"
drop_db_on_exit "$dst"

qs() { q "$1" "$src"; }
qd() { q "$1" "$dst"; }

# count and digest of a relation's rows, or of a query's (order-independent)
fingerprint() { echo "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '-') FROM ($1) t"; }
TABLES=(policy password_blocklist users password_history unknown_user_failures audit_log login_attempts
        sessions totp_credentials recovery_codes mfa_challenges password_resets user_access
        shared_credentials shared_credential_holders incidents protected_columns reveal_grants disclosure_log
        role_state role_password_history role_links database_access)
SEQS=(users_id_seq password_history_id_seq audit_log_id_seq login_attempts_id_seq sessions_id_seq
      recovery_codes_id_seq mfa_challenges_id_seq password_resets_id_seq shared_credentials_id_seq
      incidents_id_seq protected_columns_id_seq disclosure_log_id_seq role_password_history_id_seq database_access_id_seq)
# not dumped: the dummy hash (made anew by CREATE EXTENSION), the audit chain's
# lock row, maintain()'s progress (recomputed), the decoy rows of reset requests
# for unknown accounts (nothing reads them), and the report rollups: their
# watermark names transactions of the dumped cluster, which mean nothing in
# another, so a restored database starts with rollups not built (the reports
# read the log) and the first maintain() builds them from the restored log
NOT_DUMPED=audit_head,dummy_hash,maintenance_state,reset_decoys,rollup_daily,rollup_day_keys,rollup_hour_keys,rollup_hourly,rollup_outcomes,rollup_source_names,rollup_sources,rollup_state,rollup_user_names,rollup_user_windows
# the reports, as one digest
REPORTS="SELECT md5(concat_ws('|', (SELECT string_agg(d::text, ',' ORDER BY d.day) FROM secpolicy.failed_logins_daily d),
                  (SELECT string_agg(r::text, ',' ORDER BY r.bucket_start)
                     FROM secpolicy.failed_login_report(current_date - 45, current_date + 2, '1 day') r),
                  (SELECT string_agg(u::text, ',' ORDER BY u::text) FROM secpolicy.failed_logins_by_user u),
                  (SELECT string_agg(s::text, ',' ORDER BY s::text) FROM secpolicy.failed_logins_by_source s)))"

plan 49

setup_db "$src"

P1='Dump-Restore!Pw1x'
P2='Dump-Restore!Pw2y'
P3='Dump-Restore!Pw3z'
PB='Bravo-Account!7q'
PC='Charlie-Account!8r'
PD='Delta-Account!9s'

# --- the source database ----------------------------------------------------
setup=$(qs "UPDATE secpolicy.policy
               SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = false, min_length = 13,
                   history_depth = 3, max_failed_attempts = 4, session_idle_timeout = '20 minutes',
                   totp_issuer = 'ScenCorp';
            INSERT INTO secpolicy.password_blocklist (word) VALUES ('scencorp'), ('widgetron');
            SELECT secpolicy.create_attempt_partitions(2);
            SELECT count(secpolicy.create_user(u, p)) FROM (VALUES ('alice', '$P1'), ('bob', '$PB'),
                   ('carol', '$PC'), ('dave', '$PD')) v(u, p);" | paste -sd,)
setup+=,$(qs "SELECT status FROM secpolicy.change_password('alice', '$P1', '$P2')")
setup+=,$(qs "SELECT status FROM secpolicy.change_password('alice', '$P2', '$P3')")
for i in 1 2 3 4; do qs "SELECT secpolicy.login('bob', 'Wr0ng-Bravo!$i', '10.0.0.$i')" >/dev/null; done
for i in 1 2 3 4; do qs "SELECT secpolicy.login('nobody', 'Wr0ng-Nobody!$i', '10.0.1.$i')" >/dev/null; done
tok_alice=$(qs "SELECT session_token FROM secpolicy.login('alice', '$P3', '10.0.2.1', 'browser')")
tok_gone=$(qs "SELECT session_token FROM secpolicy.login('alice', '$P3', '10.0.2.2', 'phone')")
setup+=,$(qs "SELECT secpolicy.logout('$tok_gone')")
tok_carol=$(qs "SELECT session_token FROM secpolicy.login('carol', '$PC')")
totp_secret=$(qs "SELECT secret FROM secpolicy.totp_enroll('$tok_carol')")
recovery=$(qs "SELECT (recovery_codes)[1] FROM secpolicy.totp_confirm('$tok_carol',
                   secpolicy.totp_code('$totp_secret', now(), 6, 30, 'sha1'))")
setup+=,$(qs "SELECT secpolicy.grant_access('alice', 'billing.read', 'scenario')")
qs "SELECT secpolicy.disable_user('dave', 'left the company')" >/dev/null
setup+=,$(qs "SELECT secpolicy.add_shared_credential('vendor-portal') > 0;
              SELECT secpolicy.grant_shared_credential('alice', 'vendor-portal');
              SELECT secpolicy.open_incident('phishing', 'high', 'phishing mail', NULL, ARRAY['alice']) > 0;
              SELECT length(secpolicy.request_password_reset('bob'));
              SELECT status FROM secpolicy.login('carol', '$PC');" | paste -sd,)
setup+=,$(qs "CREATE TABLE public.contacts (id integer PRIMARY KEY, email text);
              INSERT INTO public.contacts VALUES (1, 'dump-contact@example.com');
              SELECT secpolicy.protect_column('public.contacts', 'email', 'contacts.read') IS NOT NULL;
              SELECT secpolicy.protect_batch('public.contacts', 'email') + secpolicy.protect_batch('public.contacts', 'email');
              SELECT secpolicy.grant_reveal('postgres', 'contacts.read');
              SELECT secpolicy.reveal('public.contacts', 'email', email) FROM public.contacts;" | paste -sd,)
# the state of a database role as the role policy keeps it (written directly:
# this cluster does not preload the library): counters and lock, password
# history, a link to alice and an access window of her live session
qs "INSERT INTO secpolicy.role_state (role_name, failed_attempts, locked_at, last_login_addr)
    VALUES ('scen_dump_role', 5, now(), '10.0.3.1');
    INSERT INTO secpolicy.role_password_history (role_name, password_hash)
    VALUES ('scen_dump_role', secpolicy.hash_password('Role-History!1x'));
    INSERT INTO secpolicy.role_links (user_id, role_name) SELECT id, 'scen_dump_role' FROM secpolicy.users WHERE username = 'alice';
    INSERT INTO secpolicy.database_access (user_id, session_id, role_name, expires_at, client_addr)
    SELECT s.user_id, s.id, 'scen_dump_role', now() + interval '1 hour', '10.0.3.0/24' FROM secpolicy.sessions s
     WHERE s.token_digest = secpolicy.token_digest('$tok_alice')" >/dev/null
qs "INSERT INTO secpolicy.login_attempts (attempted_at, username, client_addr, success, outcome)
    VALUES (now() - interval '40 days', 'old-row', '10.9.9.9', false, 'invalid_password'),
           (now() + interval '1 day', 'future-row', '10.9.9.8', false, 'invalid_password')" >/dev/null
is "$setup,$([ -n "$recovery" ] && echo enrolled)" "3,4,ok,ok,t,t,t,t,t,47,mfa_required,t,1,t,dump-contact@example.com,enrolled" \
   "source: policy edited, 3 partitions, 4 users, history, lockout, sessions, TOTP, grant, disable, shared credential, incident, reset token, challenge, a protected column revealed"
is "$(qs "SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_class c
           WHERE c.relnamespace = 'secpolicy'::regnamespace AND c.relkind = 'r' AND NOT c.relispartition
             AND c.oid <> ALL ((SELECT extconfig FROM pg_extension WHERE extname = 'secpolicy')::oid[])")" \
   "$NOT_DUMPED" "every table is registered for pg_dump, but for the four that hold nothing to keep"
is "$(qs "SELECT string_agg(n, ',' ORDER BY n) FROM (
             SELECT CASE WHEN c.relispartition
                         THEN (SELECT p.relname::text FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
                                WHERE i.inhrelid = c.oid)
                         ELSE c.relname::text END AS n
               FROM pg_extension e, unnest(e.extconfig) x JOIN pg_class c ON c.oid = x
              WHERE e.extname = 'secpolicy' AND c.relkind = 'r') t")" \
   "$(printf '%s\n' "${TABLES[@]}" | sort | paste -sd,)" "the scenario fingerprints every dumped table"

qs "SELECT secpolicy.maintain()" >/dev/null
reports_src=$(qs "$REPORTS")
declare -A before
for t in "${TABLES[@]}"; do before[$t]=$(qs "$(fingerprint "SELECT * FROM secpolicy.$t")"); done
parts_src=$(qs "SELECT string_agg(c.relname || '=' || (SELECT count(*) FROM secpolicy.login_attempts a
                                                         WHERE a.tableoid = c.oid), ',' ORDER BY c.relname)
                  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = 'secpolicy.login_attempts'::regclass")
seqs_src=$(for s in "${SEQS[@]}"; do qs "SELECT last_value FROM secpolicy.$s"; done | paste -sd,)
chain_src=$(qs "SELECT intact, rows_checked, head_hash FROM secpolicy.verify_audit_chain()")
policy_src=$(qs "SELECT to_jsonb(p) FROM secpolicy.policy p")

# --- dump and restore -------------------------------------------------------
if pg_dump -Fc -d "$src" -f "$work/dump" 2>"$work/dump.err"; then pass "pg_dump -Fc"
else fail "pg_dump -Fc" "$(cat "$work/dump.err")"; fi
# nothing secret in the dump: not the sealing key (its hex, or base64 of its bytes),
# not the TOTP secret, a recovery code, a session token or a password
pg_restore -f "$work/dump.sql" "$work/dump"
key_hex=$(tr -d ' \n' <"${SP_KEY_FILE:-/dev/null}" | tr 'A-F' 'a-f')   # empty (a failure) without scripts/test
key_b64=$(perl -e 'print pack("H*", $ARGV[0])' "$key_hex" | base64 -w0)
leaks=()
for needle in "$key_hex" "$key_b64" "$totp_secret" "$recovery" "${recovery//-/}" "${tok_alice#sps_}" "$P3" "$PC" \
              dump-contact@example.com; do
    [ -n "$needle" ] || { leaks+=("(an empty needle)"); continue; }
    grep -qiF -- "$needle" "$work/dump.sql" && leaks+=("${needle:0:6}...")
done
is "${#leaks[@]}" 0 "the dump holds no key, secret, recovery code, session token, password or protected value in clear (${leaks[*]:-none})"
createdb "$dst"
if pg_restore -d "$dst" "$work/dump" 2>"$work/restore.err" && [ ! -s "$work/restore.err" ]; then
    pass "pg_restore into a new database, without errors or warnings"
else
    fail "pg_restore into a new database, without errors or warnings" "$(head -20 "$work/restore.err")"
fi

createdb "$dst1"
if pg_restore --single-transaction --exit-on-error -d "$dst1" "$work/dump" 2>"$work/restore1.err"; then
    pass "pg_restore --single-transaction --exit-on-error succeeds too"
else
    fail "pg_restore --single-transaction --exit-on-error succeeds too" "$(head -3 "$work/restore1.err")"
fi

# --- the copy holds the same state --------------------------------------------
is "$(qd "SELECT to_jsonb(p) FROM secpolicy.policy p")" "$policy_src" \
   "policy row equals the dumped one (updated_at and updated_by included)"
is "$(qd "SELECT count(*), min(preset), min(min_length), min(max_failed_attempts) FROM secpolicy.policy")" \
   "1|custom|13|4" "exactly one policy row, the edited one, not the default"
for t in "${TABLES[@]}"; do
    [ "$t" = policy ] && continue
    is "$(qd "$(fingerprint "SELECT * FROM secpolicy.$t")")" "${before[$t]}" "secpolicy.$t: same rows"
done
is "$(qd "SELECT string_agg(c.relname || '=' || (SELECT count(*) FROM secpolicy.login_attempts a
                                                   WHERE a.tableoid = c.oid), ',' ORDER BY c.relname)
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'secpolicy.login_attempts'::regclass")" "$parts_src" \
   "login_attempts: the same partitions, attached, each with the same rows"
is "$(for s in "${SEQS[@]}"; do qd "SELECT last_value FROM secpolicy.$s"; done | paste -sd,)" "$seqs_src" \
   "sequences restored"
is "$(qd "SELECT intact, rows_checked, head_hash FROM secpolicy.verify_audit_chain()")" "$chain_src" \
   "audit chain intact, same length and head"

is "$(qd "SELECT built FROM secpolicy.rollup_state")|$(qd "$REPORTS")" "f|$reports_src" \
   "the copy's rollups are not built yet, and its reports (read from the log) equal the source's"
is "$(qd "SELECT (secpolicy.maintain())->>'rollup_rows_counted'")" "$(qd "SELECT count(*) FROM secpolicy.login_attempts")" \
   "the first maintain() builds them from every restored row"
is "$(qd "$REPORTS")" "$reports_src" "and the reports, now from the rollups, still equal the source's"

# --- the copy works -----------------------------------------------------------
hash_before=$(qd "SELECT password_hash FROM secpolicy.users WHERE username = 'alice'")
is "$(qd "SELECT status FROM secpolicy.login('alice', '$P3')")" ok "alice logs in with her password"
is "$(qd "SELECT password_hash FROM secpolicy.users WHERE username = 'alice'")" "$hash_before" \
   "her hash is unchanged (it was not rehashed, neither by the restore nor at login)"
is "$(qd "SELECT status, violations FROM secpolicy.change_password('alice', '$P3', '$P2')")" \
   "rejected|{reused_password}" "the restored history refuses a previous password"
is "$(qd "SELECT status FROM secpolicy.session_touch('$tok_alice')")|$(qd "SELECT status FROM secpolicy.session_touch('$tok_gone')")" \
   "active|revoked" "a live session token still works, an ended one stays ended"
is "$(qd "SELECT status FROM secpolicy.login('bob', '$PB')")" reset_required "bob stays locked out"
is "$(qd "SELECT status FROM secpolicy.login('dave', '$PD')")" disabled "dave stays disabled"
challenge=$(qd "SELECT status || ' ' || challenge_token FROM secpolicy.login('carol', '$PC')")
is "${challenge%% *}" mfa_required "carol, enrolled, is asked for her second factor"
is "$(qd "SELECT status FROM secpolicy.verify_mfa('${challenge#* }',
                 secpolicy.totp_code('$totp_secret', now() + interval '30 seconds', 6, 30, 'sha1'))")" ok \
   "carol's TOTP secret (sealed in the dump) verifies a code"
challenge=$(qd "SELECT challenge_token FROM secpolicy.login('carol', '$PC')")
is "$(qd "SELECT status FROM secpolicy.verify_mfa('$challenge', '$recovery')")" ok "a recovery code from the dump works"
is "$(qd "SELECT array_to_string(secpolicy.password_violations('Widgetron-2024!x'), ',')")" common_password \
   "the organisation's blocklist words are enforced"
is "$(qd "SELECT secpolicy.create_user('erin', 'Echo-Account!5t') > (SELECT max(id) FROM secpolicy.users WHERE username <> 'erin');
          SELECT secpolicy.create_attempt_partitions(2);
          SELECT intact FROM secpolicy.verify_audit_chain();")" $'t\n0\nt' \
   "new rows get fresh ids, the partitions are already there, the chain stays intact"
is "$(qd "SELECT status FROM secpolicy.login('nobody', 'Wr0ng-Nobody!5')")" reset_required \
   "an unknown username at the failure limit stays at it (as a locked account does)"

finish
