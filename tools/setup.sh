#!/bin/sh
# tools/setup.sh - installs the Debian/Ubuntu packages MLX Manager needs to
# build, run and test.  Idempotent: it installs only what is missing, so
# `make run` and `make check` call it every time at almost no cost.
set -eu

# Build toolchain, the libraries the daemon links, nginx (runs in front of
# the daemon), curl (scripts and tests), Node.js (test clients and browser
# tests), Chromium (dashboard tests), clang (fuzz targets) and prometheus
# (promtool checks the /metrics exposition).
PACKAGES="make gcc clang libclang-rt-14-dev pkg-config ca-certificates
  libfcgi-dev libcjson-dev libsqlite3-dev libyaml-dev libcurl4-openssl-dev
  libpcre2-dev libutf8proc-dev libssl-dev nginx curl procps chromium prometheus"
# `tools/setup.sh --reference` (make bench-reference) adds what building
# llama.cpp, the engine that benchmark compares with, takes: CMake, a C++
# compiler and git.
if [ "${1:-}" = "--reference" ]; then
    PACKAGES="$PACKAGES cmake g++ git"
fi

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
# A Node.js already on the PATH (from NodeSource, nvm, ...) is fine too.
if ! command -v node >/dev/null 2>&1; then
    missing="$missing nodejs npm"
fi

if [ -n "$missing" ]; then
    echo "setup: installing:$missing"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            SUDO="sudo"
        else
            echo "setup: need root (or sudo) to install:$missing" >&2
            exit 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

# The test clients from npm (tests/package.json, pinned by its lock file).
# Reinstalled only when the lock file changed since the last install.
here=$(cd "$(dirname "$0")/.." && pwd)
stamp="$here/tests/node_modules/.installed-lock"
if [ ! -f "$stamp" ] || ! cmp -s "$here/tests/package-lock.json" "$stamp"; then
    echo "setup: installing the test clients from npm (tests/package.json)"
    (cd "$here/tests" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$here/tests/package-lock.json" "$stamp"
fi
