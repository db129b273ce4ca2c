#!/usr/bin/env bash
# The smoke test a user runs against any tessera deployment (DESIGN §9):
#   tests/smoke.sh URL            e.g. tests/smoke.sh https://api.example.com
# Health and readiness, the web console's page and the API's reference page,
# then a throw-away account through the Auth API: signup (a unique email),
# login, me; with SMOKE_SERVICE set, a schema and a record round trip through
# the MicroService API; logout, and the revoked token refused.
#   SMOKE_SERVICE   a microservice app the deployment has for this check (e.g.
#                   `smoke`, registered once by a platform admin with POST
#                   /v1/apps); a platform admin puts the schema of resource
#                   `smoke_check` there (schemas are the platform's: the new
#                   user's own organization is refused it), the new user writes
#                   a record, reads it back and deletes it. Unset: the round
#                   trip is skipped, said so.
#   SMOKE_ADMIN_AUTH with SMOKE_SERVICE: a file holding the header line
#                   "Authorization: Bearer <a platform admin's token or platform key>".
#   SMOKE_CURL_OPTS extra curl options (e.g. "-k" for a self-signed certificate).
# Needs curl and jq. Prints `N passed, N failed, N skipped`; exits 1 on a failure.
# It leaves one organization and user per run (smoke-*@smoke.tessera.test).
# Secrets stay out of argv (ps): bodies with the password go to curl on stdin,
# the bearer token as a header file only this user can read.
set -uo pipefail
[ $# -eq 1 ] || { echo "usage: $0 URL" >&2; exit 2; }
URL=${1%/}
for tool in curl jq; do
    command -v "$tool" >/dev/null || { echo "smoke: $tool is required" >&2; exit 2; }
done
read -r -a CURL_OPTS <<<"${SMOKE_CURL_OPTS:-}"
pass=0 fail=0 skip=0
J='Content-Type: application/json'
AUTH=$(umask 077 && mktemp "${TMPDIR:-/tmp}/smoke-auth.XXXXXX") || exit 2
trap 'rm -f "$AUTH"' EXIT

ok() { echo "ok - $1"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $1"; [ -n "${2:-}" ] && echo "#   $2"; fail=$((fail + 1)); }

# req METHOD PATH [curl args...]: sets STATUS and BODY. `-d @-` reads the body
# from req's stdin; `-H @"$AUTH"` sends the bearer token.
req() {
    local method=$1 path=$2 out; shift 2
    out=$(curl -sS -m 30 "${CURL_OPTS[@]}" -X "$method" -w '\n%{http_code}' "$@" "$URL$path" 2>&1)
    STATUS=${out##*$'\n'} BODY=${out%$'\n'*}
}
# expect NAME STATUS [JQ-FILTER]: the last request answered STATUS and the filter holds.
expect() {
    if [ "$STATUS" != "$2" ]; then
        not_ok "$1" "status $STATUS, wanted $2; body: ${BODY:0:300}"
    elif [ -n "${3:-}" ] && ! jq -e "$3" >/dev/null 2>&1 <<<"$BODY"; then
        not_ok "$1" "filter failed: $3; body: ${BODY:0:300}"
    else
        ok "$1"
    fi
}

run=$(date +%s)-$$-$RANDOM
email="smoke-$run@smoke.tessera.test"
password="smoke-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"

# --- health
req GET /healthz
expect "healthz answers ok" 200 '.status == "ok"'
req GET /readyz
expect "readyz: the engine and kv are reachable" 200
# the web console (DESIGN §5): static files under a strict Content-Security-Policy
out=$(curl -sS -m 30 "${CURL_OPTS[@]}" -D - -o /dev/null -w '%{http_code}' "$URL/console/" 2>&1)
if [ "${out##*$'\n'}" = 200 ] && tr -d '\r' <<<"$out" | grep -qi "^content-security-policy: default-src 'none'"; then
    ok "the console is served at /console/ under its Content-Security-Policy"
else
    not_ok "the console is served at /console/ under its Content-Security-Policy" "$(head -c 300 <<<"$out")"
fi
# the API's reference page (DESIGN §5): its viewer from the deployment itself
out=$(curl -sS -m 30 "${CURL_OPTS[@]}" -D - "$URL/docs" 2>&1)
if tr -d '\r' <<<"$out" | grep -qi "^content-security-policy: default-src 'none'; script-src 'self';" &&
   grep -q '<script src="/docs/redoc.standalone.js"></script>' <<<"$out" &&
   [ "$(curl -sS -m 30 "${CURL_OPTS[@]}" -o /dev/null -w '%{http_code}' "$URL/docs/redoc.standalone.js")" = 200 ]; then
    ok "the reference page is served at /docs with its viewer, under its Content-Security-Policy"
else
    not_ok "the reference page is served at /docs with its viewer, under its Content-Security-Policy" "$(head -c 300 <<<"$out")"
fi

# --- an account of its own
req POST /v1/auth/signup -H "$J" -d @- \
    <<<"{\"email\":\"$email\",\"password\":\"$password\",\"org_name\":\"Smoke $run\"}"
expect "signup makes a user and an organization" 201 \
    ".user.email == \"$email\" and .role == \"owner\" and (.access_token | length > 0)"
req POST /v1/auth/login -H "$J" -d @- <<<"{\"email\":\"$email\",\"password\":\"$password\"}"
expect "login answers a bearer token" 200 '.token_type == "Bearer" and (.access_token | split(".") | length == 3)'
token=$(jq -r '.access_token // empty' <<<"$BODY" 2>/dev/null)
printf 'Authorization: Bearer %s\n' "${token:-none}" >"$AUTH"
auth=@$AUTH
req GET /v1/auth/me -H "$auth"
expect "me shows the new user" 200 ".user.email == \"$email\""

# --- MicroService API: a schema and a record round trip
svc=${SMOKE_SERVICE:-}
if [ -z "$svc" ]; then
    echo "ok - schema and record round trip # SKIP set SMOKE_SERVICE to a microservice app of this deployment"
    skip=$((skip + 1))
else
    base=/v1/svc/$svc/smoke_check
    schema='{"fields":{"note":{"type":"string","required":true},"n":{"type":"integer"},"v":{"type":"vector(3)"}}}'
    req PUT "/v1/svc/$svc/schema/smoke_check" -H "$auth" -H "$J" -d "$schema"
    expect "a customer may not change the service's shared schema (403)" 403 '.error.code == "forbidden"'
    req PUT "/v1/svc/$svc/schema/smoke_check" -H @"${SMOKE_ADMIN_AUTH:-/dev/null}" -H "$J" -d "$schema"
    expect "a platform admin PUTs the schema of $svc/smoke_check" 200 '.name == "smoke_check" and .fields.note.type == "string"'
    req POST "$base" -H "$auth" -H "$J" -d "{\"note\":\"smoke $run\",\"n\":42,\"v\":[0.6,0.8,0]}"
    expect "POST a record" 201 ".note == \"smoke $run\" and .n == 42 and .version == 1"
    id=$(jq -r '.id // "none"' <<<"$BODY" 2>/dev/null)
    req GET "$base/$id" -H "$auth"
    expect "GET the record back" 200 ".id == \"$id\" and .note == \"smoke $run\" and .n == 42"
    req POST "$base/search" -H "$auth" -H "$J" -d "{\"field\":\"v\",\"vector\":[3,4,0],\"k\":1,\"filter\":{\"note\":\"eq.smoke $run\"}}"
    expect "search finds it by its vector (cosine distance 0)" 200 ".data[0].id == \"$id\" and (.data[0]._score | fabs) < 1e-12"
    req DELETE "$base/$id" -H "$auth"
    expect "DELETE the record" 204
    req GET "$base/$id" -H "$auth"
    expect "the deleted record is gone" 404 '.error.code == "not_found"'
fi

# --- logout revokes the token
req POST /v1/auth/logout -H "$auth"
expect "logout answers 204" 204
req GET /v1/auth/me -H "$auth"
expect "the logged-out token is refused: 401 token_revoked" 401 '.error.code == "token_revoked"'

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
