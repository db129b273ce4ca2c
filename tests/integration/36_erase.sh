#!/usr/bin/env bash
# Erasing an account (issue 17 §5) through real nginx and a fleet of 2
# workers, once per engine: a person erases themselves with their password
# (or a platform admin does), not while they are the last owner of an org
# with other members; afterwards nothing of theirs works, their email signs up
# anew, the orgs' audit trails still show what they did under an id that
# names nobody, and (PostgreSQL, pg_dump) no row holds their blind index or
# their sealed email.
# engines: memory postgres
. "$(dirname "$0")/lib.sh"

stack_up || { not_ok "stack starts"; exit 1; }
ok "stack starts with the dev seed"
J='Content-Type: application/json'
PG=false
[ "${ENGINE:-memory}" = postgres ] && PG=true
owner_sql() { psql -X -At -q -v ON_ERROR_STOP=1 "$PG_DB_OWNER_DSN" "$@"; }

invite() { # inviter-token email role → INVITE
    req POST /v1/orgs/current/members -H "$(auth "$1")" -H "$J" -d "{\"email\":\"$2\",\"role\":\"$3\"}"
    INVITE=$(jq -r .invite_token <<<"$BODY")
}
login alice@acme.test tessera-dev; ALICE=$TOKEN
login bob@globex.test tessera-dev; BOB=$TOKEN
login admin@example.com tessera-dev; ADMIN=$TOKEN

# --- a person with a footprint: an org of their own, a key, a membership in Acme, an open invite
req POST /v1/auth/signup -H "$J" -d '{"email":"leaving@example.org","password":"leaving soon","org_name":"Erase Co"}'
expect "a person signs up, owner of Erase Co" 201 '.role == "owner"'
ME=$(jq -r .access_token <<<"$BODY"); ME_ID=$(jq -r .user.id <<<"$BODY")
req POST /v1/auth/api-keys -H "$(auth "$ME")" -H "$J" -d '{"name":"my script"}'
MY_KEY=$(jq -r .key <<<"$BODY")
invite "$ALICE" leaving@example.org viewer
req POST /v1/auth/invites/accept -H "$(auth "$ME")" -H "$J" -d "{\"invite_token\":\"$INVITE\"}"
expect "… joins Acme by an invite" 200 '.org.slug == "acme"'
invite "$ALICE" leaving@example.org member     # left open
if $PG; then
    HMAC=$(owner_sql -c "SELECT email_hmac FROM core.users WHERE id = '$ME_ID'")
    SEALED=$(owner_sql -c "SELECT email_enc FROM core.users WHERE id = '$ME_ID'")
    check "(psql: the blind index is in the users row and both invites, the spent one and the open one)" test "$(owner_sql -c "
        SELECT (SELECT count(*) FROM core.users WHERE email_hmac = '$HMAC') + (SELECT count(*) FROM core.invites WHERE email_hmac = '$HMAC')")" = 3
fi

# --- what is refused
req DELETE /v1/auth/me -H "$(auth "$ME")" -H "$J" -d '{"password":"not my password"}'
expect_error "a wrong password → 403, nothing erased" 403 forbidden
req DELETE /v1/auth/me -H "$(auth "$ME")" -H "$J" -d '{}'
expect "no password → 422" 422 '.error.details.password | length > 0'
req DELETE /v1/auth/me -H "$(auth "$MY_KEY")" -H "$J" -d '{"password":"leaving soon"}'
expect_error "an API key cannot erase its maker → 403" 403 forbidden
invite "$ME" bob@globex.test member
req POST /v1/auth/invites/accept -H "$(auth "$BOB")" -H "$J" -d "{\"invite_token\":\"$INVITE\"}"
check "(bob joins Erase Co)" test "$STATUS" = 200
req DELETE /v1/auth/me -H "$(auth "$ME")" -H "$J" -d '{"password":"leaving soon"}'
expect "the last owner of an org with other members → 409 naming it" 409 \
    '.error.code == "conflict" and (.error.message | test("Erase Co"))'
check "… and nothing was erased" test "$(every_worker 2 "$ME")" = "200 "
req DELETE "/v1/admin/users/$ME_ID" -H "$(auth "$ALICE")"
expect_error "an org admin is no platform admin: DELETE /v1/admin/users → 403" 403 forbidden
BOB_ID=$(curl -s "$URL/v1/auth/me" -H "$(auth "$BOB")" | jq -r .user.id)
req DELETE "/v1/orgs/current/members/$BOB_ID" -H "$(auth "$ME")"
check "(bob is removed from Erase Co again)" test "$STATUS" = 204

# --- the erasure
req DELETE /v1/auth/me -H "$(auth "$ME")" -H "$J" -d '{"password":"leaving soon"}'
check "the person erases their account → 204" test "$STATUS" = 204
check "every token of theirs is refused on every worker, their key too" \
    test "$(every_worker 4 "$ME")$(every_worker 4 "$MY_KEY")" = "401 401 "
login leaving@example.org 'leaving soon'
expect_error "login fails" 401 invalid_credentials
req GET /v1/orgs/current/members -H "$(auth "$ALICE")"
expect "Acme no longer lists them" 200 "[.data[].user_id] | index(\"$ME_ID\") | not"
req GET /v1/audit -H "$(auth "$ALICE")"
expect "Acme's trail still shows what they did, under an id that names nobody now" 200 \
    "([.data[] | select(.actor == \"$ME_ID\" and .action == \"members.join\")] | length) == 1 and ([.data[] | select(.action == \"auth.account_erased\" and .target == \"$ME_ID\")] | length) == 1"
check "… and no entry holds the email" bash -c "! grep -q 'leaving@example.org' <<<'$BODY'"
if $PG; then
    dump=$(pg_dump --data-only "$PG_DB_OWNER_DSN")
    check "no row anywhere holds their blind index or their sealed email (pg_dump)" \
        bash -c "! grep -q -- '$HMAC' <<<\"\$1\" && ! grep -q -- '$SEALED' <<<\"\$1\" && ! grep -q -- '$ME_ID.*leaving' <<<\"\$1\"" _ "$dump"
    check "… nor their sessions, refresh tokens, one-time tokens or outbox events (psql)" test "$(owner_sql -c "
        SELECT (SELECT count(*) FROM core.sessions WHERE user_id = '$ME_ID') + (SELECT count(*) FROM core.refresh_tokens WHERE user_id = '$ME_ID')
             + (SELECT count(*) FROM core.user_tokens WHERE user_id = '$ME_ID') + (SELECT count(*) FROM core.auth_events WHERE user_id = '$ME_ID')
             + (SELECT count(*) FROM core.api_keys WHERE created_by = '$ME_ID') + (SELECT count(*) FROM core.memberships WHERE user_id = '$ME_ID')")" = 0
fi
req POST /v1/auth/signup -H "$J" -d '{"email":"leaving@example.org","password":"back again now","org_name":"Return Co"}'
expect "the email signs up anew, a new person" 201 ".user.id != \"$ME_ID\""
AGAIN_ID=$(jq -r .user.id <<<"$BODY")

# --- a platform admin erases an account
req DELETE /v1/admin/users/00000000-0000-4000-8000-000000000000 -H "$(auth "$ADMIN")"
expect_error "an unknown account → 404" 404 not_found
req DELETE "/v1/admin/users/$AGAIN_ID" -H "$(auth "$ADMIN")"
check "a platform admin erases one → 204" test "$STATUS" = 204
login leaving@example.org 'back again now'
expect_error "… whose login then fails" 401 invalid_credentials

check "no request of this suite was answered 500" bash -c '! grep "\"status\":5" "$1"' _ "$T/fleet.log"
