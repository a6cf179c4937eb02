#!/usr/bin/env bash
# Scenario: the README's commands that configure the sealing key work as
# written on a server that does not preload the library (1.0's README said
# ALTER SYSTEM SET secpolicy.key_file = ..., which PostgreSQL 15 refuses with
# 42704 until the library is loaded in the session).  The block marked
# "key-setup" in README.md is run by bash as it stands, with only the key's
# path (its first line) pointed into the test cluster's directory; then a new
# session sees the key (key_status()).  And a misspelt secpolicy.* setting is
# an error once the library is loaded (the prefix is reserved).
# ALTER SYSTEM is reset at the end.
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
restarts_cluster

db=scen_key_setup_$$
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
plan 5

setup_db
at_exit "psql -X -q -d postgres -c 'ALTER SYSTEM RESET secpolicy.key_file' -c 'SELECT pg_reload_conf()' >/dev/null 2>&1; rm -f '$SP_TMP/readme.key'"
block=$(awk '/<!-- key-setup/ {on = 1; next} on && /^```sh/ {code = 1; next} code && /^```/ {exit} code' "$root/README.md")
ok "$(grep -q "ALTER SYSTEM SET secpolicy.key_file" <<<"$block" && echo 1)" "the README holds the key set-up block" "$block"
is "$(q "SHOW shared_preload_libraries" postgres)" "" "the server does not preload the library"
out=$(PGDATABASE=postgres bash -euo pipefail -c "$(sed "1s#^KEY=.*#KEY=$SP_TMP/readme.key#" <<<"$block")" 2>&1)
is "$?|$(grep -c ERROR <<<"$out")" "0|0" "the block runs without an error" "$out"
# the key's identifier: the first 8 bytes of its BLAKE2b-256 hash
want=$(perl -e 'chomp(my $h = <STDIN>); print pack("H*", $h)' <"$SP_TMP/readme.key" | b2sum -l 256 | cut -c1-16)
is "$(q "SELECT current_setting('secpolicy.key_file') || '|' || key_id FROM secpolicy.key_status()")" \
   "$SP_TMP/readme.key|$want" "a new session uses the new key (key_status() shows its identifier)"
is "$(q "SELECT secpolicy.ledger_active(); SET secpolicy.key_fiel = 'x'" 2>&1 | grep -o 'invalid configuration parameter name\|unrecognized configuration parameter' | head -1)" \
   "invalid configuration parameter name" "a misspelt secpolicy.* setting is an error, not a silent placeholder"
finish
