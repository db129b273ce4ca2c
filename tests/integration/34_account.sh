#!/usr/bin/env bash
# Email verification, password reset and the auth outbox (issue 17 §2, §3)
# through real nginx and a fleet of 2 workers, once per engine, with
# [auth] require_verified_email on: a signup's verification message reaches
# the mailer as an event (GET /v1/admin/events), login waits for it; asking
# for a reset answers alike, byte for byte and in time, for a known and an
# unknown email; a reset token works once, is stored only as its hash, and
# ends every earlier access and refresh token of the person; an event
# committed before its worker is killed -9 is still delivered.
# engines: memory postgres
. "$(dirname "$0")/lib.sh"

stack_up TESSERA_AUTH_REQUIRE_VERIFIED_EMAIL=on TESSERA_AUTH_LOG_TOKENS=on TESSERA_AUTH_FORGOT_FLOOR_MS=300 \
    TESSERA_AUTH_LOGIN_MAX_FAILURES_ADDR=60 ||
    { not_ok "stack starts"; exit 1; }
ok "stack starts with require_verified_email on"
J='Content-Type: application/json'
PG=false
[ "${ENGINE:-memory}" = postgres ] && PG=true
owner_sql() { psql -X -At -q -v ON_ERROR_STOP=1 "$PG_DB_OWNER_DSN" "$@"; }

login admin@example.com tessera-dev; ADMIN=$TOKEN    # a platform admin: the mailer's reader
CURSOR=0
# next_event KIND EMAIL → EVENT (the newest such event's data) from the outbox
next_event() {
    req GET "/v1/admin/events?after=$CURSOR" -H "$(auth "$ADMIN")"
    EVENT=$(jq -c --arg k "$1" --arg e "$2" '[.data[] | select(.kind == $k and .data.email == $e)] | last | .data' <<<"$BODY")
}

# --- verification
req POST /v1/auth/signup -H "$J" -d '{"email":"Newcomer@Example.org","password":"newcomer pass","org_name":"New Co"}'
expect "a signup (201) is not verified yet" 201 '.user.email_verified == false'
NEW=$(jq -r .access_token <<<"$BODY")
login newcomer@example.org 'newcomer pass'
expect "login before verifying → 403 with its own code" 403 \
    '.error.code == "email_unverified" and (.error.message | test("verify"))'
req GET /v1/admin/events -H "$(auth "$NEW")"
expect_error "the outbox is the platform's: a customer → 403" 403 forbidden
next_event auth.email_verification_requested newcomer@example.org
check "the verification message reaches the mailer as an event: address, token, expiry" \
    jq -e '(.token | startswith("ev_")) and (.expires_at | fromdateiso8601) > now and (.user | length) == 36' <<<"$EVENT"
VTOKEN=$(jq -r .token <<<"$EVENT")
check "… and the development log has the token (log_tokens on)" grep -q "dev_token.*$VTOKEN" "$T/fleet.log"
req POST /v1/auth/verify -H "$J" -d '{"token":"ev_not-a-token-at-all"}'
expect_error "an unknown verification token → 400" 400 invalid_request
req POST /v1/auth/verify -H "$J" -d "{\"token\":\"$VTOKEN\"}"
expect "the token verifies the email" 200 '.email_verified == true'
req POST /v1/auth/verify -H "$J" -d "{\"token\":\"$VTOKEN\"}"
expect_error "… once" 400 invalid_request
login newcomer@example.org 'newcomer pass'
check "after verifying, login → 200" test "$STATUS" = 200
out=$(for i in 1 2 3 4; do curl -s "$URL/v1/auth/me" -H "$(auth "$NEW")" | jq -r .user.email_verified; done | sort -u)
check "me says email_verified on every worker (the cached principal was bumped)" test "$out" = true
req POST /v1/auth/verify/resend -H "$J" -d '{"email":"newcomer@example.org"}'
expect "resend for a verified account: the same 202" 202 '.message | length > 0'

# --- a reset asked for: the same answer for a known and an unknown email
login newcomer@example.org 'newcomer pass'; S1=$TOKEN; S1_REFRESH=$REFRESH
login newcomer@example.org 'newcomer pass'; S2=$TOKEN
ask() { # email → one line: status, the headers but the request id and the date, the body, the ms taken
    curl -s -o "$T/ask.body" -D "$T/ask.hdrs" -w '%{http_code} %{time_total}\n' -H "$J" \
        -d "{\"email\":\"$1\"}" "$URL/v1/auth/password/forgot" >"$T/ask.out"
    printf '%s|%s|%s|%s\n' "$(cut -d' ' -f1 "$T/ask.out")" \
        "$(tr -d '\r' <"$T/ask.hdrs" | grep -viE '^(x-request-id|date):' | sort | tr '\n' ';')" \
        "$(cat "$T/ask.body")" "$(awk '{printf "%d", $2 * 1000}' "$T/ask.out")"
}
: >"$T/known" ; : >"$T/unknown"
for i in $(seq 1 20); do ask newcomer@example.org >>"$T/known"; ask nobody.here@example.org >>"$T/unknown"; done
check "20 asks each: every answer 202" bash -c "! cut -d'|' -f1 '$T/known' '$T/unknown' | grep -vx 202"
check "… byte-identical (status, headers but X-Request-Id and Date, body) for a known and an unknown email" \
    test "$(cut -d'|' -f1-3 "$T/known" "$T/unknown" | sort -u | wc -l)" = 1
median() { cut -d'|' -f4 "$1" | sort -n | sed -n 10p; }
mk=$(median "$T/known") mu=$(median "$T/unknown")
check "… and alike in time: medians ${mk} ms and ${mu} ms, within 10 %" \
    awk -v a="$mk" -v b="$mu" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 0.1 * (a > b ? a : b)) }'
req POST /v1/auth/password/forgot -H "$J" -d '{"email":"not an email"}'
expect "a malformed email → 422" 422 '.error.details.email | length > 0'

# --- the reset
next_event auth.password_reset_requested newcomer@example.org
RTOKEN=$(jq -r .token <<<"$EVENT")
check "the reset message reaches the mailer: a pr_ token expiring within 30 minutes" \
    jq -e '(.token | startswith("pr_")) and ((.expires_at | fromdateiso8601) - now) <= 1800' <<<"$EVENT"
if $PG; then
    check "the token is stored only as its SHA-256 (psql)" test "$(owner_sql -c "
        SELECT count(*) FROM core.user_tokens WHERE token_hash = encode(sha256('$RTOKEN'::bytea), 'hex')")" = 1
    check "… and its text is nowhere in the database (pg_dump)" \
        bash -c "! pg_dump '$PG_DB_OWNER_DSN' | grep -q -- '$RTOKEN'"
fi
req POST /v1/auth/password/reset -H "$J" -d "{\"token\":\"$RTOKEN\",\"new_password\":\"short\"}"
expect "a new password under the policy → 422" 422 '.error.details.new_password | length > 0'
req POST /v1/auth/password/reset -H "$J" -d "{\"token\":\"$RTOKEN\",\"new_password\":\"after the reset\"}"
expect "the reset sets the password and ends every session" 200 '.sessions_ended >= 2'
req POST /v1/auth/password/reset -H "$J" -d "{\"token\":\"$RTOKEN\",\"new_password\":\"once more please\"}"
expect_error "the token works once" 400 invalid_request
check "every earlier access token of the person is refused, on every worker" \
    test "$(every_worker 4 "$S1")$(every_worker 4 "$S2")$(every_worker 4 "$NEW")" = "401 401 401 "
req POST /v1/auth/refresh -H "$J" -d "{\"refresh_token\":\"$S1_REFRESH\"}"
expect_error "… and every earlier refresh token" 401 token_revoked
login newcomer@example.org 'newcomer pass'
check "the old password no longer logs in" test "$STATUS" = 401
login newcomer@example.org 'after the reset'
check "the new one does" test "$STATUS" = 200
check "… and its new token works" test "$(every_worker 2 "$TOKEN")" = "200 "
if $PG; then
    req POST /v1/auth/password/forgot -H "$J" -d '{"email":"bob@globex.test"}'
    next_event auth.password_reset_requested bob@globex.test
    OLD=$(jq -r .token <<<"$EVENT")
    owner_sql -c "UPDATE core.user_tokens SET expires_at = now() - interval '1 second'
                  WHERE token_hash = encode(sha256('$OLD'::bytea), 'hex')"
    req POST /v1/auth/password/reset -H "$J" -d "{\"token\":\"$OLD\",\"new_password\":\"too late now\"}"
    expect_error "an expired reset token → 400" 400 invalid_request
fi

# --- delivery survives a worker killed between the commit and the answer
req GET "/v1/admin/events?limit=100" -H "$(auth "$ADMIN")"
while [ "$(jq '.data | length' <<<"$BODY")" = 100 ]; do
    req GET "/v1/admin/events?after=$(jq -r .next_cursor <<<"$BODY")" -H "$(auth "$ADMIN")"
done
CURSOR=$(jq -r .next_cursor <<<"$BODY")
req GET "/v1/admin/events?after=$CURSOR" -H "$(auth "$ADMIN")"
expect "from the last cursor: nothing new" 200 '(.data | length) == 0'
curl -s -m 10 -H "$J" -d '{"email":"victor@acme.test"}' "$URL/v1/auth/password/forgot" >"$T/killed.out" 2>&1 &
asker=$!
busy=""
for i in $(seq 1 50); do
    busy=$(fleet_json '[.slots[] | select(.role == "api" and .state == "busy") | .pid][0] // empty')
    [ -n "$busy" ] && break
    sleep 0.01
done
[ -n "$busy" ] && sleep 0.1 && kill -9 "$busy" # past its commit, in the answer's floor wait
wait "$asker" || true
check "the asking worker was killed before it answered (no 202)" bash -c "[ -n '$busy' ] && ! grep -q 'on its way' '$T/killed.out'"
next_event auth.password_reset_requested victor@acme.test
check "… and the event it committed is delivered all the same" jq -e '.token | startswith("pr_")' <<<"$EVENT"

# --- last, as it throttles this client's address: asking is throttled as failed logins are
for i in $(seq 1 60); do
    req POST /v1/auth/password/forgot -H "$J" -d '{"email":"newcomer@example.org"}'
    [ "$STATUS" = 429 ] && break
done
expect_error "asking past the address's limit → 429" 429 too_many_requests
check "… with Retry-After" test -n "$(header retry-after)"

check "no request of this suite was answered 500" bash -c '! grep "\"status\":5" "$1"' _ "$T/fleet.log"
