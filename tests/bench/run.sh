#!/usr/bin/env bash
# tests/bench/run.sh - runs every benchmark program (build/bench/bench_*).
# Benchmarks print numbers; they never pass or fail on speed.  Extra
# arguments go to every compiled program.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
export MLXM_SHARED=${MLXM_SHARED:-$(cd .. && pwd)/shared}
status=0
for b in "$BUILD"/bench/bench_*; do
    [ -x "$b" ] || continue
    echo "=== $(basename "$b")"
    "$b" "$@" || status=1
done
# Node benchmarks drive the real nginx + daemon; SERVING_ARGS (e.g.
# --quick or --full) goes to them.
for b in tests/bench/bench_*.mjs; do
    [ -f "$b" ] || continue
    echo "=== $(basename "$b")"
    BUILD=$BUILD node "$b" ${SERVING_ARGS:-} || status=1
done
exit $status
