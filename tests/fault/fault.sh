# The fault suite's harness, sourced by each tests/fault/NN_*.sh after it sets
# nothing: the integration harness (lib.sh: stack_up, cleanup, ok/not_ok) and
# the real servers (pg.sh), plus the bounded client (load.py) and the checks
# every case ends with: what failed is only what the case allows, and every
# write that was acknowledged with a 2xx reads back byte for byte.
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
. "$ROOT/tests/integration/pg.sh"
LOAD=(python3 "$ROOT/tests/fault/load.py")
J='Content-Type: application/json'


# fault_setup: logs in the dev seed's platform admin (ADMIN, Acme's owner),
# registers the service `fault` and gives it the resource RESOURCE with the
# fields load.py writes and a view `by_bucket` (count and sum of n per bucket).
fault_setup() {
    login admin@example.com; ADMIN=$TOKEN
    [ -n "$ADMIN" ] && [ "$ADMIN" != null ] || { echo "# login: $STATUS $BODY"; return 1; }
    req POST /v1/apps -H "Authorization: Bearer $ADMIN" -H "$J" \
        -d '{"name":"fault","kind":"microservice","base_url":"/v1/svc/fault","status":"active"}'
    [ "$STATUS" = 201 ] || [ "$STATUS" = 409 ] || { echo "# apps: $STATUS $BODY"; return 1; }
    fault_resource "$1"
}

# fault_resource RESOURCE: the resource load.py writes (another per case keeps
# cases apart in one stack).
fault_resource() {
    req PUT "/v1/svc/fault/schema/$1" -H "Authorization: Bearer $ADMIN" -H "$J" -d '{"fields":{
        "payload":{"type":"string","required":true,"index":true},"n":{"type":"integer"},
        "bucket":{"type":"string"},"note":{"type":"text"}},
        "options":{"views":{"by_bucket":{"group_by":["bucket"],"count":true,"sum":["n"]}}}}'
    [ "$STATUS" = 200 ] || { echo "# schema: $STATUS $BODY"; return 1; }
}

# writers_start NAME RESOURCE [load.py options]: a bounded writer in the
# background until writers_stop NAME; its log is $T/NAME.jsonl.
declare -A WRITER_PID
writers_start() {
    local name=$1 res=$2; shift 2
    rm -f "$T/$name.stop" "$T/$name.jsonl"
    "${LOAD[@]}" write "$URL" "$ADMIN" "$res" "$T/$name.jsonl" --stop "$T/$name.stop" --tag "$name" "$@" \
        >>"$T/load.err" 2>&1 &
    WRITER_PID[$name]=$!
    PIDS+=("$!")
}
writers_stop() {
    touch "$T/$1.stop"
    wait "${WRITER_PID[$1]}"
}

# report LOG... [--kill T]: load.py's summary (JSON) of the logs.
report() { "${LOAD[@]}" report "$@"; }

# verify_acked NAME RESOURCE LOG...: the case's closing check: every write a 2xx
# acknowledged is read back with exactly the fields it sent. Sets VERIFY (the
# JSON load.py printed: .unacked_landed counts failed writes that committed).
verify_acked() {
    local name=$1 res=$2; shift 2
    if VERIFY=$("${LOAD[@]}" verify "$URL" "$ADMIN" "$res" "$@" 2>&1); then
        ok "$name: no acknowledged write lost ($(jq -r '"\(.verified) of \(.acked) read back byte for byte; of \(.unacked) failed, \(.unacked_landed) committed"' <<<"$VERIFY"))"
    else
        not_ok "$name: no acknowledged write lost" "$VERIFY"
    fi
}

# jqr JSON FILTER: a value from a report.
jqr() { jq -r "$2" <<<"$1"; }

# now_s: the wall clock with sub-second precision (the client's t0/t1 are on it).
now_s() { date +%s.%N; }

# getters_start NAME TOKEN PATH [load.py options]: a bounded GET loop in the
# background until getters_stop NAME; its log is $T/NAME.jsonl.
getters_start() {
    local name=$1 token=$2 path=$3; shift 3
    rm -f "$T/$name.stop" "$T/$name.jsonl"
    "${LOAD[@]}" get "$URL" "$token" "$path" "$T/$name.jsonl" --stop "$T/$name.stop" "$@" >>"$T/load.err" 2>&1 &
    WRITER_PID[$name]=$!
    PIDS+=("$!")
}
getters_stop() { writers_stop "$1"; }

# only_in LOG STATUS FROM TO: how many requests of LOG answered STATUS (or, for
# "fail", anything but 2xx) without having been in flight at some instant
# within [FROM, TO] (epoch seconds): what a case allows only inside a window.
only_in() {
    jq -s --argjson from "$3" --argjson to "$4" --arg st "$2" \
        '[.[] | select(if $st == "fail" then (.status < 200 or .status > 299) else (.status | tostring) == $st end)
              | select(.t1 < $from or .t0 > $to)] | length' "$1"
}

# statuses LOG: "STATUS×N …" of a log, for case names.
statuses() { jq -s -r 'group_by(.status) | map("\(.[0].status)×\(length)") | join(" ")' "$1"; }
