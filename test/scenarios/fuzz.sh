#!/usr/bin/env bash
# Scenario: a one-minute slice of the SQL-level fuzzer (scripts/fuzz, harness
# in test/fuzz/), and the fuzzer's own detectors.
#   1. a 60-second run over a UTF-8, a SQL_ASCII and a LATIN1 database with
#      the library preloaded: no crash, no SQLSTATE or status that the
#      documentation does not give, no hang, no harness error, every target
#      called (every C function of schema secpolicy, both trigger functions,
#      every end-user flow);
#   2. the detectors can fail: a C function of schema secpolicy without a
#      fuzz target stops the run; a deliberate segfault (a C function called
#      with the wrong argument type) is reported as a crash with its
#      statement, and a deliberate division by zero as an undocumented
#      SQLSTATE, and the run fails.
# The seed is fixed (SP_FUZZ_SEED overrides it) so that CI is repeatable;
# `scripts/fuzz --seconds 3600` fuzzes longer with a random one.  Each run
# starts its own throwaway cluster (scripts/fuzz), built by scripts/test
# already (--no-build).
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
seed=${SP_FUZZ_SEED:-20261204}
out=$(mktemp -d "${TMPDIR:-/tmp}/secpolicy-fuzz-scenario.XXXXXX")
at_exit "rm -rf $(printf %q "$out")"

# the value of KEY in a run's result file
result() { sed -n "s/^$2=//p" "$out/$1/result"; }

plan 12

# ---- 1. the one-minute slice -----------------------------------------------------

"$root/scripts/fuzz" --no-build --seconds 60 --seed "$seed" --out "$out/slice" >"$out/slice.log" 2>&1
rc=$?
if [ -f "$out/slice/result" ]; then
    pass "the fuzzer ran to its report (seed $seed, $(result slice calls) calls in $(result slice seconds)s)"
else
    fail "the fuzzer ran to its report" "$(tail -20 "$out/slice.log")"
    finish
fi
is "$(result slice crashes)/$(result slice server_crashes)/$(result slice stuck)" "0/0/0" "no crash, no stuck backend"
is "$(result slice undocumented)" 0 "no SQLSTATE or status the documentation does not give"
is "$(result slice hangs)" 0 "no case hit statement_timeout"
is "$(result slice generator_errors)" 0 "no error in the harness's own generators"
is "$(result slice never_called)" 0 "every target was called (every C function, trigger function and flow)"
is "$rc" 0 "scripts/fuzz exits 0"
if [ "$rc" != 0 ]; then
    echo "# seed $seed; the report:"
    sed -n '/^== findings/,$p' "$out/slice.log" | head -80 | sed 's/^/#   /'
fi

# ---- 2. the detectors ----------------------------------------------------------

"$root/scripts/fuzz" --no-build --cases 5 --seed "$seed" --databases utf8 --inject missing \
    --out "$out/missing" >"$out/missing.log" 2>&1
rc=$?
ok "$([ $rc != 0 ] && grep -q 'no fuzz target for C function secpolicy.fuzz_probe()' "$out/missing.log" && echo 1)" \
    "a C function without a fuzz target stops the run and is named" "exit $rc" "$(tail -3 "$out/missing.log")"

"$root/scripts/fuzz" --no-build --cases 8 --seed "$seed" --databases utf8 --inject crash,error \
    --out "$out/inject" >"$out/inject.log" 2>&1
rc=$?
is "$rc" 1 "a run with a crash and an undocumented SQLSTATE fails"
is "$(result inject crashes)" 1 "the deliberate segfault is reported as one crash"
ok "$(grep -A1 '^statement:' "$out/inject/crashes.txt" | grep -q 'SELECT fuzz.boom(1)' && echo 1)" \
    "the crash report names the statement that crashed" "$(head -5 "$out/inject/crashes.txt")"
ok "$(grep -q 'undocumented_sqlstate: !injected: undocumented error 22012' "$out/inject/findings.txt" && echo 1)" \
    "the division by zero is reported as an undocumented SQLSTATE" "$(head -5 "$out/inject/findings.txt")"

finish
