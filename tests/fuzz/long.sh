#!/usr/bin/env bash
# tests/fuzz/long.sh BUILD_DIR [SECONDS] - the long fuzzing run (make
# fuzz-long): every built target (or those named in FUZZ_TARGETS, e.g.
# "fuzz_openai fuzz_ops") for SECONDS each (default 600), one after the
# other, keeping each target's corpus in BUILD_DIR/corpus/NAME so later runs
# start where this one stopped.  A crash leaves its input as
# BUILD_DIR/crash-* and fails the run.  Prints one line per target with the
# runs done and the corpus size, then "N passed, M failed".
set -u
dir=${1:-build-fuzz}
secs=${2:-600}
pass=0
fail=0
for t in "$dir"/fuzz_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    if [ -n "${FUZZ_TARGETS:-}" ] && [[ " $FUZZ_TARGETS " != *" $name "* ]]; then
        continue
    fi
    corpus="$dir/corpus/$name"
    mkdir -p "$corpus"
    log="$dir/$name.long.log"
    start=$(date +%s)
    if "$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="$dir/crash-$name-" "$corpus" >"$log" 2>&1; then
        runs=$(grep -o 'Done [0-9]* runs' "$log" | tail -1)
        echo "ok   $name: $runs in $(($(date +%s) - start)) s, corpus $(ls "$corpus" | wc -l) inputs"
        pass=$((pass + 1))
    else
        echo "FAIL $name (log: $log)"
        grep -E 'ERROR|SUMMARY|artifact' "$log" | head -n 10
        fail=$((fail + 1))
    fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
