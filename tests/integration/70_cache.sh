#!/usr/bin/env bash
# The read cache (issue 13, DESIGN §3 "Cache"): record reads, the principal, the
# registry and the schemas, through the fleet's kv — the shared-memory kv on the
# memory engine, a real Redis on postgres. What it proves, with the cache's own
# counters from /metrics: a read is loaded once and then hit (a 404 too) until a
# write bumps its namespace; after a write the next read on any worker sees it;
# test and live, org A and org B, never share an entry; a demotion or a revoked
# key holds from the next request; a stampede loads once. On Redis also: no
# SCAN or KEYS is ever sent, no plaintext pii is stored, and with Redis stopped
# the blacklist fails closed, and once it is back the same bodies come and hits
# resume without a restart.
# engines: memory postgres
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg.sh"
J='Content-Type: application/json'

stack_up TESSERA_FLEET_SLOWLOG_MS=1 || { not_ok "stack starts"; exit 1; }
# metric NAME USE: the fleet-wide value of tessera_cache_<NAME>_total{use="USE"}
metric() {
    curl -s "$URL/metrics" | awk -v s="tessera_cache_$1_total{use=\"$2\"}" '$1 == s { print $2 }'
}
# same_n N METHOD PATH HEADER...: N requests (spread over both workers) that all
# answer the same status and body; prints "status body-sha" once when they agree
same_n() {
    local n=$1 i; shift
    for i in $(seq 1 "$n"); do req "$@"; printf '%s %s\n' "$STATUS" "$(printf '%s' "$BODY" | sha256sum | cut -c1-16)"; done | sort -u
}

login admin@example.com; ADMIN=$TOKEN
login alice@acme.test; ALICE=$TOKEN
login bob@globex.test; BOB=$TOKEN
A=(-H "$(auth "$ADMIN")")
req PUT /v1/svc/crm/schema/cached "${A[@]}" -H "$J" \
    -d '{"fields":{"name":{"type":"string","index":true},"email":{"type":"string","pii":true}}}'
check "a resource to cache (schema PUT by the platform admin)" test "$STATUS" = 200
req POST /v1/svc/crm/cached "${A[@]}" -H "$J" -d '{"name":"first","email":"first.secret@example.com"}'
check "a record of it" test "$STATUS" = 201
RID=$(jq -r .id <<<"$BODY")

# ---- a read is loaded once, then hit -------------------------------------------
l0=$(metric loads records); h0=$(metric hits records)
out=$(same_n 6 GET "/v1/svc/crm/cached/$RID" "${A[@]}")
check "6 reads of one record, over both workers: one answer" test "$(wc -l <<<"$out")" = 1
check "… a 200 with the record" bash -c "grep -q '^200 ' <<<'$out'"
l1=$(metric loads records); h1=$(metric hits records)
check "… loaded from the engine once, the other 5 hits (loads $l0→$l1, hits $h0→$h1)" \
    test "$((l1 - l0))" = 1 -a "$((h1 - h0))" -ge 5
check "the cached record still opens its pii for the reader" \
    bash -c "[ \"\$(curl -s '$URL/v1/svc/crm/cached/$RID' -H '$(auth "$ADMIN")' | jq -r .email)\" = first.secret@example.com ]"

# ---- read ahead: a known request's reads come with its first round trip -----------
# Each worker learns what a request shape reads past authn's round trip the
# first time it serves it; from then on those keys come with that round trip.
# A GET by id reads its records version once, so read_ahead{records} grows by
# one per GET on a worker that has learned it (at most 2 learners here).
same_n 4 GET "/v1/svc/crm/cached/$RID" "${A[@]}" >/dev/null
ra0=$(metric read_ahead records); sa0=$(metric read_ahead schema); h0=$(metric hits records)
out=$(same_n 10 GET "/v1/svc/crm/cached/$RID" "${A[@]}")
ra1=$(metric read_ahead records); sa1=$(metric read_ahead schema); h1=$(metric hits records)
check "10 GETs of a known record: one answer, all hits (hits $h0→$h1)" \
    test "$(wc -l <<<"$out")" = 1 -a "$((h1 - h0))" = 10
check "… their records and schema versions read ahead (records $ra0→$ra1, schema $sa0→$sa1)" \
    test "$((ra1 - ra0))" -ge 8 -a "$((ra1 - ra0))" -le 10 -a "$((sa1 - sa0))" -ge 8
req GET "/v1/svc/crm/cached/$RID" -H "$(auth "$BOB")"
expect_error "org B asking the same path reads nothing org A's shape read ahead: 404" 404 not_found

GHOST=019a0000-0000-7000-8000-000000000000
req GET "/v1/svc/crm/cached/$GHOST" "${A[@]}"
expect_error "an unknown id → 404" 404 not_found
l2=$(metric loads records)
out=$(same_n 5 GET "/v1/svc/crm/cached/$GHOST" "${A[@]}")
check "a cached 404 stays a hit: 5 more 404s, no load (loads $l2→$(metric loads records))" \
    bash -c "grep -q '^404 ' <<<'$out' && [ \"$(metric loads records)\" = $l2 ]"

# ---- read your writes ------------------------------------------------------------
req PATCH "/v1/svc/crm/cached/$RID" "${A[@]}" -H "$J" -d '{"name":"second"}'
check "an update answers 200" test "$STATUS" = 200
names=$(for i in 1 2 3 4 5 6; do curl -s "$URL/v1/svc/crm/cached/$RID" -H "$(auth "$ADMIN")" | jq -r .name; done | sort -u)
check "the next reads on every worker see the update" test "$names" = second
req GET "/v1/svc/crm/cached?name=eq.second" "${A[@]}"
check "a list sees it too" bash -c "jq -e '.data | length == 1' <<<'$BODY' >/dev/null"
l3=$(metric loads records)
req POST /v1/svc/crm/cached "${A[@]}" -H "$J" -d '{"name":"second","email":"x@example.com"}'
req GET "/v1/svc/crm/cached?name=eq.second" "${A[@]}"
check "after a create the same list page is loaded again and holds both" \
    bash -c "jq -e '.data | length == 2' <<<'$BODY' >/dev/null && [ $(metric loads records) -gt $l3 ]"
req DELETE "/v1/svc/crm/cached/$RID" "${A[@]}"
req GET "/v1/svc/crm/cached/$RID" "${A[@]}"
expect_error "after a delete the cached record is gone: 404" 404 not_found

# ---- modes and orgs never share an entry -------------------------------------------
LIVE=(-H "$(auth "$ADMIN")" -H "Tessera-Mode: live")
req PUT /v1/svc/crm/schema/cached "${LIVE[@]}" -H "$J" -d '{"fields":{"name":{"type":"string"}}}'
req POST /v1/svc/crm/cached "${LIVE[@]}" -H "$J" -d '{"name":"live one"}'
req GET /v1/svc/crm/cached "${LIVE[@]}"
check "live mode has its own records" bash -c "jq -e '[.data[].name] == [\"live one\"]' <<<'$BODY' >/dev/null"
live_body=$BODY
req GET /v1/svc/crm/cached "${LIVE[@]}"
l4=$(metric loads records)
req POST /v1/svc/crm/cached "${A[@]}" -H "$J" -d '{"name":"test write"}'
req GET /v1/svc/crm/cached "${LIVE[@]}"
check "a test-mode write leaves the live page cached (no load: $l4→$(metric loads records)) and unchanged" \
    bash -c "[ \"$(metric loads records)\" = $l4 ] && [ '$(printf '%s' "$BODY" | sha256sum)' = '$(printf '%s' "$live_body" | sha256sum)' ]"
req GET /v1/svc/crm/cached "${A[@]}"
test_body=$BODY
l5=$(metric loads records)
req POST /v1/svc/crm/cached "${LIVE[@]}" -H "$J" -d '{"name":"live two"}'
req GET /v1/svc/crm/cached "${A[@]}"
check "… and a live-mode write leaves the test page cached" \
    bash -c "[ \"$(metric loads records)\" = $l5 ] && [ '$(printf '%s' "$BODY" | sha256sum)' = '$(printf '%s' "$test_body" | sha256sum)' ]"
req GET /v1/svc/crm/cached -H "$(auth "$BOB")"
check "org B asking the same path and query gets its own (empty) page, never org A's" \
    bash -c "jq -e '.data == []' <<<'$BODY' >/dev/null"

# ---- the principal: a change holds from the next request, on every worker ------------
ph0=$(metric hits principal)
same_n 4 GET /v1/auth/me -H "$(auth "$ALICE")" >/dev/null
check "the principal is served from the cache (hits $ph0→$(metric hits principal))" \
    test "$(metric hits principal)" -gt "$ph0"
out=$(same_n 4 GET /v1/auth/api-keys -H "$(auth "$ALICE")")
check "alice, an admin, manages keys" test "$out" = "$(head -1 <<<"$out")" -a "${out%% *}" = 200
req PATCH /v1/orgs/current/members/aaaaaaaa-0000-4000-8000-000000000002 "${A[@]}" -H "$J" -d '{"role":"viewer"}'
check "the owner demotes alice to viewer" test "$STATUS" = 200
out=$(same_n 6 GET /v1/auth/api-keys -H "$(auth "$ALICE")")
check "her very next requests, on every worker, are refused (403)" bash -c "[ \"\$(cut -d' ' -f1 <<<'$out' | sort -u)\" = 403 ]"
# a role's permissions taken away (PATCH /v1/roles/{name})
req POST /v1/roles "${A[@]}" -H "$J" -d '{"name":"auditor","permissions":["audit:read:*"]}'
check "the owner defines a role auditor (audit:read)" test "$STATUS" = 201
req PATCH /v1/orgs/current/members/aaaaaaaa-0000-4000-8000-000000000002 "${A[@]}" -H "$J" -d '{"role":"auditor"}'
out=$(same_n 4 GET /v1/audit -H "$(auth "$ALICE")")
check "alice as auditor reads the audit trail, on every worker (principal cached)" test "${out%% *}" = 200 -a "$(wc -l <<<"$out")" = 1
req PATCH /v1/roles/auditor "${A[@]}" -H "$J" -d '{"permissions":["records:read:*"]}'
check "the owner changes auditor to hold no audit:read" test "$STATUS" = 200
out=$(same_n 6 GET /v1/audit -H "$(auth "$ALICE")")
check "… and her very next reads of it, on every worker, are refused (403)" bash -c "[ \"\$(cut -d' ' -f1 <<<'$out' | sort -u)\" = 403 ]"
req POST /v1/auth/api-keys "${A[@]}" -H "$J" -d '{"name":"cache test"}'
KEY=$(jq -r .key <<<"$BODY"); KEY_ID=$(jq -r .id <<<"$BODY")
out=$(same_n 4 GET /v1/orgs/current -H "$(auth "$KEY")")
check "an API key works (and its principal is cached)" bash -c "[ \"\$(cut -d' ' -f1 <<<'$out' | sort -u)\" = 200 ]"
req DELETE "/v1/auth/api-keys/$KEY_ID" "${A[@]}"
out=$(same_n 6 GET /v1/orgs/current -H "$(auth "$KEY")")
check "revoked, it is refused on the next requests on every worker (401)" \
    bash -c "[ \"\$(cut -d' ' -f1 <<<'$out' | sort -u)\" = 401 ]"

# ---- app discovery --------------------------------------------------------------
req GET /v1/apps -H "$(auth "$ALICE")"
a0=$(metric hits apps)
out=$(same_n 4 GET /v1/apps -H "$(auth "$ALICE")")
check "app discovery is served from the cache (one answer; hits $a0→$(metric hits apps))" \
    bash -c "[ \$(wc -l <<<'$out') = 1 ] && [ $(metric hits apps) -ge $((a0 + 4)) ]"
req POST /v1/apps "${A[@]}" -H "$J" -d '{"name":"cachedapp","kind":"web","base_url":"https://cached.example.com"}'
check "a platform admin registers an app" test "$STATUS" = 201
names=$(for i in 1 2 3 4; do curl -s "$URL/v1/apps" -H "$(auth "$ALICE")" | jq -r '[.data[].name] | index("cachedapp") != null'; done | sort -u)
check "… and the next discovery on every worker lists it" test "$names" = true

# ---- a stampede loads once --------------------------------------------------------
l6=$(metric loads records)
seq 1 64 | xargs -P 32 -I{} curl -s -H "$(auth "$ADMIN")" "$URL/v1/svc/crm/cached?name=eq.stampede&limit=7" \
    -o "$T/stampede.{}" -w '%{http_code}\n' >"$T/stampede.codes"
check "64 concurrent requests for one uncached page: all 200" \
    test "$(sort -u "$T/stampede.codes")" = 200
check "… all 64 bodies identical" test "$(cat "$T"/stampede.[0-9]* | jq -c .data | sort -u | wc -l)" = 1
check "… and the page was loaded once (loads $l6→$(metric loads records))" \
    test "$(( $(metric loads records) - l6 ))" = 1

# ---- the slowlog says where a slow request's time went ------------------------------
curl -s -o /dev/null "$URL/debug/sleep?ms=20"
req GET "/v1/svc/crm/cached?name=eq.slowlog" -H "$(auth "$ADMIN")" -H "X-Request-Id: slowlog-probe-1"
sleep 0.3
check "a slow request's log line has its phases: auth, cache (kv), engine and render, in µs" \
    jq -e -s '[.[] | select(.event == "slow" and (.path | startswith("/debug/sleep")))] | length >= 1 and
              all(.[]; (.auth_us | type == "number") and (.cache_us | type == "number") and
                       (.engine_us | type == "number") and (.render_us | type == "number") and .route != null)' "$T/fleet.log"
# (over 1 ms on postgres; on memory the read may be faster than the slowlog's least)
check "… an authenticated read's slow line counts its authentication (within its duration) and its kv calls" \
    jq -e -s '[.[] | select(.request_id == "slowlog-probe-1" and .event == "slow")] | all(.[]; .auth_us > 0 and .auth_us <= .duration_us and (.cache_us | type == "number"))' "$T/fleet.log"

if [ "${ENGINE:-memory}" = postgres ]; then
    R=(redis-cli -p "$REDIS_PORT")
    # before this suite asks Redis anything itself: what the fleet has sent
    cmds=$("${R[@]}" info commandstats)
    check "the fleet never sent SCAN or KEYS (INFO commandstats)" \
        bash -c "! grep -qE '^cmdstat_(scan|keys):' <<<'$cmds'"
    check "… while it did read and bump (GET, INCR)" \
        bash -c "grep -q '^cmdstat_get:' <<<'$cmds' && grep -q '^cmdstat_incr:' <<<'$cmds'"
    req POST /v1/svc/crm/cached "${A[@]}" -H "$J" -d '{"name":"pii probe","email":"plain.secret@example.com"}'
    PID_=$(jq -r .id <<<"$BODY")
    req GET "/v1/svc/crm/cached/$PID_" "${A[@]}"
    check "a pii value is read back in the clear by its reader" bash -c "jq -e '.email == \"plain.secret@example.com\"' <<<'$BODY' >/dev/null"
    dump=$("${R[@]}" --scan | while read -r k; do "${R[@]}" --no-raw get "$k" 2>/dev/null; done)
    check "… and is nowhere in Redis in the clear (every value read back)" \
        bash -c "grep -q 'pii probe' <<<\"\$1\" && ! grep -q 'plain.secret' <<<\"\$1\"" _ "$dump"

    # a cached principal this build cannot read (an older build's form after
    # an upgrade, say) is loaded from storage again, never answered with a 400
    bad=0
    for k in $("${R[@]}" --scan --pattern '*principal*'); do
        case $k in *:ver:*) continue ;; esac
        "${R[@]}" set "$k" '{"v":{"role":"owner","created_at":"not what this build wrote"}}' keepttl >/dev/null && bad=$((bad + 1))
    done
    out=$(same_n 4 GET /v1/orgs/current "${A[@]}")
    check "a cached principal in a form this build does not read ($bad entries) is loaded again: 200 on every worker" \
        bash -c "[ $bad -gt 0 ] && [ \"\$(cut -d' ' -f1 <<<'$out' | sort -u)\" = 200 ]"

    # Redis stopped. The cache alone would fail open (test_cache proves it), but
    # every authenticated read also asks the blacklist in that Redis, which fails
    # closed: a 503 for everyone, never a pass. Back: the same answers, and hits.
    req GET "/v1/svc/crm/cached/$PID_" "${A[@]}"
    before=$BODY
    login alice@acme.test; GONE=$TOKEN
    req POST /v1/auth/logout -H "$(auth "$GONE")"
    "${R[@]}" shutdown nosave >/dev/null 2>&1; redis_down
    req GET "/v1/auth/me" -H "$(auth "$GONE")"
    expect_error "Redis stopped: a revoked token is refused (503: the blacklist fails closed)" 503 unavailable
    req GET "/v1/svc/crm/cached/$PID_" "${A[@]}"
    expect_error "… and so is every authenticated read: never a pass without the blacklist" 503 unavailable
    REDIS_PORT_OLD=$REDIS_PORT
    redis-server --port "$REDIS_PORT_OLD" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$T" --logfile "$T/redis2.log" >/dev/null 2>&1 &
    REDIS_PID=$!
    wait_until 10 redis-cli -p "$REDIS_PORT_OLD" ping
    up() { req GET "/v1/svc/crm/cached/$PID_" "${A[@]}"; [ "$STATUS" = 200 ]; }
    check "Redis back: reads succeed again without a restart" wait_until 10 up
    req GET "/v1/svc/crm/cached/$PID_" "${A[@]}" # (check ran up in a subshell)
    check "… with the same body as before the outage" test "$BODY" = "$before"
    h7=$(metric hits records)
    req GET "/v1/svc/crm/cached/$PID_" "${A[@]}"; req GET "/v1/svc/crm/cached/$PID_" "${A[@]}"
    check "… and hits resume (hits $h7→$(metric hits records))" test "$(metric hits records)" -gt "$h7"

    # ---- the cache in a Redis of its own ([cache] redis_url): its outage fails
    # open (reads come from PostgreSQL, the same bodies) while the blacklist, in
    # the other Redis, still answers: a revoked token is refused as revoked.
    stack_down
    CACHE_PORT=$(free_port)
    cache_redis() {
        redis-server --port "$CACHE_PORT" --bind 127.0.0.1 --save '' --appendonly no \
            --dir "$T" --logfile "$T/redis-cache.log" >/dev/null 2>&1 &
        CACHE_PID=$!
        wait_until 10 redis-cli -p "$CACHE_PORT" ping
    }
    cache_redis
    CLEANUP_HOOKS+=('[ -n "$CACHE_PID" ] && kill "$CACHE_PID" 2>/dev/null; wait "$CACHE_PID" 2>/dev/null')
    stack_up "TESSERA_CACHE_REDIS_URL=redis://127.0.0.1:$CACHE_PORT" ||
        { not_ok "a stack with the cache in a Redis of its own starts"; exit 1; }
    login admin@example.com; ADMIN=$TOKEN; A=(-H "$(auth "$ADMIN")")
    req PUT /v1/svc/crm/schema/split "${A[@]}" -H "$J" -d '{"fields":{"name":{"type":"string"}}}'
    req POST /v1/svc/crm/split "${A[@]}" -H "$J" -d '{"name":"split"}'
    SID=$(jq -r .id <<<"$BODY")
    same_n 4 GET "/v1/svc/crm/split/$SID" "${A[@]}" >/dev/null
    req GET "/v1/svc/crm/split/$SID" "${A[@]}"
    before=$BODY
    C=(redis-cli -p "$CACHE_PORT")
    check "cached entries and versions go to the cache's Redis ($("${C[@]}" dbsize) keys) …" \
        test "$("${C[@]}" --scan --pattern '{*' | wc -l)" -gt 0
    check "… and none to the blacklist's" test "$("${R[@]}" --scan --pattern '{*' | wc -l)" = 0
    login alice@acme.test; GONE=$TOKEN
    req POST /v1/auth/logout -H "$(auth "$GONE")"
    check "the logout's blacklist entry is in the blacklist's Redis" \
        test "$("${R[@]}" --scan --pattern 'bl:*' | wc -l)" -ge 1
    f0=$(metric fallbacks records)
    kill "$CACHE_PID"; wait "$CACHE_PID" 2>/dev/null; CACHE_PID=
    out=$(same_n 4 GET "/v1/svc/crm/split/$SID" "${A[@]}")
    check "cache Redis stopped: reads are served from PostgreSQL (fail open), 200 every time" \
        test "${out%% *}" = 200 -a "$(wc -l <<<"$out")" = 1
    req GET "/v1/svc/crm/split/$SID" "${A[@]}"
    check "… with the same body as from the cache" test "$BODY" = "$before"
    check "… counted as fallbacks ($f0→$(metric fallbacks records))" test "$(metric fallbacks records)" -gt "$f0"
    req GET /v1/auth/me -H "$(auth "$GONE")"
    expect_error "… while a revoked token is still refused: the blacklist answers (fail closed)" 401 token_revoked
    req GET /readyz
    expect "… and the fleet stays ready, readyz showing the cache's Redis down" 200 \
        '.status == "ready" and .checks.kv.status == "ok" and .checks.cache_kv.status == "down"'
    cache_redis
    up() { req GET "/v1/svc/crm/split/$SID" "${A[@]}"; [ "$STATUS" = 200 ]; }
    wait_until 10 up
    h8=$(metric hits records)
    same_n 4 GET "/v1/svc/crm/split/$SID" "${A[@]}" >/dev/null
    check "cache Redis back: hits resume without a restart (hits $h8→$(metric hits records))" \
        test "$(metric hits records)" -gt "$h8"
fi
