#!/usr/bin/env bash
# tools/cert.sh - makes a self-signed certificate for local TLS (make cert).
#
#   tools/cert.sh [DIR] [NAME...]
#
# Writes DIR/cert.pem and DIR/key.pem (DIR defaults to $RUN_DIR/tls, i.e.
# run/tls), an ECDSA P-256 key and a certificate valid for 825 days for
# localhost, 127.0.0.1, ::1 and every extra NAME (a host name or an IP
# address).  Browsers and clients will not trust it unless told to: pass
# DIR/cert.pem as the CA (curl --cacert, NODE_EXTRA_CA_CERTS, ...).  For a
# real certificate, point TLS_CERT and TLS_KEY at it instead (README).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-${RUN_DIR:-run}/tls}
[ $# -gt 0 ] && shift
if ! command -v openssl >/dev/null 2>&1; then
    echo "cert: the openssl command is missing (apt-get install openssl)" >&2
    exit 1
fi
san="DNS:localhost,IP:127.0.0.1,IP:::1"
for name in "$@"; do
    if [[ "$name" =~ ^[0-9.]+$ || "$name" == *:* ]]; then
        san="$san,IP:$name"
    elif [[ "$name" =~ ^[A-Za-z0-9.-]+$ ]]; then
        san="$san,DNS:$name"
    else
        echo "cert: '$name' is neither a host name nor an IP address" >&2
        exit 2
    fi
done
mkdir -p "$DIR"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
    -subj "/CN=localhost/O=MLX Manager (self-signed)" -addext "subjectAltName=$san" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -keyout "$DIR/key.pem.tmp" -out "$DIR/cert.pem.tmp" 2>/dev/null
mv "$DIR/key.pem.tmp" "$DIR/key.pem"
mv "$DIR/cert.pem.tmp" "$DIR/cert.pem"
chmod 644 "$DIR/cert.pem"
echo "cert: wrote $DIR/cert.pem and $DIR/key.pem for $san"
