#!/bin/sh
# Writes the dev nginx config: nginx-conf.sh OUT PORT SOCKET RUNDIR
# Used by `make run`, the test harness and bench/, so all run the same config.
# NGINX_WORKERS and NGINX_KEEPALIVE (default 2 and 32) let bench/ mirror the baseline;
# TESSERA_DOCS names the folder /docs is served from (default build/web/docs).
# NGINX_ACCESS_LOG: a file for nginx's own access log (default: none, as
# `make run` and bench/ want it; the console's browser test sets one).
set -eu
[ $# -eq 4 ] || { echo "usage: $0 OUT PORT SOCKET RUNDIR" >&2; exit 2; }
out=$1 port=$2 sock=$3 run=$4
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$run"
access=off
[ -n "${NGINX_ACCESS_LOG:-}" ] && access="$NGINX_ACCESS_LOG tessera_dev"

# The console is served from the checkout, so an edit shows at the next page
# load. nginx's workers (nobody when started as root) must reach it: when a
# folder above it is closed to others, serve a copy from RUNDIR instead.
console=$here/web/console
d=$console
while [ "$d" != / ]; do
    mode=$(stat -c %a "$d")
    case ${mode#"${mode%?}"} in
    1|3|5|7) d=$(dirname "$d") ;;
    *) rm -rf "$run/console"; cp -R "$console" "$run/console"; chmod -R a+rX "$run/console"
       console=$run/console; break ;;
    esac
done

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
sed -e "s|@WORKERS@|${NGINX_WORKERS:-2}|g" -e "s|@KEEPALIVE@|${NGINX_KEEPALIVE:-32}|g" -e "s|@PORT@|$port|g" \
    -e "s|@SOCK@|$sock|g" -e "s|@RUN@|$run|g" -e "s|@NGINX@|$here/nginx|g" -e "s|@CONSOLE@|$console|g" \
    -e "s|@ACCESS_LOG@|$access|g" -e "s|@DOCS@|$run/docs|g" \
    "$here/nginx/dev.conf.in" > "$out"
