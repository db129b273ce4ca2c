#!/usr/bin/env bash
# Sessions and password change (issue 17 §1, §4) through real nginx and a
# fleet of 2 workers, once per engine: each login is a session a person lists
# (across orgs, the current one marked, the client kept minimized) and ends;
# an ended session's refresh token and its access tokens are refused from the
# next request on every worker while the others go on; an org's member
# manager ends a member's sessions there; a password change checks the
# current password, ends every other session and leaves the one that asked;
# the reaper takes sessions past their expiry (PostgreSQL, with psql).
# engines: memory postgres
. "$(dirname "$0")/lib.sh"

stack_up TESSERA_CQRS_REAP_INTERVAL=1 || { not_ok "stack starts"; exit 1; }
ok "stack starts with the dev seed"
J='Content-Type: application/json'
PG=false
[ "${ENGINE:-memory}" = postgres ] && PG=true
owner_sql() { psql -X -At -q -v ON_ERROR_STOP=1 "$PG_DB_OWNER_DSN" "$@"; }

refresh() { # refresh-token → STATUS, TOKEN, REFRESH of the answer
    req POST /v1/auth/refresh -H "$J" -d "{\"refresh_token\":\"$1\"}"
    TOKEN=$(jq -r .access_token <<<"$BODY"); REFRESH=$(jq -r .refresh_token <<<"$BODY")
}

# a person of their own, so that changing a password disturbs no other suite's user
req POST /v1/auth/signup -H "$J" -H 'User-Agent: signup-agent' \
    -d '{"email":"sessions@example.org","password":"first password","org_name":"Sessions Co"}'
expect "a new person signs up (a first session)" 201 '.access_token | length > 20'
S0=$(jq -r .access_token <<<"$BODY")
login sessions@example.org 'first password' $'laptop\x01 browser \xc3\xa9'; A=$TOKEN; A_REFRESH=$REFRESH
login sessions@example.org 'first password' 'phone app/2.0'; B=$TOKEN; B_REFRESH=$REFRESH

# --- listing
req GET /v1/auth/sessions -H "$(auth "$A")"
expect "three logins → three live sessions, newest first, the current one marked" 200 \
    '(.data | length) == 3 and ([.data[] | select(.current)] | length) == 1 and .data[1].current and .data[0].user_agent == "phone app/2.0"'
A_ID=$(jq -r '.data[] | select(.current) | .id' <<<"$BODY")
B_ID=$(jq -r '.data[0].id' <<<"$BODY")
check "the client is kept minimized: the address as its /24, the agent as printable ASCII only" \
    jq -e '(.data | all(.address == "127.0.0.0/24")) and .data[1].user_agent == "laptop? browser ??"' <<<"$BODY"
check "… with times in RFC 3339" \
    jq -e '.data | all((.created_at | fromdateiso8601) <= (.expires_at | fromdateiso8601) and (.last_used_at | fromdateiso8601) >= (.created_at | fromdateiso8601))' <<<"$BODY"
req POST /v1/auth/api-keys -H "$(auth "$A")" -H "$J" -d '{"name":"a program"}'
KEY=$(jq -r .key <<<"$BODY")
req GET /v1/auth/sessions -H "$(auth "$KEY")"
expect_error "an API key has no sessions → 403" 403 forbidden
req GET /v1/auth/sessions -H "$(auth "$(jq -r .access_token <<<"$(curl -s -H "$J" -d '{"email":"bob@globex.test","password":"tessera-dev"}' "$URL/v1/auth/login")")")"
expect "another person sees none of them" 200 "[.data[].id] | index(\"$A_ID\") | not"
BOB_SESSION=$(jq -r '.data[0].id' <<<"$BODY")

# --- ending one
req DELETE "/v1/auth/sessions/$BOB_SESSION" -H "$(auth "$A")"
expect_error "ending another person's session → 404" 404 not_found
req DELETE /v1/auth/sessions/00000000-0000-4000-8000-000000000000 -H "$(auth "$A")"
expect_error "… or one that does not exist → 404" 404 not_found
refresh "$B_REFRESH"
check "session B refreshes before it is ended" test "$STATUS" = 200
B2=$TOKEN; B_REFRESH=$REFRESH
req DELETE "/v1/auth/sessions/$B_ID" -H "$(auth "$A")"
check "session A ends session B → 204" test "$STATUS" = 204
refresh "$B_REFRESH"
expect_error "… B's refresh token is refused" 401 token_revoked
check "… B's access tokens, the first and the one from its refresh, are refused on every worker" \
    test "$(every_worker 4 "$B")$(every_worker 4 "$B2")" = "401 401 "
req GET /v1/auth/me -H "$(auth "$B2")"
check "… saying the session has ended" jq -e '.error.code == "token_revoked" and (.error.message | test("session"))' <<<"$BODY"
check "… while A goes on" test "$(every_worker 4 "$A")" = "200 "
req GET /v1/auth/sessions -H "$(auth "$A")"
expect "… and B is no longer listed" 200 "(.data | length) == 2 and ([.data[].id] | index(\"$B_ID\") | not)"
refresh "$A_REFRESH"
check "A refreshes" test "$STATUS" = 200
A=$TOKEN; A_REFRESH=$REFRESH
req GET /v1/auth/sessions -H "$(auth "$A")"
check "… and its session says when it was last used, the new token still its current one" \
    jq -e ".data[] | select(.id == \"$A_ID\") | .current and (.last_used_at | fromdateiso8601) >= (.created_at | fromdateiso8601)" <<<"$BODY"

# --- logout ends the session, every access token of it
login sessions@example.org 'first password'; C=$TOKEN; C_REFRESH=$REFRESH
refresh "$C_REFRESH"; C2=$TOKEN
req POST /v1/auth/logout -H "$(auth "$C2")"
check "a logout (204)" test "$STATUS" = 204
check "… refuses the session's earlier access token too" test "$(every_worker 4 "$C")" = "401 "

# --- a member manager ends a member's sessions in the org
login alice@acme.test tessera-dev; ALICE=$TOKEN
login victor@acme.test tessera-dev; VICTOR=$TOKEN
login admin@example.com tessera-dev; ADMIN=$TOKEN
VICTOR_ID=$(curl -s "$URL/v1/auth/me" -H "$(auth "$VICTOR")" | jq -r .user.id)
ADMIN_ID=$(curl -s "$URL/v1/auth/me" -H "$(auth "$ADMIN")" | jq -r .user.id)
req DELETE "/v1/orgs/current/members/$VICTOR_ID/sessions" -H "$(auth "$VICTOR")"
expect_error "a viewer cannot end anyone's sessions → 403" 403 forbidden
req DELETE "/v1/orgs/current/members/$ADMIN_ID/sessions" -H "$(auth "$ALICE")"
expect_error "an admin cannot end an owner's → 403" 403 forbidden
req DELETE "/v1/orgs/current/members/$VICTOR_ID/sessions" -H "$(auth "$ALICE")"
expect "an admin ends a viewer's sessions in the org" 200 '.ended >= 1'
check "… whose token is refused on every worker" test "$(every_worker 4 "$VICTOR")" = "401 "
check "… while the admin's own goes on" test "$(every_worker 2 "$ALICE")" = "200 "
req GET /v1/audit -H "$(auth "$ALICE")"
expect "… audited" 200 "[.data[] | select(.action == \"members.sessions_end\" and .target == \"$VICTOR_ID\")] | length == 1"

# --- password change
login sessions@example.org 'first password'; D=$TOKEN; D_REFRESH=$REFRESH
req POST /v1/auth/password -H "$(auth "$A")" -H "$J" -d '{"current_password":"not it","new_password":"second password"}'
expect_error "a wrong current password → 403, nothing changed" 403 forbidden
req POST /v1/auth/password -H "$(auth "$A")" -H "$J" -d '{"current_password":"first password","new_password":"short"}'
expect "a new password under the policy → 422" 422 '.error.details.new_password | length > 0'
req POST /v1/auth/password -H "$(auth "$A")" -H "$J" -d '{"current_password":"first password","new_password":"second password","x":1}'
expect "an unknown field → 422" 422 '.error.details.x | length > 0'
req POST /v1/auth/password -H "$(auth "$KEY")" -H "$J" -d '{"current_password":"first password","new_password":"second password"}'
expect_error "an API key has no password → 403" 403 forbidden
req POST /v1/auth/password -H "$(auth "$A")" -H "$J" -d '{"current_password":"first password","new_password":"second password"}'
expect "the password changes; every other session ends (the signup's and D)" 200 '.sessions_ended == 2'
req POST /v1/auth/login -H "$J" -d '{"email":"sessions@example.org","password":"first password"}'
expect_error "the old password no longer logs in" 401 invalid_credentials
login sessions@example.org 'second password'
check "the new one does" test "$STATUS" = 200
refresh "$D_REFRESH"
expect_error "another session's refresh token is refused" 401 token_revoked
check "… and its access tokens, and the signup's, on every worker" test "$(every_worker 4 "$D")$(every_worker 4 "$S0")" = "401 401 "
check "the session that changed it goes on" test "$(every_worker 4 "$A")" = "200 "
refresh "$A_REFRESH"
check "… and refreshes" test "$STATUS" = 200
req GET /v1/audit -H "$(auth "$A")"
expect "the change is audited" 200 '[.data[] | select(.action == "auth.password_change")] | length == 1'

# --- the reaper takes a session past its expiry and grace (what it kept goes with it)
if $PG; then
    # a hash at a cost below the configured one (as after raising password_cost)
    # is written back at the configured cost by the next login
    weak=$(python3 -c "import base64,hashlib,os; s=os.urandom(16); h=hashlib.scrypt(b'tessera-dev', salt=s, n=16, r=8, p=1, dklen=32); b=lambda x: base64.b64encode(x).decode().rstrip('='); print('\$scrypt\$ln=4,r=8,p=1\$' + b(s) + '\$' + b(h))")
    owner_sql -c "UPDATE core.users SET password_hash = '$weak' WHERE id = '$VICTOR_ID'"
    login victor@acme.test tessera-dev
    check "a login with a hash of a lower cost (ln=4) succeeds" test "$STATUS" = 200
    check "… and writes the hash back at the configured cost (ln=${TESSERA_AUTH_PASSWORD_COST:-10}), psql" \
        test "$(owner_sql -c "SELECT split_part(password_hash, ',', 1) FROM core.users WHERE id = '$VICTOR_ID'")" = "\$scrypt\$ln=${TESSERA_AUTH_PASSWORD_COST:-10}"
    login victor@acme.test tessera-dev
    check "… which the next login verifies" test "$STATUS" = 200

    check "sessions keep the address as a network only (psql)" \
        test "$(owner_sql -c "SELECT count(*) FROM core.sessions WHERE address !~ '^(127\.0\.0\.0/24|)$'")" = 0
    owner_sql -c "UPDATE core.sessions SET expires_at = now() - interval '2 days' WHERE id = '$B_ID'"
    gone() { test "$(owner_sql -c "SELECT count(*) FROM core.sessions WHERE id = '$B_ID'")" = 0; }
    check "the reaper deletes an expired session" wait_until 15 gone
    check "… counted in tessera_reaped_sessions_total" \
        bash -c "curl -s '$URL/metrics' | awk '\$1 == \"tessera_reaped_sessions_total\" && \$2 >= 1 {f=1} END {exit !f}'"
fi

check "no request of this suite was answered 500" bash -c '! grep "\"status\":5" "$1"' _ "$T/fleet.log"
