#!/usr/bin/env bash
# Scenario: a contributor without root.  As an ordinary user (postgres, when
# the suite runs as root) who owns a copy of the source tree: scripts/private-pg
# makes a PostgreSQL of their own, `make install` installs into it and
# `make installcheck` with pg_regress's --temp-instance starts a server of its
# own, with the settings of test/regress-temp.conf (made by the Makefile: the
# library preloaded and a sealing key), and passes every regression test.
# This also proves that the regression tests pass on a server that preloads
# the library (1.0's failed there).
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
restarts_cluster

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/scen_contrib.XXXXXX")
chmod 755 "$work"
at_exit 'rm -rf "$work"'
plan 4

# the tree as a contributor has it (their own copy; the objects scripts/test built
# come along, with their times, so that make has nothing to compile again)
tar -C "$root" --exclude=.git -cf - . | tar -C "$work" -xpf -
rm -f "$work/test/regress-temp.conf" "$work/test/regress.key"
as_user() { if [ "$(id -u)" = 0 ]; then chown -R postgres: "$work"; runuser -u postgres -- "$@"; else "$@"; fi; }
who=$(as_user id -un)
ok "$([ "$(as_user id -u)" != 0 ] && echo 1)" "the steps run as an ordinary user ($who)"

out=$(as_user bash -c "cd '$work' && scripts/private-pg '$work/pg'" 2>&1)
bin=$work/pg/usr/lib/postgresql/${PGVERSION:-15}/bin
is "$(tail -1 <<<"$out")" "export SP_PGBIN=$bin" "scripts/private-pg makes a PostgreSQL of the user's own"

out=$(as_user bash -c "cd '$work' && make -s -j2 PG_CONFIG='$bin/pg_config' install" 2>&1)
ok "$([ -f "$work/pg/usr/share/postgresql/${PGVERSION:-15}/extension/secpolicy.control" ] && echo 1)" \
   "make install, without root, installs into it" "$(tail -5 <<<"$out")"

out=$(as_user bash -c "cd '$work' && make PG_CONFIG='$bin/pg_config' installcheck EXTRA_REGRESS_OPTS='--temp-instance=$work/regress'" 2>&1)
ok "$(grep -q 'All [0-9]* tests passed' <<<"$out" && grep -q "shared_preload_libraries = 'secpolicy'" "$work/test/regress-temp.conf" && echo 1)" \
   "make installcheck --temp-instance (library preloaded, own key) passes every regression test" \
   "$(grep -E 'FAILED|failed|ERROR' <<<"$out" | head -5)"
finish
