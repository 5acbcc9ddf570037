#!/usr/bin/env bash
# tools/stop.sh - stops the daemon and nginx that tools/run.sh started in RUN_DIR.
# The daemon gets SIGTERM (it finishes in-flight requests); nginx gets a
# graceful quit.  Each is given a bounded time before it is killed.
set -u
cd "$(dirname "$0")/.."
RUN_DIR=${RUN_DIR:-run}
[ -d "$RUN_DIR" ] || exit 0

stop_pid() { # pidfile, signal, name
    local file=$1 sig=$2 name=$3
    [ -f "$file" ] || return 0
    local pid
    pid=$(cat "$file")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "-$sig" "$pid" 2>/dev/null
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "stop: $name (pid $pid) did not stop in 10 s; killing it" >&2
            kill -KILL "$pid" 2>/dev/null
        fi
    fi
    rm -f "$file"
}

stop_pid "$RUN_DIR/nginx.pid" QUIT nginx
stop_pid "$RUN_DIR/daemon.pid" TERM daemon
