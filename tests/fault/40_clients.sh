#!/usr/bin/env bash
# Fault suite (issue 18 item 2), clients that misbehave, on PostgreSQL:
#  8. slow bodies (a byte a second, a slowloris on the body) against a fleet of
#     ONE worker: nginx buffers the body (fastcgi_request_buffering), so the
#     worker never waits on it; the other clients' latency proves it (a worker
#     held by a slow body would stall them for the whole body).
# engines: postgres
. "$(dirname "$0")/fault.sh"

# ---- 8. slow bodies, one worker
stack_up TESSERA_FLEET_WORKERS=1 || { not_ok "a one-worker stack starts"; exit 1; }
fault_setup slow || { not_ok "the fault service and its resource"; exit 1; }
pid0=$(fleet_json '[.slots[] | select(.role == "api") | .pid][0]')
"${LOAD[@]}" slowbody "$URL" "$ADMIN" slow "$T/slow.jsonl" --conns 4 --rate 1 >>"$T/load.err" 2>&1 &
SLOW=$!
PIDS+=("$SLOW")
sleep 1
writers_start others slow --conns 4 --pause 20
getters_start reads "$ADMIN" "/v1/svc/fault/slow?limit=10" --conns 2 --pause 20
wait "$SLOW"
writers_stop others
getters_stop reads
rs=$(report "$T/slow.jsonl")
secs=$(jq -s 'map(.t1 - .t0) | min | floor' "$T/slow.jsonl")
check "4 bodies sent at 1 byte/s each took ≥ ${secs} s and were answered 201 ($(statuses "$T/slow.jsonl"))" \
    test "$(jqr "$rs" .failed_count)" = 0 -a "$(jqr "$rs" .total)" = 4 -a "$secs" -ge 10
ro=$(report "$T/others.jsonl" "$T/reads.jsonl")
check "…meanwhile the one worker served $(jqr "$ro" .total) other requests, none failed ($(statuses "$T/others.jsonl") / $(statuses "$T/reads.jsonl"))" \
    test "$(jqr "$ro" .failed_count)" = 0 -a "$(jqr "$ro" .total)" -gt 200
check "…their latency stayed far below a slow body's ${secs} s: p99 $(jqr "$ro" .p99_ms) ms, max $(jqr "$ro" .max_ms) ms (bound 2 s)" \
    jq -e '.max_ms < 2000' <<<"$ro"
check "…and the worker was never replaced (pid $pid0)" \
    test "$(fleet_json '[.slots[] | select(.role == "api") | .pid][0]')" = "$pid0"
verify_acked "slow bodies" slow "$T/slow.jsonl" "$T/others.jsonl"
