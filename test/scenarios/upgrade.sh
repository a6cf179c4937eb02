#!/usr/bin/env bash
# Scenario: a populated 1.0 database reaches 1.1 through ALTER EXTENSION
# secpolicy UPDATE, and ends up with exactly the catalog of a fresh 1.1
# install, every row it had, and working flows.  Also: a pg_dump of the 1.0
# database restores into this cluster (where 1.1 is the default version).
#
#   1. The released 1.0 install script is installed unchanged (its sha256).
#   2. 1.0 is populated through its own flows, run by the new library:
#      accounts with history, a TOTP enrolment with recovery codes, live and
#      ended sessions, failures and a lockout (an account and an unknown
#      name), attempts over several daily partitions, audit rows, incidents,
#      shared credentials and an offboarding, access grants, and an
#      application table guarded by password_policy_trigger.
#   3. After the update: the catalog (doc: test/lib/catalog.sql) equals a
#      fresh 1.1 install's; no row of any table is lost or changed; old
#      sessions stay valid; logins, MFA, the legacy trigger and the audit chain
#      work.
#   4. The 1.0 dump restores into a new database (1.1) without errors, also
#      as a single transaction, with the same rows, and works.
# Environment: PGHOST/PGPORT/PGUSER of a superuser (scripts/test); the
# cluster's secpolicy.key_file is set.
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
old=scen_upgrade_old_$$
fresh=scen_upgrade_fresh_$$
restored=scen_upgrade_restored_$$
single=scen_upgrade_single_$$
db=$old
work=$(mktemp -d "${TMPDIR:-/tmp}/scen_upgrade.XXXXXX")
chmod 755 "$work"
at_exit 'rm -rf "$work"'
for d in "$old" "$fresh" "$restored" "$single"; do drop_db_on_exit "$d"; done

# every table of the extension (and the daily partitions' rows through the parent)
TABLES=(policy password_blocklist dummy_hash users password_history unknown_user_failures audit_log
        audit_head login_attempts totp_credentials recovery_codes mfa_challenges sessions
        password_resets user_access shared_credentials shared_credential_holders incidents
        maintenance_state)
# a table's rows, as a count and a digest over the columns that 1.0 has
fingerprint() {
    local cols
    cols=$(q "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
               WHERE attrelid = 'secpolicy.$1'::regclass AND attnum > 0 AND NOT attisdropped
                 AND attname = ANY (string_to_array('${cols_10[$1]}', ','))" "$2")
    q "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '-')
         FROM (SELECT $cols FROM secpolicy.$1) t" "$2"
}
catalog() { psql -X -q -d "$1" -f "$root/test/lib/catalog.sql" 2>&1; }
# a password per account (none contains its username)
pw() { echo "Migrate-Phrase!${#1}${1:0:1}9z"; }

plan 28

# --- 1.0 ----------------------------------------------------------------------
released=adb59c0c42f451095bf20002d73ba455270ae9af2f51404d24b1046e70a052db
sharedir=$("$PG_CONFIG" --sharedir 2>/dev/null || pg_config --sharedir)
is "$(sha256sum "$sharedir/extension/secpolicy--1.0.sql" | cut -d' ' -f1)" "$released" \
   "the installed secpolicy--1.0.sql is the released 1.0 script"
createdb "$old"
is "$(q "CREATE EXTENSION secpolicy VERSION '1.0'; SELECT extversion FROM pg_extension WHERE extname = 'secpolicy'")" \
   1.0 "CREATE EXTENSION secpolicy VERSION '1.0' installs 1.0"

# the columns of each table in 1.0, for fingerprints that ignore columns 1.1 adds
declare -A cols_10
for t in "${TABLES[@]}"; do
    cols_10[$t]=$(q "SELECT string_agg(attname, ',') FROM pg_attribute
                      WHERE attrelid = 'secpolicy.$t'::regclass AND attnum > 0 AND NOT attisdropped")
done

populate=$(q "UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = false,
                                          history_depth = 3, totp_issuer = 'UpgradeCorp';
              INSERT INTO secpolicy.password_blocklist (word) VALUES ('upgradecorp');
              SELECT secpolicy.create_attempt_partitions(2, current_date - 3);
              SELECT count(secpolicy.create_user(u, 'Migrate-Phrase!' || length(u) || left(u, 1) || '9z'))
                FROM unnest(ARRAY['ann', 'ben', 'cat', 'dan', 'eve']) u;
              SELECT secpolicy.grant_access('ann', 'billing.read', 'upgrade test');
              SELECT secpolicy.add_shared_credential('vendor-portal', 'shared by ann and dan');
              SELECT secpolicy.grant_shared_credential('dan', 'vendor-portal');
              SELECT secpolicy.offboard('dan', 'left') ->> 'disabled';
              SELECT secpolicy.open_incident('phishing', 'high', 'phishing mail to staff', NULL, ARRAY['ann']) > 0;
              CREATE SCHEMA app;
              CREATE TABLE app.accounts (login text PRIMARY KEY, password text, history text[]);
              CREATE TRIGGER accounts_password BEFORE INSERT OR UPDATE ON app.accounts
                  FOR EACH ROW EXECUTE FUNCTION secpolicy.password_policy_trigger('password', 'login', 'history');
              INSERT INTO app.accounts VALUES ('zoe', 'Legacy-Secret!Q1w', NULL);
              UPDATE app.accounts SET password = 'Legacy-Secret!Q2w';" | paste -sd,)
populate+=,$(q "SELECT status FROM secpolicy.change_password('ann', '$(pw ann)', 'Migrate-Phrase!A8y')")
populate+=,$(q "SELECT status FROM secpolicy.change_password('ann', 'Migrate-Phrase!A8y', '$(pw ann)9')")
for i in 1 2 3 4 5; do q "SELECT secpolicy.login('ben', 'Wrong-Ben!Pass$i', '198.51.100.$i')" >/dev/null; done
for i in 1 2 3; do q "SELECT secpolicy.login('nobody', 'Wrong-Nobody!$i', '198.51.100.9')" >/dev/null; done
tok_ann=$(q "SELECT session_token FROM secpolicy.login('ann', '$(pw ann)9', '203.0.113.1', 'browser')")
tok_ended=$(q "SELECT session_token FROM secpolicy.login('ann', '$(pw ann)9', '203.0.113.2', 'phone')")
populate+=,$(q "SELECT secpolicy.logout('$tok_ended')")
tok_cat=$(q "SELECT session_token FROM secpolicy.login('cat', '$(pw cat)')")
secret=$(q "SELECT secret FROM secpolicy.totp_enroll('$tok_cat')")
recovery=$(q "SELECT (recovery_codes)[2] FROM secpolicy.totp_confirm('$tok_cat', secpolicy.totp_code('$secret'))")
reset_tok=$(q "SELECT secpolicy.request_password_reset('eve')")
# attempts on earlier days land in their daily partitions
q "INSERT INTO secpolicy.login_attempts (attempted_at, user_id, username, client_addr, success, outcome)
   SELECT now() - d * interval '1 day', NULL, 'old-name-' || d, '192.0.2.' || d, false, 'unknown_user'
     FROM generate_series(1, 3) d" >/dev/null
is "$populate,${#secret},${#recovery},${#reset_tok}" "6,5,t,1,t,true,t,ok,ok,t,32,27,47" \
   "1.0 populated through its flows with the new library (accounts, history, TOTP, sessions, lockout, partitions, incident, offboarding, legacy table)"
is "$(q "SELECT string_agg(outcome, ',' ORDER BY id) FROM secpolicy.login_attempts WHERE username = 'ben'")|$(q "SELECT failed_attempts FROM secpolicy.unknown_user_failures")" \
   "invalid_password,invalid_password,invalid_password,invalid_password,lockout|3" \
   "1.0 counts failures and locks out (ben at the limit, an unknown name at 3)"
is "$(q "SELECT count(*) FROM pg_inherits WHERE inhparent = 'secpolicy.login_attempts'::regclass")" 7 \
   "the attempt log spans several daily partitions (and the default one)"

# --- the dump of 1.0, and the state before the update ---------------------------
dumped_10=$(q "SELECT string_agg(c.relname, ',') FROM pg_extension e, unnest(e.extconfig) x
                JOIN pg_class c ON c.oid = x WHERE e.extname = 'secpolicy'")
pg_dump -Fc -d "$old" -f "$work/old.dump" 2>"$work/dump.err" || echo "pg_dump: $(cat "$work/dump.err")" >&2
declare -A before
for t in "${TABLES[@]}"; do before[$t]=$(fingerprint "$t" "$old"); done
app_before=$(q "SELECT md5(string_agg(a::text, '|')) FROM app.accounts a")
chain_before=$(q "SELECT intact, rows_checked, head_hash FROM secpolicy.verify_audit_chain()")

# --- the update -----------------------------------------------------------------
if out=$(q "ALTER EXTENSION secpolicy UPDATE; SELECT extversion FROM pg_extension WHERE extname = 'secpolicy'"); then
    is "$out" 1.1 "ALTER EXTENSION secpolicy UPDATE reaches 1.1"
else
    fail "ALTER EXTENSION secpolicy UPDATE reaches 1.1" "$out"
fi
createdb "$fresh"
q "CREATE EXTENSION secpolicy" "$fresh" >/dev/null
catalog "$old" >"$work/updated.catalog"
catalog "$fresh" >"$work/fresh.catalog"
if diff -u "$work/fresh.catalog" "$work/updated.catalog" >"$work/catalog.diff"; then
    pass "the updated catalog equals a fresh 1.1 install's ($(grep -c '^member: ' "$work/fresh.catalog") member objects)"
else
    fail "the updated catalog equals a fresh 1.1 install's" "$(head -60 "$work/catalog.diff")"
fi
is "$(grep -c . "$work/fresh.catalog" | awk '{print ($1 > 300)}')" 1 "the catalog comparison covers the whole extension"

changed=()
for t in "${TABLES[@]}"; do
    [ "$(fingerprint "$t" "$old")" = "${before[$t]}" ] || changed+=("$t")
done
is "${changed[*]:-none}" none "no row of any table is lost or changed by the update"
is "$(q "SELECT md5(string_agg(a::text, '|')) FROM app.accounts a")" "$app_before" "the application table is untouched"
is "$(q "SELECT intact, rows_checked, head_hash FROM secpolicy.verify_audit_chain()")" "$chain_before" \
   "the audit chain is intact, with the same head"

# --- 1.1 works on the updated data ------------------------------------------------
is "$(q "SELECT status FROM secpolicy.session_touch('$tok_ann')")|$(q "SELECT status FROM secpolicy.session_touch('$tok_ended')")" \
   "active|revoked" "a session opened under 1.0 is still valid; an ended one stays ended"
is "$(q "SELECT status FROM secpolicy.login('ann', '$(pw ann)9')")" ok "ann logs in with her 1.0 password"
is "$(q "SELECT status, violations FROM secpolicy.change_password('ann', '$(pw ann)9', 'Migrate-Phrase!A8y', NULL, '$tok_ann')")" \
   "rejected|{reused_password}" "the 1.0 password history still refuses a previous password"
is "$(q "SELECT status FROM secpolicy.login('ben', '$(pw ben)')")|$(q "SELECT status FROM secpolicy.login('nobody', 'Wrong-Nobody!4')")" \
   "reset_required|invalid_credentials" "ben stays locked; the unknown name keeps its count (4th failure)"
is "$(q "SELECT status FROM secpolicy.login('nobody', 'Wrong-Nobody!5')")" reset_required \
   "... and reaches the limit at the 5th, as under 1.0"
challenge=$(q "SELECT status || ' ' || challenge_token FROM secpolicy.login('cat', '$(pw cat)')")
is "${challenge%% *}" mfa_required "cat, enrolled under 1.0, is asked for her second factor"
is "$(q "SELECT status FROM secpolicy.verify_mfa('${challenge#* }',
             secpolicy.totp_code('$secret', now() + interval '30 seconds'))")" ok \
   "her secret, sealed by 1.0, verifies a code"
challenge=$(q "SELECT challenge_token FROM secpolicy.login('cat', '$(pw cat)')")
is "$(q "SELECT status FROM secpolicy.verify_mfa('$challenge', '$recovery')")" ok "a recovery code issued by 1.0 works"
is "$(q "SELECT status FROM secpolicy.reset_password('$reset_tok', 'Renewed-Phrase!E4x')")" ok \
   "a reset token issued by 1.0 works"
is "$(q "UPDATE app.accounts SET password = 'Legacy-Secret!Q1w'" 2>&1 | grep -o 'reused_password')" reused_password \
   "the legacy table's trigger still refuses a previous password"
is "$(q "SELECT count(*) FROM (SELECT secpolicy.disable_user('eve', 'upgrade test')) x;
          SELECT intact FROM secpolicy.verify_audit_chain()" | paste -sd,)" \
   1,t "new audit rows chain onto the 1.0 chain"

# --- the 1.0 dump, restored into this cluster (1.1) -------------------------------
createdb "$restored"
if pg_restore -d "$restored" "$work/old.dump" 2>"$work/restore.err" && [ ! -s "$work/restore.err" ]; then
    pass "the 1.0 dump restores into a new database without errors or warnings"
else
    fail "the 1.0 dump restores into a new database without errors or warnings" "$(head -20 "$work/restore.err")"
fi
createdb "$single"
if pg_restore --single-transaction --exit-on-error -d "$single" "$work/old.dump" 2>"$work/restore1.err"; then
    pass "... also with --single-transaction --exit-on-error"
else
    fail "... also with --single-transaction --exit-on-error" "$(head -5 "$work/restore1.err")"
fi
is "$(q "SELECT extversion FROM pg_extension WHERE extname = 'secpolicy'" "$restored")" 1.1 \
   "the restored database runs 1.1"
changed=()
for t in $(q "SELECT c.relname FROM pg_extension e, unnest(e.extconfig) x JOIN pg_class c ON c.oid = x
               WHERE e.extname = 'secpolicy' AND c.relkind IN ('r', 'p')" "$fresh"); do
    [[ " ${TABLES[*]} " == *" $t "* ]] || continue      # a table new in 1.1
    [[ ",${dumped_10}," == *",$t,"* ]] || continue       # not dumped by 1.0
    [ "$(fingerprint "$t" "$restored")" = "${before[$t]}" ] || changed+=("$t")
done
is "${changed[*]:-none}" none "the restored database holds every row 1.0 dumped"
is "$(q "SELECT status FROM secpolicy.session_touch('$tok_ann')" "$restored")|$(q "SELECT intact FROM secpolicy.verify_audit_chain()" "$restored")" \
   "active|t" "in the restored copy, the 1.0 session is valid and the audit chain intact"
challenge=$(q "SELECT challenge_token FROM secpolicy.login('cat', '$(pw cat)')" "$restored")
is "$(q "SELECT status FROM secpolicy.verify_mfa('$challenge', secpolicy.totp_code('$secret', now() + interval '30 seconds'))" "$restored")" \
   ok "... and the TOTP secret sealed by 1.0 verifies"

finish
