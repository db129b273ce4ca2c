#!/usr/bin/env bash
# Fault suite (issue 18 item 2), case 4: Redis stopped under load, then
# started again on its port. While it is down every authenticated request
# answers 503 (the blacklist fails closed: DESIGN §3) and writes nothing;
# nothing else fails: /healthz, and logins (their throttle fails open); once
# it is back the same requests succeed without a restart of the fleet. Every
# acknowledged write reads back. On PostgreSQL, and on the memory engine
# with its kv in Redis (redis.url set; without it the kv lives in the shared
# region and there is no Redis to lose).
# engines: postgres memory
. "$(dirname "$0")/fault.sh"

kv=()
if [ "${ENGINE:-memory}" = memory ]; then
    redis_up || { not_ok "redis starts"; exit 1; }
    kv=(TESSERA_REDIS_URL="$REDIS_URL")
fi
stack_up TESSERA_FLEET_WORKERS=3 "${kv[@]}" || { not_ok "stack starts"; exit 1; }
req GET /readyz
expect "the kv is Redis (${ENGINE:-memory} engine)" 200 '.checks.kv.backend == "redis"'
fault_setup redis || { not_ok "the fault service and its resource"; exit 1; }

redis_stop() { redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1; wait "$REDIS_PID" 2>/dev/null; REDIS_PID=; }
redis_start() {
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$T" --logfile "$T/redis.log" >/dev/null 2>&1 &
    REDIS_PID=$!
    wait_until 10 redis-cli -p "$REDIS_PORT" ping
}
# logins LOG STOPFILE: a login a tenth of a second apart, "t0 t1 status" per line
logins() {
    local t0
    until [ -e "$2" ]; do
        t0=$(now_s)
        s=$(curl -s -m 30 -o /dev/null -w '%{http_code}' -H "$J" \
            -d '{"email":"alice@acme.test","password":"tessera-dev"}' "$URL/v1/auth/login")
        echo "$t0 $(now_s) $s" >>"$1"
        sleep 0.1
    done
}

writers_start rw redis --conns 6 --pause 5
getters_start health - /healthz --conns 2 --pause 20
rm -f "$T/login.stop"; logins "$T/login.log" "$T/login.stop" &
LOGINS=$!
sleep 2
t_down0=$(now_s)
redis_stop
t_down1=$(now_s)
sleep 1
req GET /readyz
expect "Redis down: /readyz answers 503 naming the kv" 503 '.checks.kv.status == "down"'
req GET /v1/auth/me -H "Authorization: Bearer $ADMIN"
expect_error "…an authenticated request answers the 503 envelope (unavailable)" 503 unavailable
sleep 2
t_up0=$(now_s)
redis_start || not_ok "Redis starts again on its port"
t_up1=$(now_s)
sleep 3
writers_stop rw
getters_stop health
touch "$T/login.stop"; wait "$LOGINS"

r=$(report "$T/rw.jsonl")
check "writes ran across the outage ($(statuses "$T/rw.jsonl"))" test "$(jqr "$r" .total)" -gt 100
check "…while Redis was down (from the stop's end to the start) every write answered 503" \
    test "$(jq -s --argjson a "$t_down1" --argjson b "$t_up0" \
        '[.[] | select(.t0 >= $a and .t1 <= $b and .status != 503)] | length' "$T/rw.jsonl")" = 0 \
         -a "$(jq -s --argjson a "$t_down1" --argjson b "$t_up0" \
        '[.[] | select(.t0 >= $a and .t1 <= $b)] | length' "$T/rw.jsonl")" -gt 10
check "…no answer but 201 and 503" test "$(jqr "$r" '.by_status | keys - ["201", "503"] | length')" = 0
# recovered: the last 503 came within a second of Redis answering again
check "…and no 503 outside the outage (recovered within 1 s of the restart)" \
    test "$(only_in "$T/rw.jsonl" 503 "$t_down0" "$(jq -n "$t_up1 + 1")")" = 0
last=$(jq -s --argjson b "$t_up1" '[.[] | select(.status == 503) | .t1 - $b] | max | . * 1000 | floor' "$T/rw.jsonl")
echo "# the last 503 ended ${last} ms after Redis answered again"
h=$(report "$T/health.jsonl")
check "…/healthz answered 200 throughout ($(statuses "$T/health.jsonl"))" \
    test "$(jqr "$h" .failed_count)" = 0 -a "$(jqr "$h" .total)" -gt 50
n_login=$(wc -l <"$T/login.log")
n_login_down=$(awk -v a="$t_down1" -v b="$t_up0" '$1 >= a && $2 <= b' "$T/login.log" | wc -l)
check "…logins answered 200 throughout, $n_login_down of them while Redis was down ($n_login in all)" \
    test "$(awk '$3 != 200' "$T/login.log" | wc -l)" = 0 -a "$n_login_down" -gt 0
req GET /readyz
expect "Redis back: /readyz answers 200" 200 '.checks.kv.status == "ok"'
verify_acked "Redis stopped and started" redis "$T/rw.jsonl"
check "…and a write answered 503 wrote nothing ($(jqr "$VERIFY" .unacked) refused, $(jqr "$VERIFY" .unacked_landed) found)" \
    test "$(jqr "$VERIFY" .unacked_landed)" = 0
