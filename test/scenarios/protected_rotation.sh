#!/usr/bin/env bash
# Scenario: key rotation of protected columns under concurrent writes loses
# nothing (issue 11).
#   1. 30,000 accounts with a protected, searchable email (encrypted by the
#      background worker under key A); a plain shadow table holds what every
#      email must reveal to.
#   2. Key B becomes secpolicy.key_file and A the previous key (ALTER SYSTEM,
#      reload).  While 4 clients keep changing emails and upserting accounts
#      (each write and its shadow in one statement), reseal_columns() has the
#      worker re-encrypt everything in small, throttled batches.
#   3. When the clients stop and the worker is done: no client transaction
#      failed; every email is under key B; every row reveals to its shadow;
#      every blind index is the blind index of its shadow (searches work and
#      the blind index key did not change); the pass is audited.
#   4. Without the previous key (reload), everything still reveals.
# Needs the cluster of scripts/test (SP_TMP, SP_KEY_FILE, PGBIN); changes its
# settings with ALTER SYSTEM and puts them back on exit.
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
restarts_cluster SP_KEY_FILE PGBIN

db=scen_protected_rotation_$$
N=30000
KEY_B=
work=$(mktemp -d "${TMPDIR:-/tmp}/scen_prot.XXXXXX")
chmod 755 "$work"

reset_settings() {
    psql -X -q -d postgres -c "LOAD 'secpolicy'" -c "ALTER SYSTEM RESET secpolicy.key_file" \
         -c "ALTER SYSTEM RESET secpolicy.previous_key_file" -c "ALTER SYSTEM RESET secpolicy.protection_batch_rows" \
         -c "ALTER SYSTEM RESET secpolicy.protection_batch_delay" -c "SELECT pg_reload_conf()" >/dev/null 2>&1
    rm -f "$KEY_B"
    rm -rf "$work"
}
# ALTER SYSTEM SET each "name = value", then reload (the settings exist once the library is loaded)
settings() {
    local a=(-c "LOAD 'secpolicy'") s
    for s in "$@"; do a+=(-c "ALTER SYSTEM SET ${s/ = / TO }"); done
    psql -X -q -d postgres "${a[@]}" -c "SELECT pg_reload_conf()" >/dev/null
}
# rows whose email does not reveal to its shadow, or whose blind index is not its shadow's
lost() {
    q "SELECT count(*) FROM app.accounts a FULL JOIN app.expected x USING (id)
        WHERE a.id IS NULL OR x.id IS NULL
           OR secpolicy.reveal('app.accounts', 'email', a.email, a.id::text) IS DISTINCT FROM x.email
           OR a.email_bidx IS DISTINCT FROM secpolicy.blind_index('app.accounts', 'email', x.email)"
}

plan 11

setup_db
at_exit reset_settings
q "CREATE SCHEMA app;
   CREATE TABLE app.accounts (id integer PRIMARY KEY, email text, writes integer NOT NULL DEFAULT 0);
   CREATE TABLE app.expected (id integer PRIMARY KEY, email text);
   INSERT INTO app.accounts (id, email) SELECT g, 'acct-' || g || '@example.org' FROM generate_series(1, $N) g;
   INSERT INTO app.expected SELECT id, email FROM app.accounts;
   SELECT secpolicy.grant_reveal('postgres', 'accounts.contact');
   SELECT secpolicy.protect_column('app.accounts', 'email', 'accounts.contact', true);" >/dev/null
if wait_for "SELECT state FROM secpolicy.protection_status" protected 120; then pass "the worker encrypted the $N emails under key A"
else fail "the worker encrypted the $N emails under key A" "$(q "SELECT * FROM secpolicy.protection_status")"; fi
id_a=$(q "SELECT key_id FROM secpolicy.key_status()")
is "$(lost)" 0 "every email reveals to its shadow, every blind index matches"

# --- 2. rotation under writes ------------------------------------------------
KEY_B=$(sp_make_key "rot_b_$$.key")
settings "secpolicy.key_file = '$KEY_B'" "secpolicy.previous_key_file = '$SP_KEY_FILE'" \
         "secpolicy.protection_batch_rows = 1000" "secpolicy.protection_batch_delay = 25"
sleep 1
id_b=$(q "SELECT key_id FROM secpolicy.key_status()")
is "$(q "SELECT previous_key_id FROM secpolicy.key_status()")|$([ "$id_b" != "$id_a" ] && echo new)" "$id_a|new" \
   "key B is current, key A previous"

cat >"$work/writes.sql" <<'SQL'
\set id random(1, 30000)
\set nid random(30001, 40000)
WITH v AS (SELECT 'chg-' || :id || '-' || md5(random()::text) || '@example.org' AS e),
     w AS (UPDATE app.accounts a SET email = v.e, writes = a.writes + 1 FROM v WHERE a.id = :id RETURNING a.id)
UPDATE app.expected x SET email = v.e FROM v, w WHERE x.id = w.id;
UPDATE app.accounts SET writes = writes + 1 WHERE id = :id + 1 AND :id < 30000;
BEGIN;
INSERT INTO app.accounts (id, email) VALUES (:nid, 'new-' || :nid || '@example.org')
    ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, writes = app.accounts.writes + 1;
INSERT INTO app.expected VALUES (:nid, 'new-' || :nid || '@example.org') ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email;
COMMIT;
SQL
"$PGBIN/pgbench" -n -f "$work/writes.sql" -c 4 -j 4 -T 6 "$db" >"$work/pgbench.out" 2>&1 &
bench=$!
sleep 1
is "$(q "SELECT secpolicy.reseal_columns()")" 1 "reseal_columns() while 4 clients write"
wait "$bench"
bench_rc=$?
failed=$(awk '/number of failed transactions/ {print $5}' "$work/pgbench.out")
done_tx=$(awk '/number of transactions actually processed/ {print $6}' "$work/pgbench.out")
is "$bench_rc/${failed:-0}" "0/0" "no client transaction failed ($done_tx transactions)"
ok "$([ "${done_tx%%/*}" -gt 100 ] 2>/dev/null && echo 1)" "the clients did write meanwhile ($done_tx)"
if wait_for "SELECT state FROM secpolicy.protection_status" protected 120; then pass "the worker finished the pass"
else fail "the worker finished the pass" "$(q "SELECT * FROM secpolicy.protection_status")"; fi

# --- 3. nothing lost ---------------------------------------------------------------
is "$(q "SELECT count(*) FROM app.accounts WHERE secpolicy.protected_key_id(email) IS DISTINCT FROM '$id_b'")" 0 \
   "every email is under key B"
is "$(lost)" 0 "every row reveals to its shadow and its blind index is its shadow's (nothing lost)"
is "$(q "SELECT count(*) FROM secpolicy.audit_log WHERE action = 'column_resealed' AND details ->> 'key_id' = '$id_b'")" 1 \
   "the end of the pass is audited"

# --- 4. without the previous key ---------------------------------------------------
settings "secpolicy.previous_key_file = ''"
sleep 1
is "$(q "SELECT coalesce(previous_key_id, 'none') FROM secpolicy.key_status()")|$(lost)" "none|0" \
   "without the previous key, every email still reveals"

finish
