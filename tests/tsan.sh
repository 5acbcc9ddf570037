#!/usr/bin/env bash
# tests/tsan.sh BUILD_DIR TEST... - runs test programs built with
# -fsanitize=thread (make tsan) one after the other.  A program passes when
# its own last "N passed, M failed" line says 0 failed, it exits 0 and
# ThreadSanitizer printed no report.  Each program's log stays in
# BUILD_DIR/tsan-logs/NAME.log; the first lines of every report are printed.
# When BUILD_DIR/mlx-manager is built too, the daemon runs under TSan as well:
# tests/load/load_test.mjs with TSAN_LOAD_CLIENTS (16) streaming clients for
# TSAN_LOAD_SECONDS (60; 0 skips it), which passes here when the daemon log
# has no sanitizer report (its RSS/fd figures are not judged: TSan's shadow
# memory).  Ends with "N passed, M failed" counted in programs.
set -u
cd "$(dirname "$0")/.."
dir=${1:-build-tsan}
shift
mkdir -p "$dir/tsan-logs"
# second_deadlock_stack: both stacks of a lock-order report; exitcode 66 on any report.
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=0 second_deadlock_stack=1 history_size=4 exitcode=66}
# With many bits of mmap randomization (vm.mmap_rnd_bits > 28 on newer kernels)
# TSan's shadow layout fails with "unexpected memory mapping"; run without ASLR then.
norand=()
if command -v setarch >/dev/null && [ "$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 28)" -gt 28 ]; then
    norand=(setarch "$(uname -m)" -R)
fi
pass=0
fail=0
for name in "$@"; do
    t="$dir/tests/$name"
    log="$dir/tsan-logs/$name.log"
    if [ ! -x "$t" ]; then
        echo "FAIL $name: $t not built"
        fail=$((fail + 1))
        continue
    fi
    start=$(date +%s)
    timeout "${TEST_TIMEOUT:-900}" "${norand[@]}" "$t" >"$log" 2>&1
    rc=$?
    secs=$(($(date +%s) - start))
    reports=$(grep -c '^WARNING: ThreadSanitizer' "$log")
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    failed=$(echo "$line" | sed -nE 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/p')
    if [ "$rc" -eq 0 ] && [ "$reports" -eq 0 ] && [ "${failed:-1}" -eq 0 ]; then
        echo "ok   $name: ${line:-?} in $secs s, no TSan reports"
        pass=$((pass + 1))
    else
        echo "FAIL $name: ${line:-no result line}, exit $rc, $reports TSan reports in $secs s (log: $log)"
        grep -E '^WARNING: ThreadSanitizer|^SUMMARY: ThreadSanitizer|^FAIL|FATAL' "$log" | sort | uniq -c | head -n 20
        fail=$((fail + 1))
    fi
done
load_secs=${TSAN_LOAD_SECONDS:-60}
if [ -x "$dir/mlx-manager" ] && [ "$load_secs" -gt 0 ]; then
    log="$dir/tsan-logs/daemon-load.log"
    start=$(date +%s)
    BUILD=$dir LOAD_CLIENTS=${TSAN_LOAD_CLIENTS:-16} LOAD_SECONDS=$load_secs \
        timeout $((load_secs + 300)) node tests/load/load_test.mjs >"$log" 2>&1
    secs=$(($(date +%s) - start))
    figures=$(grep -m1 '^load: ' "$log" | cut -c1-160)
    if grep -q '^ok   no sanitizer reports or errors in the daemon log' "$log"; then
        echo "ok   daemon under load: no TSan reports in $secs s ($figures)"
        pass=$((pass + 1))
    else
        echo "FAIL daemon under load: $secs s (log: $log)"
        grep -E 'no sanitizer reports|no exception' "$log" | cut -c1-600
        fail=$((fail + 1))
    fi
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
