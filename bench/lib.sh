# bench/lib.sh: the set-up bench/run.sh and bench/search.sh share, sourced by
# both: a scratch folder $T, nginx in the baseline's shape (1 worker, 16 kept
# upstream connections), PostgreSQL + Redis migrated and seeded as the test
# harness makes them (tests/integration/pg.sh), fleets started and stopped on
# either engine, wrk measurements as one line each, and a cleanup that stops
# every process it started, also when a step fails. It decides no scenario and
# no target: those are the sourcing script's.
#
# Before sourcing: BENCH_NAME (the prefix of die's messages and of $T) and
# build (the build folder). Sets root (the checkout, also the working folder),
# T, URL, token (after fleet_up) and the env the fleet reads.
# bench/soak.sh keeps tests/integration/lib.sh: it needs the suites' stack_up
# (a database per stack), which this file does not repeat.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
T=$(mktemp -d "/tmp/tessera-$BENCH_NAME.XXXXXX"); chmod 755 "$T"
fleet_pid= nginx_pid= want_workers= token=
CLEANUP_HOOKS=()    # tests/integration/pg.sh's servers
BENCH_CLEANUP=()    # the sourcing script's own (evaluated first)
bench_cleanup() {
    local h
    for h in "${BENCH_CLEANUP[@]}"; do eval "$h" || true; done
    [ -n "$nginx_pid" ] && kill -QUIT "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null || true
    [ -n "$fleet_pid" ] && kill -TERM "$fleet_pid" 2>/dev/null && wait "$fleet_pid" 2>/dev/null || true
    for h in "${CLEANUP_HOOKS[@]}"; do eval "$h" || true; done
    CLEANUP_HOOKS=()
    rm -rf "$T"
}
trap bench_cleanup EXIT
die() { echo "bench/$BENCH_NAME: $*" >&2; exit 1; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_until() { local d=$((SECONDS + $1)); shift; until "$@" >/dev/null 2>&1; do [ $SECONDS -ge $d ] && return 1; sleep 0.1; done; }
# to_ms "1.23ms" → 1.230 ; wrk prints us, ms or s
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }

# bench_stack_up: keys, nginx on a free port (URL), PostgreSQL and Redis
# (pg.sh: PG_OWNER_DSN, PG_APP_DSN, REDIS_URL), migrated and seeded with the
# dev seed (its people's hashes at the configured password_cost, 17).
bench_stack_up() {
    export TESSERA_CONFIG=/dev/null TESSERA_ENV=develop TESSERA_FLEET_LISTEN=$T/tessera.sock \
           TESSERA_FLEET_CONTROL=$T/control.sock TESSERA_FLEET_PID_FILE=$T/tessera.pid \
           TESSERA_AUTH_SIGNING_KEY=$T/keys/jwt.pem TESSERA_CRYPTO_DATA_KEY=$T/keys/data.key
    "$build/tessera" keygen >/dev/null
    local nport; nport=$(free_port)
    NGINX_WORKERS=1 NGINX_KEEPALIVE=16 packaging/nginx-conf.sh "$T/nginx.conf" "$nport" "$T/tessera.sock" "$T/nginx"
    nginx -c "$T/nginx.conf" & nginx_pid=$!
    URL=http://127.0.0.1:$nport
    ROOT=$root TESSERA=$build/tessera
    set +u; . tests/integration/pg.sh; set -u
    pg_up >/dev/null && redis_up || die "postgres or redis did not start"
    TESSERA_DB_MIGRATE_DSN=$PG_OWNER_DSN TESSERA_DB_SQL_DIR=$root/sql "$build/tessera" migrate >/dev/null
    TESSERA_ENGINE=postgres TESSERA_DB_CORE_DSN=$PG_APP_DSN "$build/tessera" seed seed/dev >/dev/null
}

# bench_stack_down: nginx, PostgreSQL and Redis stopped before the report
# (the next script of `make bench` starts its own).
bench_stack_down() {
    local h
    for h in "${CLEANUP_HOOKS[@]}"; do eval "$h" || true; done
    CLEANUP_HOOKS=()
    kill -QUIT "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true; nginx_pid=
}

# fleet_up ENGINE WORKERS [VAR=VALUE...]: a fleet on engine mem (the dev seed
# loaded at start) or pg (the cluster above, prepare = on, Redis), with the
# extra env, ready with WORKERS API workers; sets token (the dev seed's
# platform admin, admin@example.com in org Acme).
fleet_up() {
    local e=("TESSERA_FLEET_WORKERS=$2") a=()
    want_workers=$2
    if [ "$1" = mem ]; then
        a=(--seed seed/dev)
    else
        e+=(TESSERA_ENGINE=postgres "TESSERA_DB_CORE_DSN=$PG_APP_DSN" "TESSERA_REDIS_URL=$REDIS_URL" TESSERA_DB_PREPARE=on)
    fi
    e+=("${@:3}")
    echo "== fleet: engine $1, $2 workers, ${*:3}" >>"$T/fleet.log"
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

# api METHOD PATH [BODY]: one call as the admin (token); sets code and body
api() {
    local d=()
    [ $# -ge 3 ] && d=(-H 'Content-Type: application/json' --data-binary "$3")
    code=$(curl -s -m 30 -o "$T/api.body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $token" \
        "${d[@]}" "$URL$2") || code=000
    body=$(cat "$T/api.body")
}

# wrk_line NAME RUN WRK-ARGS...: runs wrk --latency with the args and prints
# one line "NAME RUN rps p50_ms p99_ms non2xx socket_errors" (timeouts are
# socket errors), or dies naming NAME when wrk printed no figures. wrk's own
# report is kept in $T/wrk.last.
wrk_line() {
    local name=$1 run=$2 o rps; shift 2
    o=$(wrk --latency "$@" 2>&1) || die "$name: wrk failed: $o"
    printf '%s\n' "$o" >"$T/wrk.last"
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$o")
    [ -n "$rps" ] || die "$name: wrk printed no figures: $o"
    awk -v name="$name" -v i="$run" -v rps="$rps" -v p50="$(to_ms "$(awk '$1=="50%" {print $2}' <<<"$o")")" \
        -v p99="$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$o")")" '
        /Non-2xx or 3xx responses:/ { bad = $NF }
        /Socket errors:/ { gsub(",", ""); err = $4 + $6 + $8 + $10 }
        END { printf "%s %s %s %s %s %d %d\n", name, i, rps, p50, p99, bad, err }' <<<"$o"
}

# --- vectors: the data of bench/search.sh and of run.sh's search row
# vecs_schema: crm/vecs (emb vector(128) with an HNSW index once pgvector is
# there, cat integer with a btree, grp the same values without one)
vecs_schema() {
    api PUT /v1/svc/crm/schema/vecs \
        '{"fields":{"emb":{"type":"vector(128)","index":true},"cat":{"type":"integer","index":true},"grp":{"type":"integer"}}}'
    [ "$code" = 200 ] || die "PUT /v1/svc/crm/schema/vecs answered $code: $body"
}
# vecs_gen FILE N: N embedding-like vectors (DATA=uniform: uniform random)
vecs_gen() { python3 bench/search_client.py gen "$1" "$2" 128 || die "generating the vectors"; }
# vecs_copy FILE N: them into Acme's sandbox table by COPY as the owner (the
# columns the API writes), for speed
vecs_copy() {
    python3 bench/search_client.py copy "$1" "$2" >"$T/vecs.copy"
    psql -X -q -v ON_ERROR_STOP=1 "$PG_OWNER_DSN" \
        -c "\\copy svc_crm_sandbox.vecs (id, org_id, version, created_at, updated_at, emb, cat, grp) FROM '$T/vecs.copy'" \
        -c "ANALYZE svc_crm_sandbox.vecs" || die "copying into PostgreSQL"
    rm -f "$T/vecs.copy"
}
# pgvector_add: the extension added (built once per machine) and the HNSW
# index the running fleet's upkeep builds waited for (it needs a fleet with
# a short [fleet] maintenance_interval); prints the seconds it took
pgvector_add() {
    local t0=$SECONDS
    pg_psql tessera -c "CREATE EXTENSION IF NOT EXISTS vector" >/dev/null 2>&1 ||
        { pgvector_install && pg_psql tessera -c "CREATE EXTENSION vector" >/dev/null; } ||
        die "pgvector could not be added"
    wait_until 1800 vecs_indexed || die "no HNSW index within 30 minutes"
    echo $((SECONDS - t0))
}
vecs_indexed() { [ "$(psql -X -At "$PG_OWNER_DSN" -c "SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'hnsw%'")" = 1 ]; }
