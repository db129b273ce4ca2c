#!/usr/bin/env bash
# Issue 18 §7: a database per service, a database per tenant ("silo and
# pool"), on real PostgreSQL, looked at with psql. Three databases: the core
# one, which is also the shared (pooled) data database; `orders`, a second
# database of the same cluster holding the data of service `orders`
# ([svc.orders] dsn); and `tenant`, on a second cluster, the dedicated
# database Globex is placed in ([database.tenant] dsn, `tessera org place`).
# Rows land where the placement says and nowhere else, RLS holds in every
# database, schema changes reach every database holding a service's data,
# the projector reads every database's outbox, and a placement of an org
# with records is refused.
# engines: postgres
. "$(dirname "$0")/lib.sh"
export ENGINE=postgres
export TESSERA_CONFIG=/dev/null   # never the machine's /etc/tessera/tessera.conf
. "$ROOT/tests/integration/pg.sh"

pg_up || { not_ok "the first cluster starts"; exit 1; }
pg_createdb orders >/dev/null || { not_ok "a second database in the first cluster"; exit 1; }
pg2_up tenant || { not_ok "a second cluster starts"; exit 1; }
ok "two clusters: the shared database's and, on the second, a tenant's"
ORDERS_OWNER="host=$PG_SOCK port=$PG_PORT dbname=orders user=tessera_owner"
ORDERS_APP="host=$PG_SOCK port=$PG_PORT dbname=orders user=tessera_app"
migrate_placed() { # the placed databases through [svc.*] / [database.*] migrate DSNs
    env TESSERA_DB_MIGRATE_DSN="$ORDERS_OWNER" TESSERA_DB_SQL_DIR="$ROOT/sql" \
        TESSERA_SVC_ORDERS_MIGRATE_DSN="$ORDERS_OWNER" TESSERA_DATABASE_TENANT_MIGRATE_DSN="$PG2_OWNER_DSN" \
        "$TESSERA" migrate "$@"
}
OUT=$(migrate_placed 2>&1)
check "tessera migrate applies the migrations to each placed database (named by its owner DSN), each once" \
    grep -q "^database.tenant: [0-9]* of [0-9]* migrations applied now" <<<"$OUT"

# legacy: placed in the same database as orders (one store for both)
PLACE_ENV=("TESSERA_SVC_ORDERS_DSN=$ORDERS_APP" "TESSERA_SVC_LEGACY_DSN=$ORDERS_APP"
    "TESSERA_DATABASE_TENANT_DSN=$PG2_APP_DSN")
stack_up TESSERA_CQRS_POLL_MS=200 "${PLACE_ENV[@]}" || { not_ok "stack starts with the placements"; exit 1; }
ok "stack starts on postgres with [svc.orders] and [database.tenant]"
OUT=$(migrate_placed 2>&1)
check "a second migrate run changes nothing anywhere" grep -q "^database.tenant: 0 of" <<<"$OUT"
OUT=$(env TESSERA_ENGINE=postgres "TESSERA_DB_CORE_DSN=$PG_DB_APP_DSN" "TESSERA_REDIS_URL=$REDIS_URL" \
    "TESSERA_DATABASE_TENANT_DSN=host=x password=hunter2" "$TESSERA" check-config 2>&1)
check "check-config shows the placements, the password masked" \
    jq -e '.database.tenant.dsn == "host=x password=***"' <<<"$OUT"

J='Content-Type: application/json'
core_sql() { psql -X -At -q -v ON_ERROR_STOP=1 "$PG_DB_OWNER_DSN" "$@"; }
orders_sql() { psql -X -At -q -v ON_ERROR_STOP=1 "$ORDERS_OWNER" "$@"; }
tenant_sql() { psql -X -At -q -v ON_ERROR_STOP=1 "$PG2_OWNER_DSN" "$@"; }
app_as() { # dsn org sql: one query as tessera_app with tessera.org_id set (org "" for none), its last line
    psql -X -At -q -v ON_ERROR_STOP=1 "$1" -c "SELECT set_config('tessera.org_id', '$2', false)" -c "$3" | tail -1
}
same() { # name got want
    if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got:  $2"$'\n'"want: $3"; fi
}
login admin@example.com; ADMIN=$TOKEN     # Acme's owner, a platform admin
login bob@globex.test; BOB=$TOKEN         # Globex's owner
ACME=11111111-1111-4111-8111-111111111111
GLOBEX=22222222-2222-4222-8222-222222222222
as() { # token method path [json]
    local t=$1 meth=$2 path=$3
    shift 3
    req "$meth" "$path" -H "Authorization: Bearer $t" ${1:+-H "$J" -d "$1"}
}
place() { # org database [grace ms]: tessera org place with the fleet's configuration
    env TESSERA_ENGINE=postgres "TESSERA_DB_CORE_DSN=$PG_DB_APP_DSN" "TESSERA_REDIS_URL=$REDIS_URL" \
        "${PLACE_ENV[@]}" "$TESSERA" org place "$1" "$2" --grace "${3:-300}"
}

# --- a service in a database of its own
as "$ADMIN" POST /v1/apps '{"name":"orders","kind":"microservice"}'
expect "service orders registered" 201
as "$ADMIN" PUT /v1/svc/orders/schema/items \
    '{"fields":{"name":{"type":"string","required":true},"qty":{"type":"integer","index":true},"emb":{"type":"vector(2)"}},"options":{"views":{"by_name":{"group_by":["name"],"count":true,"sum":["qty"]}}}}'
expect "a resource of orders, with a view" 200 '.version == 1'
as "$ADMIN" PUT /v1/svc/crm/schema/contacts '{"fields":{"name":{"type":"string","required":true}}}'
expect "a resource of crm (the shared database's)" 200
for i in 1 2 3 4; do
    as "$ADMIN" POST /v1/svc/orders/items "{\"name\":\"n$((i % 2))\",\"qty\":$i,\"emb\":[$i,1]}"
done
expect "records of orders" 201
ITEM=$(jq -r .id <<<"$BODY")
same "orders' rows are in database orders" "$(orders_sql -c "SELECT count(*) FROM svc_orders_sandbox.items")" 4
same "…and the core/shared database has no schema of orders at all" \
    "$(core_sql -c "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'svc\_orders%'")" 0
same "…its definition is there, not in core.resources of the shared database" \
    "$(orders_sql -c "SELECT count(*) FROM core.resources WHERE service = 'orders'") $(core_sql -c "SELECT count(*) FROM core.resources WHERE service = 'orders'")" "1 0"
as "$ADMIN" GET "/v1/svc/orders/items/$ITEM"
expect "read by id" 200 '.qty == 4 and .emb == [4,1]'
as "$ADMIN" GET "/v1/svc/orders/items?qty=gt.1&order=qty.desc"
expect "a filtered, ordered list" 200 '[.data[].qty] == [4,3,2]'
as "$ADMIN" PATCH "/v1/svc/orders/items/$ITEM" '{"qty":40}'
expect "an update" 200 '.qty == 40 and .version == 2'
as "$ADMIN" POST /v1/svc/orders/items/search '{"field":"emb","vector":[1,1],"k":2}'
expect "a vector search on the placed service" 200 '(.data | length) == 2'
as "$ADMIN" PUT /v1/svc/orders/schema/items \
    '{"fields":{"name":{"type":"string","required":true},"qty":{"type":"integer","index":true},"emb":{"type":"vector(2)"},"note":{"type":"string","default":"-"}},"options":{"views":{"by_name":{"group_by":["name"],"count":true,"sum":["qty"]}}}}'
expect "a schema change of the placed service" 200 '.version == 2'
same "…made in database orders (a column added, filled)" \
    "$(orders_sql -c "SELECT count(*) FILTER (WHERE note = '-') FROM svc_orders_sandbox.items")" 4
same "…and in the database orgs are placed in (every database holding orders' data)" \
    "$(tenant_sql -c "SELECT count(*) FROM pg_attribute WHERE attrelid = 'svc_orders_sandbox.items'::regclass AND attname = 'note'")" 1
as "$ADMIN" DELETE "/v1/svc/orders/items/$ITEM"
check "a delete" test "$STATUS" = 204
view_ok() {
    as "$ADMIN" GET /v1/svc/orders/items/views/by_name
    jq -e '[.data[] | {k: .key.name, c: .count, s: .sum.qty}] | sort_by(.k) == [{k:"n0",c:1,s:2},{k:"n1",c:2,s:4}]' <<<"$BODY"
}
check "the projector keeps the view from database orders' outbox" wait_until 15 view_ok
as "$ADMIN" GET "/v1/svc/orders/items/changes?limit=100"
expect "the change feed of the placed service" 200 \
    '[.data[].op] | (map(select(. == "create")) | length) == 4 and index("delete") != null'
same "RLS in database orders: the app role without tessera.org_id sees nothing" \
    "$(app_as "$ORDERS_APP" "" "SELECT count(*) FROM svc_orders_sandbox.items")" 0
same "…with another org's id, nothing of Acme's" \
    "$(app_as "$ORDERS_APP" "$GLOBEX" "SELECT count(*) FROM svc_orders_sandbox.items")" 0
same "…with Acme's, Acme's" "$(app_as "$ORDERS_APP" "$ACME" "SELECT count(*) FROM svc_orders_sandbox.items")" 3

# A service placed after it had records: they stay in the shared database,
# and the placed service says so rather than answering as if it had none.
as "$ADMIN" POST /v1/apps '{"name":"legacy","kind":"microservice"}'
core_sql -c "INSERT INTO core.resources (service, mode, name, fields) VALUES ('legacy', 'test', 'things', '[]')"
as "$ADMIN" GET /v1/svc/legacy/things
expect_error "a placed service whose resource is still defined in the shared database: 503, not an empty 404" \
    503 unavailable
grep -q 'legacy.things is placed in a database of its own but still defined in the shared one' "$T/fleet.log" &&
    ok "…the log says why" || not_ok "…the log says why" "$(grep -i legacy "$T/fleet.log" | tail -3)"
as "$ADMIN" PUT /v1/svc/legacy/schema/things '{"fields":{"name":{"type":"string"}}}'
expect_error "…and a schema change of it does not start afresh in the new database" 503 unavailable
as "$ADMIN" GET /v1/svc/legacy/nothing
expect_error "a resource defined nowhere is still a 404" 404 not_found

# --- an org in a dedicated database, on another cluster
as "$BOB" POST /v1/svc/crm/contacts '{"name":"early"}'
expect "Globex writes a contact while it shares the pooled database" 201
EARLY=$(jq -r .id <<<"$BODY")
OUT=$(place "$GLOBEX" tenant 2>&1); RC=$?
check "tessera org place of an org with records is refused (exit 1, saying why)" \
    test "$RC" = 1 -a -n "$(grep -i 'refused.*1 records' <<<"$OUT")"
same "…and nothing changed: its placement is none" \
    "$(core_sql -c "SELECT count(*) FROM core.org_placement")" 0
as "$BOB" DELETE "/v1/svc/crm/contacts/$EARLY"
OUT=$(place "$GLOBEX" tenant 2>&1); RC=$?
check "once it has none, Globex is placed in database tenant" \
    test "$RC" = 0 -a -n "$(grep 'placed organization' <<<"$OUT")"
same "…the placement is a core row, settled" \
    "$(core_sql -c "SELECT database || ' ' || moving FROM core.org_placement WHERE org_id = '$GLOBEX'")" "tenant false"
same "…the definitions it lacked were made there (crm's, orders')" \
    "$(tenant_sql -c "SELECT string_agg(service || '.' || name, ',' ORDER BY service) FROM core.resources WHERE mode = 'test'")" \
    "crm.contacts,orders.items"
for n in a b c; do as "$BOB" POST /v1/svc/crm/contacts "{\"name\":\"$n\"}"; done
expect "Globex writes contacts (its cached principal followed the placement)" 201
GC=$(jq -r .id <<<"$BODY")
as "$BOB" POST /v1/svc/orders/items '{"name":"g","qty":7}'
expect "…and items of the placed service: the org's placement wins" 201
GI=$(jq -r .id <<<"$BODY")
as "$ADMIN" POST /v1/svc/crm/contacts '{"name":"acme"}'
expect "Acme writes a contact" 201
same "Globex's records are in database tenant on the second cluster" \
    "$(tenant_sql -c "SELECT (SELECT count(*) FROM svc_crm_sandbox.contacts WHERE org_id = '$GLOBEX') || ' ' || (SELECT count(*) FROM svc_orders_sandbox.items WHERE org_id = '$GLOBEX')")" "3 1"
same "…only: none in the shared database, none in database orders" \
    "$(core_sql -c "SELECT count(*) FROM svc_crm_sandbox.contacts WHERE org_id = '$GLOBEX'") $(orders_sql -c "SELECT count(*) FROM svc_orders_sandbox.items WHERE org_id = '$GLOBEX'")" "0 0"
same "Acme's stay in the shared database, none in tenant" \
    "$(core_sql -c "SELECT count(*) FROM svc_crm_sandbox.contacts WHERE org_id = '$ACME'") $(tenant_sql -c "SELECT count(*) FROM svc_crm_sandbox.contacts WHERE org_id = '$ACME'")" "1 0"
as "$BOB" GET "/v1/svc/crm/contacts/$GC"
expect "Globex reads its record back" 200 '.name == "c"'
as "$BOB" GET "/v1/svc/crm/contacts?order=name.asc"
expect "…and lists its own only" 200 '[.data[].name] == ["a","b","c"]'
as "$ADMIN" GET "/v1/svc/crm/contacts/$GC"
expect_error "Acme cannot read Globex's record (404)" 404 not_found
as "$BOB" GET "/v1/svc/orders/items/$GI"
expect "Globex reads its item from its database" 200 '.qty == 7'
same "RLS in database tenant: the app role without tessera.org_id sees nothing" \
    "$(app_as "$PG2_APP_DSN" "" "SELECT count(*) FROM svc_crm_sandbox.contacts")" 0
same "…with Acme's id, none of Globex's" "$(app_as "$PG2_APP_DSN" "$ACME" "SELECT count(*) FROM svc_crm_sandbox.contacts")" 0
same "…with Globex's, its three" "$(app_as "$PG2_APP_DSN" "$GLOBEX" "SELECT count(*) FROM svc_crm_sandbox.contacts")" 3
same "RLS in the shared database: Globex's id sees none of Acme's" \
    "$(app_as "$PG_DB_APP_DSN" "$GLOBEX" "SELECT count(*) FROM svc_crm_sandbox.contacts")" 0
same "in database tenant every data table is under forced RLS and owned by the owner, not the app role" \
    "$(tenant_sql -c "SELECT count(*) FILTER (WHERE c.relrowsecurity AND c.relforcerowsecurity AND r.rolname = 'tessera_owner') || '/' || count(*)
        FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
        WHERE c.relkind IN ('r', 'p') AND c.relnamespace::regnamespace::text LIKE 'svc\_%'")" \
    "$(tenant_sql -c "SELECT count(*) FROM pg_class c WHERE c.relkind IN ('r', 'p') AND c.relnamespace::regnamespace::text LIKE 'svc\_%'")/$(tenant_sql -c "SELECT count(*) FROM pg_class c WHERE c.relkind IN ('r', 'p') AND c.relnamespace::regnamespace::text LIKE 'svc\_%'")"
as "$ADMIN" PUT /v1/svc/crm/schema/contacts '{"fields":{"name":{"type":"string","required":true},"city":{"type":"string"}}}'
expect "a schema change of a shared service" 200
same "…reaches Globex's database too" \
    "$(tenant_sql -c "SELECT count(*) FROM pg_attribute WHERE attrelid = 'svc_crm_sandbox.contacts'::regclass AND attname = 'city'")" 1
as "$BOB" GET "/v1/svc/crm/contacts/changes?limit=100"
expect "Globex's change feed comes from its database" 200 '[.data[].op] == ["create","create","create"]'
OUT=$(place "$GLOBEX" shared 2>&1); RC=$?
check "placing Globex back while it has records is refused" test "$RC" = 1 -a -n "$(grep -i refused <<<"$OUT")"
as "$BOB" GET "/v1/svc/crm/contacts/$GC"
expect "…and its records stay found where they are" 200

# During a change the org's data calls are held (503), never served from the
# database it is leaving; then they go to the new one.
req POST /v1/auth/signup -H "$J" -d '{"email":"founder@initech.test","password":"correct horse","org_name":"Initech"}'
expect "a new org signs up (Initech)" 201
INI=$(jq -r .access_token <<<"$BODY") INIORG=$(jq -r .org.id <<<"$BODY")
place "$INIORG" tenant 3000 >"$T/place.out" 2>&1 &
PLACER=$!
PIDS+=("$PLACER")
moving() { [ "$(core_sql -c "SELECT moving FROM core.org_placement WHERE org_id = '$INIORG'")" = t ]; }
check "the change is under way (placement moving)" wait_until 10 moving
as "$INI" POST /v1/svc/crm/contacts '{"name":"during"}'
expect_error "…a write of the org meanwhile is held: 503, nothing written anywhere" 503 unavailable
wait "$PLACER"; RC=$?
check "…then the change completes" test "$RC" = 0 -a -n "$(grep 'placed organization' "$T/place.out")"
as "$INI" POST /v1/svc/crm/contacts '{"name":"after"}'
expect "…and the org's writes go to its new database" 201
same "…which holds them, and the shared one none" \
    "$(tenant_sql -c "SELECT count(*) FROM svc_crm_sandbox.contacts WHERE org_id = '$INIORG'") $(core_sql -c "SELECT count(*) FROM svc_crm_sandbox.contacts WHERE org_id = '$INIORG'")" "1 0"

OUT=$(place "$ACME" tenant 2>&1); RC=$?
check "a platform organization is not placed (schema changes start from it)" \
    test "$RC" = 1 -a -n "$(grep 'platform organization' <<<"$OUT")"
OUT=$(place "$GLOBEX" nowhere 2>&1); RC=$?
check "a database the configuration does not name: exit 2" test "$RC" = 2 -a -n "$(grep 'no \[database.nowhere\]' <<<"$OUT")"
OUT=$(env TESSERA_ENGINE=memory "$TESSERA" org place "$GLOBEX" tenant 2>&1); RC=$?
check "the memory engine: placement means nothing, exit 2" test "$RC" = 2 -a -n "$(grep 'engine = postgres' <<<"$OUT")"
OUT=$(env TESSERA_ENGINE=memory "TESSERA_SVC_ORDERS_DSN=$ORDERS_APP" "$TESSERA" check-config 2>&1); RC=$?
check "…and [svc.*] dsn there is a config error naming the key (exit 2)" \
    test "$RC" = 2 -a -n "$(grep 'svc.orders.dsn' <<<"$OUT")"
