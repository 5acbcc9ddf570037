#!/usr/bin/env bash
# tools/run.sh - starts the daemon and nginx in front of it, prints the URL.
#
# Environment (all optional):
#   PORT (8080), HOST (127.0.0.1)   where nginx listens
#   RUN_DIR (run)                   sockets, pid files, logs, nginx.conf
#   BUILD (build)                   where build/mlx-manager is
#   MLXM_CONFIG                     YAML config for the daemon (default: config.yaml
#                                   in the repository if it exists)
#   DETACH=1                        start both and return (tests); otherwise stay
#                                   in the foreground until Ctrl-C, then stop both
#   TLS=1                           HTTPS (and HTTP/2) on PORT with TLS_CERT and
#                                   TLS_KEY (default RUN_DIR/tls/{cert,key}.pem, made
#                                   self-signed by tools/cert.sh when missing);
#                                   TLS_HSTS=1 adds Strict-Transport-Security
#   CLIENT_TIMEOUT (30s)            nginx's header and body read timeouts (slow clients)
#   MLXM_REQUIRE_API_KEY            1 by default when HOST is not a loopback address:
#                                   every API needs a key (docs/configuration.md)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
PORT=${PORT:-8080}
HOST=${HOST:-127.0.0.1}
BUILD=${BUILD:-build}
RUN_DIR=${RUN_DIR:-run}
mkdir -p "$RUN_DIR/nginx-tmp"
RUN_DIR=$(cd "$RUN_DIR" && pwd)
BIN="$REPO/$BUILD/mlx-manager"
SOCK="$RUN_DIR/mlx-manager.sock"

if [ -f "$RUN_DIR/daemon.pid" ] && kill -0 "$(cat "$RUN_DIR/daemon.pid")" 2>/dev/null; then
    echo "run: already running (pid $(cat "$RUN_DIR/daemon.pid")); use 'make stop' first" >&2
    exit 1
fi
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    echo "run: nginx is not installed (run tools/setup.sh)" >&2
    exit 1
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# Reachable beyond this machine: no API without a key (require_api_key).
case "$HOST" in
127.* | localhost | ::1 | "[::1]") ;;
*)
    export MLXM_REQUIRE_API_KEY=${MLXM_REQUIRE_API_KEY:-1}
    if [ "$MLXM_REQUIRE_API_KEY" = 1 ]; then
        echo "run: HOST $HOST is reachable beyond loopback: API keys are required;" \
            "create one with: $BUILD/mlx-manager keys create NAME --scopes inference,admin" >&2
    fi
    ;;
esac

config_args=()
CONFIG=${MLXM_CONFIG:-}
if [ -z "$CONFIG" ] && [ -f "$REPO/config.yaml" ]; then CONFIG="$REPO/config.yaml"; fi
if [ -n "$CONFIG" ]; then config_args=(--config "$CONFIG"); fi
STATE_DIR=$("$BIN" serve "${config_args[@]}" --listen "$SOCK" --check-config |
    sed -n 's/^state_dir: //p')

# With no model downloaded /v1 still works: a small random-weight model,
# created once, under a name nobody takes for a real one.
DEMO="$STATE_DIR/models/random-demo-NOT-A-REAL-MODEL"
if [ ! -f "$DEMO/config.json" ]; then
    mkdir -p "$STATE_DIR/models"
    "$BIN" mkmodel --arch qwen3 --preset tiny --dtype f32 --out "$DEMO" --force >/dev/null ||
        echo "run: could not create the demo model in $DEMO (continuing without it)" >&2
fi

# nginx started by root would hand its workers to 'nobody', who cannot reach
# the socket or the files here; run them as the invoking user instead.
USER_LINE=""
if [ "$(id -u)" -eq 0 ]; then USER_LINE="user root root;"; fi
if ! [[ "${CLIENT_TIMEOUT:-30s}" =~ ^[0-9]+(ms|s|m)?$ ]]; then
    echo "run: CLIENT_TIMEOUT must look like 30s, 500ms or 2m, not '$CLIENT_TIMEOUT'" >&2
    exit 1
fi

LISTEN="$HOST:$PORT"
TLS_INCLUDE=""
SCHEME=http
CURL_TLS=()
if [ "${TLS:-0}" = 1 ]; then
    TLS_CERT=${TLS_CERT:-$RUN_DIR/tls/cert.pem}
    TLS_KEY=${TLS_KEY:-$RUN_DIR/tls/key.pem}
    if [ ! -f "$TLS_CERT" ] && [ ! -f "$TLS_KEY" ] && [ "$TLS_CERT" = "$RUN_DIR/tls/cert.pem" ]; then
        "$REPO/tools/cert.sh" "$RUN_DIR/tls" >&2
    fi
    for f in "$TLS_CERT" "$TLS_KEY"; do
        if [ ! -r "$f" ]; then
            echo "run: TLS=1 but $f is missing or unreadable (make cert, or set TLS_CERT and TLS_KEY)" >&2
            exit 1
        fi
    done
    HSTS=""
    if [ "${TLS_HSTS:-0}" = 1 ]; then
        HSTS='add_header Strict-Transport-Security "max-age=31536000" always;'
    fi
    sed -e "s|@TLS_CERT@|$TLS_CERT|g" -e "s|@TLS_KEY@|$TLS_KEY|g" -e "s|@HSTS@|$HSTS|g" \
        nginx/tls.conf.in > "$RUN_DIR/tls.conf"
    LISTEN="$HOST:$PORT ssl http2"
    TLS_INCLUDE="include $RUN_DIR/tls.conf;"
    SCHEME=https
    # Only the local liveness probe skips verification (the name may not be $HOST).
    CURL_TLS=(-k)
fi
sed -e "s|@RUN_DIR@|$RUN_DIR|g" \
    -e "s|@STATIC_DIR@|$REPO/static|g" \
    -e "s|@LISTEN@|$LISTEN|g" \
    -e "s|@TLS_INCLUDE@|$TLS_INCLUDE|g" \
    -e "s|@UPSTREAM@|unix:$SOCK|g" \
    -e "s|@USER_LINE@|$USER_LINE|g" \
    -e "s|@MAX_BODY@|1024m|g" \
    -e "s|@CLIENT_TIMEOUT@|${CLIENT_TIMEOUT:-30s}|g" \
    nginx/mlx-manager.conf.in > "$RUN_DIR/nginx.conf"
"$NGINX" -t -q -e "$RUN_DIR/nginx-error.log" -p "$RUN_DIR" -c "$RUN_DIR/nginx.conf"

stop_all() {
    RUN_DIR="$RUN_DIR" "$REPO/tools/stop.sh"
}

# The daemon: logs to the terminal in the foreground, to a file when detached.
if [ "${DETACH:-0}" = 1 ]; then
    "$BIN" serve "${config_args[@]}" --listen "$SOCK" >>"$RUN_DIR/daemon.log" 2>&1 &
else
    "$BIN" serve "${config_args[@]}" --listen "$SOCK" &
fi
DAEMON_PID=$!
echo "$DAEMON_PID" > "$RUN_DIR/daemon.pid"

for _ in $(seq 1 100); do
    [ -S "$SOCK" ] && break
    if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
        echo "run: the daemon exited during startup (see above or $RUN_DIR/daemon.log)" >&2
        rm -f "$RUN_DIR/daemon.pid"
        exit 1
    fi
    sleep 0.1
done
if ! "$NGINX" -e "$RUN_DIR/nginx-error.log" -p "$RUN_DIR" -c "$RUN_DIR/nginx.conf"; then
    echo "run: nginx failed to start (is port $PORT in use? see $RUN_DIR/nginx-error.log)" >&2
    stop_all
    exit 1
fi

URL="$SCHEME://$HOST:$PORT/"
ok=0
for _ in $(seq 1 100); do
    if curl "${CURL_TLS[@]}" -fsS "${URL}api/health" >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.1
done
if [ "$ok" != 1 ]; then
    echo "run: ${URL}api/health did not answer" >&2
    stop_all
    exit 1
fi

echo "MLX Manager is running at $URL"
echo "  OpenAI/Anthropic API: ${URL}v1   dashboard: $URL   stop: make stop (or Ctrl-C)"
if [ "${DETACH:-0}" = 1 ]; then
    exit 0
fi
trap 'stop_all; exit 0' INT TERM
wait "$DAEMON_PID" || true
stop_all
