#!/usr/bin/env bash
# tests/run.sh - runs every test program and integration test once and ends
# with one line "N passed, M failed" summed over all of them.
#
# Each test prints its own "N passed, M failed" as its last such line; a test
# that dies without printing one counts as one failure.  BUILD selects the
# build folder (build or build-sanitize).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD
total_pass=0
total_fail=0
failed_names=()

run_one() { # name, command...
    local name=$1; shift
    local log
    log=$(mktemp)
    echo "== $name"
    timeout "${TEST_TIMEOUT:-900}" "$@" >"$log" 2>&1
    local rc=$?
    local line
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    if [ -z "$line" ]; then
        cat "$log"
        echo "   (no result line; exit $rc) -> counted as 1 failure"
        total_fail=$((total_fail + 1)); failed_names+=("$name")
    else
        local p f
        p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
        f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
        if [ "$f" -gt 0 ] || [ $rc -ne 0 ]; then
            grep -vE '^ok ' "$log"
            [ "$f" -eq 0 ] && f=1 && echo "   (exit $rc) -> counted as 1 failure"
            failed_names+=("$name")
        else
            echo "   $line"
        fi
        total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
    fi
    rm -f "$log"
}

for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    run_one "$(basename "$t")" "$t"
done
for t in tests/integration/test_*.sh; do
    [ -f "$t" ] || continue
    run_one "$(basename "$t")" bash "$t"
done
for t in tests/integration/test_*.mjs; do
    [ -f "$t" ] || continue
    run_one "$(basename "$t")" node "$t"
done

if [ ${#failed_names[@]} -gt 0 ]; then
    echo "failing: ${failed_names[*]}"
fi
echo "${total_pass} passed, ${total_fail} failed"
[ "$total_fail" -eq 0 ]
