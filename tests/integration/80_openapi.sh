#!/usr/bin/env bash
# The OpenAPI 3.1 document (issue 16): GET /openapi.json validated by a real
# validator from npm (@apidevtools/swagger-parser, tests/tools), every
# documented route of the route table in it, a resource's own paths and
# schemas for a caller with a token, a schema change in the next document,
# which each worker keeps while nothing it lists changes; and every request
# example of the document sent to the stack, answered as documented.
# engines: memory postgres
. "$(dirname "$0")/lib.sh"

TOOLS=$("$ROOT/tests/tools/install.sh") || { not_ok "the npm test tools install (tests/tools)"; exit 1; }
validate() { NODE_PATH=$TOOLS/node_modules node "$ROOT/tests/tools/validate-openapi.js" "$1"; }
stack_up || { not_ok "stack starts"; exit 1; }
ok "stack starts"
J='Content-Type: application/json'

req GET /openapi.json
expect "GET /openapi.json without a token: an OpenAPI 3.1 document" 200 '.openapi == "3.1.0" and (.paths | length) > 20'
printf '%s' "$BODY" >"$T/anon.json"
check "…valid to swagger-parser (schema and every \$ref)" validate "$T/anon.json"
want=$(sed -n 's/^ *ROW(\([A-Z]*\), "\([^"]*\)", [a-z_]*, [A-Z]*\(([^)]*)\)\{0,1\}, DOC(.*/\1 \2/p' "$ROOT/app/api/routes.c" | sort)
got=$(jq -r '.paths | to_entries[] | .key as $p | .value | keys[] | "\(ascii_upcase) \($p)"' "$T/anon.json" | sort)
check "…with every documented route of the route table, and no other ($(wc -l <<<"$want") operations)" test "$want" = "$got"
check "…whose operationIds are unique" test "$(jq '[.paths[][] | .operationId] | (length == (unique | length))' "$T/anon.json")" = true
check "…errors as the envelope, e.g. a record read's 404" \
    test "$(jq -r '.paths["/v1/svc/{service}/{resource}/{id}"].get.responses["404"].content["application/json"].schema["$ref"]' "$T/anon.json")" = "#/components/schemas/Error"
check "…and no resource of any service without a token" \
    test "$(jq '[.paths | keys[] | select(startswith("/v1/svc/") and (contains("{service}") | not))] | length' "$T/anon.json")" = 0

login admin@example.com; ADMIN=$TOKEN
req PUT /v1/svc/crm/schema/tickets -H "Authorization: Bearer $ADMIN" -H "$J" \
    -d '{"fields":{"title":{"type":"string","required":true},"prio":{"type":"integer","default":3},"who":{"type":"string","pii":true},"emb":{"type":"vector(3)"},"meta":{"type":"json"}}}'
expect "a platform admin defines crm/tickets" 200
req GET /openapi.json -H "Authorization: Bearer $ADMIN"
expect "with a token: the document of its mode" 200 '.info["x-tessera-mode"] == "test"'
printf '%s' "$BODY" >"$T/admin.json"
check "…valid to swagger-parser" validate "$T/admin.json"
check "…with crm/tickets' paths: list, create, read, update, delete" \
    test "$(jq -c '[(.paths["/v1/svc/crm/tickets"] | keys[]), (.paths["/v1/svc/crm/tickets/{id}"] | keys[])] | sort' "$T/admin.json")" = '["delete","get","get","patch","post"]'
check "…its record schema from the definition: types, nullability, the vector's dimension, pii said" \
    jq -e '.components.schemas.svc_crm_tickets as $s | $s.properties.title.type == "string"
           and $s.properties.prio.type == ["integer", "null"] and $s.properties.prio.default == 3
           and $s.properties.emb.minItems == 3 and $s.properties.emb.maxItems == 3
           and ($s.properties.who.description | test("personal data")) and ($s.properties.meta | has("type") | not)
           and $s.additionalProperties == false and ($s.required | index("id") != null)' "$T/admin.json"
check "…an input schema requiring what a create must send (title; not prio, which has a default)" \
    test "$(jq -c '.components.schemas.svc_crm_tickets_Input.required' "$T/admin.json")" = '["title"]'
check "…and the list's filters, limit, cursor and order as parameters" \
    test "$(jq -c '[.paths["/v1/svc/crm/tickets"].get.parameters[] | .name // (."$ref" | split("/") | last)] | sort' "$T/admin.json")" = \
    '["Cursor","Limit","Order","TesseraMode","emb","meta","prio","title","who"]'
req PUT /v1/svc/crm/schema/tickets -H "Authorization: Bearer $ADMIN" -H "$J" \
    -d '{"fields":{"title":{"type":"string","required":true},"prio":{"type":"integer","default":3},"who":{"type":"string","pii":true},"emb":{"type":"vector(3)"},"meta":{"type":"json"},"due":{"type":"timestamp"}}}'
expect "a field added to crm/tickets" 200
req GET /openapi.json -H "Authorization: Bearer $ADMIN"
expect "…is in the next document" 200 '.components.schemas.svc_crm_tickets.properties.due.type == ["string", "null"] and .components.schemas.svc_crm_tickets.properties.due.format == "date-time" and .components.schemas.svc_crm_tickets_Input.properties.due.type == ["string", "integer", "null"]'

# Kept per worker: a repeated GET answers the bytes the worker kept (counted
# in /metrics); a schema change is in the next document on every worker.
metric() { curl -s "$URL/metrics" | awk -v n="tessera_openapi_$1_total" '$1 == n { print $2 }'; }
# GETs of the token's document from more clients at once than nginx keeps
# upstream connections (2 × 32), repeated until both workers have served
# them (their access lines name the worker); prints how many workers did.
fan() { # request-id prefix; the bodies go to $T/fan-PREFIX/
    local round
    mkdir -p "$T/fan-$1"
    for round in 1 2 3 4 5 6; do
        seq 1 100 | xargs -P 70 -I{} curl -s -o "$T/fan-$1/$round-{}.json" -H "Authorization: Bearer $ADMIN" \
            -H "X-Request-Id: $1-$round-{}" "$URL/openapi.json"
        sleep 0.2
        jq -e -s "[.[] | select(.event == \"access\" and (.request_id | startswith(\"$1-\"))) | .worker] | unique | length == 2" \
            "$T/fleet.log" >/dev/null && break
    done
    jq -s "[.[] | select(.event == \"access\" and (.request_id | startswith(\"$1-\"))) | .worker] | unique | length" "$T/fleet.log"
}
built0=$(metric built) kept0=$(metric kept)
for i in 1 2 3 4 5 6 7 8; do curl -s -H "Authorization: Bearer $ADMIN" "$URL/openapi.json" | sha256sum; done >"$T/shas"
check "8 GETs of one mode's document: the same bytes" test "$(sort -u "$T/shas" | wc -l)" = 1
check "…built at most once per worker, the rest answered from what the worker kept ($(metric built) built, $(metric kept) kept in all)" \
    test "$(( $(metric built) - built0 ))" -le 2 -a "$(( $(metric kept) - kept0 ))" -ge 6
kept0=$(metric kept)
req GET /openapi.json
req GET /openapi.json
check "the document without a token is kept too" test "$(( $(metric kept) - kept0 ))" -ge 1
check "both workers hold the document" test "$(fan before)" = 2
built0=$(metric built)
req PUT /v1/svc/crm/schema/tickets -H "Authorization: Bearer $ADMIN" -H "$J" \
    -d '{"fields":{"title":{"type":"string","required":true},"prio":{"type":"integer","default":3},"who":{"type":"string","pii":true},"emb":{"type":"vector(3)"},"meta":{"type":"json"},"due":{"type":"timestamp"},"note":{"type":"text"}}}'
expect "another field added to crm/tickets" 200
check "…is in the next document on both workers" test "$(fan after)" = 2
check "…in every answer of theirs" \
    sh -c "for f in '$T'/fan-after/*.json; do jq -e '.components.schemas.svc_crm_tickets.properties | has(\"note\")' \"\$f\" >/dev/null || { echo \"\$f\"; exit 1; }; done"
check "…each worker built it once, then answered the bytes it kept" test "$(( $(metric built) - built0 ))" = 2
req GET /openapi.json -H "Authorization: Bearer $ADMIN" -H "Tessera-Mode: live"
expect "the live mode's document has no test-mode resource" 200 '.info["x-tessera-mode"] == "live" and (.paths | has("/v1/svc/crm/tickets") | not)'
req GET /openapi.json -H "Authorization: Bearer nope"
expect_error "a bad token is refused, not ignored → 401" 401 unauthorized
req GET "/openapi.json?mode=live"
expect_error "a parameter → 400" 400 invalid_request

# Every request example of the document, sent to the stack: a documented
# status and body each (tests/integration/openapi_examples.js says how it
# fills ids and tokens, and in which order it sends them).
NODE_PATH=$TOOLS/node_modules node "$ROOT/tests/integration/openapi_examples.js" "$URL" "$ADMIN" >"$T/examples.out" 2>&1
rc=$?
sed -n 's/^\(not \)\{0,1\}ok - /&example run: /p; /^#/p' "$T/examples.out"
check "the example run ends well (exit 0)" sh -c "test $rc = 0 || { tail -5 '$T/examples.out'; exit 1; }"

check "no request of this suite was answered 500" sh -c "! grep -q '\"status\":500' '$T/fleet.log'"
stack_down
