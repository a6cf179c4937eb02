#!/usr/bin/env bash
# Scenario: the extension installs in a fresh database (placeholder until the real scenarios land).
set -euo pipefail
echo "1..1"
db=scen_smoke_$$
createdb "$db"
trap 'dropdb --if-exists "$db"' EXIT
if psql -X -q -d "$db" -c 'CREATE EXTENSION secpolicy' >/dev/null; then echo "ok 1 - extension installs"; else echo "not ok 1 - extension installs"; fi
