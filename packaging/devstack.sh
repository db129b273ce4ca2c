#!/usr/bin/env bash
# `make run`: the fleet (memory engine, dev seed and the CRM demo) and nginx in the foreground on
# http://127.0.0.1:${PORT:-8080}. Ctrl-C stops both and leaves no process behind.
# Every run-time file lives under BUILD/run, so it works as root or as anyone.
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
port=${PORT:-8080}
run=$root/$build/run
mkdir -p "$run"

export TESSERA_ENV=${TESSERA_ENV:-develop}
# the dev stack never reads an installed package's /etc/tessera/tessera.conf
export TESSERA_CONFIG=${TESSERA_CONFIG:-/dev/null}
export TESSERA_FLEET_LISTEN=$run/tessera.sock
export TESSERA_FLEET_CONTROL=$run/control.sock
export TESSERA_FLEET_PID_FILE=$run/tessera.pid

packaging/nginx-conf.sh "$run/nginx.conf" "$port" "$TESSERA_FLEET_LISTEN" "$run"

fleet_pid= nginx_pid=
stop() {
    trap - INT TERM EXIT
    [ -n "$nginx_pid" ] && kill -QUIT "$nginx_pid" 2>/dev/null || true
    [ -n "$fleet_pid" ] && kill -TERM "$fleet_pid" 2>/dev/null || true
    [ -n "$nginx_pid" ] && wait "$nginx_pid" 2>/dev/null || true
    [ -n "$fleet_pid" ] && wait "$fleet_pid" 2>/dev/null || true
    echo "tessera: stopped" >&2
}
trap stop INT TERM EXIT

"$build/tessera" keygen >/dev/null   # build/keys/: dev signing and data keys, kept across runs
"$build/tessera" fleet --seed seed/dev --seed seed/demo &
fleet_pid=$!
for _ in $(seq 1 100); do
    [ -S "$TESSERA_FLEET_LISTEN" ] && break
    kill -0 "$fleet_pid" 2>/dev/null || { echo "tessera: the fleet did not start" >&2; exit 1; }
    sleep 0.05
done
nginx -c "$run/nginx.conf" &
nginx_pid=$!
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    kill -0 "$nginx_pid" 2>/dev/null || { echo "tessera: nginx did not start (see $run/nginx-error.log)" >&2; exit 1; }
    sleep 0.05
done
echo "tessera: serving on http://127.0.0.1:$port  (status: $build/tessera status; Ctrl-C stops)" >&2
# Whichever exits first takes the other down with it.
wait -n "$fleet_pid" "$nginx_pid" || true
