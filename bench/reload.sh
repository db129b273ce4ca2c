#!/usr/bin/env bash
# Reload under load (issue 3's acceptance): wrk on GET /healthz for SECS
# seconds with `tessera reload` at each second of RELOAD_AT, through the same
# nginx shape as bench/run.sh (1 nginx worker, 16 kept upstream connections,
# so with 32 clients nginx also opens and closes connections all along).
# Every reload replaces every worker; the figure that matters is 0 non-2xx
# and 0 socket errors.
# Usage: bench/reload.sh BUILD   env: SECS=10 CONNS=32 RELOAD_AT="3 6"
# Prints the wrk report on stderr and one line on stdout:
#   requests=N rps=N non2xx=N socket_errors=N reloads=N generation=N pids_before=… pids_after=…
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs=${SECS:-10} conns=${CONNS:-32} reload_at=${RELOAD_AT:-3 6}
T=$(mktemp -d /tmp/tessera-reload.XXXXXX); chmod 755 "$T"
fleet_pid= nginx_pid=
cleanup() {
    [ -n "$nginx_pid" ] && kill -QUIT "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null || true
    [ -n "$fleet_pid" ] && kill -TERM "$fleet_pid" 2>/dev/null && wait "$fleet_pid" 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT

p=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
export TESSERA_CONFIG=/dev/null TESSERA_ENV=develop TESSERA_FLEET_LISTEN=$T/tessera.sock TESSERA_FLEET_CONTROL=$T/control.sock \
       TESSERA_FLEET_PID_FILE=$T/tessera.pid TESSERA_FLEET_WORKERS=${TESSERA_FLEET_WORKERS:-2} \
       TESSERA_AUTH_SIGNING_KEY=$T/keys/jwt.pem TESSERA_CRYPTO_DATA_KEY=$T/keys/data.key
"$build/tessera" keygen >/dev/null
NGINX_WORKERS=1 NGINX_KEEPALIVE=16 packaging/nginx-conf.sh "$T/nginx.conf" "$p" "$T/tessera.sock" "$T/nginx"
"$build/tessera" fleet 2>"$T/fleet.log" & fleet_pid=$!
nginx -c "$T/nginx.conf" & nginx_pid=$!
url=http://127.0.0.1:$p
for _ in $(seq 1 100); do curl -fs -m 2 "$url/healthz" >/dev/null && break; sleep 0.05; done
curl -fs -m 2 "$url/healthz" >/dev/null || { echo "bench/reload: tessera did not start" >&2; exit 1; }

pids() { "$build/tessera" status --json | jq -c '[.slots[] | select(.state != "retiring") | .pid] | sort'; }
before=$(pids)
wrk -t1 -c"$conns" -d"${secs}s" "$url/healthz" >"$T/wrk.out" 2>&1 & w=$!
t=0 n=0
for at in $reload_at; do
    sleep $((at - t)); t=$at
    "$build/tessera" reload >/dev/null && n=$((n + 1))
done
wait "$w"
sleep 0.5
after=$(pids)
cat "$T/wrk.out" >&2
awk -v n="$n" -v gen="$("$build/tessera" status --json | jq .generation)" -v b="$before" -v a="$after" '
    / requests in / { req = $1 }
    /Requests\/sec/ { rps = $2 }
    /Non-2xx or 3xx responses:/ { bad = $NF }
    /Socket errors:/ { gsub(",", ""); err = $4 + $6 + $8 + $10 }
    END { printf "requests=%d rps=%s non2xx=%d socket_errors=%d reloads=%d generation=%d pids_before=%s pids_after=%s\n",
                 req, rps, bad, err, n, gen, b, a }' "$T/wrk.out"
