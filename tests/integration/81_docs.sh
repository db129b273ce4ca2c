#!/usr/bin/env bash
# GET /docs (issue 16): the reference page of /openapi.json, static files nginx
# serves from the build's web/docs (`make docs`: Redoc's standalone bundle
# vendored from npm at build time). The page is HTML that loads the local
# bundle and docs.js and names no other origin, under a policy that allows no
# remote or inline script; the bundle is the vendored one; and headless
# Chromium, under that policy, draws the document's operations, and with a
# token (in the fragment) its mode's resources.
. "$(dirname "$0")/lib.sh"

if [ ! -f "$TESSERA_DOCS/index.html" ]; then
    make -C "$ROOT" --no-print-directory B="$BUILD" docs >&2 || { not_ok "make docs vendors the page"; exit 1; }
fi
stack_up || { not_ok "stack starts"; exit 1; }
ok "stack starts"

req GET /docs
expect "GET /docs: 200" 200
check "…as HTML" sh -c "printf '%s\n' \"\$1\" | grep -qi '^content-type: text/html'" sh "$HDRS"
printf '%s' "$BODY" >"$T/docs.html"
check "…that loads the vendored viewer and docs.js from /docs/" \
    sh -c "grep -q '<script src=\"/docs/redoc.standalone.js\"></script>' '$T/docs.html' &&
           grep -q '<script src=\"/docs/docs.js\"></script>' '$T/docs.html'"
check "…no inline script (every <script> has a src)" test "$(grep -c '<script>' "$T/docs.html")" = 0
check "…and names no other origin (no https:// or http:// URL, no protocol-relative //)" \
    sh -c "! grep -Eq 'https?://|[\"(]//' '$T/docs.html'"
csp=$(header content-security-policy)
check "…under a Content-Security-Policy: script-src 'self' only, connect-src 'self', no frames" \
    sh -c "case \"\$1\" in *\"default-src 'none'\"*\"script-src 'self';\"*\"connect-src 'self'\"*\"frame-ancestors 'none'\"*) exit 0;; *) exit 1;; esac" sh "$csp"
check "…which allows no eval and no remote script" sh -c "! printf '%s' \"\$1\" | grep -Eq 'unsafe-eval|script-src[^;]*(https?:|\\*)'" sh "$csp"
check "…and nosniff" test "$(header x-content-type-options)" = nosniff
req GET /docs/
expect "GET /docs/: the same page" 200
printf '%s' "$BODY" >"$T/docs-slash.html"
check "…byte for byte" cmp "$T/docs.html" "$T/docs-slash.html"

curl -sS -o "$T/bundle.js" -D "$T/bundle.hdrs" "$URL/docs/redoc.standalone.js"
check "GET /docs/redoc.standalone.js: the vendored bundle, as JavaScript" \
    sh -c "grep -qi '^content-type: text/javascript' '$T/bundle.hdrs' && cmp -s '$T/bundle.js' '$TESSERA_DOCS/redoc.standalone.js'"
check "…Redoc 2.5.4, as web/docs/package-lock.json locks it" \
    sh -c "grep -q 'Version: \"2.5.4\"' '$TESSERA_DOCS/redoc.standalone.js.LICENSE.txt' &&
           jq -e '.packages[\"node_modules/redoc\"].version == \"2.5.4\"' '$ROOT/web/docs/package-lock.json'"
req GET /docs/docs.js
expect "GET /docs/docs.js: 200" 200 # not JSON: no filter
check "…as JavaScript, pointing Redoc at /openapi.json" \
    sh -c "printf '%s\n' \"\$1\" | grep -qi '^content-type: text/javascript' && grep -q 'data-spec-url=\"/openapi.json\"' '$T/docs.html'" sh "$HDRS"
req GET /docs/nothing.js
check "a file that is not there: 404" test "$STATUS" = 404

# The page as a browser draws it: Redoc runs, fetches /openapi.json under the
# policy above, and renders each operation's summary (from the route table).
if command -v chromium >/dev/null 2>&1; then
    timeout 60 chromium --headless=new --no-sandbox --disable-gpu --user-data-dir="$T/chromium" \
        --virtual-time-budget=15000 --enable-logging=stderr --v=0 --dump-dom "$URL/docs" \
        >"$T/dom.html" 2>"$T/chromium.err"
    check "headless Chromium draws /docs: the operations' summaries, from /openapi.json" \
        sh -c "grep -q 'Log in: a token pair' '$T/dom.html' && grep -q 'Create a record' '$T/dom.html' &&
               grep -q 'The change feed' '$T/dom.html'"
    check "…with no script or connection refused by the policy (only Redoc's remote logo is)" \
        sh -c "! grep 'Content Security Policy' '$T/chromium.err' | grep -v \"Loading the image 'https://cdn.redoc.ly/\""
    check "…and without a token, no resource's own paths" sh -c "! grep -q 'this resource' '$T/dom.html'"

    # a token in the fragment: the document of its mode, with a resource's paths
    req POST /v1/auth/login -H 'Content-Type: application/json' -d '{"email":"admin@example.com","password":"tessera-dev"}'
    ADMIN=$(jq -r .access_token <<<"$BODY")
    req PUT /v1/svc/crm/schema/notes -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
        -d '{"fields":{"body":{"type":"text","required":true}}}'
    expect "a platform admin defines crm/notes" 200
    timeout 60 chromium --headless=new --no-sandbox --disable-gpu --user-data-dir="$T/chromium" \
        --virtual-time-budget=15000 --enable-logging=stderr --v=0 --dump-dom "$URL/docs#token=$ADMIN" \
        >"$T/dom-token.html" 2>"$T/chromium-token.err"
    check "/docs#token=…: the token's document, with crm/notes' own operations" \
        sh -c "grep -q '/v1/svc/crm/notes' '$T/dom-token.html' && grep -q 'List records (this resource)' '$T/dom-token.html'"
    check "…and the token appears nowhere in the page" \
        sh -c "! grep -qF '$ADMIN' '$T/dom-token.html'"
else
    not_ok "headless Chromium draws /docs" "chromium is missing (packaging/deps.sh installs it)"
fi
stack_down
