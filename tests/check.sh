#!/usr/bin/env bash
# tests/check.sh - every test, the way CI runs them: the suite on the normal
# build, the suite again on the address+undefined sanitizer build, a short
# run of each fuzz target, and the format check.  Ends with one line
# "N passed, M failed" summed over all of it.
set -u
cd "$(dirname "$0")/.."
total_pass=0
total_fail=0

stage() { # name, command...
    local name=$1; shift
    echo "=== $name"
    local log
    log=$(mktemp)
    "$@" 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    local line
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    rm -f "$log"
    if [ -z "$line" ]; then
        total_fail=$((total_fail + 1))
        echo "   ($name printed no result; exit $rc) -> counted as 1 failure"
        return
    fi
    local p f
    p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

stage "tests (normal build)" env BUILD=build tests/run.sh
stage "tests (address,undefined sanitizers)" env BUILD=build-sanitize tests/run.sh
stage "fuzz smoke" bash -c 'make --no-print-directory -j2 fuzz >/dev/null && tests/fuzz/smoke.sh build-fuzz "${FUZZ_SECONDS:-15}"'
stage "format" bash -c 'if make --no-print-directory format-check; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; fi'

echo "${total_pass} passed, ${total_fail} failed"
[ "$total_fail" -eq 0 ]
