#!/usr/bin/env bash
# `make run`: the fleet (memory engine, dev seed and the CRM demo) and nginx in the foreground on
# http://127.0.0.1:${PORT:-8080}. Ctrl-C stops both and leaves no process behind.
# The fleet's files live under BUILD/run (so `build/tessera status` finds its
# control socket); what nginx's workers must reach (the FastCGI socket, their
# temporary files) lives in a folder of its own under /tmp that they can
# traverse, since as root they run as nobody and a checkout may sit in a
# folder only its owner can enter. It exits non-zero, saying why, whenever it
# cannot serve (the port taken, a part that did not start or stopped).
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
port=${PORT:-8080}
run=$root/$build/run
mkdir -p "$run"
if ! python3 -c 'import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null; then
    echo "tessera: port $port on 127.0.0.1 is taken (another make run?); PORT=NNNN make run picks another" >&2
    exit 1
fi
web=$(mktemp -d /tmp/tessera-dev.XXXXXX)
chmod 755 "$web"

export TESSERA_ENV=${TESSERA_ENV:-develop}
# the dev stack never reads an installed package's /etc/tessera/tessera.conf
export TESSERA_CONFIG=${TESSERA_CONFIG:-/dev/null}
# a browser app on a dev server (any port of localhost) may call the API (README: CORS)
export TESSERA_HTTP_CORS_ORIGINS=${TESSERA_HTTP_CORS_ORIGINS-http://localhost:* http://127.0.0.1:*}
# the account lifecycle's reset and verification tokens in the log, to try the flows
export TESSERA_AUTH_LOG_TOKENS=${TESSERA_AUTH_LOG_TOKENS:-on}
export TESSERA_FLEET_LISTEN=$web/tessera.sock
export TESSERA_FLEET_CONTROL=$run/control.sock
export TESSERA_FLEET_PID_FILE=$run/tessera.pid

TESSERA_DOCS=$build/web/docs packaging/nginx-conf.sh "$web/nginx.conf" "$port" "$TESSERA_FLEET_LISTEN" "$web"

fleet_pid= nginx_pid=
stop() {
    trap - INT TERM EXIT
    [ -n "$nginx_pid" ] && kill -QUIT "$nginx_pid" 2>/dev/null || true
    [ -n "$fleet_pid" ] && kill -TERM "$fleet_pid" 2>/dev/null || true
    [ -n "$nginx_pid" ] && wait "$nginx_pid" 2>/dev/null || true
    [ -n "$fleet_pid" ] && wait "$fleet_pid" 2>/dev/null || true
    rm -rf "$web"
    echo "tessera: stopped" >&2
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

"$build/tessera" keygen >/dev/null   # build/keys/: dev signing and data keys, kept across runs
"$build/tessera" fleet --seed seed/dev --seed seed/demo &
fleet_pid=$!
for _ in $(seq 1 100); do
    [ -S "$TESSERA_FLEET_LISTEN" ] && break
    kill -0 "$fleet_pid" 2>/dev/null || { echo "tessera: the fleet did not start" >&2; exit 1; }
    sleep 0.05
done
nginx -c "$web/nginx.conf" 2>"$run/nginx.out" &
nginx_pid=$!
served=
for _ in $(seq 1 200); do
    kill -0 "$nginx_pid" 2>/dev/null || break
    kill -0 "$fleet_pid" 2>/dev/null || break
    # through nginx to a worker: the whole path a request takes
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz")" = 200 ] && { served=1; break; }
    sleep 0.05
done
if [ -z "$served" ]; then
    echo "tessera: not serving on http://127.0.0.1:$port: $(tail -3 "$web/nginx-error.log" "$run/nginx.out" 2>/dev/null | grep -v '^==' | tr -s '\n' ' ')" >&2
    exit 1
fi
echo "tessera: serving on http://127.0.0.1:$port  (status: $build/tessera status; Ctrl-C stops)" >&2
# Whichever exits first takes the other down with it; only Ctrl-C is a clean stop.
wait -n "$fleet_pid" "$nginx_pid" || true
echo "tessera: $( kill -0 "$nginx_pid" 2>/dev/null && echo "the fleet" || echo nginx) stopped unexpectedly" >&2
exit 1
