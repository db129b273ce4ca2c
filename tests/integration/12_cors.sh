#!/usr/bin/env bash
# CORS (issue 16, part 4) through real nginx and a fleet: a browser page on
# an allowed origin may call the API and read its answers (errors included);
# its preflight is answered with the methods the path allows and the headers
# the API reads; any other origin gets no CORS header at all; a malformed
# [http] cors_origins is a config error naming the key.
. "$(dirname "$0")/lib.sh"

stack_up "TESSERA_HTTP_CORS_ORIGINS=https://app.example.com, http://localhost:*" || { not_ok "stack starts"; exit 1; }
ok "stack starts with cors_origins set"
APP=https://app.example.com
preflight() { # origin path method
    req OPTIONS "$2" -H "Origin: $1" -H "Access-Control-Request-Method: $3" \
        -H 'Access-Control-Request-Headers: authorization, content-type'
}

preflight "$APP" /v1/auth/login POST
check "a preflight from an allowed origin → 204" test "$STATUS" = 204
check "…allowing that origin (never *) and varying on Origin" \
    test "$(header access-control-allow-origin)|$(header vary)" = "$APP|Origin"
check "…with the methods the path allows" bash -c "grep -qw POST <<<'$(header access-control-allow-methods)'"
check "…the request headers the API reads" \
    test "$(header access-control-allow-headers)" = "Authorization, Content-Type, If-Match, Tessera-Mode"
check "…a max age, and no credentials (the token travels in Authorization, never a cookie)" \
    bash -c "[ '$(header access-control-max-age)' = 600 ] && [ -z '$(header access-control-allow-credentials)' ]"
preflight "$APP" /v1/svc/crm/deals/0190b8f4-0000-7000-8000-000000000000 PATCH
check "a record's preflight lists GET, PATCH and DELETE" \
    bash -c "m='$(header access-control-allow-methods)'; grep -qw GET <<<\"\$m\" && grep -qw PATCH <<<\"\$m\" && grep -qw DELETE <<<\"\$m\""
preflight http://localhost:5173 /v1/auth/me GET
check "a dev server on any port of localhost is allowed (http://localhost:*)" \
    test "$STATUS|$(header access-control-allow-origin)" = "204|http://localhost:5173"

preflight https://evil.example.com /v1/auth/login POST
check "a preflight from another origin gets no CORS header (405 as any OPTIONS)" \
    test "$STATUS|$(header access-control-allow-origin)|$(header access-control-allow-methods)" = "405||"
preflight https://app.example.com.evil.test /v1/auth/login POST
check "…nor does an origin that only starts like an allowed one" test -z "$(header access-control-allow-origin)"
req OPTIONS /v1/auth/login -H "Origin: $APP"
expect_error "an OPTIONS that is no preflight (no Access-Control-Request-Method) → 405" 405 method_not_allowed
preflight "$APP" /v1/nosuch GET
expect_error "a preflight of no endpoint → 404" 404 not_found

req GET /healthz -H "Origin: $APP"
check "an allowed origin's request gets its answer readable: Allow-Origin and the exposed headers" \
    test "$(header access-control-allow-origin)|$(header access-control-expose-headers)" = "$APP|X-Request-Id, Tessera-Mode, ETag, Location, Retry-After"
req GET /v1/auth/me -H "Origin: $APP"
expect_error "…errors too: a 401 the page can read" 401 unauthorized
check "…with Allow-Origin on it" test "$(header access-control-allow-origin)" = "$APP"
req POST /v1/auth/login -H "Origin: $APP" -H 'Content-Type: application/json' \
    -d '{"email":"admin@example.com","password":"tessera-dev"}'
expect "a login from the page's origin" 200 '.access_token | length > 0'
check "…carries Allow-Origin" test "$(header access-control-allow-origin)" = "$APP"
req GET /healthz -H 'Origin: https://evil.example.com'
check "another origin's request is answered without CORS headers" \
    test "$STATUS|$(header access-control-allow-origin)|$(header access-control-expose-headers)" = "200||"
req GET /healthz
check "a request without Origin (curl, a server) has none either" test -z "$(header access-control-allow-origin)"

for bad in 'https://app.example.com/path' 'app.example.com' 'https://*.example.com' 'http://localhost:http'; do
    out=$(TESSERA_HTTP_CORS_ORIGINS="$bad" "$TESSERA" check-config 2>&1); rc=$?
    check "cors_origins = '$bad' → exit 2 naming http.cors_origins" \
        test "$rc" = 2 -a -n "$(grep -F 'http.cors_origins' <<<"$out")"
done
out=$(TESSERA_HTTP_CORS_ORIGINS='*' "$TESSERA" check-config 2>&1); rc=$?
check "cors_origins = '*' is accepted (no credentials are ever allowed)" test "$rc" = 0
