#!/usr/bin/env bash
# make bench: tessera against the floor of ../shared/baseline and its Node.js
# peer, in the same run and with the same wrk settings (1 thread, CONNS
# connections, SECS seconds), so the ratios compare figures taken minutes, not
# days, apart on the same machine. Each run measures every case once, baseline
# first; the tables show medians of RUNS runs (each column on its own) and the
# sum of non-2xx over the runs, so one bad run shows.
#
# Baseline cases (../shared/baseline/run.sh, ONLY=… PEER=node, once per run;
# it runs `npm ci` for the peer itself into ~/.cache the first time):
#   mux          nginx → one fcgi2 loop polling kept connections, no work
#   redis        nginx → fcgi2, one Redis EXISTS (a blacklist check)
#   full         Ed25519 verify + EXISTS + BEGIN/set_config/SELECT/COMMIT pipelined
#   cached       Ed25519 verify + EXISTS and GET in one Redis round trip (a hit)
#   node-plain, node-full, node-cached   the same in Node.js (cluster ×2,
#                jose, ioredis, node-postgres) behind the same nginx
# Tessera rows (the release build behind the baseline's nginx shape: 1 nginx
# worker, 16 kept upstream connections; 2 API workers unless the name says):
#   healthz            GET /healthz, memory engine
#   mem-me             GET /v1/auth/me (JWT), memory engine
#   mem-org-current    GET /v1/orgs/current (JWT), memory engine
#   pg-org-current     GET /v1/orgs/current on postgres + Redis (prepare = on,
#                      principal cache on)
#   pg-me              GET /v1/auth/me, the same fleet
#   pg-get-cached      GET /v1/svc/crm/bench_items/{id}, the same fleet
#                      ([cache] records = on: the response cache)
#   pg-get-uncached    the same GET with TESSERA_CACHE_RECORDS=off (principal
#                      cache still on: the record comes from PostgreSQL)
#   pg-get-uncached-w4, -w8   the same with TESSERA_FLEET_WORKERS=4 / 8
# The record is made in set-up through the API as the dev seed's platform
# admin (admin@example.com, org Acme): PUT the schema, POST one record. Every
# row must answer 200 before it is measured, or the bench fails naming it.
# Writes bench/results/latest.md (tables, targets of issue 13, raw runs) and
# bench/results/latest.json:
#   {"runs", "secs", "conns", "generated", "baseline": {case: rps},
#    "baseline_rows": [row…], "rows": [row…]}
#   row = {"name", "rps", "p50_ms", "p99_ms", "non2xx"[, "socket_errors"]}
# Then bench/reload.sh: a wrk run with two rolling reloads, and bench/search.sh:
# vector search latencies (bench/results/search.json), both appended to the .md.
# Usage: bench/run.sh BUILD
# env: RUNS=3 SECS=8 CONNS=32 WARM_SECS=1 (a wrk warm-up of each tessera row
#      before it is measured, so every worker's caches are warm; 0: none)
#      RELOAD_SECS=10
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
runs=${RUNS:-3} secs=${SECS:-8} conns=${CONNS:-32} warm=${WARM_SECS:-1}
baseline=$root/../shared/baseline
[ -f "$baseline/run.sh" ] || { echo "bench: no $baseline/run.sh" >&2; exit 1; }
out=$root/bench/results/latest.md json=$root/bench/results/latest.json
# the node-* names too: the baseline's ONLY filters the peer's cases as well
BASE_CASES="mux redis full cached node-plain node-full node-cached"
T=$(mktemp -d /tmp/tessera-bench.XXXXXX); chmod 755 "$T"
fleet_pid= nginx_pid= base_pid= want_workers=
CLEANUP_HOOKS=()    # tests/integration/pg.sh's servers, for the postgres rows
cleanup() {
    # the baseline stops its own servers when it exits; wait for that
    [ -n "$base_pid" ] && kill -TERM "$base_pid" 2>/dev/null && wait "$base_pid" 2>/dev/null || true
    [ -n "$nginx_pid" ] && kill -QUIT "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null || true
    [ -n "$fleet_pid" ] && kill -TERM "$fleet_pid" 2>/dev/null && wait "$fleet_pid" 2>/dev/null || true
    for h in "${CLEANUP_HOOKS[@]}"; do eval "$h" || true; done
    rm -rf "$T"
}
trap cleanup EXIT
die() { echo "bench: $*" >&2; exit 1; }
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
free_port() { port; }   # for tests/integration/pg.sh
wait_until() { local d=$((SECONDS + $1)); shift; until "$@" >/dev/null 2>&1; do [ $SECONDS -ge $d ] && return 1; sleep 0.1; done; }
# to_ms "1.23ms" → 1.230 ; wrk prints us, ms or s
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }
raw=$T/raw   # one line per measurement: group name run rps p50_ms p99_ms non2xx socket_errors
load() { cut -d' ' -f1-3 /proc/loadavg; }
load_start=$(load)

# --- set-up: keys, nginx, and PostgreSQL + Redis migrated and seeded, as the
# test harness makes them (tests/integration/pg.sh), in $T
export TESSERA_CONFIG=/dev/null TESSERA_ENV=develop TESSERA_FLEET_LISTEN=$T/tessera.sock \
       TESSERA_FLEET_CONTROL=$T/control.sock TESSERA_FLEET_PID_FILE=$T/tessera.pid \
       TESSERA_AUTH_SIGNING_KEY=$T/keys/jwt.pem TESSERA_CRYPTO_DATA_KEY=$T/keys/data.key
"$build/tessera" keygen >/dev/null
nport=$(port)
NGINX_WORKERS=1 NGINX_KEEPALIVE=16 packaging/nginx-conf.sh "$T/nginx.conf" "$nport" "$T/tessera.sock" "$T/nginx"
nginx -c "$T/nginx.conf" & nginx_pid=$!
URL=http://127.0.0.1:$nport
ROOT=$root TESSERA=$build/tessera
set +u; . tests/integration/pg.sh; set -u
pg_up >/dev/null && redis_up || die "postgres or redis did not start"
TESSERA_DB_MIGRATE_DSN=$PG_OWNER_DSN TESSERA_DB_SQL_DIR=$root/sql "$build/tessera" migrate >/dev/null
TESSERA_ENGINE=postgres TESSERA_DB_CORE_DSN=$PG_APP_DSN "$build/tessera" seed seed/dev >/dev/null

# fleet_up ENGINE WORKERS RECORDS: a fleet on engine mem (the dev seed loaded
# at start) or pg (the cluster above, principal cache on, [cache] records =
# RECORDS), ready with WORKERS API workers; sets token (the platform admin's).
fleet_up() {
    local e=("TESSERA_FLEET_WORKERS=$2") a=()
    want_workers=$2
    if [ "$1" = mem ]; then
        a=(--seed seed/dev)
    else
        e+=(TESSERA_ENGINE=postgres "TESSERA_DB_CORE_DSN=$PG_APP_DSN" "TESSERA_REDIS_URL=$REDIS_URL"
            TESSERA_DB_PREPARE=on TESSERA_CACHE_PRINCIPAL=on "TESSERA_CACHE_RECORDS=$3")
    fi
    echo "== fleet: engine $1, $2 workers, records cache $3" >>"$T/fleet.log"
    env "${e[@]}" "$build/tessera" fleet "${a[@]}" 2>>"$T/fleet.log" & fleet_pid=$!
    wait_until 20 api_ready && kill -0 "$fleet_pid" 2>/dev/null ||
        die "the fleet (engine $1, $2 workers) did not start: $(tail -5 "$T/fleet.log")"
    token=$(curl -fs -m 10 -H 'Content-Type: application/json' \
        -d '{"email":"admin@example.com","password":"tessera-dev"}' "$URL/v1/auth/login" | jq -r .access_token) &&
        [ -n "$token" ] && [ "$token" != null ] || die "login as admin@example.com failed (engine $1)"
}
# every API worker of the fleet up (idle or busy) and /healthz answering;
# true at once when the fleet died, so fleet_up says so without waiting
api_ready() {
    kill -0 "$fleet_pid" || return 0
    local n
    n=$("$build/tessera" status --json |
        jq '[.slots[] | select(.role == "api" and (.state == "idle" or .state == "busy"))] | length')
    [ "$n" = "$want_workers" ] && curl -fs -m 2 "$URL/healthz"
}
fleet_down() {
    kill -TERM "$fleet_pid"; wait "$fleet_pid" 2>/dev/null || true; fleet_pid=
}

# api METHOD PATH [BODY]: one authenticated call; sets code and body
api() {
    local d=()
    [ $# -ge 3 ] && d=(-H 'Content-Type: application/json' --data-binary "$3")
    code=$(curl -s -m 10 -o "$T/api.body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $token" \
        "${d[@]}" "$URL$2") || code=000
    body=$(cat "$T/api.body")
}

# The record the pg-get rows read, made once (it stays in PostgreSQL across fleets).
fleet_up pg 2 on
api PUT /v1/svc/crm/schema/bench_items \
    '{"fields":{"name":{"type":"string","required":true},"amount":{"type":"integer"},"status":{"type":"string"}}}'
[ "$code" = 200 ] || die "PUT /v1/svc/crm/schema/bench_items answered $code: $body"
api POST /v1/svc/crm/bench_items '{"name":"baseline","amount":12,"status":"open"}'
[ "$code" = 201 ] || die "POST /v1/svc/crm/bench_items answered $code: $body"
rec=$(jq -r .id <<<"$body")
api GET "/v1/svc/crm/bench_items/$rec"
[ "$code" = 200 ] && [ "$(jq -r .id <<<"$body")" = "$rec" ] || die "GET of record $rec answered $code: $body"
fleet_down
REC=/v1/svc/crm/bench_items/$rec

# row NAME PATH [auth]: checks PATH answers 200, warms it up, measures it once.
row() {
    local name=$1 path=$2 h=() o rps c
    [ "${3:-}" = auth ] && h=(-H "Authorization: Bearer $token")
    c=$(curl -s -m 10 -o "$T/check.body" -w '%{http_code}' "${h[@]}" "$URL$path") || c=000
    [ "$c" = 200 ] || die "$name: GET $path answered $c, not 200: $(head -c 400 "$T/check.body")"
    [ "$warm" = 0 ] || wrk -t1 -c"$conns" -d"${warm}s" "${h[@]}" "$URL$path" >/dev/null
    echo "bench: run $i/$runs: $name" >&2
    o=$(wrk -t1 -c"$conns" -d"${secs}s" --latency "${h[@]}" "$URL$path")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$o")
    [ -n "$rps" ] || die "$name: wrk printed no figures: $o"
    awk -v name="$name" -v i="$i" -v rps="$rps" -v p50="$(to_ms "$(awk '$1=="50%" {print $2}' <<<"$o")")" \
        -v p99="$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$o")")" '
        /Non-2xx or 3xx responses:/ { bad = $NF }
        /Socket errors:/ { gsub(",", ""); err = $4 + $6 + $8 + $10 }
        END { printf "tessera %s %s %s %s %s %d %d\n", name, i, rps, p50, p99, bad, err }' <<<"$o" >>"$raw"
    tail -1 "$raw" | awk '$7 + $8 > 0 { print "bench: warning: " $2 ": " $7 " non-2xx, " $8 " socket errors" }' >&2
}

# baseline: every case of ../shared/baseline/run.sh once; its lines read
#   "mux  33471.70 req/s  p50 829.00us p99 2.66ms  non2xx 0"
baseline_run() {
    echo "bench: run $i/$runs: baseline ($BASE_CASES)" >&2
    ONLY=$BASE_CASES PEER=node bash "$baseline/run.sh" "$secs" "$conns" >"$T/base.out" 2>"$T/base.err" & base_pid=$!
    wait "$base_pid" || die "the baseline failed: $(tail -5 "$T/base.err")"
    base_pid=
    local c line rps p50 p99 bad
    for c in $BASE_CASES; do
        line=$(awk -v c="$c" '$1 == c' "$T/base.out")
        [ -n "$line" ] || die "the baseline printed no $c line: $(cat "$T/base.out" "$T/base.err")"
        read -r _ rps _ _ p50 _ p99 _ bad <<<"$line"
        echo "baseline $c $i $rps $(to_ms "$p50") $(to_ms "$p99") ${bad:-0} 0" >>"$raw"
    done
}

for i in $(seq 1 "$runs"); do
    baseline_run
    fleet_up mem 2 on
    row healthz /healthz
    row mem-me /v1/auth/me auth
    row mem-org-current /v1/orgs/current auth
    fleet_down
    fleet_up pg 2 on
    row pg-org-current /v1/orgs/current auth
    row pg-me /v1/auth/me auth
    row pg-get-cached "$REC" auth
    fleet_down
    fleet_up pg 2 off
    row pg-get-uncached "$REC" auth
    fleet_down
    fleet_up pg 4 off
    row pg-get-uncached-w4 "$REC" auth
    fleet_down
    fleet_up pg 8 off
    row pg-get-uncached-w8 "$REC" auth
    fleet_down
done
for h in "${CLEANUP_HOOKS[@]}"; do eval "$h" || true; done
CLEANUP_HOOKS=()
kill -QUIT "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true; nginx_pid=

# The report: medians per column, ratios, the targets of issue 13 (reported,
# not enforced: the bench measures, the issue decides), then the raw runs.
RAW=$raw OUT=$out JSON=$json RUNS=$runs SECS=$secs CONNS=$conns CORES=$(nproc) \
    LOAD_START=$load_start LOAD_END=$(load) REC_PATH=$REC python3 - <<'PY'
import json, os, statistics, time

env = os.environ
runs = {}   # (group, name) -> [(rps, p50, p99, non2xx, sockerr)]
order = []
with open(env["RAW"]) as f:
    for line in f:
        g, name, _, rps, p50, p99, bad, err = line.split()
        if (g, name) not in runs:
            runs[(g, name)] = []
            order.append((g, name))
        runs[(g, name)].append((float(rps), float(p50), float(p99), int(bad), int(err)))

def summary(g, name):
    r = runs[(g, name)]
    return {"name": name, "rps": statistics.median_low([x[0] for x in r]),
            "p50_ms": statistics.median_low([x[1] for x in r]),
            "p99_ms": statistics.median_low([x[2] for x in r]),
            "non2xx": sum(x[3] for x in r)} | ({"socket_errors": sum(x[4] for x in r)} if g == "tessera" else {})

base = {n: summary(g, n) for g, n in order if g == "baseline"}
rows = {n: summary(g, n) for g, n in order if g == "tessera"}
doc = {"runs": int(env["RUNS"]), "secs": int(env["SECS"]), "conns": int(env["CONNS"]),
       "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
       "baseline": {n: s["rps"] for n, s in base.items()},
       "baseline_rows": list(base.values()), "rows": list(rows.values())}
with open(env["JSON"], "w") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")

BASE_WHAT = {
    "mux": "nginx → one fcgi2 loop over kept connections, no work",
    "redis": "nginx → fcgi2, one Redis EXISTS",
    "full": "Ed25519 verify + EXISTS + BEGIN/set_config/SELECT/COMMIT pipelined",
    "cached": "Ed25519 verify + EXISTS and GET in one Redis round trip",
    "node-plain": "Node.js peer (cluster ×2) behind the same nginx, no work",
    "node-full": "peer: jose verify + ioredis EXISTS + node-postgres transaction",
    "node-cached": "peer: jose verify + pipelined EXISTS and GET",
}
rec = env["REC_PATH"].rsplit("/", 1)[0] + "/{id}"
ROW_WHAT = {
    "healthz": ("GET /healthz, memory engine", None, "node-plain"),
    "mem-me": ("GET /v1/auth/me, memory engine", None, None),
    "mem-org-current": ("GET /v1/orgs/current, memory engine", None, None),
    "pg-org-current": ("GET /v1/orgs/current, postgres + Redis, principal cache on", None, None),
    "pg-me": ("GET /v1/auth/me, postgres + Redis, principal cache on", None, None),
    "pg-get-cached": (f"GET {rec}, postgres + Redis, records cache on", "cached", "node-cached"),
    "pg-get-uncached": (f"GET {rec}, records cache off (principal on)", "full", "node-full"),
    "pg-get-uncached-w4": ("pg-get-uncached with 4 workers", "full", "node-full"),
    "pg-get-uncached-w8": ("pg-get-uncached with 8 workers", "full", "node-full"),
}

def x(a, b):
    return f"{a / b:.2f}×" if b else "—"

mux = base["mux"]["rps"]
L = []
L += [f"# tessera bench — {doc['generated'][:16]}Z", "",
      f"`make bench` (bench/run.sh): wrk -t1 -c{env['CONNS']} -d{env['SECS']}s, "
      f"{'medians of ' + env['RUNS'] + ' runs' if env['RUNS'] != '1' else 'one run'} "
      f"(non-2xx: the sum), every case in each run, beside `../shared/baseline/run.sh` "
      f"(ONLY=\"{' '.join(base)}\" PEER=node). Machine: {env['CORES']} cores, load average "
      f"{env['LOAD_START']} at the start, {env['LOAD_END']} at the end. The same figures: `latest.json`.", "",
      "## Baseline (the floor, and the Node.js peer)", "",
      "| case | what one request does | req/s | p50 ms | p99 ms | non-2xx | req/s vs mux |",
      "|---|---|---|---|---|---|---|"]
for n, s in base.items():
    L.append(f"| {n} | {BASE_WHAT.get(n, '')} | {s['rps']:.2f} | {s['p50_ms']:.3f} | {s['p99_ms']:.3f} "
             f"| {s['non2xx']} | {x(s['rps'], mux)} |")
L += ["", "## tessera (2 API workers unless the name says)", "",
      "| row | req/s | p50 ms | p99 ms | non-2xx | req/s vs mux | vs floor | vs peer | p99 vs peer |",
      "|---|---|---|---|---|---|---|---|---|"]
for n, s in rows.items():
    _, fl, pe = ROW_WHAT.get(n, ("", None, None))
    vf = f"{x(s['rps'], base[fl]['rps'])} {fl}" if fl in base else "—"
    vp = f"{x(s['rps'], base[pe]['rps'])} {pe}" if pe in base else "—"
    pp = f"{x(s['p99_ms'], base[pe]['p99_ms'])}" if pe in base else "—"
    L.append(f"| {n} | {s['rps']:.2f} | {s['p50_ms']:.3f} | {s['p99_ms']:.3f} | {s['non2xx']} "
             f"| {x(s['rps'], mux)} | {vf} | {vp} | {pp} |")
L += [""] + [f"- `{n}`: {ROW_WHAT[n][0]}" for n in rows if n in ROW_WHAT]

# issue 13's speed targets: (row, metric, case, factor); rps ≥ factor × case, p99 ≤ factor × case's
TARGETS = [("pg-get-cached", "rps", "cached", 2.0), ("pg-get-cached", "rps", "node-cached", 1.5),
           ("pg-get-cached", "p99_ms", "node-cached", 1.0), ("pg-get-uncached", "rps", "full", 1.5),
           ("pg-get-uncached", "rps", "node-full", 2.0), ("pg-org-current", "rps", "mux", 0.5),
           ("pg-me", "rps", "mux", 0.5)]
L += ["", "## Targets (issue 13)", ""]
for n, m, c, k in TARGETS:
    if n not in rows or c not in base:
        continue
    v, b = rows[n][m], base[c][m]
    if m == "rps":
        L.append(f"- `{n}` req/s ≥ {k}× `{c}`: {x(v, b)} — {'met' if v >= k * b else 'missed'}")
    else:
        L.append(f"- `{n}` p99 ≤ `{c}`'s: {v:.3f} ms vs {b:.3f} ms — {'met' if v <= k * b else 'missed'}")

L += ["", "## Raw runs (req/s p50 p99 non-2xx socket-errors)"]
for g, n in order:
    L += ["", f"- {n}:"] + [f"  - {r[0]:.2f} {r[1]:.3f} {r[2]:.3f} {r[3]} {r[4]}" for r in runs[(g, n)]]
with open(env["OUT"], "w") as f:
    f.write("\n".join(L) + "\n")
PY
cat "$out"

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

# Vector search (bench/search.sh, issue 15): single-client latencies on 100 000
# 128-d vectors, memory, PostgreSQL exact and pgvector's HNSW; its own servers.
echo "bench: vector search (bench/search.sh)" >&2
bench/search.sh "$build" | tee -a "$out"
