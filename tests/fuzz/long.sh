#!/usr/bin/env bash
# tests/fuzz/long.sh BUILD_DIR [SECONDS] - the long fuzzing run (make
# fuzz-long): every built target (or those named in FUZZ_TARGETS, e.g.
# "fuzz_openai fuzz_ops") for SECONDS each (default 600, wall clock),
# FUZZ_JOBS targets at a time (default 1), keeping each target's corpus in
# BUILD_DIR/corpus/NAME so later runs start where this one stopped (the
# corpus lives under the git-ignored build directory, never in git).  A crash
# leaves its input as BUILD_DIR/crash-NAME-* and fails the run.  Prints one
# line per target (seconds, executions, corpus size, crash files) as each
# finishes, writes the same lines to BUILD_DIR/fuzz-long.txt, then
# "N passed, M failed".
set -u
dir=${1:-build-fuzz}
secs=${2:-600}
jobs=${FUZZ_JOBS:-1}
unit_timeout=${FUZZ_TIMEOUT:-60}
seeds_dir=$(cd "$(dirname "$0")" && pwd)/seeds
case "$jobs" in '' | *[!0-9]* | 0) jobs=1 ;; esac
summary="$dir/fuzz-long.txt"
: >"$summary"

# run_one NAME: fuzz one target and write its result line to BUILD_DIR/NAME.result
# ("ok ..." or "FAIL ...").  Runs in a subshell so several can run at once.
run_one() {
    local name=$1 t="$dir/long-bin/$1"
    local corpus="$dir/corpus/$name" log="$dir/$name.long.log"
    mkdir -p "$corpus"
    local start end rc runs crashes cov dirs=("$corpus")
    [ -d "$seeds_dir/$name" ] && dirs+=("$seeds_dir/$name")
    start=$(date +%s)
    "$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout="$unit_timeout" -print_final_stats=1 \
        -artifact_prefix="$dir/crash-$name-" "${dirs[@]}" >"$log" 2>&1
    rc=$?
    end=$(date +%s)
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
    [ -n "$runs" ] || runs=$(grep -o 'Done [0-9]* runs' "$log" | tail -1 | grep -o '[0-9]*')
    crashes=$(find "$dir" -maxdepth 1 -name "crash-$name-*" ! -name "*slow-unit-*" \
        -newer "$log.start" 2>/dev/null | wc -l)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
    local line
    line=$(printf '%s: %d s, %s executions, corpus %d inputs, cov %s, %d crash files' \
        "$name" $((end - start)) "${runs:-?}" "$(find "$corpus" -type f | wc -l)" "${cov:-?}" "$crashes")
    if [ "$rc" -eq 0 ] && [ "$crashes" -eq 0 ]; then
        echo "ok   $line" >"$dir/$name.result"
    else
        {
            echo "FAIL $line (exit $rc, log: $log)"
            grep -E 'ERROR|SUMMARY|artifact' "$log" | head -n 10
        } >"$dir/$name.result"
    fi
}

# report NAME: print a finished target's result and count it.
pass=0
fail=0
report() {
    local r="$dir/$1.result"
    if [ -f "$r" ]; then
        cat "$r" | tee -a "$summary"
        if head -c 2 "$r" | grep -q ok; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
        rm -f "$r" "$dir/$1.long.log.start"
    else
        echo "FAIL $1: no result (killed?)" | tee -a "$summary"
        fail=$((fail + 1))
    fi
}

names=()
for t in "$dir"/fuzz_*; do
    [ -x "$t" ] && [ -f "$t" ] || continue
    name=$(basename "$t")
    if [ -n "${FUZZ_TARGETS:-}" ] && [[ " $FUZZ_TARGETS " != *" $name "* ]]; then
        continue
    fi
    names+=("$name")
done
mkdir -p "$dir/long-bin"
for name in "${names[@]}"; do
    cp "$dir/$name" "$dir/long-bin/$name.tmp" && mv "$dir/long-bin/$name.tmp" "$dir/long-bin/$name"
done
echo "fuzz-long: ${#names[@]} targets, $secs s each, $jobs at a time ($(date -u +%H:%M:%S) UTC)" | tee -a "$summary"

declare -A running=() # pid -> name
trap 'for p in "${!running[@]}"; do kill "$p" 2>/dev/null; done' INT TERM
next=0
# Each iteration starts one target or reaps one; bounded by twice the targets.
for ((step = 0; step < 2 * ${#names[@]} + 2; step++)); do
    if [ "$next" -lt "${#names[@]}" ] && [ "${#running[@]}" -lt "$jobs" ]; then
        name=${names[$next]}
        next=$((next + 1))
        rm -f "$dir/$name.result"
        touch "$dir/$name.long.log.start"
        run_one "$name" &
        running[$!]=$name
        continue
    fi
    [ "${#running[@]}" -gt 0 ] || break
    wait -n -p done_pid "${!running[@]}"
    report "${running[$done_pid]}"
    unset "running[$done_pid]"
done
echo "$pass passed, $fail failed" | tee -a "$summary"
[ "$fail" -eq 0 ]
