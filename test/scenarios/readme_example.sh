#!/usr/bin/env bash
# Scenario: the README's five-line example runs as written, in psql as a
# superuser, on a fresh database of a server whose sealing key is configured
# (as the README says it must be), and reaches a session: session_touch
# answers active.
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

db=scen_readme_example_$$
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
drop_db_on_exit "$db"
plan 2

block=$(awk '/<!-- five-line-example/ {on = 1; next} on && /^```sql/ {code = 1; next} code && /^```/ {exit} code' "$root/README.md")
is "$(grep -c . <<<"$block")" 6 "the README's example is there (CREATE EXTENSION and five lines)"
createdb "$db"
out=$(psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" <<<"$block" 2>&1)
is "$(tail -1 <<<"$out" | cut -d'|' -f1)" active "run as written, it reaches an active session" "$out"
finish
