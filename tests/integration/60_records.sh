#!/usr/bin/env bash
# The MicroService API (issue 6) through real nginx and a fleet of 2 workers on
# the memory engine: schemas that evolve under records, records CRUD with
# If-Match, validation, filters on every type, keyset paging under concurrent
# inserts, tamper-proof cursors, PII, expiry, test/live and service and tenant
# separation, and bad input.
. "$(dirname "$0")/lib.sh"

stack_up || { not_ok "stack starts"; exit 1; }
ok "stack starts with the dev seed"
J='Content-Type: application/json'

login() { # email → TOKEN
    req POST /v1/auth/login -H "$J" -d "{\"email\":\"$1\",\"password\":\"tessera-dev\"}"
    TOKEN=$(jq -r .access_token <<<"$BODY")
}
auth() { echo "Authorization: Bearer $1"; }
login admin@example.com; ADMIN=$TOKEN
login bob@globex.test; BOB=$TOKEN
login victor@acme.test; VICTOR=$TOKEN
login mia@globex.test; MIA=$TOKEN
A=(-H "$(auth "$ADMIN")")
LIVE=(-H "$(auth "$ADMIN")" -H 'Tessera-Mode: live')
put_schema() { # resource json [token]
    req PUT "/v1/svc/crm/schema/$1" -H "$(auth "${3:-$ADMIN}")" -H "$J" -d "$2"
}
post() { # resource json
    req POST "/v1/svc/crm/$1" "${A[@]}" -H "$J" -d "$2"
}

# --- services
req GET /v1/svc/nosuch/schema "${A[@]}"
expect_error "an unknown service → 404" 404 not_found
req GET /v1/svc/billing/schema "${A[@]}"
expect_error "a web app is not a service → 404" 404 not_found
req GET /v1/svc/crm/schema "${A[@]}"
expect "a service without resources has an empty schema" 200 '.service == "crm" and .mode == "test" and (.resources | length == 0)'
req GET /v1/svc/crm/schema
expect_error "the schema needs a token" 401 unauthorized

# --- schema API
put_schema companies '{"fields":{"name":{"type":"string","required":true},"size":{"type":"integer"}}}'
expect "PUT a schema creates version 1" 200 '.name == "companies" and .version == 1 and .fields.name.type == "string" and .fields.name.required and .fields.size.type == "integer"'
put_schema companies '{"fields":{"name":{"type":"string"}}}' "$VICTOR"
expect_error "a viewer may not write schemas → 403" 403 forbidden
put_schema companies '{"fields":{"name":{"type":"string"}}}' "$MIA"
expect_error "a member may not write schemas → 403" 403 forbidden
put_schema contacts '{"fields":{"id":{"type":"string"}}}'
expect "a reserved field name (id) → 422 naming it" 422 '.error.code == "validation_failed" and (.error.details["fields.id"] | length > 0)'
put_schema contacts '{"fields":{"Name":{"type":"string"}}}'
expect "an upper-case field name → 422" 422 '.error.details["fields.Name"] | length > 0'
put_schema contacts '{"fields":{"x":{"type":"varchar"}}}'
expect "an unknown type → 422" 422 '.error.details["fields.x"] | length > 0'
put_schema contacts '{"fields":{"v":{"type":"vector(0)"}}}'
expect "vector(0) → 422" 422 '.error.details["fields.v"] | length > 0'
put_schema contacts '{"fields":{"a":{"type":"integer","default":"x"}}}'
expect "a default of the wrong type → 422" 422 '.error.details["fields.a"] | test("default")'
put_schema contacts '{"fields":{"a":{"type":"integer","pii":true}}}'
expect "pii on an integer → 422" 422 '.error.details["fields.a"] | length > 0'
big=$(python3 -c 'import json;print(json.dumps({"fields":{f"f{i}":{"type":"string"} for i in range(1000)}}))')
put_schema contacts "$big"
expect "a 1000-field schema is refused with the limit named" 422 '.error.details.fields | test("200")'
long=$(python3 -c 'print("a"*64)')
put_schema contacts "{\"fields\":{\"$long\":{\"type\":\"string\"}}}"
expect "a 64-character field name → 422" 422 '.error.details | length == 1'
put_schema 'bad%20name' '{"fields":{}}'
expect_error "a malformed resource name → 400" 400 invalid_request
put_schema contacts '{"fields":{},"extra":1}'
expect_error "an unknown body member → 400" 400 invalid_request
put_schema contacts '{"fields":{"a":{"type":"string"}},"options":{"expire_after":-1}}'
expect "a negative expire_after → 422" 422 '.error.details["options.expire_after"] | length > 0'
put_schema contacts '{"fields":{"a":{"type":"string"}},"options":{"views":{"by_a":{"group_by":["nope"]}}}}'
expect "a view on an unknown field → 422" 422 '.error.details["options.views"] | length > 0'
put_schema contacts '{"fields":{"name":{"type":"string","required":true},"email":{"type":"string","pii":true},"company":{"type":"string","index":true},"score":{"type":"number"},"vip":{"type":"boolean","default":false},"embedding":{"type":"vector(3)"},"meta":{"type":"json"}},"options":{"views":{"by_company":{"group_by":["company"],"count":true,"sum":["score"]}}}}'
expect "a contacts schema with pii, default, vector, json and a view" 200 '.version == 1 and .fields.email.pii and .fields.vip.default == false and .fields.embedding.type == "vector(3)" and .options.views.by_company.count'
req GET /v1/svc/crm/schema "${A[@]}"
expect "GET schema lists every resource with fields, options and version" 200 '(.resources | keys) == ["companies","contacts"] and .resources.contacts.options.views.by_company.sum == ["score"]'
req GET /v1/audit "${A[@]}"
expect "schema changes are audited" 200 '[.data[] | select(.action == "schema.put")] | length >= 2'

# --- records CRUD
req POST /v1/svc/crm/nosuch "${A[@]}" -H "$J" -d '{}'
expect_error "an unknown resource → 404" 404 not_found
post companies '{"name":"Initech","size":50}'
expect "create → 201 with id, times, version 1 and fields" 201 '(.id | test("^[0-9a-f-]{36}$")) and .version == 1 and .name == "Initech" and .size == 50 and (.created_at | type == "number")'
CO=$(jq -r .id <<<"$BODY")
req GET "/v1/svc/crm/companies/$CO" "${A[@]}"
expect "get returns the record" 200 ".id == \"$CO\" and .name == \"Initech\""
req GET "/v1/svc/crm/companies/$CO" -H "$(auth "$VICTOR")"
expect "a viewer reads" 200 ".id == \"$CO\""
req POST /v1/svc/crm/companies -H "$(auth "$VICTOR")" -H "$J" -d '{"name":"x"}'
expect_error "a viewer may not write → 403" 403 forbidden
post companies '{"size":"ten","nope":1}'
expect "wrong types, unknown and missing required fields → 422 with details per field" 422 '.error.code == "validation_failed" and (.error.details.size | test("integer")) and .error.details.nope == "unknown field" and (.error.details.name | test("required"))'
post companies '{"name":"Big","size":1e300}'
expect "an integer out of range → 422, never saturated" 422 '.error.details.size | length > 0'
post companies '{"name":"Frac","size":1.5}'
expect "a fractional integer → 422" 422 '.error.details.size | length > 0'
post companies '[1,2]'
expect_error "a body that is not an object → 400" 400 invalid_request
python3 -c 'import json;print(json.dumps({"name":"x"*100000}))' >"$T/big.json"
req POST /v1/svc/crm/companies "${A[@]}" -H "$J" --data-binary @"$T/big.json"
expect "a 100 KB string → 422 naming the 64 KiB limit" 422 '.error.details.name | test("65536")'
req PATCH "/v1/svc/crm/companies/$CO" "${A[@]}" -H "$J" -H 'If-Match: 1' -d '{"size":51}'
expect "patch with the right If-Match → version 2" 200 '.version == 2 and .size == 51 and .name == "Initech"'
req PATCH "/v1/svc/crm/companies/$CO" "${A[@]}" -H "$J" -H 'If-Match: 1' -d '{"size":52}'
expect_error "patch with a stale If-Match → 412" 412 precondition_failed
req PATCH "/v1/svc/crm/companies/$CO" "${A[@]}" -H "$J" -d '{"name":null}'
expect "patch cannot null a required field → 422" 422 '.error.details.name | test("required")'
req PATCH "/v1/svc/crm/companies/$CO" "${A[@]}" -H "$J" -d '{"size":null}'
expect "patch without If-Match nulls an optional field" 200 '.version == 3 and .size == null'
req GET "/v1/svc/crm/companies/$CO" -H "$(auth "$BOB")"
expect_error "another org's id → 404" 404 not_found
req PATCH "/v1/svc/crm/companies/$CO" -H "$(auth "$BOB")" -H "$J" -d '{"size":1}'
expect_error "another org cannot patch it → 404" 404 not_found
req DELETE "/v1/svc/crm/companies/$CO" -H "$(auth "$BOB")"
expect_error "another org cannot delete it → 404" 404 not_found
req GET "/v1/svc/crm/companies/not-a-uuid" "${A[@]}"
expect_error "a malformed id → 404" 404 not_found
post companies '{"name":"Doomed"}'
DOOMED=$(jq -r .id <<<"$BODY")
req DELETE "/v1/svc/crm/companies/$DOOMED" "${A[@]}" -H 'If-Match: 7'
expect_error "delete with a stale If-Match → 412" 412 precondition_failed
req DELETE "/v1/svc/crm/companies/$DOOMED" -H "$(auth "$VICTOR")"
expect_error "a viewer may not delete → 403" 403 forbidden
req DELETE "/v1/svc/crm/companies/$DOOMED" "${A[@]}"
check "delete → 204" test "$STATUS" = 204
req GET "/v1/svc/crm/companies/$DOOMED" "${A[@]}"
expect_error "a deleted record is gone" 404 not_found

# --- PII
post contacts '{"name":"Ann","email":"ann@example.com","company":"Initech","score":3.5,"embedding":[1,2,3],"meta":{"k":[1]}}'
expect "a pii field comes back decrypted; defaults apply" 201 '.email == "ann@example.com" and .vip == false and .embedding == [1,2,3] and .meta.k == [1]'
ANN=$(jq -r .id <<<"$BODY")
post contacts '{"name":"Ben","email":"ben@example.com","company":"Globex"}'
req GET '/v1/svc/crm/contacts?email=eq.ann@example.com' "${A[@]}"
expect "eq on a pii field finds the record through the blind index" 200 "(.data | length == 1) and .data[0].id == \"$ANN\""
req GET '/v1/svc/crm/contacts?email=like.ann%25' "${A[@]}"
expect_error "like on a pii field → 400" 400 invalid_request
req GET '/v1/svc/crm/contacts?order=email.asc' "${A[@]}"
expect_error "order by a pii field → 400" 400 invalid_request
post contacts '{"name":"V","embedding":[1,2]}'
expect "a vector of the wrong dimension → 422" 422 '.error.details.embedding | length > 0'

# --- test/live and service separation
req GET "/v1/svc/crm/companies/$CO" "${LIVE[@]}"
expect_error "live has no schema of its own yet: the test resource is invisible" 404 not_found
req PUT /v1/svc/crm/schema/companies "${LIVE[@]}" -H "$J" -d '{"fields":{"name":{"type":"string"}}}'
expect "live gets its own schema (version 1)" 200 '.version == 1'
req GET "/v1/svc/crm/companies/$CO" "${LIVE[@]}"
expect_error "a test record is invisible in live" 404 not_found
req GET /v1/svc/crm/companies "${LIVE[@]}"
expect "live lists none of test's records" 200 '.data | length == 0'
req POST /v1/apps "${A[@]}" -H "$J" -d '{"name":"erp","kind":"microservice","base_url":"/v1/svc/erp","status":"active"}'
check "a second service registers" test "$STATUS" = 201
req PUT /v1/svc/erp/schema/companies "${A[@]}" -H "$J" -d '{"fields":{"name":{"type":"string"}}}'
req GET "/v1/svc/erp/companies/$CO" "${A[@]}"
expect_error "a crm record is invisible in another service" 404 not_found
req GET /v1/svc/erp/companies "${A[@]}"
expect "the other service lists none of crm's records" 200 '.data | length == 0'

# --- tenant isolation by list and filter
req GET /v1/svc/crm/companies -H "$(auth "$BOB")"
expect "another org lists none of acme's records" 200 '.data | length == 0'
req GET '/v1/svc/crm/companies?name=eq.Initech' -H "$(auth "$BOB")"
expect "another org's filter finds none of acme's records" 200 '.data | length == 0'
req GET '/v1/svc/crm/contacts?email=eq.ann@example.com' -H "$(auth "$BOB")"
expect "another org's pii filter finds nothing" 200 '.data | length == 0'
