#!/usr/bin/env bash
# Redis as the fleet's kv (DESIGN §3, §10): the blacklist lives in a real Redis,
# an outage fails closed (503, never a pass), /readyz names the dependency that
# is down, and the fleet recovers by itself when Redis returns.
# engines: memory postgres
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg.sh"
J='Content-Type: application/json'

redis_up || { not_ok "redis starts"; exit 1; }
stack_up TESSERA_REDIS_URL="$REDIS_URL" TESSERA_REDIS_TIMEOUT_MS=200 || { not_ok "stack starts with Redis"; exit 1; }
ok "stack starts with [redis] url set"

login() { # email → TOKEN
    req POST /v1/auth/login -H "$J" -d "{\"email\":\"$1\",\"password\":\"tessera-dev\"}"
    TOKEN=$(jq -r .access_token <<<"$BODY")
}
req GET /readyz
expect "readyz reports the kv on Redis" 200 '.checks.kv.backend == "redis" and .checks.kv.status == "ok"'
login alice@acme.test; ALICE=$TOKEN
req POST /v1/auth/logout -H "Authorization: Bearer $ALICE"
check "logout answers 204" test "$STATUS" = 204
sha=$(printf '%s' "$ALICE" | sha256sum | cut -d' ' -f1)
ttl=$(redis-cli -p "$REDIS_PORT" ttl "bl:$sha")
check "the blacklist entry is SHA-256 of the token in Redis, living until the token's exp" \
    test "$ttl" -gt 0 -a "$ttl" -le 900
req GET /v1/auth/me -H "Authorization: Bearer $ALICE"
expect_error "the logged-out token is refused" 401 token_revoked

login bob@globex.test; BOB=$TOKEN
req GET /v1/auth/me -H "Authorization: Bearer $BOB"
expect "a live token works" 200 '.org.slug == "globex"'
redis_down
req GET /v1/auth/me -H "Authorization: Bearer $BOB"
expect_error "Redis down: an authenticated request fails closed with 503" 503 unavailable
check "and it fails fast (timeouts set)" test "$(curl -s -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $BOB" "$URL/v1/auth/me" | cut -d. -f1)" -lt 2
req GET /healthz
expect "healthz stays 200 (liveness is not readiness)" 200 '.status == "ok"'
req GET /readyz
expect "readyz says the kv is down" 503 '.status == "unavailable" and .checks.kv.status == "down" and ((.checks.engine // .checks.db_core).status == "ok")'

# the same port again, as after a restart of the service
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$T" --logfile "$T/redis2.log" >/dev/null 2>&1 &
REDIS_PID=$!
wait_until 10 redis-cli -p "$REDIS_PORT" ping >/dev/null
for _ in $(seq 1 50); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $BOB" "$URL/v1/auth/me")" = 200 ] && break
    sleep 0.1
done
req GET /v1/auth/me -H "Authorization: Bearer $BOB"
expect "Redis back: requests succeed again without restarting the fleet" 200 '.org.slug == "globex"'
req GET /readyz
expect "and readyz is ready again" 200 '.checks.kv.status == "ok"'
