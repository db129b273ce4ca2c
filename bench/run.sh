#!/usr/bin/env bash
# make bench: tessera against the floor of ../shared/baseline, in the same run
# and with the same wrk settings (1 thread, CONNS connections, SECS seconds).
# Each scenario runs RUNS times; the table shows medians and the ratio to the
# baseline's `mux` case (one fcgi2 worker loop polling kept connections).
# Then bench/reload.sh: a 10-second wrk run with two rolling reloads, appended.
# Usage: bench/run.sh BUILD   env: RUNS=3 SECS=8 CONNS=32 RELOAD_SECS=10
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
runs=${RUNS:-3} secs=${SECS:-8} conns=${CONNS:-32}
baseline=$root/../shared/baseline
[ -x "$baseline/run.sh" ] || [ -f "$baseline/run.sh" ] || { echo "bench: no $baseline/run.sh" >&2; exit 1; }
out=$root/bench/results/latest.md
T=$(mktemp -d /tmp/tessera-bench.XXXXXX); chmod 755 "$T"
fleet_pid= nginx_pid=
CLEANUP_HOOKS=()    # tests/integration/pg.sh's servers, for the postgres scenarios
cleanup() {
    for h in "${CLEANUP_HOOKS[@]}"; do eval "$h" || true; done
    [ -n "$nginx_pid" ] && kill -QUIT "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null || true
    [ -n "$fleet_pid" ] && kill -TERM "$fleet_pid" 2>/dev/null && wait "$fleet_pid" 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# to_ms "1.23ms" → 1.23 ; wrk prints us, ms or s
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# Starts the release build behind the same nginx shape as the baseline's (1 nginx worker).
start_tessera() {
    local p; p=$(port)
    export TESSERA_CONFIG=/dev/null TESSERA_ENV=develop TESSERA_FLEET_LISTEN=$T/tessera.sock TESSERA_FLEET_CONTROL=$T/control.sock \
           TESSERA_FLEET_PID_FILE=$T/tessera.pid TESSERA_FLEET_WORKERS=2 \
           TESSERA_AUTH_SIGNING_KEY=$T/keys/jwt.pem TESSERA_CRYPTO_DATA_KEY=$T/keys/data.key
    "$build/tessera" keygen >/dev/null
    NGINX_WORKERS=1 NGINX_KEEPALIVE=16 packaging/nginx-conf.sh "$T/nginx.conf" "$p" "$T/tessera.sock" "$T/nginx"
    "$build/tessera" fleet --seed seed/dev 2>"$T/fleet.log" & fleet_pid=$!
    nginx -c "$T/nginx.conf" & nginx_pid=$!
    URL=http://127.0.0.1:$p
    for _ in $(seq 1 100); do curl -fs -m 2 "$URL/healthz" >/dev/null && return 0; sleep 0.05; done
    echo "bench: tessera did not start" >&2; exit 1
}

# wrk one scenario; prints "rps p50ms p99ms non2xx"
wrk_case() { # path [header]
    local o; o=$(wrk -t1 -c"$conns" -d"${secs}s" --latency ${2:+-H "$2"} "$URL$1")
    printf '%s %s %s %s\n' "$(awk '/Requests\/sec/ {print $2}' <<<"$o")" \
        "$(to_ms "$(awk '$1=="50%" {print $2}' <<<"$o")")" "$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$o")")" \
        "$(awk '/Non-2xx/ {print $NF}' <<<"$o" | grep . || echo 0)"
}

start_tessera
# an authenticated read: bearer → blacklist → JWT (cached after the first) → role → org
token=$(curl -fs -m 5 -H 'Content-Type: application/json' \
    -d '{"email":"admin@example.com","password":"tessera-dev"}' "$URL/v1/auth/login" | jq -r .access_token)
declare -A res
for i in $(seq 1 "$runs"); do
    echo "bench: run $i/$runs: baseline mux" >&2
    line=$(ONLY=mux bash "$baseline/run.sh" "$secs" "$conns" | awk '$1 == "mux"')
    read -r _ rps _ _ p50 _ p99 _ _ <<<"$line"
    res[mux]+="$rps $(to_ms "$p50") $(to_ms "$p99") 0"$'\n'
    echo "bench: run $i/$runs: tessera /healthz" >&2
    res[healthz]+="$(wrk_case /healthz)"$'\n'
    echo "bench: run $i/$runs: tessera GET /v1/auth/me (JWT)" >&2
    res[me]+="$(wrk_case /v1/auth/me "Authorization: Bearer $token")"$'\n'
    echo "bench: run $i/$runs: tessera GET /v1/orgs/current (JWT)" >&2
    res[org]+="$(wrk_case /v1/orgs/current "Authorization: Bearer $token")"$'\n'
done

# The same authenticated reads on engine = postgres (+ Redis for the blacklist):
# a scratch cluster in $T, as the test harness makes one (tests/integration/pg.sh).
echo "bench: switching the fleet to engine = postgres" >&2
kill -TERM "$fleet_pid"; wait "$fleet_pid" 2>/dev/null || true; fleet_pid=
free_port() { port; }
wait_until() { local d=$((SECONDS + $1)); shift; until "$@" >/dev/null 2>&1; do [ $SECONDS -ge $d ] && return 1; sleep 0.1; done; }
ROOT=$root TESSERA=$build/tessera
set +u; . tests/integration/pg.sh; set -u
pg_up >/dev/null && redis_up || { echo "bench: postgres or redis did not start" >&2; exit 1; }
TESSERA_DB_MIGRATE_DSN=$PG_OWNER_DSN TESSERA_DB_SQL_DIR=$root/sql "$build/tessera" migrate >/dev/null
TESSERA_ENGINE=postgres TESSERA_DB_CORE_DSN=$PG_APP_DSN "$build/tessera" seed seed/dev >/dev/null
TESSERA_ENGINE=postgres TESSERA_DB_CORE_DSN=$PG_APP_DSN TESSERA_REDIS_URL=$REDIS_URL TESSERA_DB_PREPARE=on \
    "$build/tessera" fleet 2>>"$T/fleet.log" & fleet_pid=$!
for _ in $(seq 1 100); do curl -fs -m 2 "$URL/healthz" >/dev/null && break; sleep 0.05; done
token=$(curl -fs -m 5 -H 'Content-Type: application/json' \
    -d '{"email":"admin@example.com","password":"tessera-dev"}' "$URL/v1/auth/login" | jq -r .access_token)
for i in $(seq 1 "$runs"); do
    echo "bench: run $i/$runs: postgres GET /v1/auth/me, /v1/orgs/current" >&2
    res[me_pg]+="$(wrk_case /v1/auth/me "Authorization: Bearer $token")"$'\n'
    res[org_pg]+="$(wrk_case /v1/orgs/current "Authorization: Bearer $token")"$'\n'
done
kill -TERM "$fleet_pid"; wait "$fleet_pid" 2>/dev/null || true; fleet_pid=
for h in "${CLEANUP_HOOKS[@]}"; do eval "$h" || true; done
CLEANUP_HOOKS=()

{
    echo "# tessera bench — $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "\`make bench\` (bench/run.sh): wrk -t1 -c$conns -d${secs}s, medians of $runs runs, same run as"
    echo "\`../shared/baseline/run.sh\` (ONLY=mux). Machine: $(nproc) cores."
    echo
    echo "| scenario | req/s | p50 ms | p99 ms | non-2xx | req/s vs mux | p99 vs mux |"
    echo "|---|---|---|---|---|---|---|"
    m_rps=$(awk 'NF {print $1}' <<<"${res[mux]}" | median)
    m_p99=$(awk 'NF {print $3}' <<<"${res[mux]}" | median)
    for k in mux healthz me org me_pg org_pg; do
        rps=$(awk 'NF {print $1}' <<<"${res[$k]}" | median)
        p50=$(awk 'NF {print $2}' <<<"${res[$k]}" | median)
        p99=$(awk 'NF {print $3}' <<<"${res[$k]}" | median)
        bad=$(awk 'NF {s += $4} END {print s + 0}' <<<"${res[$k]}")
        name=$k; [ "$k" = healthz ] && name="tessera GET /healthz"; [ "$k" = mux ] && name="baseline mux"
        [ "$k" = me ] && name="tessera GET /v1/auth/me (JWT, memory engine)"
        [ "$k" = org ] && name="tessera GET /v1/orgs/current (JWT, memory engine)"
        [ "$k" = me_pg ] && name="tessera GET /v1/auth/me (JWT, postgres + Redis, prepare = on)"
        [ "$k" = org_pg ] && name="tessera GET /v1/orgs/current (JWT, postgres + Redis, prepare = on)"
        printf '| %s | %s | %s | %s | %s | %.2f× | %.2f× |\n' "$name" "$rps" "$p50" "$p99" "$bad" \
            "$(awk -v a="$rps" -v b="$m_rps" 'BEGIN {print a / b}')" "$(awk -v a="$p99" -v b="$m_p99" 'BEGIN {print a / b}')"
    done
    echo
    echo "Raw runs (req/s p50 p99 non2xx):"
    for k in mux healthz me org me_pg org_pg; do echo; echo "- $k:"; awk 'NF {print "  - " $0}' <<<"${res[$k]}"; done
} | tee "$out"

# Reload under load, on its own fleet (bench/reload.sh): the acceptance figure
# of issue 3 is 0 non-2xx and 0 socket errors.
echo "bench: reload under load (bench/reload.sh)" >&2
reload=$(SECS=${RELOAD_SECS:-10} CONNS=$conns RELOAD_AT="3 6" bench/reload.sh "$build" 2>/dev/null)
field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$reload"; }
{
    echo
    echo "## Reload under load (bench/reload.sh)"
    echo
    echo "wrk -t1 -c$conns -d${RELOAD_SECS:-10}s GET /healthz, \`tessera reload\` at 3 s and 6 s: every"
    echo "worker replaced twice while the load runs."
    echo
    echo "| requests | req/s | non-2xx | socket errors | reloads | worker pids before → after |"
    echo "|---|---|---|---|---|---|"
    echo "| $(field requests) | $(field rps) | $(field non2xx) | $(field socket_errors) | $(field reloads) | $(field pids_before) → $(field pids_after) |"
} | tee -a "$out"
[ "$(field non2xx)" = 0 ] && [ "$(field socket_errors)" = 0 ] && [ "$(field reloads)" = 2 ] ||
    { echo "bench: reload under load failed requests: $reload" >&2; exit 1; }
