#!/bin/sh
# Writes the dev nginx config: nginx-conf.sh OUT PORT SOCKET RUNDIR
# Used by `make run`, the test harness and bench/, so all run the same config.
# NGINX_WORKERS and NGINX_KEEPALIVE (default 2 and 32) let bench/ mirror the baseline.
set -eu
[ $# -eq 4 ] || { echo "usage: $0 OUT PORT SOCKET RUNDIR" >&2; exit 2; }
out=$1 port=$2 sock=$3 run=$4
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$run"
sed -e "s|@WORKERS@|${NGINX_WORKERS:-2}|g" -e "s|@KEEPALIVE@|${NGINX_KEEPALIVE:-32}|g" -e "s|@PORT@|$port|g" -e "s|@SOCK@|$sock|g" -e "s|@RUN@|$run|g" -e "s|@NGINX@|$here/nginx|g" \
    "$here/nginx/dev.conf.in" > "$out"
