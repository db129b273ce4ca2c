#!/usr/bin/env bash
# Fault suite (issue 18 item 2), clients that misbehave, on both engines:
#  8. slow bodies (a byte a second, a slowloris on the body) against a fleet of
#     ONE worker: nginx buffers the body (fastcgi_request_buffering), so the
#     worker never waits on it; the other clients' latency proves it (a worker
#     held by a slow body would stall them for the whole body);
#  9. 1 000 concurrent connections: 1 000 writers released at once, then wrk
#     -c1000 on a read: no answer but 2xx (no limit applies to these routes,
#     so neither 429 nor 503 is allowed), no connection refused or reset, the
#     fleet healthy after (same workers, none crashed).
# engines: postgres memory
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
stack_down
mv "$T/fleet.log" "$T/fleet-slow.log"

# ---- 9. 1 000 concurrent connections
stack_up || { not_ok "a stack starts"; exit 1; }
fault_setup crowd || { not_ok "the fault service for the crowd"; exit 1; }
pids0=$(fleet_json '[.slots[].pid] | sort | join(" ")')
log0=$(wc -l <"$T/nginx/nginx-error.log")
rm -f "$T/go"
"${LOAD[@]}" write "$URL" "$ADMIN" crowd "$T/crowd.jsonl" --conns 1000 --count 3 --start "$T/go" --tag crowd \
    >>"$T/load.err" 2>&1 &
CROWD=$!
PIDS+=("$CROWD")
sleep 3   # 1 000 threads connect, then all go at once
touch "$T/go"
wait "$CROWD"
rc=$(report "$T/crowd.jsonl")
check "1 000 connections writing at once, 3 writes each: all 3 000 answered 201 ($(statuses "$T/crowd.jsonl"); p99 $(jqr "$rc" .p99_ms) ms)" \
    test "$(jqr "$rc" .total)" = 3000 -a "$(jqr "$rc" .failed_count)" = 0
[ "$(jqr "$rc" .failed_count)" = 0 ] || echo "# $(jqr "$rc" '.failed[0:5] | tostring')"
verify_acked "1 000 concurrent writers" crowd "$T/crowd.jsonl"
id=$(jq -r 'select(.id) | .id' "$T/crowd.jsonl" | head -1)
wrk -t2 -c1000 -d6s --timeout 30s -H "Authorization: Bearer $ADMIN" "$URL/v1/svc/fault/crowd/$id" >"$T/wrk.out" 2>&1
read -r n bad err < <(wrk_counts "$T/wrk.out")
check "wrk -c1000 reading a record for 6 s: $n requests, $bad non-2xx, $err socket errors" \
    test "$n" -gt 1000 -a "$bad" = 0 -a "$err" = 0
[ "$bad$err" = 00 ] || sed 's/^/# /' "$T/wrk.out" | tail -8
check "the fleet is healthy after: the same workers, none crashed or replaced" \
    test "$(fleet_json '[.slots[].pid] | sort | join(" ")')" = "$pids0" -a \
         "$(fleet_json '[.slots[] | select(.restarts > 0 or .state == "backoff")] | length')" = 0
req GET /readyz
expect "…/readyz answers 200" 200 '.status == "ready"'
check "…and nginx logged no error meanwhile" \
    bash -c "! tail -n +$((log0 + 1)) '$T/nginx/nginx-error.log' | grep -E '\\[(error|crit|alert|emerg)\\]'"
