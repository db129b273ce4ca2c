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

# the login throttle counts in Redis, under keys that hold no email
req POST /v1/auth/login -H "$J" -d '{"email":"bob@globex.test","password":"wrong password"}'
expect_error "a wrong password → 401" 401 invalid_credentials
thr=$(redis-cli -p "$REDIS_PORT" --scan --pattern 'thr:login:*' | sort)
acct=$(grep '^thr:login:acct:' <<<"$thr"); addr=$(grep '^thr:login:addr:' <<<"$thr")
check "the failure is counted in Redis under thr:login:acct:<hmac> and thr:login:addr:<hmac>" \
    bash -c "grep -qxE 'thr:login:acct:[0-9a-f]{64}' <<<'$acct' && grep -qxE 'thr:login:addr:[0-9a-f]{64}' <<<'$addr'"
check "no email in a throttle key" bash -c "! grep -qi 'bob\|globex' <<<'$thr'"
check "each count lives for the window ([auth] login_window_s, 900 s)" \
    test "$(redis-cli -p "$REDIS_PORT" get "$acct")" = 1 -a "$(redis-cli -p "$REDIS_PORT" ttl "$acct")" -gt 0 \
    -a "$(redis-cli -p "$REDIS_PORT" ttl "$acct")" -le 900 -a "$(redis-cli -p "$REDIS_PORT" ttl "$addr")" -gt 0
login bob@globex.test; BOB=$TOKEN
check "a successful login deletes its account's count, not its address's" \
    test "$(redis-cli -p "$REDIS_PORT" exists "$acct")" = 0 -a "$(redis-cli -p "$REDIS_PORT" get "$addr")" = 1
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
thr_errors() { curl -s "$URL/metrics" | awk '$1 == "tessera_login_throttle_errors_total" { print $2 }'; }
e0=$(thr_errors)
req POST /v1/auth/login -H "$J" -d '{"email":"bob@globex.test","password":"tessera-dev"}'
expect "Redis down: a login still works (the throttle fails open)" 200 '(.access_token | length > 0) and .org.slug == "globex"'
req POST /v1/auth/login -H "$J" -d '{"email":"bob@globex.test","password":"wrong password"}'
expect_error "and a wrong password is still a 401, not a 503" 401 invalid_credentials
e1=$(thr_errors)
check "/metrics counts the throttle's failures ($e0 → $e1)" test "${e1:-0}" -ge $(( ${e0:-0} + 2 ))
check "and the log says the login went on unthrottled" grep -q '"login_throttle_unavailable"' "$T/fleet.log"
req GET /v1/auth/me -H "Authorization: Bearer $BOB"
expect_error "while the blacklist stays fail closed" 503 unavailable

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
