#!/bin/sh
# Writes the dev nginx config: nginx-conf.sh OUT PORT SOCKET RUNDIR
# Used by `make run`, the test harness and bench/, so all run the same config.
# NGINX_WORKERS and NGINX_KEEPALIVE (default 2 and 32) let bench/ mirror the baseline;
# TESSERA_DOCS names the folder /docs is served from (default build/web/docs).
set -eu
[ $# -eq 4 ] || { echo "usage: $0 OUT PORT SOCKET RUNDIR" >&2; exit 2; }
out=$1 port=$2 sock=$3 run=$4
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$run"
# GET /docs: a copy of the vendored page (TESSERA_DOCS, default build/web/docs,
# made by `make docs`) under RUNDIR, which nginx's workers can read whoever
# owns the checkout
docs=${TESSERA_DOCS:-$here/build/web/docs}
rm -rf "$run/docs"
mkdir -p "$run/docs"
if [ -f "$docs/index.html" ]; then
    cp -R "$docs/." "$run/docs/"
    chmod -R a+rX "$run/docs"
else
    echo "nginx-conf.sh: no $docs/index.html (make docs): /docs answers 404" >&2
fi
sed -e "s|@WORKERS@|${NGINX_WORKERS:-2}|g" -e "s|@KEEPALIVE@|${NGINX_KEEPALIVE:-32}|g" -e "s|@PORT@|$port|g" -e "s|@SOCK@|$sock|g" -e "s|@RUN@|$run|g" -e "s|@NGINX@|$here/nginx|g" \
    -e "s|@DOCS@|$run/docs|g" \
    "$here/nginx/dev.conf.in" > "$out"
