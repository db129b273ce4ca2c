#!/usr/bin/env bash
# Fault suite (issue 18 item 2), the fleet's processes killed and replaced
# under a bounded write load:
#  1. kill -9 of an API worker: only requests in flight on it at that instant
#     may fail (counted and shown); the slot comes back;
#  2. kill -9 of the projector, twice: no request fails, the view catches up
#     with every record;
#  3. `tessera reload` ×10 in 60 s while 20 five-second requests are always
#     in flight: every one of them answers 200, no write fails.
# Each case ends by reading back every acknowledged write byte for byte; on
# the memory engine that proves the shared region keeps what a worker
# acknowledged when the worker dies or is replaced.
# engines: postgres memory
. "$(dirname "$0")/fault.sh"
export TESSERA_FLEET_PROJECTORS=1

stack_up TESSERA_FLEET_WORKERS=3 TESSERA_CQRS_POLL_MS=200 TESSERA_FLEET_RESTART_BACKOFF_MAX=1 ||
    { not_ok "stack starts"; exit 1; }
fault_setup items || { not_ok "the fault service and its resource"; exit 1; }

api_pid() { fleet_json "[.slots[] | select(.role == \"api\" and .slot == $1) | .pid][0]"; }
projector_pid() { fleet_json '[.slots[] | select(.role == "projector" and (.state == "idle" or .state == "busy")) | .pid][0]'; }
replaced() { local p; p=$($1); [ -n "$p" ] && [ "$p" != null ] && [ "$p" != "$2" ] && kill -0 "$p"; }
api0() { api_pid 0; }

# ---- 1. kill -9 of an API worker under load
writers_start kill items --conns 8
sleep 2
# kill9 PID: kill -9, setting KILLED to FROM:TO, the clock before and after
# (the signal lands in between; a failure must have been in flight then)
kill9() { local t; t=$(now_s); kill -9 "$1"; KILLED=$t:$(now_s); }
victim=$(api_pid 0)
kill9 "$victim"; kill_t=$KILLED
victim2= kill_t2=
wait_until 5 replaced api0 "$victim" && sleep 1.5 && victim2=$(api_pid 0) && kill9 "$victim2" && kill_t2=$KILLED
sleep 2
writers_stop kill
r1=$(report "$T/kill.jsonl" --kill "$kill_t${victim2:+,$kill_t2}")
n=$(jqr "$r1" .total); failed=$(jqr "$r1" .failed_count)
check "kill -9 ×2 of api slot 0 under 8 writing connections: the writes ran ($n requests)" test "$n" -gt 100
# A request fails only when it was in flight at one of the two kills.
stray=$(jqr "$r1" .failed_not_in_flight)
if [ "$stray" = 0 ] && [ "$failed" -le 16 ]; then
    ok "…$failed failed, each in flight at a kill ($(jqr "$r1" '.by_status | tostring'))"
else
    not_ok "…$failed failed, each in flight at a kill ($(jqr "$r1" '.by_status | tostring'))" \
        "kills at $kill_t $kill_t2; not in flight: $(jqr "$r1" '.stray | tostring')"
fi
echo "# kill -9: $failed of $n writes failed: $(jqr "$r1" '[.failed[] | "\(.status) \(.err // "")"] | join("; ")')"
check "…and each failure is nginx's 502 for the lost upstream (never a 5xx of tessera's, never a hang)" \
    test "$(jqr "$r1" '[.failed[] | select(.status != 502)] | length')" = 0
check "the killed slot serves again under a new pid" wait_until 5 replaced api0 "${victim2:-$victim}"
check "…and its crash is logged with signal 9" \
    jq -e -s "any(.[]; .event == \"worker_crash\" and .exited_pid == $victim and (.exit | test(\"signal 9\")))" "$T/fleet.log"
verify_acked "kill -9 of an api worker" items "$T/kill.jsonl"

# ---- 2. kill -9 of the projector under load
fault_resource proj || not_ok "a resource for the projector case"
writers_start proj proj --conns 6
killed=()
for _ in 1 2; do
    sleep 1.5
    p=$(projector_pid)
    [ -n "$p" ] && [ "$p" != null ] && kill -9 "$p" && killed+=("$p")
    wait_until 10 replaced projector_pid "$p"
done
sleep 1
writers_stop proj
r=$(report "$T/proj.jsonl")
check "the projector was killed -9 twice under the write load (${killed[*]})" test "${#killed[@]}" = 2
check "…no request failed ($(jqr "$r" .total) writes, $(jqr "$r" '.by_status | tostring'))" \
    test "$(jqr "$r" .failed_count)" = 0 -a "$(jqr "$r" .total)" -gt 50
view_matches() { "${LOAD[@]}" view "$URL" "$ADMIN" proj by_bucket >"$T/view.out" 2>&1; }
if wait_until 30 view_matches; then
    ok "…the view caught up: count and sum per bucket equal the records' ($(cat "$T/view.out"))"
else
    not_ok "…the view caught up: count and sum per bucket equal the records'" "$(cat "$T/view.out")"
fi
verify_acked "kill -9 of the projector" proj "$T/proj.jsonl"

stack_down
mv "$T/fleet.log" "$T/fleet-kill.log"

# ---- 3. ten reloads in 60 s with 20 five-second requests always in flight
# 22 workers: the 20 sleeping requests each hold one, the writes share the rest
# (and wait behind a sleeper when nginx's kept connection is one of theirs).
stack_up TESSERA_FLEET_WORKERS=22 TESSERA_FLEET_PROJECTORS=1 || { not_ok "a 22-worker stack starts"; exit 1; }
fault_setup reload || { not_ok "the fault service for the reload case"; exit 1; }
gen0=$(fleet_json .generation)
log0=$(wc -l <"$T/nginx/nginx-error.log" 2>/dev/null || echo 0)
rm -f "$T/sleep.stop"
"${LOAD[@]}" get "$URL" "$ADMIN" "/debug/sleep?ms=5000" "$T/sleep.jsonl" --conns 20 --stop "$T/sleep.stop" \
    >>"$T/load.err" 2>&1 &
SLEEPERS=$!
PIDS+=("$SLEEPERS")
writers_start reload reload --conns 4 --pause 20
sleep 2
reloads=0
for i in $(seq 1 10); do
    "$TESSERA" reload >/dev/null 2>>"$T/cli.err" && reloads=$((reloads + 1))
    sleep 6
done
touch "$T/sleep.stop"
writers_stop reload
wait "$SLEEPERS"
rs=$(report "$T/sleep.jsonl")
rw=$(report "$T/reload.jsonl")
check "tessera reload ×10 in 60 s: each accepted ($reloads)" test "$reloads" = 10
check "…20 five-second requests in flight throughout: all $(jqr "$rs" .total) answered 200 ($(jqr "$rs" '.by_status | tostring'))" \
    test "$(jqr "$rs" .failed_count)" = 0 -a "$(jqr "$rs" .total)" -ge 200
check "…and none was cut short (each took ≥ 5 s; the shortest $(jq -s 'map(.t1 - .t0) | min * 1000 | floor' "$T/sleep.jsonl") ms)" \
    test "$(jq -s '[.[] | select(.t1 - .t0 < 5)] | length' "$T/sleep.jsonl")" = 0
check "…no write failed either ($(jqr "$rw" .total) writes, $(jqr "$rw" '.by_status | tostring'))" \
    test "$(jqr "$rw" .failed_count)" = 0 -a "$(jqr "$rw" .total)" -gt 100
check "…nginx logged no upstream error" \
    bash -c "! tail -n +$((log0 + 1)) '$T/nginx/nginx-error.log' | grep -E 'upstream|Broken pipe|reset by peer'"
settled() { [ "$(fleet_json '[.slots[] | select(.role == "api" and .state != "retiring")] | length')" = 22 ] &&
    [ "$(fleet_json '.generation as $g | all(.slots[]; .generation == $g)')" = true ]; }
check "…the fleet settles on the last generation ($(fleet_json .generation), from $gen0)" wait_until 30 settled
verify_acked "reload ×10" reload "$T/reload.jsonl"
