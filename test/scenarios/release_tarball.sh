#!/usr/bin/env bash
# Scenario: `make dist` builds the release tarball from git (PGXN layout):
# secpolicy-<version>/ with META.json (valid JSON, the version of
# secpolicy.control), the control file, the frozen 1.0 script, the install
# parts and the migration, and nothing that is not in git.
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/scen_dist.XXXXXX")
at_exit 'rm -rf "$work"'
plan 4

if ! git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
    echo "1..0 # SKIP not a git checkout"
    exit 0
fi
version=$(sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" "$root/secpolicy.control")
out=$(make -s -C "$root" dist DISTDIR="$work" 2>&1)
tarball=$work/secpolicy-$version.tar.gz
ok "$([ -s "$tarball" ] && echo 1)" "make dist writes secpolicy-$version.tar.gz" "$out"
list=$(tar -tzf "$tarball" 2>/dev/null)
missing=()
for f in META.json secpolicy.control Makefile README.md CHANGELOG.md versions/secpolicy--1.0.sql \
         src/sql/10_policy.sql "src/upgrade/secpolicy--1.0--$version.sql" scripts/upgrade-script; do
    grep -qx "secpolicy-$version/$f" <<<"$list" || missing+=("$f")
done
is "${missing[*]:-none}" none "it holds META.json, the control file, the frozen 1.0 script, the parts and the migration"
is "$(tar -xzOf "$tarball" "secpolicy-$version/META.json" | perl -MJSON::PP -e 'local $/; my $m = decode_json(<STDIN>); print "$m->{name} $m->{version} $m->{provides}{secpolicy}{version}"')" \
   "secpolicy $version.0 $version.0" "META.json is valid JSON with the version of secpolicy.control"
is "$(grep -c 'regress.key\|\.o$\|\.so$' <<<"$list")" 0 "nothing that git does not hold (no build products, no keys)"
finish
