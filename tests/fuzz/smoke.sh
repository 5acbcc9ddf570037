#!/usr/bin/env bash
# tests/fuzz/smoke.sh BUILD_DIR SECONDS - runs every built fuzz target for a
# short time (CI), starting from the seeds in tests/fuzz/seeds/NAME where
# there are some; long runs are `make fuzz-long` (tests/fuzz/long.sh).
# Prints "N passed, M failed" (one per target).
set -u
dir=${1:-build-fuzz}
secs=${2:-20}
seeds_dir=$(cd "$(dirname "$0")" && pwd)/seeds
pass=0
fail=0
for t in "$dir"/fuzz_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    corpus=$(mktemp -d)
    dirs=("$corpus")
    [ -d "$seeds_dir/$name" ] && dirs+=("$seeds_dir/$name")
    if "$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 "${dirs[@]}" >"$corpus.log" 2>&1; then
        echo "ok   $name ($(grep -o 'Done [0-9]* runs' "$corpus.log" | head -1))"
        pass=$((pass + 1))
    else
        echo "FAIL $name"
        tail -n 40 "$corpus.log"
        fail=$((fail + 1))
    fi
    rm -rf "$corpus" "$corpus.log"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
