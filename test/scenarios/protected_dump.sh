#!/usr/bin/env bash
# Scenario: protected columns in a dump (issue 11).
#   1. An application table with 2,000 customers has its email (searchable)
#      and phone protected; the background worker encrypts the stored values
#      (protect_column returns at once; protection_status reaches protected).
#   2. A stolen pg_dump holds no plaintext: no email, no phone, in the plain
#      SQL of the dump, only $sp2$ values; nor the sealing key.
#   3. Restored (pg_restore; dump_restore.sh also restores one in a single
#      transaction) into a database of the
#      same cluster (same key): the stored values are byte for byte those of
#      the source (nothing is encrypted twice), every one reveals to its
#      plaintext, blind-index searches work, the revealed view is back (still
#      security_invoker), new writes are encrypted.
#   4. Values that arrive encrypted through the trigger (COPY of an export
#      back into the emptied table) are checked and kept as they are; one
#      bound to another row is refused (XX001).
#   5. A data-only restore (--disable-triggers) brings the same bytes back.
#   6. Restored into a database whose secpolicy.key_file is another key: the
#      restore works, nothing reveals (55000), and re-inserting a value
#      through the trigger fails (55000) rather than encrypting it twice.
# Environment: PGHOST/PGPORT/PGUSER of a superuser (scripts/test); the
# cluster's secpolicy.key_file is set (SP_TMP for a second key).
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

db=scen_protected_dump_$$
dst=scen_protected_dump_copy_$$
dsto=scen_protected_dump_data_$$
dstk=scen_protected_dump_otherkey_$$
work=$(mktemp -d "${TMPDIR:-/tmp}/scen_pdump.XXXXXX")
chmod 755 "$work"
at_exit 'rm -rf "$work"'
for d in "$dst" "$dsto" "$dstk"; do drop_db_on_exit "$d"; done

N=2000
# the values of a database, in id order, and the plaintexts they must reveal
stored() { q "SELECT md5(string_agg(email || '|' || coalesce(phone, '-') || '|' || encode(email_bidx, 'hex'), ',' ORDER BY id))
               FROM app.customers" "$1"; }
mismatches() { q "SELECT count(*) FROM app.customers
                   WHERE secpolicy.reveal('app.customers', 'email', email, id::text) IS DISTINCT FROM 'customer-' || id || '@example.org'
                      OR secpolicy.reveal('app.customers', 'phone', phone, id::text) IS DISTINCT FROM '+1-555-' || lpad(id::text, 4, '0')" "$1"; }

plan 21

setup_db
q "CREATE SCHEMA app;
   CREATE TABLE app.customers (id integer PRIMARY KEY, name text, email text, phone text);
   INSERT INTO app.customers SELECT g, 'name ' || g, 'customer-' || g || '@example.org', '+1-555-' || lpad(g::text, 4, '0')
     FROM generate_series(1, $N) g;" >/dev/null

# --- 1. protection by the background worker ---------------------------------
is "$(q "SELECT secpolicy.protect_column('app.customers', 'email', 'customers.contact', true);
         SELECT secpolicy.protect_column('app.customers', 'phone', 'customers.contact');" | paste -sd,)" "t,t" \
   "protect_column() starts the background worker (returns true)"
if wait_for "SELECT count(*) FROM secpolicy.protection_status WHERE state = 'protected'" 2 60; then
    pass "the worker encrypts the stored values of both columns"
else
    fail "the worker encrypts the stored values of both columns" "$(q "SELECT * FROM secpolicy.protection_status")"
fi
is "$(q "SELECT count(*) FROM app.customers WHERE left(email, 5) = '\$sp2\$' AND left(phone, 5) = '\$sp2\$'")" "$N" \
   "every value is encrypted"
q "SELECT secpolicy.grant_reveal('postgres', 'customers.contact'); SELECT secpolicy.create_reveal_view('app.customers')" >/dev/null
is "$(mismatches "$db")" 0 "every value reveals to its plaintext"
src=$(stored "$db")

# --- 2. the stolen dump -------------------------------------------------------
pg_dump -Fc -d "$db" -f "$work/dump" 2>"$work/dump.err"
pg_restore -f "$work/dump.sql" "$work/dump"
key_hex=$(tr -d ' \n' <"${SP_KEY_FILE:-/dev/null}")
is "$(grep -c -e '@example.org' -e '+1-555-' "$work/dump.sql")" 0 "the dump holds no email or phone in clear"
is "$(grep -o '\$sp2\$[A-Za-z0-9_-]*' "$work/dump.sql" | wc -l)" "$((2 * N))" "... only their ciphertexts"
if [ -n "$key_hex" ] && ! grep -qi "$key_hex" "$work/dump.sql"; then pass "... and not the sealing key"
else fail "... and not the sealing key"; fi

# --- 3. restore with the same key ---------------------------------------------
createdb "$dst"
if pg_restore -d "$dst" "$work/dump" 2>"$work/restore.err" && [ ! -s "$work/restore.err" ]; then
    pass "pg_restore into a new database, without errors or warnings"
else
    fail "pg_restore into a new database, without errors or warnings" "$(head -20 "$work/restore.err")"
fi
is "$(stored "$dst")" "$src" "the restored values are the source's bytes (nothing encrypted twice)"
is "$(mismatches "$dst")" 0 "every restored value reveals to its plaintext"
is "$(q "SELECT id FROM app.customers WHERE email_bidx = secpolicy.blind_index('app.customers', 'email', 'customer-1717@example.org')" "$dst")" \
   1717 "a blind-index search finds its row"
is "$(q "SELECT email FROM app.customers_revealed WHERE id = 42;
         SELECT reloptions::text FROM pg_class WHERE oid = 'app.customers_revealed'::regclass" "$dst" | paste -sd,)" \
   "customer-42@example.org,{security_invoker=true}" "the revealed view is back, security_invoker"
is "$(q "INSERT INTO app.customers VALUES ($N + 1, 'new', 'new@example.org', NULL);
         SELECT left(email, 5) || ',' || state FROM app.customers, secpolicy.protection_status
          WHERE id = $N + 1 AND column_name = 'email'" "$dst")" "\$sp2\$,protected" \
   "the trigger is back: new values are encrypted; the column is protected"

# --- 4. values that come back through the trigger ------------------------------
q "DELETE FROM app.customers WHERE id = $N + 1" "$dst" >/dev/null
psql -X -q -d "$dst" -c "COPY app.customers TO STDOUT" >"$work/customers.copy"
q "TRUNCATE app.customers" "$dst" >/dev/null
psql -X -q -d "$dst" -c "COPY app.customers FROM STDIN" <"$work/customers.copy" >"$work/copy.out" 2>&1
is "$(q "SELECT count(*) FROM app.customers" "$dst"),$(stored "$dst")" "$N,$src" \
   "COPY of an export back through the trigger keeps every value as it is"
is "$(q "UPDATE app.customers SET email = (SELECT email FROM app.customers WHERE id = 1) WHERE id = 2" "$dst" | grep -o 'belongs to another row')" \
   "belongs to another row" "a value copied to another row is refused (XX001)"

# --- 5. data-only restore -------------------------------------------------------
createdb "$dsto"
pg_restore --schema-only -d "$dsto" "$work/dump" 2>"$work/restore_s.err"
# (the policy row of the schema's CREATE EXTENSION stays; its dumped copy would collide)
pg_restore -l "$work/dump" | grep -v 'TABLE DATA secpolicy policy ' >"$work/data.list"
if pg_restore --data-only --disable-triggers -L "$work/data.list" -d "$dsto" "$work/dump" 2>"$work/restore_d.err"; then
    pass "schema, then data only (--disable-triggers)"
else
    fail "schema, then data only (--disable-triggers)" "$(head -5 "$work/restore_d.err")"
fi
is "$(stored "$dsto")|$(mismatches "$dsto")" "$src|0" "... the same bytes, every value reveals"

# --- 6. another key ---------------------------------------------------------------
createdb "$dstk"
other=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s' "$other" >"$work/other.key"
chmod 600 "$work/other.key"
[ "$(id -u)" = 0 ] && chown postgres: "$work/other.key"
q "ALTER DATABASE $dstk SET secpolicy.key_file = '$work/other.key'" postgres >/dev/null
if pg_restore -d "$dstk" "$work/dump" 2>"$work/restore_k.err" && [ ! -s "$work/restore_k.err" ]; then
    pass "the dump restores into a database with another key"
else
    fail "the dump restores into a database with another key" "$(head -5 "$work/restore_k.err")"
fi
is "$(stored "$dstk")" "$src" "... with the same bytes"
is "$(q "SELECT secpolicy.reveal('app.customers', 'email', email) FROM app.customers WHERE id = 1" "$dstk" | grep -o '55000\|no configured key')" \
   "no configured key" "nothing reveals under another key (55000)"
is "$(q "CREATE TABLE keep AS SELECT * FROM app.customers WHERE id = 1; DELETE FROM app.customers WHERE id = 1;
         INSERT INTO app.customers SELECT * FROM keep" "$dstk" | grep -o 'no configured key')" \
   "no configured key" "a value re-inserted through the trigger under another key is refused, not encrypted twice"

finish
