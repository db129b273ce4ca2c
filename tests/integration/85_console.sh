#!/usr/bin/env bash
# The web console (issue 16): web/console served by nginx at /console/ with
# its Content-Security-Policy, driven in a real browser (Debian's Chromium,
# headless, by puppeteer-core from tests/tools) through tests/tools/console-
# test.js: login, roles made, edited and deleted (a held one's 409), an
# invite by email that the invited user accepts in the UI, a resource and
# records made in the UI (a timestamp field as RFC 3339 and unix seconds),
# keyset paging by clicks, If-Match edits, a view and a vector search, a 409
# and a viewer's 403 shown with the API's own messages, the test/live switch. Every request the page made, as the
# browser saw it and as nginx's access log recorded it, is a console file or
# a path of /openapi.json. On a failure, screenshots, the page's HTML and
# console log are in build/console-test/. Before the browser, the API client
# alone under Node (tests/tools/console-api-test.js): token refresh, errors.
# engines: memory postgres
. "$(dirname "$0")/lib.sh"

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
ARTIFACTS=$ROOT/build/console-test
[ -x "$CHROMIUM" ] || { not_ok "Chromium is installed ($CHROMIUM; packaging/deps.sh installs it)"; exit 1; }
TOOLS=$("$ROOT/tests/tools/install.sh") || { not_ok "the npm test tools install (tests/tools)"; exit 1; }

# nginx's own access log, for this run only (make run and bench keep it off)
export NGINX_ACCESS_LOG=$T/nginx-access.log
stack_up || { not_ok "stack starts"; exit 1; }
ok "stack starts"

# --- what nginx serves, before any browser
req GET /console/
expect "GET /console/ serves the console's page" 200
check "…as text/html" grep -q '^text/html' <<<"$(header content-type)"
check "…with the strict Content-Security-Policy" grep -q "default-src 'none'; script-src 'self'; style-src 'self'" <<<"$(header content-security-policy)"
check "…nosniff and no-referrer" test "$(header x-content-type-options)/$(header referrer-policy)" = "nosniff/no-referrer"
req GET /console/js/main.js
expect "the modules are served as JavaScript (a module needs it under nosniff)" 200
check "…text/javascript" grep -q '^text/javascript' <<<"$(header content-type)"
check "…with the same policy" grep -q "script-src 'self'" <<<"$(header content-security-policy)"
req GET /console
check "/console redirects to /console/" test "$STATUS $(header location)" = "301 $URL/console/"
req GET /console/nope.js
check "a missing console file is a 404 that still carries the policy" \
    test "$STATUS" = 404 -a -n "$(header content-security-policy)"
check "no console file is inline-scripted, inline-styled or uses innerHTML" bash -c '
    cd "$1/web/console" || exit 1
    ! grep -rnE "<script>|<script [^>]*>[^<]|style=|[[:space:]]on[a-z]+=|\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|localStorage\.|eval\(|new Function" .' _ "$ROOT"

# --- the API client alone, under Node with a fake fetch: token refresh, errors
node "$ROOT/tests/tools/console-api-test.js"

# --- the browser
rm -rf "$ARTIFACTS"
PROFILE=$T/chromium-profile     # under $T: tests/run.sh sees a browser left behind
PIDFILE=$T/chromium.pid
stop_browser() {
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 0
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    rm -f "$PIDFILE"
    return 0
}
CLEANUP_HOOKS+=(stop_browser)
NODE_PATH=$TOOLS/node_modules CHROMIUM=$CHROMIUM BROWSER_PID_FILE=$PIDFILE \
    timeout 300 node "$ROOT/tests/tools/console-test.js" "$URL" "$ARTIFACTS" "$PROFILE"
rc=$?
stop_browser
[ "$rc" -eq 0 ] || echo "# the browser test exited $rc; artifacts (if any) in $ARTIFACTS"
check "Chromium is gone when the test ends" bash -c '! pgrep -f -- "--user-data-dir=$1" >/dev/null' _ "$PROFILE"
exit 0
