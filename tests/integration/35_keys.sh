#!/usr/bin/env bash
# Signing keys (issue 11): a private key file open to group or others, or a
# key that is not Ed25519, is a config error (exit 2) at check-config and at
# fleet start, and a refused reload; rotation end to end through nginx and a
# fleet of 2 (keygen --rotate, auth.verify_keys, tessera reload, JWKS); and
# "alg": "Ed25519" (RFC 9864) beside "EdDSA", the key pinned to Ed25519.
# Keys do not depend on the engine: memory only.
. "$(dirname "$0")/lib.sh"

J='Content-Type: application/json'
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
pad() { local s=$1; while [ $(( ${#s} % 4 )) -ne 0 ]; do s="$s="; done; printf '%s' "$s" | tr -- '-_' '+/'; }
# mint HEADER PAYLOAD KEYFILE: a JWT signed by KEYFILE (Ed25519 raw, EC as openssl's DER)
mint() {
    local h p sig
    h=$(printf '%s' "$1" | b64url); p=$(printf '%s' "$2" | b64url)
    printf '%s.%s' "$h" "$p" >"$T/signing-input"
    if openssl pkey -in "$3" -noout -text 2>/dev/null | grep -q ED25519; then
        sig=$(openssl pkeyutl -sign -inkey "$3" -rawin -in "$T/signing-input" | b64url)
    else
        sig=$(openssl dgst -sha256 -sign "$3" "$T/signing-input" | b64url)
    fi
    printf '%s.%s.%s' "$h" "$p" "$sig"
}
jwt_header() { pad "${1%%.*}" | openssl base64 -d -A; }
# statuses TOKEN: the distinct statuses of 24 concurrent /v1/auth/me calls
# (nginx spreads them over both workers), e.g. "200" or "401"
statuses() {
    seq 1 24 | xargs -P 8 -I{} curl -s -o /dev/null -w '%{http_code}\n' \
        -H "Authorization: Bearer $1" "$URL/v1/auth/me" | sort -u | tr '\n' ' ' | sed 's/ $//'
}
# reload_settled: a reload's rolling restart has reached every slot
reload_done() { [ "$(fleet_json '.generation as $g | ([.slots[] | select(.role == "api")] | length == 2) and all(.slots[]; .generation == $g and .pid > 0 and (.state == "idle" or .state == "busy"))')" = true ]; }
reload_and_wait() {
    "$TESSERA" reload >"$T/reload.out" 2>&1 || return 1
    wait_until 20 reload_done && sleep 0.3 && reload_done
}

# --- refused at check-config and at fleet start, before any worker ---------
B=$T/bad
mkdir -p "$B"
# bad_env CMD...: the tessera command with keys and sockets under $B
bad_env() {
    env TESSERA_ENV=test TESSERA_CONFIG=/dev/null TESSERA_AUTH_SIGNING_KEY="${KEY:-$B/jwt.pem}" \
        TESSERA_CRYPTO_DATA_KEY="$B/data.key" TESSERA_FLEET_LISTEN="$B/s.sock" \
        TESSERA_FLEET_CONTROL="$B/c.sock" TESSERA_FLEET_PID_FILE="$B/p.pid" \
        TESSERA_FLEET_WORKERS=2 "$@"
}
bad_env "$TESSERA" keygen >/dev/null
check "keygen makes the signing key 0600" test "$(stat -c %a "$B/jwt.pem")" = 600
out=$(bad_env "$TESSERA" check-config 2>&1)
check "check-config accepts a 0600 Ed25519 key and shows its kid" \
    jq -e '.jwt_keys | length == 1 and .[0].use == "sign" and (.[0].kid | length == 16)' <<<"$out"

# refused NAME WANT-IN-OUTPUT CMD...: the command exits 2 and its output names what it must
refused() {
    local name=$1 want=$2 out rc; shift 2
    out=$("$@" 2>&1); rc=$?
    if [ "$rc" = 2 ] && grep -qF -- "$want" <<<"$out"; then ok "$name"; else not_ok "$name" "exit $rc: $out"; fi
    BAD_OUT=$out
}
chmod 644 "$B/jwt.pem"
refused "check-config: a 0644 signing key → exit 2 naming the file and the mode" \
    "auth.signing_key: $B/jwt.pem: mode 0644 is too open" bad_env "$TESSERA" check-config
refused "fleet start: a 0644 signing key → exit 2 naming the file and the mode" \
    "mode 0644 is too open" bad_env timeout 20 "$TESSERA" fleet
check "…before any worker was forked or the socket bound" \
    bash -c "! grep -q worker_init <<<'$BAD_OUT' && [ ! -e '$B/s.sock' ] && [ ! -e '$B/p.pid' ]"
chmod 640 "$B/jwt.pem"
refused "check-config: a group-readable (0640) signing key → exit 2" "mode 0640" bad_env "$TESSERA" check-config
chmod 600 "$B/jwt.pem"

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$B/ec.pem" 2>/dev/null
chmod 600 "$B/ec.pem"
openssl pkey -in "$B/ec.pem" -pubout -out "$B/ec.pub.pem" 2>/dev/null
KEY=$B/ec.pem refused "check-config: an EC signing key → exit 2 naming the key" \
    "auth.signing_key: $B/ec.pem: key is not Ed25519" bad_env "$TESSERA" check-config
KEY=$B/ec.pem refused "fleet start: an EC signing key → exit 2 naming the key (no worker crash loop)" \
    "key is not Ed25519" bad_env timeout 20 "$TESSERA" fleet
refused "check-config: an EC public key in auth.verify_keys → exit 2 naming it" \
    "auth.verify_keys: $B/ec.pub.pem: key is not Ed25519" bad_env TESSERA_AUTH_VERIFY_KEYS="$B/ec.pub.pem" "$TESSERA" check-config
refused "fleet start: a missing auth.verify_keys file → exit 2 naming it" \
    "auth.verify_keys: $B/none.pem" bad_env TESSERA_AUTH_VERIFY_KEYS="$B/none.pem" timeout 20 "$TESSERA" fleet

# --- a stack whose config file the suite edits ------------------------------
export TESSERA_CONFIG=$T/keys.conf
printf '[auth]\nverify_keys =\n' >"$TESSERA_CONFIG"
stack_up || { not_ok "stack starts"; exit 1; }
ok "stack starts with a config file"

login admin@example.com
T1=$TOKEN
req GET /.well-known/jwks.json
expect "jwks lists one key, alg EdDSA by default" 200 '(.keys | length == 1) and .keys[0].alg == "EdDSA"'
KID1=$(jq -r '.keys[0].kid' <<<"$BODY")
check "the token is signed by that kid under alg EdDSA" \
    jq -e --arg k "$KID1" '.alg == "EdDSA" and .kid == $k' <<<"$(jwt_header "$T1")"

# --- alg "Ed25519": the same algorithm's other name; the key decides ---------
now=$(date +%s)
claims=$(jq -nc --argjson now "$now" '{sub:"aaaaaaaa-0000-4000-8000-000000000001", org:"11111111-1111-4111-8111-111111111111", role:"owner", iss:"tessera", aud:"tessera-api", typ:"access", jti:"k-\($now)", iat:$now, exp:($now + 600)}')
req GET /v1/auth/me -H "Authorization: Bearer $(mint "{\"alg\":\"Ed25519\",\"typ\":\"JWT\",\"kid\":\"$KID1\"}" "$claims" "$T/keys/jwt.pem")"
expect "a token with alg Ed25519 signed by the fleet's key verifies" 200 '.role == "owner"'
req GET /v1/auth/me -H "Authorization: Bearer $(mint "{\"alg\":\"Ed25519\",\"typ\":\"JWT\",\"kid\":\"$KID1\"}" "$claims" "$B/ec.pem")"
expect_error "alg Ed25519 signed by an EC key under the fleet's kid → 401" 401 unauthorized
req GET /v1/auth/me -H "Authorization: Bearer $(mint '{"alg":"ES256","typ":"JWT","kid":"'"$KID1"'"}' "$claims" "$B/ec.pem")"
expect_error "alg ES256 with an EC key → 401" 401 unauthorized
req GET /v1/auth/me -H "Authorization: Bearer $(mint "{\"alg\":\"Ed448\",\"typ\":\"JWT\",\"kid\":\"$KID1\"}" "$claims" "$T/keys/jwt.pem")"
expect_error "alg Ed448 (the other EdDSA curve) → 401 even with the right key" 401 unauthorized

# --- rotation ---------------------------------------------------------------
rot_out=$("$TESSERA" keygen --rotate 2>&1); rc=$?
PUB=$(sed -n 's/: the previous key.s public half.*//p' <<<"$rot_out")
rotated() {
    [ "$rc" = 0 ] && [ -n "$PUB" ] && [ "$(stat -c %a "$PUB")" = 644 ] &&
        [ "$(stat -c %a "$T/keys/jwt.pem")" = 600 ] && grep -qF "verify_keys = $PUB" <<<"$rot_out" ||
        { echo "exit $rc: $rot_out"; return 1; }
}
check "keygen --rotate makes the next key and keeps the previous public half" rotated
check "the public half names the previous kid and holds no private key" \
    bash -c "[[ '$PUB' == *'$KID1'* ]] && ! grep -q PRIVATE '$PUB'"
login admin@example.com
check "until the reload the fleet still signs with the key it loaded" \
    jq -e --arg k "$KID1" '.kid == $k' <<<"$(jwt_header "$TOKEN")"

printf '[auth]\nverify_keys = %s\n' "$PUB" >"$TESSERA_CONFIG"
check "a reload with the previous key in auth.verify_keys is accepted" reload_and_wait
login admin@example.com
T2=$TOKEN
KID2=$(jwt_header "$T2" | jq -r .kid)
check "after the reload new tokens are signed by the new kid" test -n "$KID2" -a "$KID2" != "$KID1"
check "a token of the previous kid keeps working on every worker during the overlap" test "$(statuses "$T1")" = 200
check "the new kid's token works on every worker" test "$(statuses "$T2")" = 200
req GET /.well-known/jwks.json
expect "jwks lists the new key first, then the previous one" 200 \
    "(.keys | length == 2) and .keys[0].kid == \"$KID2\" and .keys[1].kid == \"$KID1\" and all(.keys[]; .alg == \"EdDSA\" and .kty == \"OKP\" and .crv == \"Ed25519\")"
check "check-config shows which file holds which kid" \
    bash -c "'$TESSERA' check-config | jq -e '[.jwt_keys[] | .kid + \":\" + .use] == [\"$KID2:sign\", \"$KID1:verify\"]'"

# a reload that would run with a too-open key is refused; the fleet keeps its keys
pids=$(fleet_json '[.slots[] | select(.role == "api") | .pid] | sort | join(" ")')
chmod 644 "$T/keys/jwt.pem"
out=$("$TESSERA" reload 2>&1); rc=$?
check "a reload with a 0644 signing key is refused, naming the file and the mode" \
    bash -c "[ $rc = 1 ] && grep -q 'refused' <<<'$out' && grep -qF '$T/keys/jwt.pem: mode 0644' <<<'$out'"
kept_workers() {
    jq -e -s 'map(select(.event == "reload_refused" and (.msg | test("mode 0644")))) | length == 1' \
        "$T/fleet.log" >/dev/null && [ "$(fleet_json '[.slots[] | select(.role == "api") | .pid] | sort | join(" ")')" = "$pids" ]
}
check "…the master logs it and keeps its workers" kept_workers
check "…and both kids still verify" test "$(statuses "$T1") $(statuses "$T2")" = "200 200"
chmod 600 "$T/keys/jwt.pem"

# the previous key removed (and the fully specified alg name chosen)
printf '[auth]\nverify_keys =\njws_alg = Ed25519\n' >"$TESSERA_CONFIG"
check "a reload without the previous key is accepted" reload_and_wait
check "after its removal the previous kid's token → 401 on every worker" test "$(statuses "$T1")" = 401
req GET /v1/auth/me -H "Authorization: Bearer $T1"
expect_error "…with the error envelope" 401 unauthorized
check "the new kid's token still works" test "$(statuses "$T2")" = 200
req GET /.well-known/jwks.json
expect "jwks lists only the new key, advertising alg Ed25519" 200 \
    "(.keys | length == 1) and .keys[0].kid == \"$KID2\" and .keys[0].alg == \"Ed25519\""
x=$(jq -r '.keys[0].x' <<<"$BODY")
login admin@example.com
T3=$TOKEN
check "with jws_alg = Ed25519 tokens are issued under alg Ed25519" \
    jq -e --arg k "$KID2" '.alg == "Ed25519" and .kid == $k' <<<"$(jwt_header "$T3")"
{ printf '302a300506032b6570032100' | xxd -r -p; pad "$x" | openssl base64 -d -A; } >"$T/pub2.der"
openssl pkey -pubin -inform DER -in "$T/pub2.der" -out "$T/pub2.pem" 2>/dev/null
IFS=. read -r h p s <<<"$T3"
printf '%s.%s' "$h" "$p" >"$T/input3"
pad "$s" | openssl base64 -d -A >"$T/sig3"
check "an alg Ed25519 token verifies with openssl and the JWKS key (independent implementation)" \
    openssl pkeyutl -verify -pubin -inkey "$T/pub2.pem" -rawin -in "$T/input3" -sigfile "$T/sig3"
check "the EdDSA tokens of the same key still verify" test "$(statuses "$T2")" = 200
