#!/usr/bin/env bash
# Scenario: rotation of the sealing key across server restarts and reloads.
#   1. users enrol under key A (the cluster's secpolicy.key_file);
#   2. key B is written; the server restarts with secpolicy.key_file = B and
#      secpolicy.previous_key_file = A (ALTER SYSTEM); key_status shows both;
#      logins still work (secrets open with the previous key);
#   3. reseal_secrets() returns the number of credential rows resealed, and is
#      audited; afterwards every sealed value carries key B's id;
#   4. previous_key_file is unset (ALTER SYSTEM RESET + pg_reload_conf());
#      logins and a pending enrolment still work under B alone;
#   5. the server restarts with only key A: verify_mfa fails with 55000 and
#      the client is told why;
#   6. key files with bad permissions (a chmod 644 copy of the key) or wrong
#      content raise F0000, and the client's message says what is wrong;
#   7. the original settings are back (also restored on failure, by the trap).
# Needs the cluster of scripts/test (SP_TMP, SP_SERVER_OPTS, SP_KEY_FILE):
# it restarts that cluster, so it must not run in parallel with others.
set -u -o pipefail

# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
restarts_cluster SP_KEY_FILE

db=scen_key_rotation_$$
changed=0
KEY_A=$SP_KEY_FILE
KEY_B=
BAD_FILES=()

# Put the server back as scripts/test started it.
restore_server() {
    psql -X -q -d postgres -c "LOAD 'secpolicy'" -c "ALTER SYSTEM RESET secpolicy.previous_key_file" \
         -c "ALTER SYSTEM RESET secpolicy.key_file" >/dev/null 2>&1
    sp_cluster_restart >/dev/null 2>&1
}

# Run on exit, before the database is dropped.
cleanup() {
    [ "$changed" = 1 ] && restore_server
    rm -f "$KEY_B" "${BAD_FILES[@]}"
}

plan 27

setup_db
at_exit cleanup
q "UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = true,
          totp_window = 1, totp_period = 30, totp_digits = 6, totp_algorithm = 'sha1'" >/dev/null
q "CREATE FUNCTION public.sqlstate_of(q text) RETURNS text LANGUAGE plpgsql AS \$f\$
   BEGIN EXECUTE q; RETURN 'no error'; EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE; END \$f\$" >/dev/null
PW='Quartz-Lantern-47!'

declare -A SECRET
ENROLLED=""
# Enrol user $1 through the flows under the current key; appends the status to ENROLLED.
enrol() {
    local ch
    q "SELECT secpolicy.create_user('$1', '$PW')" >/dev/null
    ch=$(q "SELECT challenge_token FROM secpolicy.login('$1', '$PW')")
    SECRET[$1]=$(q "SELECT secret FROM secpolicy.totp_enroll('$ch')")
    ENROLLED="$ENROLLED$(q "SELECT status FROM secpolicy.totp_confirm('$ch', secpolicy.totp_code('${SECRET[$1]}'))"),"
}
# The two key settings as "key_file|previous_key_file" (the library loaded first).
settings() {
    psql -X -q -At -d "$db" -c "LOAD 'secpolicy'" \
         -c "SELECT current_setting('secpolicy.key_file') || '|' || current_setting('secpolicy.previous_key_file')" 2>&1
}
# Log user $1 in with the TOTP code of the next period (the current one is spent); prints the status.
login_totp() {
    local ch
    ch=$(q "SELECT challenge_token FROM secpolicy.login('$1', '$PW')")
    q "SELECT status FROM secpolicy.verify_mfa('$ch', secpolicy.totp_code('${SECRET[$1]}', now() + interval '30 seconds'))"
}
# The key ids of every sealed value, distinct, comma-separated.
sealed_ids() {
    q "SELECT string_agg(DISTINCT encode(substring(v FROM 2 FOR 8), 'hex'), ',')
         FROM secpolicy.totp_credentials c, LATERAL (VALUES (c.sealed_secret), (c.pending_secret)) s(v)
        WHERE v IS NOT NULL"
}

# ---- 1. enrol under key A
id_a=$(q "SELECT key_id FROM secpolicy.key_status()")
enrol rot_a; enrol rot_b; enrol rot_c
is "$ENROLLED" "ok,ok,ok," "three users enrol under key A"
q "SELECT secpolicy.create_user('rot_p', '$PW')" >/dev/null
ch_p=$(q "SELECT challenge_token FROM secpolicy.login('rot_p', '$PW')")
SECRET[rot_p]=$(q "SELECT secret FROM secpolicy.totp_enroll('$ch_p')")
is "$(sealed_ids)" "$id_a" "every sealed value (3 confirmed, 1 pending) carries key A's id"

# ---- 2. key B current, key A previous
KEY_B=$(sp_make_key "key_b_$$.key")
changed=1
psql -X -q -d "$db" -c "LOAD 'secpolicy'" -c "ALTER SYSTEM SET secpolicy.previous_key_file = '$KEY_A'" >/dev/null
if sp_cluster_restart -c "secpolicy.key_file=$KEY_B" >/dev/null 2>&1; then
    pass "server restarted with secpolicy.key_file = B and previous_key_file = A"
else
    fail "server restarted with secpolicy.key_file = B and previous_key_file = A" "$(tail -5 "$SP_TMP/server.log")"
fi
is "$(settings)" "$KEY_B|$KEY_A" "the settings are in effect"
id_b=$(q "SELECT key_id FROM secpolicy.key_status()")
is "$(q "SELECT coalesce(key_id, 'NULL') || ',' || coalesce(previous_key_id, 'NULL') FROM secpolicy.key_status()")" \
   "$id_b,$id_a" "key_status shows key B and, as previous, key A"
if [[ "$id_b" =~ ^[0-9a-f]{16}$ ]] && [ "$id_b" != "$id_a" ]; then pass "key B has its own id"; else fail "key B has its own id" "$id_b vs $id_a"; fi
is "$(login_totp rot_a)" ok "before resealing, a login works (the secret opens with the previous key)"

# ---- 3. reseal
is "$(q "SELECT secpolicy.reseal_secrets()")" 4 "reseal_secrets() returns 4 (3 confirmed and 1 pending row)"
is "$(sealed_ids)" "$id_b" "afterwards every sealed value carries key B's id"
is "$(q "SELECT details->>'resealed' || ',' || (details->>'key_id') FROM secpolicy.audit_log
          WHERE action = 'secrets_resealed' ORDER BY id DESC LIMIT 1")" "4,$id_b" "audited with the count and key B's id"
is "$(login_totp rot_b)" ok "after resealing, a login works"
is "$(q "SELECT secpolicy.reseal_secrets()")" 0 "a second reseal_secrets() changes nothing"

# ---- 4. previous key unset by reload
psql -X -q -d "$db" -c "LOAD 'secpolicy'" -c "ALTER SYSTEM RESET secpolicy.previous_key_file" -c "SELECT pg_reload_conf()" >/dev/null
if wait_for "SELECT coalesce(previous_key_id, 'none') FROM secpolicy.key_status()" none 30; then
    pass "after ALTER SYSTEM RESET and pg_reload_conf() no previous key is configured"
else
    fail "after ALTER SYSTEM RESET and pg_reload_conf() no previous key is configured"
fi
is "$(q "SELECT key_id FROM secpolicy.key_status()")" "$id_b" "key B is still the current key"
is "$(login_totp rot_c)" ok "under key B alone, a login works"
is "$(q "SELECT status FROM secpolicy.totp_confirm('$ch_p', secpolicy.totp_code('${SECRET[rot_p]}'))")" ok \
   "under key B alone, the resealed pending enrolment confirms"
is "$(q "SELECT count(*) FROM secpolicy.sessions s JOIN secpolicy.users u ON u.id = s.user_id
          WHERE u.username LIKE 'rot\_%' AND s.mfa AND s.ended_at IS NULL")" 7 \
   "every enrolment and login opened an mfa session (4 enrolments + 3 logins)"

# ---- 5. only key A
if sp_cluster_restart >/dev/null 2>&1; then pass "server restarted with only key A"; else fail "server restarted with only key A"; fi
is "$(q "SELECT coalesce(key_id, 'NULL') || ',' || coalesce(previous_key_id, 'NULL') FROM secpolicy.key_status()")" \
   "$id_a,NULL" "key_status shows key A only"
ch=$(q "SELECT challenge_token FROM secpolicy.login('rot_b', '$PW')")
is "$(q "SELECT public.sqlstate_of(\$\$SELECT * FROM secpolicy.verify_mfa('$ch', '123456')\$\$)")" 55000 \
   "with only key A after resealing, verify_mfa fails with 55000"
msg=$(psql -X -q -At -d "$db" -c "SELECT * FROM secpolicy.verify_mfa('$ch', '123456')" 2>&1 >/dev/null)
if grep -q "no configured key can open this sealed secret" <<<"$msg"; then
    pass "the client is told that no configured key opens the secret"
else
    fail "the client is told that no configured key opens the secret" "psql: $msg"
fi
is "$(q "SELECT failed_attempts FROM secpolicy.users WHERE username = 'rot_b'")" 0 "the failed unsealing counted no failure"

# ---- 6. key files with bad permissions or content (session-level SET, superuser)
bad644=$SP_TMP/key_copy644_$$
badtxt=$SP_TMP/key_badcontent_$$
BAD_FILES=("$bad644" "$badtxt")
cp "$KEY_A" "$bad644" && chmod 644 "$bad644"
printf 'this is not a key\n' >"$badtxt" && chmod 600 "$badtxt"
[ "$(id -u)" = 0 ] && chown postgres: "$bad644" "$badtxt"
ch=$(q "SELECT challenge_token FROM secpolicy.login('rot_c', '$PW')")
is "$(psql -X -q -At -d "$db" -c "SET secpolicy.key_file = '$bad644'" \
        -c "SELECT public.sqlstate_of(\$\$SELECT * FROM secpolicy.verify_mfa('$ch', '123456')\$\$)" 2>&1)" F0000 \
   "a chmod 644 copy of the key: verify_mfa fails with F0000"
is "$(psql -X -q -At -d "$db" -c "SET secpolicy.key_file = '$badtxt'" \
        -c "SELECT public.sqlstate_of('SELECT * FROM secpolicy.key_status()')" 2>&1)" F0000 \
   "a key file with wrong content: F0000"
msg=$(psql -X -q -At -d "$db" -c "SET secpolicy.key_file = '$bad644'" -c "SELECT * FROM secpolicy.key_status()" 2>&1 >/dev/null)
if grep -q "accessible to group or others" <<<"$msg"; then
    pass "the client's F0000 message says the key file is accessible to group or others"
else
    fail "the client's F0000 message says the key file is accessible to group or others" "psql: $msg"
fi

# ---- 7. back to the original settings
restore_server
changed=0
is "$(settings)" "$KEY_A|" "original settings restored"
is "$(grep -c previous_key_file "$SP_TMP/data/postgresql.auto.conf")" 0 "postgresql.auto.conf no longer names a previous key"

finish
