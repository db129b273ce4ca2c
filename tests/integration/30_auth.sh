#!/usr/bin/env bash
# The Auth API (issue 4) through real nginx and a fleet of 2 workers sharing
# the memory engine: signup, login, tokens, JWT rejections, blacklist, refresh
# rotation, orgs, members, roles, API keys, modes, audit, bad input.
# One suite, two engines: tests/run.sh runs it again with ENGINE=postgres
# (PostgreSQL + Redis, a fresh migrated and seeded database per stack).
# engines: memory postgres
. "$(dirname "$0")/lib.sh"

stack_up TESSERA_AUTH_REFRESH_REUSE_INTERVAL=4 || { not_ok "stack starts"; exit 1; }
ok "stack starts with the dev seed"
J='Content-Type: application/json'

# --- helpers
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
# mint HEADER PAYLOAD [KEYFILE]: a JWT signed with Ed25519 (the fleet's key by default)
mint() {
    local h p sig
    h=$(printf '%s' "$1" | b64url); p=$(printf '%s' "$2" | b64url)
    printf '%s.%s' "$h" "$p" >"$T/signing-input"
    sig=$(openssl pkeyutl -sign -inkey "${3:-$T/keys/jwt.pem}" -rawin -in "$T/signing-input" | b64url)
    printf '%s.%s.%s' "$h" "$p" "$sig"
}

# --- login and me
login admin@example.com
expect "the seeded admin logs in with the dev password" 200 '.token_type == "Bearer" and (.access_token | split(".") | length == 3) and (.refresh_token | startswith("rt_")) and .expires_in == 900'
ADMIN=$TOKEN
req GET /v1/auth/me -H "$(auth "$ADMIN")"
expect "me shows user, org, role, permissions and mode" 200 '.user.email == "admin@example.com" and .user.is_platform_admin and .org.slug == "acme" and .role == "owner" and (.permissions | index("*:*")) and .mode == "test"'
check "responses carry Tessera-Mode" test "$(header tessera-mode)" = test
req POST /v1/auth/login -H "$J" -d '{"email":"admin@example.com","password":"wrong-password"}'
expect_error "a wrong password → 401 invalid_credentials" 401 invalid_credentials
wrong_msg=$(jq -r .error.message <<<"$BODY")
req POST /v1/auth/login -H "$J" -d '{"email":"nobody@example.com","password":"wrong-password"}'
expect_error "an unknown email → 401 invalid_credentials" 401 invalid_credentials
check "unknown email and wrong password read the same (no enumeration)" test "$(jq -r .error.message <<<"$BODY")" = "$wrong_msg"

# --- JWKS and an independent verification of our JWT with openssl
req GET /.well-known/jwks.json
expect "jwks lists an Ed25519 key with kid" 200 '.keys[0].kty == "OKP" and .keys[0].crv == "Ed25519" and .keys[0].alg == "EdDSA" and (.keys[0].kid | length > 0)'
KID=$(jq -r '.keys[0].kid' <<<"$BODY")
x=$(jq -r '.keys[0].x' <<<"$BODY")
pad() { local s=$1; while [ $(( ${#s} % 4 )) -ne 0 ]; do s="$s="; done; printf '%s' "$s" | tr -- '-_' '+/'; }
{ printf '302a300506032b6570032100' | xxd -r -p; pad "$x" | openssl base64 -d -A; } >"$T/pub.der"
openssl pkey -pubin -inform DER -in "$T/pub.der" -out "$T/pub.pem" 2>/dev/null
IFS=. read -r h p s <<<"$ADMIN"
printf '%s.%s' "$h" "$p" >"$T/input"
pad "$s" | openssl base64 -d -A >"$T/sig"
check "the access token verifies with openssl and the JWKS public key (independent implementation)" \
    openssl pkeyutl -verify -pubin -inkey "$T/pub.pem" -rawin -in "$T/input" -sigfile "$T/sig"

# --- one worker issues, every worker accepts; logout revokes on all
# Concurrent clients make nginx open several upstream connections, and either
# worker may accept each: which one serves is up to the kernel, so a round is
# repeated (at most 8) until both workers have served the token. More clients
# at once than nginx keeps upstream connections (2 × 32): kept connections
# that all went to one worker would otherwise carry every request there.
fan() { # token id-prefix → the log's access lines for that prefix, once both workers served
    local round
    for round in 1 2 3 4 5 6 7 8; do
        seq 1 160 | xargs -P 80 -I{} curl -s -o /dev/null -H "Authorization: Bearer $1" \
            -H "X-Request-Id: $2-$round-{}" "$URL/v1/auth/me"
        sleep 0.2
        jq -e -s "[.[] | select(.event == \"access\" and (.request_id | startswith(\"$2-\"))) | .worker] | unique | length == 2" \
            "$T/fleet.log" >/dev/null && break
    done
    jq -c -s "[.[] | select(.event == \"access\" and (.request_id | startswith(\"$2-\")))]" "$T/fleet.log"
}
seen=$(fan "$ADMIN" shared)
check "a token is accepted by both workers" \
    jq -e '(map(.status) | unique == [200]) and (map(.worker) | unique | length == 2)' <<<"$seen"
login alice@acme.test
ALICE=$TOKEN ALICE_REFRESH=$REFRESH
req POST /v1/auth/logout -H "$(auth "$ALICE")"
check "logout answers 204" test "$STATUS" = 204
seen=$(fan "$ALICE" revoked)
check "a logged-out token is refused by both workers" \
    jq -e '(map(.status) | unique == [401]) and (map(.worker) | unique | length == 2)' <<<"$seen"
req GET /v1/auth/me -H "$(auth "$ALICE")"
expect_error "a logged-out token → 401 token_revoked" 401 token_revoked
req POST /v1/auth/refresh -H "$J" -d "{\"refresh_token\":\"$ALICE_REFRESH\"}"
expect_error "logout revokes the session's refresh family" 401 token_revoked

# --- JWT rejections, each its own case
now=$(date +%s)
claims() { # overrides as jq assignments on a valid claim set
    jq -nc --arg org 11111111-1111-4111-8111-111111111111 --arg sub aaaaaaaa-0000-4000-8000-000000000001 \
        --argjson now "$now" "{sub:\$sub, org:\$org, role:\"owner\", iss:\"tessera\", aud:\"tessera-api\", typ:\"access\", jti:\"t-\(\$now)\", iat:\$now, exp:(\$now + 600)} | $1"
}
hdr="{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"$KID\"}"
reject() { # name token [code]
    req GET /v1/auth/me -H "Authorization: Bearer $2"
    expect_error "$1" 401 "${3:-unauthorized}"
}
good=$(mint "$hdr" "$(claims .)")
req GET /v1/auth/me -H "Authorization: Bearer $good"
expect "a token minted with the fleet's key and valid claims is accepted" 200 '.role == "owner"'
reject "alg none is refused" "$(printf '{"alg":"none","typ":"JWT","kid":"%s"}' "$KID" | b64url).$(claims . | b64url)."
hs_in="$(printf '{"alg":"HS256","typ":"JWT","kid":"%s"}' "$KID" | b64url).$(claims . | b64url)"
hs_sig=$(printf '%s' "$hs_in" | openssl dgst -sha256 -mac HMAC -macopt "key:$(cat "$T/pub.pem")" -binary | b64url)
reject "HS256 signed with the public key is refused" "$hs_in.$hs_sig"
reject "an unknown kid is refused" "$(mint '{"alg":"EdDSA","typ":"JWT","kid":"nope"}' "$(claims .)")"
openssl genpkey -algorithm ed25519 -out "$T/other.pem" 2>/dev/null
reject "a signature by another key is refused" "$(mint "$hdr" "$(claims .)" "$T/other.pem")"
check "… with a sentence for people, the code for programs" \
    jq -e '.error.message == "the token'"'"'s signature does not verify" and .error.code == "unauthorized"' <<<"$BODY"
IFS=. read -r h p s <<<"$good"
reject "a changed payload is refused" "$h.$(claims '.role = "admin"' | b64url).$s"
last=${s: -1}; alt=$( [ "$last" = A ] && echo B || echo A )
reject "a non-canonical signature spelling is refused" "$h.$p.${s%?}$alt"
reject "padding in base64url is refused" "$h.$p.$s="
reject "+ or / in base64url is refused" "$h.$p.${s:0:10}+${s:11}"
reject "a payload that is not JSON is refused" "$(mint "$hdr" 'not json')"
reject "an expired token → token_expired" "$(mint "$hdr" "$(claims ".iat = $((now - 1200)) | .exp = $((now - 600))")")" token_expired
reject "a token not valid yet (nbf) is refused" "$(mint "$hdr" "$(claims ".nbf = $((now + 600))")")"
reject "a token issued in the future (iat) is refused" "$(mint "$hdr" "$(claims ".iat = $((now + 600))")")"
reject "a wrong issuer is refused" "$(mint "$hdr" "$(claims '.iss = "evil"')")"
reject "a wrong audience is refused" "$(mint "$hdr" "$(claims '.aud = "other-api"')")"
reject "a token without exp is refused" "$(mint "$hdr" "$(claims 'del(.exp)')")"
reject "a crit header is refused" "$(mint "{\"alg\":\"EdDSA\",\"kid\":\"$KID\",\"crit\":[\"x\"]}" "$(claims .)")"
reject "a token over the size cap is refused" "$(mint "$hdr" "$(claims ".pad = \"$(head -c 3300 /dev/zero | tr '\0' a)\"")")"
reject "a refresh token is not an access token" "$REFRESH"
reject "a garbage bearer is refused" "abc.def"
req GET /v1/auth/me
expect_error "no Authorization header → 401" 401 unauthorized

# --- refresh rotation: a family has at most one live token (reuse interval 4 s in this suite)
refresh() { req POST /v1/auth/refresh -H "$J" -d "{\"refresh_token\":\"$1\"}"; }
login victor@acme.test
R0=$REFRESH
refresh "$R0"
expect "refresh rotates: a new pair" 200 '(.refresh_token | startswith("rt_")) and (.access_token | length > 0)'
R1=$(jq -r .refresh_token <<<"$BODY"); A1=$(jq -r .access_token <<<"$BODY")
check "the rotated refresh token differs" test "$R1" != "$R0"
FAM=$(pad "$(cut -d. -f2 <<<"$A1")" | openssl base64 -d -A | jq -r .fam)
# seals in the database: "kept|tokens" of the family (postgres only; the memory engine's unit test covers it)
seals() { "$PG_BIN/psql" "$PG_DB_OWNER_DSN" -Atc "SELECT count(*) FILTER (WHERE child_sealed IS NOT NULL) || '|' || count(*) FROM core.refresh_tokens WHERE family_id = '$FAM'"; }
refresh "$R0"
expect "replaying the parent within the reuse interval returns the same child" 200 ".refresh_token == \"$R1\""
A1b=$(jq -r .access_token <<<"$BODY")
req GET /v1/auth/me -H "$(auth "$A1b")"
expect "with a fresh access token that works" 200 '.user.email == "victor@acme.test"'
check "the replay's access token is a new one" test "$A1b" != "$A1"
refresh "$R0"
expect "a second replay within the interval still gets that child" 200 ".refresh_token == \"$R1\""
refresh "$R1"
expect "the child rotates in its turn" 200 '.refresh_token | startswith("rt_")'
R2=$(jq -r .refresh_token <<<"$BODY")
check "into a grandchild of its own" test "$R2" != "$R1" -a "$R2" != "$R0"
[ "${ENGINE:-memory}" = postgres ] &&
    check "only the newest rotation's seal is kept: the grandparent's went when its child rotated" test "$(seals)" = "1|3"
refresh "$R0"
expect_error "replaying the grandparent, even within the interval → 401 token_revoked" 401 token_revoked
refresh "$R2"
expect_error "grandparent replay revokes the family: the newest token → 401 token_revoked" 401 token_revoked
refresh "$R1"
expect_error "and the parent with it" 401 token_revoked
[ "${ENGINE:-memory}" = postgres ] &&
    check "and no seal of the revoked family is left" test "$(seals)" = "0|3"
req GET /v1/audit -H "$(auth "$ADMIN")"
expect "the reuse is audited with its family" 200 "[.data[] | select(.action == \"auth.refresh_reuse\" and .meta.family_id == \"$FAM\")] | length == 1"

# the parent after the interval, once its child has not rotated
login victor@acme.test
S0=$REFRESH
refresh "$S0"
S1=$(jq -r .refresh_token <<<"$BODY")
check "a second session rotates" test "$STATUS" = 200 -a "$S1" != "$S0"
sleep 5
refresh "$S0"
expect_error "replaying the parent after the interval → 401 token_revoked" 401 token_revoked
refresh "$S1"
expect_error "after reuse detection the family's live token is dead too" 401 token_revoked
refresh rt_unknown
expect_error "an unknown refresh token → 401" 401 unauthorized
# A refresh token names its scope (mode byte, org id) before its secret, so
# its rotation is found in that scope at once; the hash covers the whole text,
# so a text whose scope was altered is unknown, and changes nothing.
rescope() { # TOKEN org|mode: the token with another org id, or the other mode
    python3 - "$1" "$2" <<'PY'
import base64, sys, uuid
t, what = sys.argv[1], sys.argv[2]
raw = bytearray(base64.urlsafe_b64decode(t[3:] + "=" * (-len(t[3:]) % 4)))
if what == "org":
    raw[1:17] = uuid.uuid4().bytes
else:
    raw[0] ^= 1
print("rt_" + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("="))
PY
}
login victor@acme.test
V0=$REFRESH
check "a refresh token is rt_ and 66 base64url characters (mode, org id, secret)" \
    test "${#V0}" = 69 -a "${V0:0:3}" = rt_
for what in org mode; do
    refresh "$(rescope "$V0" "$what")"
    expect_error "the same secret under another $what → 401 unknown" 401 unauthorized
done
refresh "$V0"
expect "and the token itself still rotates: nothing changed" 200 '.refresh_token | startswith("rt_")'
# texts of the scoped form's length that are no token of ours: unknown, never a 500
for bad in "rt_$(printf '%066d' 0)" "rt_$(printf 'A%.0s' $(seq 1 65))=" "xx_${V0:3}" "rt_/${V0:4}" \
           "rt_$(python3 -c 'import base64; print(base64.urlsafe_b64encode(bytes([7]) + bytes(48)).decode().rstrip("="))')"; do
    refresh "$bad"
    expect_error "a malformed ${#bad}-character refresh token ${bad:0:8}… → 401 unknown" 401 unauthorized
done

# 20 concurrent refreshes of one token, over both workers
login victor@acme.test
burst=$(refresh_burst "$REFRESH" 20 burst)
children=$(awk '$1 == 200 { print $2 }' <<<"$burst" | sort -u)
check "20 concurrent refreshes of one token all answer 200 (within the interval)" \
    test "$(awk '$1 == 200' <<<"$burst" | wc -l)" = 20
check "and every one carries the same child: one distinct refresh token" \
    test "$(wc -l <<<"$children")" = 1 -a "$children" != - -a "$children" != "$REFRESH"
echo "# the burst was served by $(jq -s '[.[] | select(.event == "access" and (.request_id | startswith("burst-"))) | .worker] | unique | length' "$T/fleet.log") worker(s)"
refresh "$children"
expect "that child is the family's live token: it refreshes" 200 '.refresh_token | startswith("rt_")'
# --- signup, duplicate, bad input
req POST /v1/auth/signup -H "$J" -d '{"email":"Founder@New.test","password":"correct horse","org_name":"New Co"}'
expect "signup creates user, org (owner) and tokens → 201" 201 '.user.email == "founder@new.test" and .org.name == "New Co" and .role == "owner" and (.access_token | length > 0)'
NEW=$(jq -r .access_token <<<"$BODY"); NEW_ORG=$(jq -r .org.id <<<"$BODY")
req POST /v1/auth/signup -H "$J" -d '{"email":"founder@new.test","password":"correct horse","org_name":"Again"}'
expect_error "a duplicate signup → 409 conflict" 409 conflict
req POST /v1/auth/signup -H "$J" -d '{"email":"x@y.test","org_name":"No Password"}'
expect "a missing field → 422 naming it" 422 '.error.code == "validation_failed" and .error.details.password == "is required"'
req POST /v1/auth/signup -H "$J" -d '{"email":"x@y.test","password":12345678,"org_name":"T"}'
expect "a wrong type → 422 naming it" 422 '.error.details.password == "must be a string"'
req POST /v1/auth/signup -H "$J" -d '{"email":"x@y.test","password":"short","org_name":"T"}'
expect "a short password → 422" 422 '.error.details.password | test("8")'
req POST /v1/auth/signup -H "$J" -d '{"email":"not-an-email","password":"long enough","org_name":"T"}'
expect "a malformed email → 422" 422 '.error.details.email | length > 0'
req POST /v1/auth/signup -H "$J" -d '{"email":"x@y.test","password":"long enough","org_name":"T","role":"owner"}'
expect "an unknown field → 422" 422 '.error.details.role == "is not a known field"'
req POST /v1/auth/signup -H "$J" -d '["email"]'
expect_error "a body that is not an object → 400" 400 invalid_request
head -c 1048576 /dev/zero | tr '\0' a | sed 's/^/{"email":"x@y.test","org_name":"T","password":"/; s/$/"}/' >"$T/bigpw.json"
req POST /v1/auth/signup -H "$J" --data-binary @"$T/bigpw.json"
check "a 1 MB password → 413, not a 500" test "$STATUS" = 413
head -c 5000 /dev/zero | tr '\0' a | sed 's/^/{"email":"x@y.test","org_name":"T","password":"/; s/$/"}/' >"$T/pw5k.json"
req POST /v1/auth/signup -H "$J" --data-binary @"$T/pw5k.json"
expect "a 5 kB password → 422" 422 '.error.details.password | length > 0'

# --- tenant isolation: org A's token never reaches org B
login bob@globex.test
BOB=$TOKEN
req GET /v1/orgs/current/members -H "$(auth "$BOB")"
expect "members lists only the caller's org" 200 '(.data | length == 2) and ([.data[].email] | index("bob@globex.test")) and ([.data[].email] | index("admin@example.com") | not)'
req PATCH /v1/orgs/current/members/aaaaaaaa-0000-4000-8000-000000000003 -H "$(auth "$BOB")" -H "$J" -d '{"role":"admin"}'
expect_error "changing another org's member → 404" 404 not_found
req DELETE /v1/orgs/current/members/aaaaaaaa-0000-4000-8000-000000000002 -H "$(auth "$BOB")"
expect_error "removing another org's member → 404" 404 not_found
req POST /v1/auth/api-keys -H "$(auth "$ADMIN")" -H "$J" -d '{"name":"acme ci"}'
expect "an owner creates an API key; the key is shown once" 201 '(.key | startswith("tk_test_")) and .mode == "test" and (.prefix | startswith("tk_test_"))'
ACME_KEY=$(jq -r .key <<<"$BODY"); ACME_KEY_ID=$(jq -r .id <<<"$BODY")
req GET /v1/auth/api-keys -H "$(auth "$BOB")"
expect "another org's keys are not listed" 200 "[.data[].id] | index(\"$ACME_KEY_ID\") | not"
req DELETE "/v1/auth/api-keys/$ACME_KEY_ID" -H "$(auth "$BOB")"
expect_error "revoking another org's key → 404" 404 not_found
req GET /v1/roles -H "$(auth "$BOB")"
expect "another org's custom roles are not listed" 200 '[.data[].name] | index("support") | not'
req GET /v1/audit -H "$(auth "$BOB")"
expect "the audit trail holds only the caller's org" 200 '[.data[] | select(.actor == "aaaaaaaa-0000-4000-8000-000000000001")] | length == 0'
req GET /v1/orgs/current -H "$(auth "$BOB")"
expect "orgs/current is the token's org" 200 '.slug == "globex"'

# --- RBAC, and a role change takes effect on the next request
login victor@acme.test
VICTOR=$TOKEN
req POST /v1/auth/api-keys -H "$(auth "$VICTOR")" -H "$J" -d '{"name":"v"}'
expect_error "a viewer cannot create API keys → 403" 403 forbidden
req POST /v1/orgs/current/members -H "$(auth "$VICTOR")" -H "$J" -d '{"email":"x@acme.test","role":"member"}'
expect_error "a viewer cannot invite members → 403" 403 forbidden
req GET /v1/audit -H "$(auth "$VICTOR")"
expect_error "a viewer cannot read the audit log → 403" 403 forbidden
login alice@acme.test
ALICE=$TOKEN
req POST /v1/orgs/current/members -H "$(auth "$ALICE")" -H "$J" -d '{"role":"member"}'
expect "an invite names the email it is for → 422" 422 '.error.details.email | length > 0'
req POST /v1/orgs/current/members -H "$(auth "$ALICE")" -H "$J" -d '{"email":"Joiner@Acme.test","role":"member"}'
expect "an admin invites a member by email → one-time invite token" 201 \
    '.role == "member" and .email == "joiner@acme.test" and (.invite_token | length > 20)'
INVITE=$(jq -r .invite_token <<<"$BODY")
req POST /v1/orgs/current/members -H "$(auth "$ALICE")" -H "$J" -d '{"email":"o@acme.test","role":"owner"}'
expect_error "an admin cannot invite an owner → 403" 403 forbidden
req PATCH /v1/orgs/current/members/aaaaaaaa-0000-4000-8000-000000000003 -H "$(auth "$ALICE")" -H "$J" -d '{"role":"admin"}'
expect "an admin promotes the viewer" 200 '.role == "admin"'
req POST /v1/auth/api-keys -H "$(auth "$VICTOR")" -H "$J" -d '{"name":"now allowed"}'
expect "the promotion takes effect on the viewer's next request, same token" 201 '.key | startswith("tk_test_")'
req PATCH /v1/orgs/current/members/aaaaaaaa-0000-4000-8000-000000000003 -H "$(auth "$ALICE")" -H "$J" -d '{"role":"viewer"}'
req POST /v1/auth/api-keys -H "$(auth "$VICTOR")" -H "$J" -d '{"name":"not again"}'
expect_error "and a demotion too" 403 forbidden
req PATCH /v1/orgs/current/members/aaaaaaaa-0000-4000-8000-000000000003 -H "$(auth "$ALICE")" -H "$J" -d '{"role":"wizard"}'
expect "an unknown role → 422" 422 '.error.details.role | length > 0'

# --- invites and the last owner
req POST /v1/auth/signup -H "$J" -d "{\"email\":\"second@acme.test\",\"password\":\"joining now\",\"invite_token\":\"$INVITE\"}"
expect_error "only the email an invite names signs up with it → 403" 403 forbidden
req POST /v1/auth/signup -H "$J" -d "{\"email\":\"joiner@acme.test\",\"password\":\"joining now\",\"invite_token\":\"$INVITE\"}"
expect "signup with an invite joins that org with the invited role" 201 '.org.slug == "acme" and .role == "member"'
JOINER=$(jq -r .access_token <<<"$BODY")
req POST /v1/auth/invites/accept -H "$(auth "$JOINER")" -H "$J" -d "{\"invite_token\":\"$INVITE\"}"
expect_error "an invite works once" 400 invalid_request

# an invite for someone who already has an account: accepted after logging in
req POST /v1/orgs/current/members -H "$(auth "$ALICE")" -H "$J" -d '{"email":"bob@globex.test","role":"viewer"}'
BOB_INVITE=$(jq -r .invite_token <<<"$BODY")
req POST /v1/auth/signup -H "$J" -d "{\"email\":\"bob@globex.test\",\"password\":\"joining now\",\"invite_token\":\"$BOB_INVITE\"}"
expect "signing up with an existing account's email → 409 saying to log in and accept" 409 \
    '.error.code == "conflict" and (.error.message | test("invites/accept"))'
req POST /v1/auth/invites/accept -H "$(auth "$JOINER")" -H "$J" -d "{\"invite_token\":\"$BOB_INVITE\"}"
expect_error "another account cannot accept it → 403" 403 forbidden
req POST /v1/auth/api-keys -H "$(auth "$BOB")" -H "$J" -d '{"name":"not a person"}'
BOB_KEY=$(jq -r .key <<<"$BODY")
req POST /v1/auth/invites/accept -H "$(auth "$BOB_KEY")" -H "$J" -d "{\"invite_token\":\"$BOB_INVITE\"}"
expect_error "nor an API key → 403" 403 forbidden
req POST /v1/auth/invites/accept -H "$(auth "$BOB")" -H "$J" -d "{\"invite_token\":\"$BOB_INVITE\"}"
expect "the person it names accepts it with their own token → a token pair for that org" 200 \
    '.org.slug == "acme" and .role == "viewer" and (.access_token | length > 20)'
BOB_ACME=$(jq -r .access_token <<<"$BODY")
req GET /v1/orgs/current -H "$(auth "$BOB_ACME")"
expect "… which acts in the org joined" 200 '.slug == "acme"'
req GET /v1/orgs/current -H "$(auth "$BOB")"
expect "… while the earlier token still acts in the first org" 200 '.slug == "globex"'
req GET /v1/orgs/current/members -H "$(auth "$ALICE")"
expect "… and the org lists the new member in the invited role" 200 \
    '[.data[] | select(.email == "bob@globex.test" and .role == "viewer")] | length == 1'
req POST /v1/auth/invites/accept -H "$(auth "$BOB")" -H "$J" -d "{\"invite_token\":\"$BOB_INVITE\"}"
expect_error "accepting twice → 400 (used)" 400 invalid_request
req POST /v1/orgs/current/members -H "$(auth "$ALICE")" -H "$J" -d '{"email":"bob@globex.test","role":"viewer"}'
req POST /v1/auth/invites/accept -H "$(auth "$BOB")" -H "$J" -d "{\"invite_token\":\"$(jq -r .invite_token <<<"$BODY")\"}"
expect_error "a member accepting another invite to the same org → 409" 409 conflict
req DELETE "/v1/orgs/current/members/$(jq -r .user.id <<<"$(curl -s "$URL/v1/auth/me" -H "$(auth "$BOB")")")" -H "$(auth "$ALICE")"
check "(bob leaves acme again)" test "$STATUS" = 204
req DELETE /v1/orgs/current/members/aaaaaaaa-0000-4000-8000-000000000004 -H "$(auth "$BOB")"
expect_error "the last owner cannot be removed → 409" 409 conflict
req PATCH /v1/orgs/current/members/aaaaaaaa-0000-4000-8000-000000000004 -H "$(auth "$BOB")" -H "$J" -d '{"role":"member"}'
expect_error "the last owner cannot be demoted → 409" 409 conflict

# --- roles
req POST /v1/roles -H "$(auth "$ALICE")" -H "$J" -d '{"name":"auditor","permissions":["audit:read:*","records:read:crm/*"]}'
expect "an admin creates a custom role" 201 '.name == "auditor" and (.permissions | length == 2) and (.builtin | not)'
req POST /v1/roles -H "$(auth "$ALICE")" -H "$J" -d '{"name":"bad","permissions":["drop table"]}'
expect "a malformed permission → 422" 422 '.error.details.permissions | length > 0'
req POST /v1/roles -H "$(auth "$ALICE")" -H "$J" -d '{"name":"typo","permissions":["records:reed:*"]}'
expect "a misspelt action (records:reed) → 422 naming the known ones" 422 '.error.details.permissions | test("records:read")'
req POST /v1/roles -H "$(auth "$ALICE")" -H "$J" -d '{"name":"admin","permissions":["audit:read:*"]}'
expect_error "a built-in role cannot be redefined → 409" 409 conflict
req POST /v1/roles -H "$(auth "$ALICE")" -H "$J" -d '{"name":"auditor","permissions":["audit:read:*"]}'
expect "POST of a name the org has → 409 pointing at PATCH, nothing replaced" 409 \
    '.error.code == "conflict" and (.error.message | test("PATCH"))'
req GET /v1/roles/auditor -H "$(auth "$VICTOR")"
expect "GET /v1/roles/{name}: the org's role, unchanged" 200 '.name == "auditor" and (.permissions | length == 2) and (.builtin | not)'
req GET /v1/roles/viewer -H "$(auth "$VICTOR")"
expect "… and a built-in" 200 '.name == "viewer" and .builtin'
req GET /v1/roles/nobody -H "$(auth "$VICTOR")"
expect_error "… an unknown one → 404" 404 not_found
req PATCH /v1/roles/viewer -H "$(auth "$ALICE")" -H "$J" -d '{"permissions":["records:read:*"]}'
expect_error "built-in roles are read-only: PATCH → 403" 403 forbidden
req DELETE /v1/roles/admin -H "$(auth "$ALICE")"
expect_error "… DELETE → 403" 403 forbidden
req PATCH /v1/roles/auditor -H "$(auth "$VICTOR")" -H "$J" -d '{"permissions":["audit:read:*"]}'
expect_error "a viewer cannot change a role → 403" 403 forbidden
req PATCH /v1/roles/auditor -H "$(auth "$ALICE")" -H "$J" -d '{"name":"renamed","permissions":["audit:read:*"]}'
expect "a role keeps its name: PATCH with a name → 422" 422 '.error.details.name | length > 0'
req PATCH /v1/roles/auditor -H "$(auth "$ALICE")" -H "$J" -d '{"permissions":["records:reed:*"]}'
expect "PATCH validates permissions as POST does → 422" 422 '.error.details.permissions | length > 0'
req PATCH /v1/roles/auditor -H "$(auth "$ALICE")" -H "$J" -d '{"permissions":["audit:read:*"]}'
expect "PATCH replaces an org role's permissions" 200 '.name == "auditor" and .permissions == ["audit:read:*"]'
req PATCH /v1/roles/nobody -H "$(auth "$ALICE")" -H "$J" -d '{"permissions":["audit:read:*"]}'
expect_error "PATCH of an unknown role → 404" 404 not_found
req POST /v1/roles -H "$(auth "$ALICE")" -H "$J" -d '{"name":"held","permissions":["audit:read:*"]}'
req POST /v1/orgs/current/members -H "$(auth "$ALICE")" -H "$J" -d '{"email":"held@acme.test","role":"held"}'
req DELETE /v1/roles/held -H "$(auth "$ALICE")"
expect "a role an open invite holds is not deleted → 409 saying why" 409 '.error.message | test("hold this role")'
req POST /v1/roles -H "$(auth "$ALICE")" -H "$J" -d '{"name":"spare","permissions":["audit:read:*"]}'
req DELETE /v1/roles/spare -H "$(auth "$ALICE")"
check "a role nothing holds is deleted → 204" test "$STATUS" = 204
req GET /v1/roles/spare -H "$(auth "$ALICE")"
expect_error "… and is gone" 404 not_found
req DELETE /v1/roles/spare -H "$(auth "$ALICE")"
expect_error "… deleting it again → 404" 404 not_found
req GET /v1/audit -H "$(auth "$ALICE")"
expect "role changes are audited" 200 \
    '([.data[] | select(.action == "roles.update" and .target == "auditor")] | length == 1) and ([.data[] | select(.action == "roles.delete" and .target == "spare")] | length == 1)'
req GET /v1/roles -H "$(auth "$VICTOR")"
expect "roles list built-ins and the org's own" 200 '([.data[].name] | index("owner")) and ([.data[].name] | index("auditor")) and ([.data[].name] | index("support"))'

# --- API keys and modes
req GET /v1/auth/me -H "$(auth "$ACME_KEY")"
expect "an API key authenticates as its org" 200 '.org.slug == "acme" and .user == null and .mode == "test"'
req GET /v1/auth/me -H "$(auth "$ACME_KEY")" -H 'Tessera-Mode: live'
expect_error "a tk_test_ key asking for live → 403" 403 forbidden
req POST /v1/auth/api-keys -H "$(auth "$ADMIN")" -H 'Tessera-Mode: live' -H "$J" -d '{"name":"prod"}'
expect "a JWT in live mode creates a tk_live_ key" 201 '(.key | startswith("tk_live_")) and .mode == "live"'
LIVE_KEY=$(jq -r .key <<<"$BODY")
req GET /v1/auth/me -H "$(auth "$LIVE_KEY")"
check "a tk_live_ key gets Tessera-Mode: live" test "$STATUS" = 200 -a "$(header tessera-mode)" = live
req GET /v1/auth/api-keys -H "$(auth "$ADMIN")"
expect "a person's key list shows both modes, each key with its mode, without the secret" 200 "([.data[].id] | index(\"$ACME_KEY_ID\")) and ([.data[] | has(\"key\")] | any | not) and ([.data[].mode] | unique == [\"live\",\"test\"])"
req GET '/v1/auth/api-keys?mode=live' -H "$(auth "$ADMIN")"
expect "…?mode=live lists the live ones only" 200 '(.data | length) >= 1 and ([.data[].mode] | unique == ["live"])'
req GET '/v1/auth/api-keys?mode=prod' -H "$(auth "$ADMIN")"
expect_error "…?mode=prod → 400" 400 invalid_request
req GET /v1/auth/api-keys -H "$(auth "$ACME_KEY")"
expect "a test API key lists the test keys only" 200 '([.data[].mode] | unique == ["test"])'
req POST /v1/auth/api-keys -H "$(auth "$ADMIN")" -H "$J" -d '{"name":"prod too","mode":"live"}'
expect "a person in test mode makes a live key with {\"mode\": \"live\"}" 201 '(.key | startswith("tk_live_")) and .mode == "live"'
req POST /v1/auth/api-keys -H "$(auth "$ADMIN")" -H "$J" -d '{"name":"x","mode":"prod"}'
expect "a mode that is neither test nor live → 422 naming it" 422 '.error.details.mode | length > 0'
req POST /v1/auth/api-keys -H "$(auth "$ACME_KEY")" -H "$J" -d '{"name":"escalate","mode":"live"}'
expect_error "a test API key cannot make a live key → 403" 403 forbidden
req GET /v1/auth/me -H "$(auth "$ADMIN")" -H 'Tessera-Mode: staging'
expect_error "an unknown Tessera-Mode → 400" 400 invalid_request
req DELETE "/v1/auth/api-keys/$ACME_KEY_ID" -H "$(auth "$ADMIN")"
check "an owner revokes a key → 204" test "$STATUS" = 204
req GET /v1/auth/me -H "$(auth "$ACME_KEY")"
expect_error "a revoked key → 401" 401 unauthorized
req GET /v1/auth/me -H "Authorization: Bearer tk_test_not-a-real-key"
expect_error "an unknown key → 401" 401 unauthorized

# --- apps
req GET /v1/apps -H "$(auth "$BOB")"
expect "apps are discoverable by any member" 200 '[.data[].name] | index("crm")'
req POST /v1/apps -H "$(auth "$BOB")" -H "$J" -d '{"name":"shop","kind":"microservice"}'
expect_error "only platform admins register apps → 403" 403 forbidden
req POST /v1/apps -H "$(auth "$ADMIN")" -H "$J" -d '{"name":"shop","kind":"microservice"}'
expect "a platform admin registers an app" 201 '.name == "shop" and .kind == "microservice" and .status == "active"'
req POST /v1/apps -H "$(auth "$ADMIN")" -H "$J" -d '{"name":"shop","kind":"microservice"}'
expect_error "a duplicate app name → 409" 409 conflict
req POST /v1/apps -H "$(auth "$ADMIN")" -H "$J" -d '{"name":"Bad Name!","kind":"rocket"}'
expect "bad app fields → 422 per field" 422 '.error.details.name and .error.details.kind'

# --- audit trail
req GET '/v1/audit?limit=2' -H "$(auth "$ADMIN")"
expect "the audit trail pages newest first with a cursor" 200 '(.data | length == 2) and (.next_cursor | length == 36)'
c=$(jq -r .next_cursor <<<"$BODY"); first=$(jq -r '.data[0].id' <<<"$BODY")
req GET "/v1/audit?limit=2&cursor=$c" -H "$(auth "$ADMIN")"
expect "the next page continues after the cursor" 200 "(.data[0].id < \"$c\") and (.data[0].id != \"$first\")"
req GET '/v1/audit?limit=100' -H "$(auth "$ADMIN")"
expect "logins, failures, key and member changes are audited" 200 '[.data[].action] as $a | ($a | index("auth.login")) and ($a | index("auth.login_failed")) and ($a | index("keys.create")) and ($a | index("keys.revoke")) and ($a | index("members.role")) and ($a | index("members.invite"))'
req GET '/v1/audit?cursor=zzz' -H "$(auth "$ADMIN")"
expect_error "a malformed cursor → 400" 400 invalid_request
check "no email reaches the log" bash -c "! grep -q 'founder@new.test\|admin@example.com' '$T/fleet.log'"

# --- a worker killed during a signup storm: every 201 can log in, the fleet serves on
storm() {
    for i in $(seq 1 40); do
        code=$(curl -s -o /dev/null -w '%{http_code}' -H "$J" \
            -d "{\"email\":\"storm$1-$i@load.test\",\"password\":\"storm-password\",\"org_name\":\"Storm $1 $i\"}" "$URL/v1/auth/signup")
        echo "storm$1-$i@load.test $code"
    done
}
storms=()
for k in 1 2 3 4; do storm "$k" >"$T/storm$k.txt" & storms+=($!); done
sleep 0.5
victim=$("$TESSERA" status --json | jq -r '.slots[0].pid')
kill -9 "$victim"
wait "${storms[@]}"   # not a bare wait: the fleet and nginx are background jobs too
sleep 1
created=$(cat "$T"/storm*.txt | awk '$2 == 201 {print $1}')
bad=0
for e in $created; do
    c=$(curl -s -o /dev/null -w '%{http_code}' -H "$J" -d "{\"email\":\"$e\",\"password\":\"storm-password\"}" "$URL/v1/auth/login")
    [ "$c" = 200 ] || bad=$((bad + 1))
done
check "after kill -9 during a signup storm every signup that got 201 logs in ($(wc -w <<<"$created") created)" test "$bad" = 0 -a -n "$created"
check "no signup answered 500" bash -c "! cat '$T'/storm*.txt | awk '{print \$2}' | grep -qx 500"
req GET /healthz
expect "the fleet serves on after the kill" 200 '.status == "ok"'

# --- nobody hands out more than they hold
join_as() { # role email → TOKEN of a fresh member of acme in that role
    req POST /v1/orgs/current/members -H "$(auth "$ADMIN")" -H "$J" -d "{\"email\":\"$2\",\"role\":\"$1\"}"
    local inv; inv=$(jq -r .invite_token <<<"$BODY")
    req POST /v1/auth/signup -H "$J" -d "{\"email\":\"$2\",\"password\":\"joining now\",\"invite_token\":\"$inv\"}"
    TOKEN=$(jq -r .access_token <<<"$BODY"); NEW_ID=$(jq -r .user.id <<<"$BODY")
}
req POST /v1/roles -H "$(auth "$ADMIN")" -H "$J" -d '{"name":"rolemgr","permissions":["roles:manage:*"]}'
req POST /v1/roles -H "$(auth "$ADMIN")" -H "$J" -d '{"name":"hr","permissions":["members:manage:*"]}'
req POST /v1/roles -H "$(auth "$ADMIN")" -H "$J" -d '{"name":"keyer","permissions":["keys:manage:*"]}'
join_as rolemgr rm@acme.test; RM=$TOKEN
req PATCH /v1/roles/rolemgr -H "$(auth "$RM")" -H "$J" -d '{"permissions":["roles:manage:*","members:manage:*"]}'
expect_error "a role manager cannot widen its own role → 403" 403 forbidden
req DELETE /v1/roles/hr -H "$(auth "$RM")"
expect_error "nor delete a role that grants what it lacks → 403" 403 forbidden
req POST /v1/roles -H "$(auth "$RM")" -H "$J" -d '{"name":"sidekick","permissions":["audit:read:*"]}'
expect_error "nor create a role with permissions it lacks → 403" 403 forbidden
req POST /v1/roles -H "$(auth "$RM")" -H "$J" -d '{"name":"deputy","permissions":["roles:manage:*"]}'
expect "it can create a role within what it holds" 201 '.name == "deputy"'
join_as hr hr@acme.test; HR=$TOKEN; HR_ID=$NEW_ID
req PATCH "/v1/orgs/current/members/$HR_ID" -H "$(auth "$HR")" -H "$J" -d '{"role":"admin"}'
expect_error "a members:manage custom role cannot promote itself to admin → 403" 403 forbidden
req POST /v1/orgs/current/members -H "$(auth "$HR")" -H "$J" -d '{"email":"a2@acme.test","role":"admin"}'
expect_error "nor invite an admin → 403" 403 forbidden
req DELETE /v1/orgs/current/members/aaaaaaaa-0000-4000-8000-000000000002 -H "$(auth "$HR")"
expect_error "nor remove an admin → 403" 403 forbidden
req POST /v1/orgs/current/members -H "$(auth "$HR")" -H "$J" -d '{"email":"hr2@acme.test","role":"hr"}'
expect "it can invite into its own role" 201 '.role == "hr"'
# a member removed: its refresh token (named org, the rotation's membership
# check) no longer rotates, and nothing of its family changed
join_as member gone@acme.test; GONE_RT=$(jq -r .refresh_token <<<"$BODY")
req DELETE "/v1/orgs/current/members/$NEW_ID" -H "$(auth "$ADMIN")"
check "(gone@acme.test is removed from acme)" test "$STATUS" = 204
refresh "$GONE_RT"
expect_error "a removed member's refresh token → 401" 401 unauthorized
check "… saying it is no longer a member" jq -e '.error.message | test("no longer a member")' <<<"$BODY"
join_as keyer keyer@acme.test; KEYER=$TOKEN
req POST /v1/auth/api-keys -H "$(auth "$KEYER")" -H "$J" -d '{"name":"k","role":"admin"}'
expect_error "an API key cannot carry more than its creator holds → 403" 403 forbidden
req GET /v1/orgs/current/members -H "$(auth "$VICTOR")"
expect "members' emails are shown only to those who manage members" 200 '(.data | length > 0) and ([.data[] | has("email")] | any | not)'
req GET /v1/orgs/current/members -H "$(auth "$ADMIN")"
expect "an owner sees them" 200 '[.data[] | has("email")] | all'
join_as admin leaver@acme.test; LEAVER=$TOKEN; LEAVER_ID=$NEW_ID
req POST /v1/auth/api-keys -H "$(auth "$LEAVER")" -H "$J" -d '{"name":"leaver key"}'
LEAVER_KEY=$(jq -r .key <<<"$BODY")
req GET /v1/auth/me -H "$(auth "$LEAVER_KEY")"
expect "an admin's key works while the admin is a member" 200 '.role == "admin"'
req PATCH "/v1/orgs/current/members/$LEAVER_ID" -H "$(auth "$ADMIN")" -H "$J" -d '{"role":"viewer"}'
req GET /v1/auth/me -H "$(auth "$LEAVER_KEY")"
expect_error "a key stops working when its creator is demoted below it" 401 unauthorized
req DELETE "/v1/orgs/current/members/$LEAVER_ID" -H "$(auth "$ADMIN")"
req GET /v1/auth/me -H "$(auth "$LEAVER_KEY")"
expect_error "and when its creator leaves the org" 401 unauthorized
req POST /v1/auth/api-keys -H "$(auth "$ADMIN")" -H 'Tessera-Mode: live' -H "$J" -d '{"name":"live target"}'
LIVE_ID=$(jq -r .id <<<"$BODY"); LIVE_SECRET=$(jq -r .key <<<"$BODY")
req POST /v1/auth/api-keys -H "$(auth "$ADMIN")" -H "$J" -d '{"name":"test manager"}'
TEST_MGR=$(jq -r .key <<<"$BODY")
req DELETE "/v1/auth/api-keys/$LIVE_ID" -H "$(auth "$TEST_MGR")"
expect_error "a test API key cannot revoke a live key → 404" 404 not_found
req GET /v1/auth/me -H "$(auth "$LIVE_SECRET")"
expect "and the live key still works" 200 '.mode == "live"'
req DELETE "/v1/auth/api-keys/$LIVE_ID" -H "$(auth "$ADMIN")"
check "a person revokes a live key from test mode (the list shows both) → 204" test "$STATUS" = 204
req GET /v1/auth/me -H "$(auth "$LIVE_SECRET")"
expect_error "…and the live key is refused from then on" 401 unauthorized
reject "a signed token without typ access is not an access token" "$(mint "$hdr" "$(claims 'del(.typ)')")"

# --- tessera admin create, through the running fleet's control socket
out=$(printf 'admin password 1\n' | "$TESSERA" admin create Ops@Example.test 2>&1); rc=$?
check "admin create makes a platform admin with an org of its own" test "$rc" = 0 -a -n "$(grep 'created platform admin' <<<"$out")"
login ops@example.test 'admin password 1'
expect "the new admin logs in as owner of its org" 200 '.role == "owner" and .user.is_platform_admin'
out=$(printf 'admin password 1\n' | "$TESSERA" admin create ops@example.test 2>&1); rc=$?
check "admin create refuses an existing email" test "$rc" != 0 -a -n "$(grep 'already exists' <<<"$out")"
out=$(printf 'short\n' | "$TESSERA" admin create other@example.test 2>&1); rc=$?
check "admin create refuses a short password" test "$rc" != 0
check "the admin's password never reaches the log" bash -c "! grep -q 'admin password 1' '$T/fleet.log'"

# --- failed-login throttle (issue 11): a stack of its own with small limits,
# 3 failures per account and 8 per address in 5 s windows. Each case speaks
# from its own loopback address (curl --interface: nginx's REMOTE_ADDR), so one
# case's address count never meets another's.
stack_down
stack_up TESSERA_AUTH_LOGIN_MAX_FAILURES=3 TESSERA_AUTH_LOGIN_MAX_FAILURES_ADDR=8 TESSERA_AUTH_LOGIN_WINDOW_S=5 ||
    { not_ok "a stack with small login limits starts"; exit 1; }
try_login() { # address-suffix email password → STATUS, BODY, HDRS
    req POST /v1/auth/login --interface "127.0.0.$1" -H "$J" -d "{\"email\":\"$2\",\"password\":\"$3\"}"
}
fails() { # address-suffix email N → the N statuses of N wrong passwords, space-separated
    local i codes=""
    for i in $(seq 1 "$3"); do try_login "$1" "$2" "wrong password $i"; codes="$codes${codes:+ }$STATUS"; done
    echo "$codes"
}
error_of() { jq -c '.error | del(.request_id)' <<<"$BODY"; }
req POST /v1/auth/signup -H "$J" -d '{"email":"known@throttle.test","password":"right password","org_name":"Throttle"}'
expect "signup of the throttle cases' known account" 201 '.role == "owner"'
KNOWN=$(jq -r .access_token <<<"$BODY")
check "a known email's first 3 failures answer 401" test "$(fails 11 known@throttle.test 3)" = "401 401 401"
try_login 11 known@throttle.test "wrong password 4"
expect_error "the 4th failed login of a known email → 429 too_many_requests" 429 too_many_requests
known_error=$(error_of); known_retry=$(header retry-after)
check "with Retry-After in whole seconds within the window ($known_retry)" grep -qxE '[1-5]' <<<"$known_retry"
try_login 11 known@throttle.test "right password"
expect_error "while throttled even the right password gets 429 (no guessing oracle)" 429 too_many_requests
check "an unknown email's first 3 failures answer 401" test "$(fails 11 nobody@throttle.test 3)" = "401 401 401"
try_login 11 nobody@throttle.test "wrong password 4"
expect_error "the 4th failed login of an unknown email → 429 too_many_requests" 429 too_many_requests
check "with Retry-After ($(header retry-after))" grep -qxE '[1-5]' <<<"$(header retry-after)"
check "known and unknown emails get the same 429 (no enumeration)" test "$(error_of)" = "$known_error"
req GET '/v1/audit?limit=100' -H "$(auth "$KNOWN")"
expect "throttled attempts never reach the password check (3 audited failures, not 5)" 200 \
    '[.data[] | select(.action == "auth.login_failed")] | length == 3'
try_login 11 admin@example.com tessera-dev
expect "meanwhile another account logs in from the same address (counts are per account)" 200 '.access_token | length > 0'
check "victor's first 2 failures answer 401" test "$(fails 12 victor@acme.test 2)" = "401 401"
try_login 12 victor@acme.test tessera-dev
expect "a successful login" 200 '.access_token | length > 0'
check "resets the account's count: 3 more failures answer 401" test "$(fails 12 victor@acme.test 3)" = "401 401 401"
try_login 12 victor@acme.test "wrong password 4"
expect_error "and the next is throttled" 429 too_many_requests
codes=""
for i in $(seq 1 8); do try_login 13 "spray$i@throttle.test" "wrong password"; codes="$codes${codes:+ }$STATUS"; done
check "8 failures from one address, each on another email, answer 401" test "$codes" = "401 401 401 401 401 401 401 401"
try_login 13 spray9@throttle.test "wrong password"
expect_error "the 9th from that address → 429, though that email never failed" 429 too_many_requests
try_login 14 spray9@throttle.test "wrong password"
expect_error "another address is not held back" 401 invalid_credentials
req GET /metrics
check "/metrics counts the throttled logins" \
    awk '$1 == "tessera_login_throttled_total" && $2 >= 5 { found = 1 } END { exit !found }' <<<"$BODY"
sleep "$known_retry"; sleep 0.5
try_login 11 known@throttle.test "right password"
expect "after the window (Retry-After: $known_retry s) the right password logs in" 200 '.access_token | length > 0'
check "no throttled email reaches the log" bash -c "! grep -q 'throttle.test\|victor@acme' '$T/fleet.log'"

# --- a full memory engine answers 507 and stays consistent
[ "${ENGINE:-memory}" = memory ] || exit 0
stack_down
stack_up TESSERA_MEMORY_SIZE_MB=1 || { not_ok "a 1 MiB memory engine starts"; exit 1; }
login bob@globex.test
BOB=$TOKEN
seq 1 600 | xargs -P 4 -I{} curl -s -o /dev/null -w '%{http_code}\n' -H "$J" \
    -d '{"email":"fill{}@full.test","password":"fill-password","org_name":"Fill {}"}' "$URL/v1/auth/signup" >"$T/fill.txt"
check "filling the memory engine ends in 507 insufficient_storage" grep -qx 507 "$T/fill.txt"
check "and never in a 500" bash -c "! grep -qx 500 '$T/fill.txt'"
req POST /v1/auth/signup -H "$J" -d '{"email":"late@full.test","password":"fill-password","org_name":"Late"}'
expect_error "a write into a full engine gets the envelope with insufficient_storage" 507 insufficient_storage
req GET /v1/auth/me -H "$(auth "$BOB")"
expect "reads still work on a full engine and the data written before it filled is intact" 200 '.org.slug == "globex" and .user.email == "bob@globex.test" and .role == "owner"'

req GET /healthz
expect "the fleet still serves" 200 '.status == "ok"'
