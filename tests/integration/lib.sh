# The integration harness, sourced by each suite: starts nginx and a tessera
# fleet on free loopback ports in a temporary folder, runs cases, and stops
# everything on exit, also when a case fails. Cases print TAP-style lines
# (`ok - name` / `not ok - name`) that tests/run.sh counts.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
# The test build carries the debug-only routes (/debug/*); release builds do not.
TESSERA=${TESSERA:-$BUILD/test/tessera}
# GET /docs: nginx serves the page `make docs` vendored into the build tree
export TESSERA_DOCS=${TESSERA_DOCS:-$BUILD/web/docs}
# tests/run.sh names its run (TESSERA_TEST_RUN) so it can tell, at the end,
# that no process of any suite outlived it
T=$(mktemp -d "/tmp/tessera-test.${TESSERA_TEST_RUN:+$TESSERA_TEST_RUN.}XXXXXX")
chmod 755 "$T"   # nginx's workers (nobody when run as root) reach the socket through it
PIDS=()
CLEANUP_HOOKS=()   # commands a helper (pg.sh) adds; run on exit before $T goes
NGINX_PID=
FLEET_PID=

free_port() {
    python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

cleanup() {
    stack_down
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for h in "${CLEANUP_HOOKS[@]}"; do eval "$h" || true; done
    if [ -n "${KEEP_TMP:-}" ]; then echo "# kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

# Starts the fleet (env vars in "$@" override config) and nginx; sets URL.
stack_up() {
    local port
    port=$(free_port)
    URL=http://127.0.0.1:$port
    export TESSERA_ENV=test
    # never the machine's /etc/tessera/tessera.conf (an installed package's production settings)
    export TESSERA_CONFIG=${TESSERA_CONFIG:-/dev/null}
    export TESSERA_FLEET_LISTEN=$T/tessera.sock
    export TESSERA_FLEET_CONTROL=$T/control.sock
    export TESSERA_FLEET_PID_FILE=$T/tessera.pid
    export TESSERA_FLEET_WORKERS=${TESSERA_FLEET_WORKERS:-2}
    export TESSERA_AUTH_SIGNING_KEY=$T/keys/jwt.pem TESSERA_CRYPTO_DATA_KEY=$T/keys/data.key
    export TESSERA_AUTH_PASSWORD_COST=${TESSERA_AUTH_PASSWORD_COST:-10}   # test-only cost: fast suites
    "$TESSERA" keygen >/dev/null || return 1
    "$ROOT/packaging/nginx-conf.sh" "$T/nginx.conf" "$port" "$TESSERA_FLEET_LISTEN" "$T/nginx"
    local seeds=() d engine_env=()
    if [ "${ENGINE:-memory}" = postgres ] || [ "${ENGINE:-}" = pgvector ]; then
        # the same suite on PostgreSQL + Redis (tests/run.sh, "# engines:");
        # pgvector: the same, with the vector extension in the database
        . "$ROOT/tests/integration/pg.sh"
        pg_engine_env || return 1
        engine_env=("${PG_ENV[@]}")
    else
        for d in ${SEED_DIR-$ROOT/seed/dev}; do seeds+=(--seed "$d"); done   # SEED_DIR: folders, in order
    fi
    FLEET_ENV=("$@" "${engine_env[@]}") FLEET_SEEDS=("${seeds[@]}")
    env "${FLEET_ENV[@]}" "$TESSERA" fleet "${FLEET_SEEDS[@]}" >>"$T/fleet.log" 2>&1 &
    FLEET_PID=$!
    nginx -c "$T/nginx.conf" >>"$T/nginx.out" 2>&1 &
    NGINX_PID=$!
    wait_ready || { echo "# stack did not come up; fleet log:"; tail -20 "$T/fleet.log" | sed 's/^/# /'; return 1; }
}

# fleet_up: the fleet alone again, as the last stack_up started it (the same
# settings and, on PostgreSQL, the same database: a restart after a stop,
# behind the nginx that stayed up); waits until it answers.
fleet_up() {
    env "${FLEET_ENV[@]}" "$TESSERA" fleet "${FLEET_SEEDS[@]}" >>"$T/fleet.log" 2>&1 &
    FLEET_PID=$!
    wait_ready
}

wait_ready() {
    for _ in $(seq 1 200); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz")" = 200 ] && return 0
        kill -0 "$FLEET_PID" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

stack_down() {
    if [ -n "$NGINX_PID" ]; then
        kill -QUIT "$NGINX_PID" 2>/dev/null; wait "$NGINX_PID" 2>/dev/null; NGINX_PID=
    fi
    if [ -n "$FLEET_PID" ]; then
        kill -TERM "$FLEET_PID" 2>/dev/null; wait "$FLEET_PID" 2>/dev/null; FLEET_PID=
    fi
}

# ok NAME / not_ok NAME [detail]
ok() { echo "ok - $1"; }
not_ok() { echo "not ok - $1"; [ $# -gt 1 ] && printf '%s\n' "$2" | sed 's/^/#   /' | head -20; return 0; }

# check NAME COMMAND...: passes when the command succeeds.
check() {
    local name=$1; shift
    local out
    if out=$("$@" 2>&1); then ok "$name"; else not_ok "$name" "$out"; fi
}

# req METHOD PATH [curl args...]: sets STATUS, BODY, HDRS (lower-cased header file).
req() {
    local method=$1 path=$2; shift 2
    local how=(-X "$method")
    local out=-
    # -X HEAD would wait for the body Content-Length announces
    [ "$method" = HEAD ] && how=(--head) && out=/dev/null
    BODY=$(curl -sS -m 30 "${how[@]}" -D "$T/hdrs" -o "$out" -w '\n%{http_code}' "$@" "$URL$path" 2>"$T/curl.err")
    STATUS=${BODY##*$'\n'}
    BODY=${BODY%$'\n'*}
    HDRS=$(tr -d '\r' <"$T/hdrs" | awk 'BEGIN { FS = OFS = ": " } { $1 = tolower($1); print }')
}

# header NAME: the value of a response header of the last req (name lower-case).
header() { printf '%s\n' "$HDRS" | sed -n "s/^$1: //p" | head -1; }

# expect NAME STATUS [JQ-FILTER]: the last req answered STATUS and the filter holds on BODY.
expect() {
    local name=$1 want=$2 filter=${3:-}
    if [ "$STATUS" != "$want" ]; then
        not_ok "$name" "status $STATUS, wanted $want; body: ${BODY:0:300}"
        return 0
    fi
    if [ -n "$filter" ] && ! jq -e "$filter" >/dev/null 2>&1 <<<"$BODY"; then
        not_ok "$name" "filter failed: $filter; body: ${BODY:0:300}"
        return 0
    fi
    ok "$name"
}

# expect_error NAME STATUS CODE: the DESIGN §5 envelope with that code and the request id header.
expect_error() {
    local rid
    rid=$(header x-request-id)
    expect "$1" "$2" ".error.code == \"$3\" and (.error.message | length > 0) and .error.request_id == \"$rid\""
}

# --- helpers for the API suites

# login EMAIL [PASSWORD [USER-AGENT]]: POST /v1/auth/login (PASSWORD: the dev
# seed's by default; USER-AGENT: "curl"); sets req's STATUS and BODY, TOKEN and
# REFRESH ("null" when the answer carries none).
login() {
    req POST /v1/auth/login -H 'Content-Type: application/json' -H "User-Agent: ${3:-curl}" \
        -d "{\"email\":\"$1\",\"password\":\"${2:-tessera-dev}\"}"
    TOKEN=$(jq -r .access_token <<<"$BODY"); REFRESH=$(jq -r .refresh_token <<<"$BODY")
}

# auth TOKEN: the Authorization header line, for curl's -H.
auth() { echo "Authorization: Bearer $1"; }

# every_worker N TOKEN: the distinct statuses of N reads of /v1/auth/me, one
# after the other (nginx spreads them over the workers), e.g. "200 " or "401 ".
every_worker() {
    local i
    for i in $(seq 1 "$1"); do req GET /v1/auth/me -H "$(auth "$2")"; echo "$STATUS"; done | sort -u | tr '\n' ' '
}

# --- helpers for the fleet suites (load, timing, process facts)

# wait_until SECONDS COMMAND...: polls every 0.1 s until the command succeeds.
wait_until() {
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.1
    done
}

# fleet_json [JQ-FILTER]: `tessera status --json` of the running stack, filtered.
fleet_json() { "$TESSERA" status --json 2>>"$T/cli.err" | jq -c "${1:-.}"; }

# wrk_counts FILE: "requests non2xx socket_errors" from a wrk report.
wrk_counts() {
    awk '/ requests in / { req = $1 }
         /Non-2xx or 3xx responses:/ { bad = $NF }
         /Socket errors:/ { gsub(",", ""); err = $4 + $6 + $8 + $10 }
         END { print req + 0, bad + 0, err + 0 }' "$1"
}

# cpu_ticks PID: user + system CPU time of a process, in clock ticks.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# refresh_burst TOKEN N ID-PREFIX: N concurrent POST /v1/auth/refresh of one
# refresh token through nginx (request ids ID-PREFIX-1..N); prints one line per
# answer, "STATUS REFRESH_TOKEN" ("-" when the body carries none).
refresh_burst() {
    local d f
    d=$(mktemp -d "$T/burst.XXXXXX")
    seq 1 "$2" | xargs -P "$2" -I{} sh -c 'curl -s -m 30 -o "$1/{}.body" -w "%{http_code}" \
        -H "Content-Type: application/json" -H "X-Request-Id: $3-{}" \
        -d "{\"refresh_token\":\"$2\"}" "$4/v1/auth/refresh" >"$1/{}.code"' sh "$d" "$1" "$3" "$URL"
    for f in "$d"/*.code; do
        printf '%s %s\n' "$(cat "$f")" "$(jq -r '.refresh_token // "-"' "${f%.code}.body" 2>/dev/null || echo -)"
    done
}
