#!/usr/bin/env bash
# tests/bench/run.sh - runs every benchmark program once and shows what it
# prints.  Benchmarks report numbers; they never pass or fail on timing.
# BUILD selects the build folder (build by default).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
rc=0
for b in "$BUILD"/bench/bench_*; do
    [ -x "$b" ] || continue
    echo "== $(basename "$b")"
    "$b" || rc=1
done
exit $rc
