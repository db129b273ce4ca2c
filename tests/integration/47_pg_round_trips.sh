#!/usr/bin/env bash
# Issue 18 §2: one round trip to PostgreSQL per read (issue 13's work, tested
# here), and per create (§1's profile). One api worker, no projector, the
# records cache off, so every read reaches the database: the worker's own counters (/metrics,
# tessera_db_pool_round_trips_total and _statements_total) say one round trip
# per GET by id and per list page, and the
# server's log, with every statement logged for the window, counts exactly the
# statements the worker says it sent. Issue 18 §7: a service placed in a
# database of its own ([svc.routes] dsn) reads in one round trip too, on its
# own pool.
. "$(dirname "$0")/lib.sh"
export ENGINE=postgres
. "$ROOT/tests/integration/pg.sh"

pg_up && pg_createdb routes >/dev/null &&
    TESSERA_DB_MIGRATE_DSN="host=$PG_SOCK port=$PG_PORT dbname=routes user=tessera_owner" TESSERA_DB_SQL_DIR=$ROOT/sql \
        TESSERA_CONFIG=/dev/null "$TESSERA" migrate >>"$T/migrate.log" 2>&1 ||
    { not_ok "a database for service routes"; exit 1; }
stack_up TESSERA_FLEET_WORKERS=1 TESSERA_FLEET_PROJECTORS=0 TESSERA_CACHE_RECORDS=off \
    "TESSERA_SVC_ROUTES_DSN=host=$PG_SOCK port=$PG_PORT dbname=routes user=tessera_app" ||
    { not_ok "stack starts on postgres"; exit 1; }
ok "stack starts on postgres: one worker, no projector, no records cache"
J='Content-Type: application/json'
req POST /v1/auth/login -H "$J" -d '{"email":"admin@example.com","password":"tessera-dev"}'
A=(-H "Authorization: Bearer $(jq -r .access_token <<<"$BODY")")
req PUT /v1/svc/crm/schema/trips "${A[@]}" -H "$J" \
    -d '{"fields":{"name":{"type":"string","required":true},"amount":{"type":"integer","index":true}}}'
for i in 1 2 3 4 5 6 7 8; do req POST /v1/svc/crm/trips "${A[@]}" -H "$J" -d "{\"name\":\"trip $i\",\"amount\":$i}"; done
ID=$(jq -r .id <<<"$BODY")
check "a resource and records to read" test "$STATUS" = 201 -a -n "$ID" -a "$ID" != null

counter() { # NAME [POOL]: the worker's sum over its pools (or that pool's alone)
    curl -s "$URL/metrics" | awk -v n="tessera_db_pool_$1_total" -v p="${2:+pool=\"$2\"}" \
        'index($1, n "{") == 1 && index($1, p) > 0 { s += $2 } END { printf "%d", s }'
}
logged() { # from byte offset: statements the fleet's connections ran (application_name tessera)
    tail -c +"$(($1 + 1))" "$PG_LOG" | grep -cE 'app=tessera .*LOG:  (execute [^:]*|statement): '
}
PG_LOG=$T/pg/server.log
pg_psql postgres -c "ALTER SYSTEM SET log_statement = 'all'" -c "ALTER SYSTEM SET log_line_prefix = '%m [%p] app=%a '" \
    -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
for i in 1 2 3; do req GET "/v1/svc/crm/trips/$ID" "${A[@]}"; req GET "/v1/svc/crm/trips?limit=5" "${A[@]}"; done # warm: principal, schema name, prepared statements
measure() { # N PATH: N GETs; sets TRIPS, SENT, SEEN, OKS
    local rt0 st0 at i
    rt0=$(counter round_trips) st0=$(counter statements) at=$(wc -c <"$PG_LOG") OKS=0
    for i in $(seq 1 "$1"); do req GET "$2" "${A[@]}"; [ "$STATUS" = 200 ] && OKS=$((OKS + 1)); done
    sleep 0.3 # the server's log is written by its logger process
    TRIPS=$(($(counter round_trips) - rt0)) SENT=$(($(counter statements) - st0)) SEEN=$(logged "$at")
}
measure 20 "/v1/svc/crm/trips/$ID"
check "20 GETs by id, all 200: one round trip each ($TRIPS round trips)" test "$OKS" = 20 -a "$TRIPS" = 20
check "… the server's log counts the statements the worker sent ($SEEN logged, $SENT sent)" \
    test "$SEEN" = "$SENT" -a "$SENT" -ge 20
measure 20 "/v1/svc/crm/trips?limit=5&order=amount.desc"
check "20 list pages, all 200: one round trip each ($TRIPS round trips)" test "$OKS" = 20 -a "$TRIPS" = 20
check "… the server's log counts the statements the worker sent ($SEEN logged, $SENT sent)" \
    test "$SEEN" = "$SENT" -a "$SENT" -ge 20
# A list page's statement is built from the definition the worker kept and
# checked against the one read in the same round trip: after a change of the
# schema the first page goes the long way (the kept statement names a column
# that is gone), and the next ones are one round trip again.
req PUT /v1/svc/crm/schema/trips "${A[@]}" -H "$J" \
    -d '{"fields":{"name":{"type":"string","required":true},"total":{"type":"integer","index":true}},"rename":{"amount":"total"}}'
check "the schema changes under the kept definition (amount renamed total)" test "$STATUS" = 200
req GET "/v1/svc/crm/trips?limit=5&order=total.desc" "${A[@]}"
check "the next list page is right: ordered by the renamed field" \
    jq -e '[.data[].total] == ([.data[].total] | sort | reverse) and (.data | length) == 5 and (.data[0] | has("amount") | not)' <<<"$BODY"
measure 10 "/v1/svc/crm/trips?limit=5&total=gte.3"
check "… and the pages after it are one round trip each again ($TRIPS round trips)" test "$OKS" = 10 -a "$TRIPS" = 10

# A create is one round trip too once the worker holds the resource's
# definition (sql/0013_write_guard.sql): [scope, the definition's guard, the
# insert with its outbox entry] as one implicit transaction, committed by the
# pipeline's Sync: no BEGIN, no COMMIT, no read of the definition.
owner_sql() { psql -X -At -q -v ON_ERROR_STOP=1 "$PG_DB_OWNER_DSN" "$@"; }
creates() { # N: N creates; sets TRIPS, SENT, SEEN, OKS
    local rt0 st0 i
    rt0=$(counter round_trips) st0=$(counter statements) AT=$(wc -c <"$PG_LOG") OKS=0
    for i in $(seq 1 "$1"); do
        req POST /v1/svc/crm/trips "${A[@]}" -H "$J" -d "{\"name\":\"made $i\",\"total\":$i}"
        [ "$STATUS" = 201 ] && OKS=$((OKS + 1))
    done
    sleep 0.3
    TRIPS=$(($(counter round_trips) - rt0)) SENT=$(($(counter statements) - st0)) SEEN=$(logged "$AT")
}
creates 2 # the definition held, the insert prepared
creates 20
check "20 creates, all 201: one round trip each ($TRIPS round trips, $SENT statements)" \
    test "$OKS" = 20 -a "$TRIPS" = 20 -a "$SENT" = 60
check "… the server's log counts the statements the worker sent ($SEEN logged, $SENT sent)" test "$SEEN" = "$SENT"
check "… and no BEGIN or COMMIT among them" \
    sh -c "! tail -c +$((AT + 1)) '$PG_LOG' | grep -qE 'app=tessera .*(execute [^:]*: BEGIN|statement: COMMIT)'"

# The definition held is checked in the write's round trip: one changed
# behind the worker's copy (here by hand, with no cache version bumped, as a
# change whose bump has not reached Redis yet) fails the write's guard, which
# keeps nothing; the request runs again with the definition read afresh and
# succeeds, once.
owner_sql -c "UPDATE core.resources SET version = version + 1 WHERE service = 'crm' AND name = 'trips'" >/dev/null
before=$(owner_sql -c "SELECT count(*) FROM svc_crm_sandbox.trips")
req POST /v1/svc/crm/trips "${A[@]}" -H "$J" -d '{"name":"after a change behind the copy","total":99}'
check "a create whose held definition changed meanwhile answers 201" test "$STATUS" = 201
check "… after its guard refused the first run and the request ran again" \
    grep -q 'changed under this request (request.*run again)' "$T/fleet.log"
check "… and the record is stored once" test "$(owner_sql -c "
    SELECT count(*) - $before || ' ' || count(*) FILTER (WHERE name = 'after a change behind the copy')
    FROM svc_crm_sandbox.trips")" = "1 1"
NEW=$(jq -r .id <<<"$BODY")
owner_sql -c "UPDATE core.resources SET version = version + 1 WHERE service = 'crm' AND name = 'trips'" >/dev/null
req PATCH "/v1/svc/crm/trips/$NEW" "${A[@]}" -H "$J" -d '{"total":100}'
check "an update whose held definition changed meanwhile answers 200 (its guard went first, the request again)" \
    test "$STATUS" = 200 -a "$(jq -r .total <<<"$BODY")" = 100 -a \
         "$(grep -c 'changed under this request (request.*run again)' "$T/fleet.log")" = 2

# A refresh is one round trip: its token names its org and mode, so the
# rotation — found by the token's hash in that scope — is [scope, the
# rotation] with nothing resolved before it. A token in the form issued
# before (the secret alone) takes the long way, a resolve and then the
# rotation, and its child has the new form.
refreshes() { # N: N refreshes down one family from $RT; sets TRIPS, SENT, SEEN, OKS
    local rt0 st0 i
    rt0=$(counter round_trips) st0=$(counter statements) AT=$(wc -c <"$PG_LOG") OKS=0
    for i in $(seq 1 "$1"); do
        req POST /v1/auth/refresh -H "$J" -d "{\"refresh_token\":\"$RT\"}"
        [ "$STATUS" = 200 ] && OKS=$((OKS + 1)) && RT=$(jq -r .refresh_token <<<"$BODY")
    done
    sleep 0.3
    TRIPS=$(($(counter round_trips) - rt0)) SENT=$(($(counter statements) - st0)) SEEN=$(logged "$AT")
}
req POST /v1/auth/login -H "$J" -d '{"email":"admin@example.com","password":"tessera-dev"}'
RT=$(jq -r .refresh_token <<<"$BODY")
refreshes 2 # the rotation's statement prepared
refreshes 10
check "10 refreshes down a family, all 200: one round trip each ($TRIPS round trips, $SENT statements)" \
    test "$OKS" = 10 -a "$TRIPS" = 10 -a "$SENT" = 20
check "… the server's log counts the statements the worker sent ($SEEN logged, $SENT sent)" test "$SEEN" = "$SENT"
claims=$(jq -r '.access_token | split(".")[1] | gsub("-"; "+") | gsub("_"; "/") | . + ("=" * ((4 - length % 4) % 4)) | @base64d' <<<"$BODY")
OLD=rt_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
owner_sql -c "INSERT INTO core.refresh_tokens (id, family_id, user_id, org_id, mode, token_hash, expires_at)
    VALUES (gen_random_uuid(), gen_random_uuid(), '$(jq -r .sub <<<"$claims")', '$(jq -r .org <<<"$claims")',
            'test', encode(sha256('$OLD'), 'hex'), now() + interval '1 day')" >/dev/null
RT=$OLD
refreshes 1
check "a token of the form before (the secret alone, ${#OLD} characters) refreshes the long way: two round trips" \
    test "$OKS" = 1 -a "$TRIPS" = 2 -a "${#OLD}" = 46
check "… into a child of the new form (${#RT} characters), which takes one" test "${#RT}" = 69 -a "$RT" != "$OLD"
refreshes 1
check "… one round trip for the child's refresh ($TRIPS)" test "$OKS" = 1 -a "$TRIPS" = 1
# A token past its expiry misses the one step (its condition) and the long
# way answers token_expired; nothing rotated.
owner_sql -c "UPDATE core.refresh_tokens SET expires_at = now() - interval '1 second'
    WHERE token_hash = encode(sha256('$RT'), 'hex')" >/dev/null
req POST /v1/auth/refresh -H "$J" -d "{\"refresh_token\":\"$RT\"}"
check "an expired refresh token → 401 token_expired" \
    test "$STATUS" = 401 -a "$(jq -r .error.code <<<"$BODY")" = token_expired
check "… and it was not rotated" test "$(owner_sql -c "SELECT count(*) FROM core.refresh_tokens
    WHERE token_hash = encode(sha256('$RT'), 'hex') AND used_at IS NULL AND child_id IS NULL")" = 1

# A service in a database of its own: its reads are one round trip as well,
# on its own pool ("svc.routes.test"), and nothing else is asked (the org's
# placement comes with the cached principal).
req POST /v1/apps "${A[@]}" -H "$J" -d '{"name":"routes","kind":"microservice"}'
req PUT /v1/svc/routes/schema/legs "${A[@]}" -H "$J" \
    -d '{"fields":{"name":{"type":"string","required":true},"km":{"type":"integer","index":true}}}'
for i in 1 2 3 4 5 6; do req POST /v1/svc/routes/legs "${A[@]}" -H "$J" -d "{\"name\":\"leg $i\",\"km\":$i}"; done
LEG=$(jq -r .id <<<"$BODY")
check "records of the placed service" test "$STATUS" = 201 -a -n "$LEG" -a "$LEG" != null
for i in 1 2 3; do req GET "/v1/svc/routes/legs/$LEG" "${A[@]}"; req GET "/v1/svc/routes/legs?limit=5" "${A[@]}"; done
own0=$(counter round_trips svc.routes.test)
measure 20 "/v1/svc/routes/legs/$LEG"
own=$(($(counter round_trips svc.routes.test) - own0))
check "20 GETs by id of the placed service, all 200: one round trip each ($TRIPS in all, $own on its pool)" \
    test "$OKS" = 20 -a "$TRIPS" = 20 -a "$own" = 20
own0=$(counter round_trips svc.routes.test)
measure 20 "/v1/svc/routes/legs?limit=5&km=gte.2&order=km.desc"
own=$(($(counter round_trips svc.routes.test) - own0))
check "20 list pages of the placed service: one round trip each ($TRIPS in all, $own on its pool)" \
    test "$OKS" = 20 -a "$TRIPS" = 20 -a "$own" = 20

# Vector search through pgvector's HNSW index: once the worker has found the
# index, a search is two round trips — [the definition, the index scan's
# settings, the candidates with their vectors in binary] and the answer's
# vectors as text — and its records are the ones a GET reads, vectors and
# all (the texts PostgreSQL printed, the same numbers).
DB=$(sed 's/.*dbname=\([^ ]*\).*/\1/' <<<"$PG_DB_OWNER_DSN")
if pgvector_install && pg_psql "$DB" -c "CREATE EXTENSION vector" >/dev/null; then
    req PUT /v1/svc/crm/schema/vecs "${A[@]}" -H "$J" \
        -d '{"fields":{"emb":{"type":"vector(3)","index":true},"tag":{"type":"string"}}}'
    for i in $(seq 1 12); do
        req POST /v1/svc/crm/vecs "${A[@]}" -H "$J" -d "{\"emb\":[$i.25, -0.1, 0.$i],\"tag\":\"v$i\"}"
    done
    check "a vector field with an HNSW index, and 12 records" test "$STATUS" = 201 -a \
        "$(owner_sql -c "SELECT count(*) FROM pg_indexes WHERE schemaname = 'svc_crm_sandbox' AND indexname LIKE 'hnsw%'")" = 1
    Q='{"field":"emb","vector":[3.3,-0.1,0.2],"k":3}'
    for i in 1 2; do req POST /v1/svc/crm/vecs/search "${A[@]}" -H "$J" -d "$Q"; done # the first finds the index
    rt0=$(counter round_trips) st0=$(counter statements) at=$(wc -c <"$PG_LOG") OKS=0
    for i in $(seq 1 20); do
        req POST /v1/svc/crm/vecs/search "${A[@]}" -H "$J" -d "$Q"
        [ "$STATUS" = 200 ] && [ "$(jq -r .strategy <<<"$BODY")" = hnsw ] && OKS=$((OKS + 1))
    done
    sleep 0.3
    TRIPS=$(($(counter round_trips) - rt0)) SENT=$(($(counter statements) - st0)) SEEN=$(logged "$at")
    check "20 searches through the index, all 200 hnsw: two round trips each ($TRIPS round trips)" \
        test "$OKS" = 20 -a "$TRIPS" = 40
    check "… the server's log counts the statements the worker sent ($SEEN logged, $SENT sent)" \
        test "$SEEN" = "$SENT" -a "$SENT" -ge 40
    HIT=$(jq -c '.data[0]' <<<"$BODY")
    req GET "/v1/svc/crm/vecs/$(jq -r .id <<<"$HIT")" "${A[@]}"
    check "a search's record is the record a GET reads (vector compared as numbers)" \
        test "$(jq -c 'del(._score) | .emb |= map(. * 1)' <<<"$HIT")" = "$(jq -c '.emb |= map(. * 1)' <<<"$BODY")"
else
    not_ok "pgvector added to the stack's database"
fi
pg_psql postgres -c "ALTER SYSTEM RESET log_statement" -c "ALTER SYSTEM RESET log_line_prefix" \
    -c "SELECT pg_reload_conf()" >/dev/null
