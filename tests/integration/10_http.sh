#!/usr/bin/env bash
# The HTTP foundation: envelope, status codes, request ids, body rules, router,
# ops endpoints, logs and the config checker, through real nginx and a fleet.
. "$(dirname "$0")/lib.sh"

stack_up TESSERA_DB_CORE_DSN="host=db.internal user=app password=hunter2" TESSERA_HTTP_MAX_BODY_KB=1024 || {
    not_ok "stack starts"; exit 1; }
ok "stack starts (nginx + fleet of 2)"

# --- ops endpoints
req GET /healthz
expect "healthz answers {\"status\":\"ok\"}" 200 '. == {"status":"ok"}'
check "responses are application/json; charset=utf-8" test "$(header content-type)" = "application/json; charset=utf-8"
rid1=$(header x-request-id)
check "a request id is generated when none is sent (32 hex)" grep -qE '^[0-9a-f]{32}$' <<<"$rid1"
req GET /healthz
check "generated request ids differ" test "$(header x-request-id)" != "$rid1"
req GET /healthz -H 'X-Request-Id: client-Abc.123:x_y'
check "a sane client X-Request-Id is echoed" test "$(header x-request-id)" = "client-Abc.123:x_y"
req GET /healthz -H 'X-Request-Id: bad id with spaces'
check "an X-Request-Id with spaces is replaced" grep -qE '^[0-9a-f]{32}$' <<<"$(header x-request-id)"
req GET /healthz -H "X-Request-Id: $(printf 'a%.0s' $(seq 1 65))"
check "an X-Request-Id over 64 characters is replaced" grep -qE '^[0-9a-f]{32}$' <<<"$(header x-request-id)"
req GET /nope -H 'X-Request-Id: trace-42'
expect "the error envelope carries the echoed request id" 404 '.error.request_id == "trace-42"'

req GET /readyz
expect "readyz reports each dependency: engine and kv up" 200 '.status == "ready" and .checks.engine.status == "ok" and .checks.engine.backend == "memory" and .checks.kv.status == "ok" and .checks.kv.backend == "shm"'

req HEAD /healthz
check "HEAD is answered like GET" test "$STATUS" = 200 -a "$(header content-type)" = "application/json; charset=utf-8"

req GET /metrics
check "metrics are Prometheus text" grep -q '^# TYPE tessera_http_requests_total counter' <<<"$BODY"
check "metrics are served as text/plain" grep -q '^text/plain' <<<"$(header content-type)"
before=$(sed -n 's/^tessera_http_requests_total{route="GET \/healthz",status="200"} //p' <<<"$BODY")
for _ in 1 2 3 4 5; do curl -s -o /dev/null "$URL/healthz"; done
req GET /metrics
after=$(sed -n 's/^tessera_http_requests_total{route="GET \/healthz",status="200"} //p' <<<"$BODY")
check "request counters move between two scrapes (summed across workers)" test "$((after - before))" -ge 5
check "the latency histogram has +Inf and count for a route" \
    grep -q 'tessera_http_request_duration_seconds_bucket{route="GET /healthz",le="+Inf"}' <<<"$BODY"
check "per-slot gauges come from the scoreboard" grep -q '^tessera_slot_info{slot="1",role="api"' <<<"$BODY"

# --- router
req GET /no/such/path
expect_error "unknown path → 404 not_found" 404 not_found
req POST /healthz
expect_error "known path, wrong method → 405" 405 method_not_allowed
check "405 lists the allowed methods in Allow" test "$(header allow)" = "GET, HEAD"
req DELETE /metrics
expect_error "DELETE on a GET-only endpoint → 405" 405 method_not_allowed
req GET /debug/params/a/b/c
expect "path parameters are extracted by name" 200 '.params == {"service":"a","resource":"b","id":"c"}'
req GET '/debug/params/a%20b/r%2Fx/%C3%A9'
expect "path parameters are percent-decoded" 200 '.params == {"service":"a b","resource":"r/x","id":"é"}'
req GET '/debug/params/a/b/c?q=x%20y&plus=a+b&flag'
expect "query parameters are parsed and decoded" 200 '.query == {"q":"x y","plus":"a b","flag":""}'
req GET '/debug/params/a/b/%zz'
expect_error "a malformed escape in the path → 400" 400 invalid_request
req GET /healthz/
expect "a trailing slash is tolerated (/healthz/ is /healthz)" 200 '.status == "ok"'
req GET /v1/auth/me/
expect_error "…on any route (/v1/auth/me/ wants a token like /v1/auth/me)" 401 unauthorized
req GET /v1//auth/me
expect_error "an empty segment inside the path stays a 400" 400 invalid_request
req GET '/debug/params/a/b/x%00y'
expect_error "an encoded NUL in the path → 400" 400 invalid_request
req GET '/healthz?a=%zz'
expect_error "a malformed query string → 400" 400 invalid_request
req GET '/v1/svc/crm/deals?name=like.C-1%'
expect "…a bare % is explained: write %25" 400 '.error.message | test("%25")'
qs=$(for i in $(seq 1 70); do printf 'k%d=v&' "$i"; done)
req GET "/healthz?$qs"
expect_error "too many query parameters → 400" 400 invalid_request

# --- bodies
req POST /debug/echo -H 'Content-Type: application/json' --data-binary '{"a":1,"b":[true,null,"x"]}'
expect "a JSON body is parsed" 200 '.json == {"a":1,"b":[true,null,"x"]}'
req PUT /debug/echo -H 'Content-Type: application/json; charset=utf-8' --data-binary '{"ok":true}'
expect "application/json; charset=utf-8 is accepted" 200 '.json.ok == true'
req POST /debug/echo
expect "an empty body is not parsed" 200 'has("json") | not'
req POST /debug/echo -H 'Content-Type: text/plain' --data-binary 'hello'
expect_error "text/plain body → 415" 415 unsupported_media_type
req PATCH /debug/echo --data-binary 'a=1'
expect_error "form-encoded body → 415" 415 unsupported_media_type
req POST /debug/echo -H 'Content-Type: application/json' --data-binary '{"a":'
expect_error "malformed JSON → 400 invalid_json" 400 invalid_json
req POST /debug/echo -H 'Content-Type: application/json' --data-binary '{"a":1} x'
expect_error "trailing bytes after the JSON value → 400" 400 invalid_json
req POST /debug/echo -H 'Content-Type: application/json' --data-binary '{"role":"viewer","role":"owner"}'
expect_error "duplicate keys → 400" 400 invalid_json
deep=$(printf '[%.0s' $(seq 1 40))$(printf ']%.0s' $(seq 1 40))
req POST /debug/echo -H 'Content-Type: application/json' --data-binary "$deep"
expect_error "nesting deeper than the limit → 400" 400 invalid_json
req POST /debug/echo -H 'Content-Type: application/json' --data-binary $'{"a":"\xc3\x28"}'
expect_error "invalid UTF-8 → 400" 400 invalid_json
req POST /debug/echo -H 'Content-Type: application/json' --data-binary '{"a":"x\u0000y"}'
expect_error "\\u0000 in a string → 400" 400 invalid_json
head -c 1500000 /dev/zero | tr '\0' 'a' | sed 's/^/{"a":"/; s/$/"}/' >"$T/big.json"
req POST /debug/echo -H 'Content-Type: application/json' --data-binary @"$T/big.json"
expect_error "a body over tessera's cap → 413 from tessera" 413 payload_too_large
head -c 5000000 /dev/zero | tr '\0' 'a' >"$T/huge.json"
req POST /debug/echo -H 'Content-Type: application/json' --data-binary @"$T/huge.json"
expect_error "a body over nginx's cap → 413 in the same envelope" 413 payload_too_large

# --- kept-alive connections under a burst
codes=$(seq 1 400 | xargs -P 16 -I{} curl -s -o /dev/null -w '%{http_code}\n' "$URL/healthz" | sort | uniq -c)
check "400 requests from 16 clients all answer 200" test "$(awk '$2 == 200 {print $1}' <<<"$codes")" = 400

# --- logs
sleep 0.2
check "each request gets an access line with id, status, duration and worker" \
    jq -e -s 'map(select(.event == "access" and .request_id == "trace-42")) | .[0] | .status == 404 and .duration_us >= 0 and (.worker | type == "number") and .method == "GET"' "$T/fleet.log"
check "the start line carries the resolved config" \
    jq -e -s 'map(select(.event == "start")) | .[0].config.fleet.workers == 2' "$T/fleet.log"
check "secrets are masked in the start line" \
    bash -c "! grep -q hunter2 '$T/fleet.log' && grep -q 'password=\\*\\*\\*' '$T/fleet.log'"
check "every log line is JSON" jq -e -s 'length > 10' "$T/fleet.log"

# --- configuration
out=$(TESSERA_FLEET_WORKERS=abc "$TESSERA" check-config 2>&1); rc=$?
check "TESSERA_FLEET_WORKERS=abc → exit 2 naming fleet.workers" \
    test "$rc" = 2 -a "$(wc -l <<<"$out")" = 1 -a -n "$(grep fleet.workers <<<"$out")"
out=$(TESSERA_FLEET_WORKER=3 "$TESSERA" check-config 2>&1); rc=$?
check "a mistyped TESSERA_FLEET_WORKER → exit 2 naming the variable" \
    test "$rc" = 2 -a -n "$(grep -F TESSERA_FLEET_WORKER: <<<"$out")"
printf '[fleet]\nworkers = 2\nbogus = 1\n' >"$T/bad.conf"
out=$("$TESSERA" -c "$T/bad.conf" check-config 2>&1); rc=$?
check "an unknown key in the file → exit 2 naming it" test "$rc" = 2 -a -n "$(grep -F 'fleet.bogus' <<<"$out")"
printf 'env = production\n[auth]\npassword_cost = 10\n[db]\ncore_dsn = host=x\n' >"$T/prod.conf"
out=$(env -u TESSERA_ENV "$TESSERA" -c "$T/prod.conf" check-config 2>&1); rc=$?
check "a test-only password cost is refused in production" test "$rc" = 2 -a -n "$(grep auth.password_cost <<<"$out")"
for key in REDIS_URL CACHE_REDIS_URL; do
    out=$(env "TESSERA_$key=http://cache.example" "$TESSERA" check-config 2>&1); rc=$?
    name=$(tr 'A-Z' 'a-z' <<<"$key" | sed 's/^redis_url$/redis.url/; s/^cache_redis_url$/cache.redis_url/')
    check "a Redis URL that is not redis:// or unix:// ($name) → exit 2 naming it" \
        test "$rc" = 2 -a -n "$(grep -F "$name:" <<<"$out")"
done
lists_commands() { [ "$hrc" = 0 ] && grep -q '^  fleet ' <<<"$hout" && grep -q '^  migrate ' <<<"$hout" && grep -q '^  help ' <<<"$hout"; }
hout=$(TESSERA_FLEET_WORKERS=abc "$TESSERA" help 2>&1); hrc=$?
check "tessera help lists every command, even with a broken config" lists_commands
says_status() { [ "$hrc" = 0 ] && grep -qx 'usage: tessera \[-c FILE\] status \[--json\]' <<<"$hout" && grep -q projector <<<"$hout"; }
hout=$("$TESSERA" status --help 2>&1); hrc=$?
check "tessera status --help says what status shows" says_status
out=$("$TESSERA" help nosuch 2>&1); rc=$?
check "tessera help of no such command → exit 2" test "$rc" = 2
out=$("$TESSERA" version)
check "version names every linked library" bash -c "grep -q cJSON <<<'$out' && grep -q OpenSSL <<<'$out' && grep -q libpq <<<'$out' && grep -q hiredis <<<'$out' && grep -q fcgi <<<'$out'"
