#!/usr/bin/env bash
# The read cache's single-flight when its lock holder dies (issue 13, DESIGN §3
# "Cache"): kill -9 of the worker that holds a key's lock mid-load. The test
# build's hook (TESSERA_TEST_CACHE_LOAD_SLEEP_MS, lib/store/cache.c) makes every
# lock holder sleep before its load, so the holder can be killed while it holds
# the lock. What it proves, on 4 workers: the reads behind it outwait the dead
# holder's lock (its TTL, lock_ms), exactly one of them loads, every one
# answers 200 with the same body within lock_ms + the replacement's own hold
# (well inside wait_ms: nobody waits out the bound and loads itself), the
# killed worker's cache counters stay in /metrics (a slot's block outlives its
# worker, see lib/fleet/metrics.h), and the fleet restarts the killed worker.
#
# Timing: the hook sleeps SLEEP_MS in the holder, and in the waiter that takes
# the lock over, so SLEEP_MS < LOCK_MS keeps that one's lock alive through its
# load (one load, not a chain of expired locks). The holder is killed more than
# 500 ms into its request, past nginx's fastcgi_next_upstream_timeout, so nginx
# does not retry it: it answers 502. The waiters are sent just before the kill,
# so one that nginx queued on a kept connection of the holder's worker is
# retried on another (well within those 500 ms).
#
# On Redis (postgres) every other worker waits in the cache's wait loop. On the
# memory engine they queue instead on its region lock, which a unit of work
# (and so the read and its cache wait) holds: after the kill one of them takes
# over that robust mutex and waits on the dead holder's kv lock, the others
# follow it and hit. The waits counter says which.
# engines: memory postgres
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg.sh"
J='Content-Type: application/json'
WORKERS=4 LOCK_MS=2000 WAIT_MS=6000 SLEEP_MS=1500 N=12

stack_up TESSERA_FLEET_WORKERS=$WORKERS TESSERA_CACHE_LOCK_MS=$LOCK_MS TESSERA_CACHE_WAIT_MS=$WAIT_MS \
    TESSERA_TEST_CACHE_LOAD_SLEEP_MS=$SLEEP_MS || { not_ok "stack starts"; exit 1; }
# metric NAME USE: the fleet-wide value of tessera_cache_<NAME>_total{use="USE"}
metric() {
    curl -s "$URL/metrics" | awk -v s="tessera_cache_$1_total{use=\"$2\"}" '$1 == s { print $2 }'
}
# counters: the records cache's "hits misses loads waits lock_timeouts", one scrape
counters() {
    curl -s "$URL/metrics" | awk '{ v[$1] = $2 } END {
        n = split("hits misses loads waits lock_timeouts", k, " ")
        for (i = 1; i <= n; i++) printf "%d%s", v["tessera_cache_" k[i] "_total{use=\"records\"}"], i < n ? " " : "\n" }'
}
# ms SECONDS: curl's %{time_total} in whole milliseconds
ms() { awk -v s="$1" 'BEGIN { printf "%d\n", s * 1000 }'; }
# busy_api MIN_MS: the api slots serving a request for at least MIN_MS, as a JSON array
busy_api() {
    fleet_json "[.slots[] | select(.role == \"api\" and .state == \"busy\" and .current_request_ms >= $1)]"
}
n_busy() { busy_api 0 | jq length; }
one_busy_for() { [ "$(busy_api "$1" | jq length)" = 1 ]; }
all_busy() { [ "$(n_busy)" = "$WORKERS" ]; }
settled() { [ "$(fleet_json '[.slots[] | select(.role == "api" and (.state == "idle" or .state == "busy"))] | length')" = "$WORKERS" ]; }

req POST /v1/auth/login -H "$J" -d '{"email":"admin@example.com","password":"tessera-dev"}'
ADMIN=$(jq -r .access_token <<<"$BODY")
A=(-H "$(auth "$ADMIN")")
req PUT /v1/svc/crm/schema/held "${A[@]}" -H "$J" -d '{"fields":{"name":{"type":"string","index":true}}}'
check "a resource to cache (schema PUT by the platform admin)" test "$STATUS" = 200
for n in held held other; do
    req POST /v1/svc/crm/held "${A[@]}" -H "$J" -d "{\"name\":\"$n\"}"
    [ "$STATUS" = 201 ] || break
done
check "three records of it" test "$STATUS" = 201

# The principal and the schema are cached by these reads, so the holder's only
# lock below is its page's; each first read of a key sleeps in the hook.
t0=$(date +%s%N)
req GET "/v1/svc/crm/held?name=eq.warm" "${A[@]}"
took=$((($(date +%s%N) - t0) / 1000000))
check "the test build's hook is on: a first read of an uncached page holds the lock and sleeps (${took} ms)" \
    test "$STATUS" = 200 -a "$took" -ge "$SLEEP_MS"
for _ in $(seq 1 $((2 * WORKERS))); do req GET "/v1/svc/crm/held?name=eq.warm" "${A[@]}"; done
t=$(curl -s -o /dev/null -w '%{time_total}' "${A[@]}" "$URL/v1/svc/crm/held?name=eq.warm")
check "… and once cached it is served without the hook's sleep ($(ms "$t") ms)" test "$(ms "$t")" -lt "$SLEEP_MS"
check "all $WORKERS workers are up and idle" wait_until 5 settled

# ---- the holder, killed mid-load ------------------------------------------------------
PAGE="/v1/svc/crm/held?name=eq.held&limit=5"
read -r hits0 misses0 loads0 waits0 lock_timeouts0 < <(counters)
crashes0=$(jq -s '[.[] | select(.event == "worker_crash")] | length' "$T/fleet.log")
curl -s -m 30 "${A[@]}" -o "$T/holder.body" -w '%{http_code} %{time_total}\n' "$URL$PAGE" >"$T/holder.out" &
HOLDER_CURL=$!
PIDS+=("$HOLDER_CURL")
check "the first read of the page takes its lock and sleeps before its load (one worker busy)" \
    wait_until 3 one_busy_for 1
holder=$(busy_api 1 | jq -c '.[0] // empty')
[ -n "$holder" ] || exit 1 # (not ok above) nothing to kill
victim=$(jq .pid <<<"$holder") slot=$(jq .slot <<<"$holder") restarts0=$(jq .restarts <<<"$holder")
wait_until 3 one_busy_for 600 # past nginx's retry window (fastcgi_next_upstream_timeout)
mkdir -p "$T/w"
seq 1 "$N" | xargs -P "$N" -I{} sh -c 'curl -s -m 30 -H "$1" -o "$2/{}.body" -w "%{http_code} %{time_total}\n" "$3" >"$2/{}.out"' \
    sh "$(auth "$ADMIN")" "$T/w" "$URL$PAGE" &
WAITERS=$!
PIDS+=("$WAITERS")
check "$N more reads of the page: every other worker takes one ($WORKERS busy)" \
    wait_until 3 all_busy
held_ms=$(busy_api 0 | jq ".[] | select(.pid == $victim) | .current_request_ms")
check "the holder is still in its hold when it is killed (${held_ms:-?} ms of its ${SLEEP_MS} ms sleep)" \
    test "${held_ms:-0}" -gt 500 -a "${held_ms:-99999}" -lt $((SLEEP_MS - 100))
kill -9 "$victim"
wait "$HOLDER_CURL"
wait "$WAITERS"

read -r hcode _ <"$T/holder.out"
check "the request the killed worker was serving fails (502), and only that one" test "${hcode:-none}" = 502
codes=$(cat "$T"/w/*.out | cut -d' ' -f1 | sort | uniq -c | sed 's/^ *//')
check "every waiter answers 200 ($codes)" test "$codes" = "$N 200"
bodies=$(for f in "$T"/w/*.body; do sha256sum <"$f"; done | sort -u | wc -l)
check "… all $N bodies identical" test "$bodies" = 1
check "… and the page holds the two matching records" \
    jq -e '[.data[].name] == ["held", "held"]' "$T/w/1.body"
times=$(cat "$T"/w/*.out | while read -r _ t; do ms "$t"; done | sort -n)
fast=$(head -1 <<<"$times") slow=$(tail -1 <<<"$times")
BOUND=$((LOCK_MS + SLEEP_MS))
check "none waits past lock_ms + the replacement's own hold ($BOUND ms, wait_ms is $WAIT_MS): slowest ${slow} ms" \
    test "${slow:-99999}" -le "$BOUND"
check "… and none was answered before a replacement held the lock through its hold (fastest ${fast} ms)" \
    test "${fast:-0}" -ge "$SLEEP_MS"

read -r hits1 misses1 loads1 waits1 lock_timeouts1 < <(counters)
d_hits=$((hits1 - hits0)) d_misses=$((misses1 - misses0)) d_loads=$((loads1 - loads0))
d_waits=$((waits1 - waits0)) d_lock_timeouts=$((lock_timeouts1 - lock_timeouts0))
check "the loader ran exactly once, in the waiter that took the lock over (loads +$d_loads; the holder died before its load)" \
    test "$d_loads" = 1
check "… no waiter waited out wait_ms and loaded itself (lock_timeouts +$d_lock_timeouts)" test "$d_lock_timeouts" = 0
if [ "${ENGINE:-memory}" = postgres ]; then
    check "… every other worker's read waited on the dead holder's lock (waits +$d_waits, at least $((WORKERS - 1)))" \
        test "$d_waits" -ge $((WORKERS - 1))
else
    # A unit of work holds the memory engine's region lock, and a read runs
    # inside one: the other workers queue on that robust mutex, not on the
    # cache's lock, and one at a time gets it; only the first finds the dead
    # holder's kv lock (a separate region) and waits on it.
    check "… one read waited on the dead holder's lock, the others queued on the engine's region lock (waits +$d_waits)" \
        test "$d_waits" = 1
fi
check "… every answered read was that one load or a hit (hits +$d_hits, loads +$d_loads, $N reads)" \
    test $((d_hits + d_loads)) = "$N"
# Every read that missed then waited (no worker was free to start a read when
# the lock expired), so misses = waits + the holder's own miss: counted by the
# killed worker, and kept, because a slot's block in /metrics outlives its worker.
check "… the killed holder's miss is still counted (misses +$d_misses = waits +$d_waits + 1)" \
    test "$d_misses" = $((d_waits + 1))

check "the fleet restarts the killed worker: all $WORKERS api slots serve again" wait_until 5 settled
after=$(fleet_json ".slots[] | select(.slot == $slot)")
newpid=$(jq .pid <<<"${after:-null}")
check "… its slot runs under a new pid ($victim → $newpid), its restarts +1, last exit signal 9" \
    bash -c "[ '$newpid' -gt 0 ] && [ '$newpid' != '$victim' ] && kill -0 '$newpid' &&
             [ \"\$(jq .restarts <<<'$after')\" = $((restarts0 + 1)) ] && jq -e '.last_exit | test(\"signal 9\")' <<<'$after' >/dev/null"
check "… and the master logged that one crash, restarting at once" \
    jq -e -s "[.[] | select(.event == \"worker_crash\")] | length == $((crashes0 + 1)) and
              any(.[]; .event == \"worker_crash\" and .exited_pid == $victim and .restart_in_s == 0)" "$T/fleet.log"
l2=$(metric loads records)
req GET "$PAGE" "${A[@]}"
check "the page stays cached: the next read is a hit with the same body (loads $l2→$(metric loads records))" \
    bash -c "[ '$STATUS' = 200 ] && [ \"$(metric loads records)\" = '$l2' ] &&
             [ '$(jq -c . <<<"$BODY")' = '$(jq -c . "$T/w/1.body")' ]"
