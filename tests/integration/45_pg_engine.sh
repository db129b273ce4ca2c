#!/usr/bin/env bash
# Issue 5, the engine half: the fleet on engine = postgres against a real
# PostgreSQL and Redis. `tessera seed` twice changes nothing and a bad row
# writes nothing; no tenant context leaks across requests on one pooled
# connection (connection_limit = 1) nor through PgBouncer in transaction
# pooling; a PostgreSQL restart costs at most the requests in flight; pools
# open lazily per mode (pg_stat_activity); /readyz and /metrics show the pools.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg.sh"
J='Content-Type: application/json'
export SEED_DIR=   # this suite seeds its databases itself, with `tessera seed`
# The api workers' pools, counted in pg_stat_activity: no projector (its
# batches and its LISTEN connection are 72_cqrs.sh's to check).
export TESSERA_FLEET_PROJECTORS=0

pg_up || { not_ok "postgresql starts"; exit 1; }
redis_up || { not_ok "redis starts"; exit 1; }
export TESSERA_AUTH_SIGNING_KEY=$T/keys/jwt.pem TESSERA_CRYPTO_DATA_KEY=$T/keys/data.key
export TESSERA_CONFIG=/dev/null TESSERA_ENV=test
"$TESSERA" keygen >/dev/null || { not_ok "keygen"; exit 1; }

owner() { psql -X -At -q -v ON_ERROR_STOP=1 "host=$PG_SOCK port=$PG_PORT dbname=$1 user=tessera_owner" -c "$2"; }
# fresh_db NAME: an empty database, migrated.
fresh_db() {
    pg_createdb "$1" >/dev/null &&
        TESSERA_DB_MIGRATE_DSN="host=$PG_SOCK port=$PG_PORT dbname=$1 user=tessera_owner" \
            TESSERA_DB_SQL_DIR=$ROOT/sql "$TESSERA" migrate >/dev/null
}
app_dsn() { echo "host=$PG_SOCK port=$PG_PORT dbname=$1 user=tessera_app${2:+ application_name=$2}"; }
seed() { # DB DIR: `tessera seed DIR` into DB; sets OUT and RC
    OUT=$(TESSERA_ENGINE=postgres TESSERA_DB_CORE_DSN="$(app_dsn "$1")" "$TESSERA" seed "$2" 2>&1); RC=$?
    return $RC
}
COUNTS="SELECT (SELECT count(*) FROM core.users) || ' ' || (SELECT count(*) FROM core.organizations) || ' ' ||
        (SELECT count(*) FROM core.memberships) || ' ' || (SELECT count(*) FROM core.roles) || ' ' ||
        (SELECT count(*) FROM core.apps)"

# --- a malformed DSN is a config error naming the key, never echoing the DSN
for cmd in check-config fleet; do
    OUT=$(TESSERA_ENGINE=postgres TESSERA_DB_CORE_DSN="host=x password=hunter2 oops" \
          TESSERA_FLEET_LISTEN=$T/bad.sock TESSERA_FLEET_CONTROL=$T/bad-control.sock TESSERA_FLEET_PID_FILE=$T/bad.pid \
          timeout 10 "$TESSERA" $cmd 2>&1); RC=$?
    check "tessera $cmd with a malformed db.core_dsn exits 2 naming the key, without the password" \
        test "$RC" = 2 -a -n "$(grep 'db.core_dsn' <<<"$OUT")" -a -z "$(grep hunter2 <<<"$OUT")"
done

# --- tessera seed
fresh_db seeded || { not_ok "a migrated database"; exit 1; }
seed seeded "$ROOT/seed/dev"
check "tessera seed seed/dev loads the dev data into PostgreSQL" test "$RC" = 0
first=$(owner seeded "$COUNTS")
check "the seed made users, orgs, memberships and apps (as tessera_app, under RLS)" \
    test "$(owner seeded "SELECT count(*) > 0 FROM core.users") $(owner seeded "SELECT count(*) FROM core.organizations")" = "t 3"
seed seeded "$ROOT/seed/dev"
check "a second tessera seed succeeds" test "$RC" = 0
check "and changes no row count (users orgs memberships roles apps: $first)" test "$(owner seeded "$COUNTS")" = "$first"
check "seeded emails are sealed, never plaintext" \
    test "$(owner seeded "SELECT count(*) FROM core.users WHERE email_enc LIKE '%@%'")" = 0

mkdir -p "$T/badseed" && cp "$ROOT"/seed/dev/*.csv "$T/badseed/"
printf '22222222-2222-4222-8222-222222222222,aaaaaaaa-0000-4000-8000-000000000001,\n' >>"$T/badseed/memberships.csv"
badline=$(wc -l <"$T/badseed/memberships.csv")
fresh_db badseed || { not_ok "a second migrated database"; exit 1; }
seed badseed "$T/badseed"
if [ "$RC" != 0 ] && grep -q "memberships.csv:$badline" <<<"$OUT"; then
    ok "a bad CSV row fails the seed with file:line (memberships.csv:$badline)"
else not_ok "a bad CSV row fails the seed with file:line (memberships.csv:$badline)" "rc $RC: $OUT"; fi
check "and nothing of the run was written (all or nothing)" \
    test "$(owner badseed "SELECT count(*) FROM core.users") $(owner badseed "SELECT count(*) FROM core.organizations")" = "0 0"
OUT=$(TESSERA_ENGINE=memory "$TESSERA" seed "$ROOT/seed/dev" 2>&1); RC=$?
check "tessera seed on the memory engine says to use fleet --seed (exit 2)" \
    test "$RC" = 2 -a -n "$(grep -- '--seed' <<<"$OUT")"

# --- one worker, one connection: orgs alternate on the same pooled connection
ACME=11111111-1111-4111-8111-111111111111
GLOBEX=22222222-2222-4222-8222-222222222222
# The seed's members of each org (user ids end in these digits).
ACME_USERS='["aaaaaaaa-0000-4000-8000-000000000001","aaaaaaaa-0000-4000-8000-000000000002","aaaaaaaa-0000-4000-8000-000000000003"]'
GLOBEX_USERS='["aaaaaaaa-0000-4000-8000-000000000004","aaaaaaaa-0000-4000-8000-000000000005"]'
# alternate LABEL N: N rounds of acme then globex (org, members, audit); every
# answer must hold exactly its own org's data.
alternate() {
    local label=$1 n=$2 bad=0 i tok users slug
    for i in $(seq 1 "$n"); do
        for who in acme globex; do
            if [ $who = acme ]; then tok=$ALICE users=$ACME_USERS slug=acme; else tok=$BOB users=$GLOBEX_USERS slug=globex; fi
            req GET /v1/orgs/current -H "$(auth "$tok")"
            jq -e --arg s $slug '.slug == $s' <<<"$BODY" >/dev/null 2>&1 || { bad=$((bad + 1)); echo "# org: $STATUS $BODY"; }
            req GET /v1/orgs/current/members -H "$(auth "$tok")"
            jq -e --argjson u "$users" '[.data[].user_id] | sort == ($u | sort)' <<<"$BODY" >/dev/null 2>&1 ||
                { bad=$((bad + 1)); echo "# members: $STATUS ${BODY:0:200}"; }
            req GET "/v1/audit?limit=50" -H "$(auth "$tok")"
            jq -e --argjson u "$users" '(.data | length) > 0 and all(.data[]; .actor as $a | $u | index($a))' \
                <<<"$BODY" >/dev/null 2>&1 || { bad=$((bad + 1)); echo "# audit: $STATUS ${BODY:0:200}"; }
        done
    done
    check "$label: $n rounds of org A / org B requests, each answer only its own org's" test "$bad" = 0
}

fresh_db single && seed single "$ROOT/seed/dev" || { not_ok "the single-connection database"; exit 1; }
# prepare = on here: the statements stay prepared on the one connection, and a
# restart below must lose them with it, not leave the pool asking for them.
# The principal cache is off in this file: GET /v1/orgs/current then asks
# PostgreSQL for the caller and its org on every request (with it on, the org
# comes from the cache and the request never reaches PostgreSQL: 70_cache.sh).
TESSERA_FLEET_WORKERS=1 stack_up TESSERA_ENGINE=postgres "TESSERA_DB_CORE_DSN=$(app_dsn single tessera-single)" \
    TESSERA_DB_CONNECTION_LIMIT=1 TESSERA_DB_PREPARE=on TESSERA_REDIS_URL="$REDIS_URL" TESSERA_CACHE_PRINCIPAL=off ||
    { not_ok "a one-worker fleet on postgres starts"; exit 1; }
ok "a one-worker fleet on postgres (connection_limit = 1, prepare = on) starts"
login alice@acme.test; ALICE=$TOKEN
login bob@globex.test; BOB=$TOKEN
check "both logins succeed" test "$ALICE" != null -a "$BOB" != null
alternate "one pooled connection" 15
check "all of it went over one server connection" \
    test "$(owner single "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tessera-single'")" = 1
pg_psql postgres -c "ALTER SYSTEM SET log_statement = 'all'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.3
req GET /v1/orgs/current -H "$(auth "$ALICE")"
req GET /v1/orgs/current -H "$(auth "$ALICE")"
sleep 0.3
pg_psql postgres -c "ALTER SYSTEM RESET log_statement" -c "SELECT pg_reload_conf()" >/dev/null
check "with prepare = on, queries run as named statements (the log says execute tpN), none unnamed" \
    bash -c "grep -q 'execute tp[0-9]*: SELECT o.id, o.name, o.slug, o.plan' '$PG_DIR/server.log' &&
             ! grep -q 'execute <unnamed>: SELECT o.id, o.name, o.slug, o.plan' '$PG_DIR/server.log'"

req GET /readyz
expect "readyz reports the core pool and Redis" 200 \
    '.checks.db_core.status == "ok" and .checks.db_core.backend == "postgres" and .checks.kv.backend == "redis"'
req GET /metrics
check "metrics show the pool (limit 1, one connection open)" bash -c "
    grep -q '^tessera_db_pool_limit{pool=\"core\",pid=\"[0-9]*\"} 1$' <<<\"\$1\" &&
    grep -q '^tessera_db_pool_open{pool=\"core\",pid=\"[0-9]*\"} 1$' <<<\"\$1\" &&
    grep -q '^tessera_db_pool_connects_total{pool=\"core\"' <<<\"\$1\"" _ "$BODY"

# --- a PostgreSQL restart mid-run: in-flight requests may fail (never a 500), the next ones succeed
( for i in $(seq 1 60); do
      curl -s -o /dev/null -w '%{http_code}\n' -H "$(auth "$ALICE")" "$URL/v1/orgs/current"
      sleep 0.05
  done >"$T/during.txt" ) &
during=$!
sleep 0.5
pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR" -m fast -w -t 30 restart -l "$PG_DIR/server.log" >/dev/null 2>&1
restarted=$?
wait "$during"
check "PostgreSQL restarts" test "$restarted" = 0
check "requests during the restart got 200 or 503, never a 500 ($(sort "$T/during.txt" | uniq -c | tr -s ' \n' ' '))" \
    bash -c "! grep -qv '^\\(200\\|503\\)$' '$T/during.txt'"
after=$(for i in $(seq 1 20); do curl -s -o /dev/null -w '%{http_code}\n' -H "$(auth "$BOB")" "$URL/v1/orgs/current"; done | sort | uniq -c | tr -s ' \n' ' ')
check "after the restart every request succeeds again, without restarting the fleet ($after)" test "$after" = " 20 200 "

# --- PostgreSQL down: readyz says which dependency, healthz stays up
pg_stop
req GET /readyz
expect "with PostgreSQL down readyz is 503 and names the core pool" 503 \
    '.status == "unavailable" and .checks.db_core.status == "down" and .checks.kv.status == "ok"'
req GET /healthz
expect "healthz stays 200" 200
req GET /v1/orgs/current -H "$(auth "$ALICE")"
expect_error "an authenticated request gets 503 unavailable, not a 500" 503 unavailable
pg_start
req GET /v1/orgs/current -H "$(auth "$ALICE")"
expect "PostgreSQL back: requests succeed again" 200 '.slug == "acme"'
stack_down

# --- through PgBouncer in transaction pooling: two workers share one server connection
pgbouncer_up single single 1 || { not_ok "PgBouncer starts"; exit 1; }
TESSERA_FLEET_WORKERS=2 stack_up TESSERA_ENGINE=postgres \
    "TESSERA_DB_CORE_DSN=host=127.0.0.1 port=$PB_PORT dbname=single user=tessera_app application_name=tessera-pgb" \
    TESSERA_REDIS_URL="$REDIS_URL" TESSERA_CACHE_PRINCIPAL=off || { not_ok "a fleet behind PgBouncer starts"; exit 1; }
ok "a two-worker fleet reaches PostgreSQL through PgBouncer (pool_mode = transaction, one server connection)"
login alice@acme.test; ALICE=$TOKEN
login bob@globex.test; BOB=$TOKEN
alternate "through PgBouncer" 10
# concurrent, so the two workers' transactions interleave on the one server connection
seq 1 40 | xargs -P 4 -I{} sh -c '
    if [ $(({} % 2)) = 0 ]; then t=$1 s=acme; else t=$2 s=globex; fi
    curl -s -H "Authorization: Bearer $t" "$3/v1/orgs/current" | jq -r --arg s $s "if .slug == \$s then \"ok\" else \"leak \(.)\" end"
' _ "$ALICE" "$BOB" "$URL" >"$T/pgb-concurrent.txt"
check "40 concurrent org A / org B requests through PgBouncer: each sees only its own org" \
    test "$(sort "$T/pgb-concurrent.txt" | uniq -c | tr -s ' \n' ' ')" = " 40 ok "
req POST /v1/auth/signup -H "$J" -d '{"email":"pgb@example.test","password":"pgbouncer-pass-1","org_name":"Bouncer"}'
expect "signup (org, user, membership, audit in one transaction) works through PgBouncer" 201
burst=$(refresh_burst "$(jq -r .refresh_token <<<"$BODY")" 20 pgb-burst)
children=$(awk '$1 == 200 { print $2 }' <<<"$burst" | sort -u)
check "20 concurrent refreshes of one token through PgBouncer: all 200, all with one and the same child" \
    test "$(awk '$1 == 200' <<<"$burst" | wc -l)" = 20 -a "$(wc -l <<<"$children")" = 1 -a "$children" != -
req POST /v1/auth/refresh -H "$J" -d "{\"refresh_token\":\"$children\"}"
expect "and that child rotates in its turn" 200 '.refresh_token | startswith("rt_")'
check "PgBouncer kept a single server connection to PostgreSQL" \
    test "$(owner single "SELECT count(*) FROM pg_stat_activity WHERE datname = 'single' AND usename = 'tessera_app'")" = 1
stack_down

# --- pools open lazily, per mode: test traffic never connects for live
fresh_db lazy && seed lazy "$ROOT/seed/dev" && seed lazy "$ROOT/seed/demo" ||
    { not_ok "the lazy-pools database (seed/dev and seed/demo)" "$OUT"; exit 1; }
log_at=$(wc -c <"$T/fleet.log" 2>/dev/null || echo 0)
TESSERA_FLEET_WORKERS=2 stack_up TESSERA_ENGINE=postgres TESSERA_DB_CONNECTION_LIMIT=2 \
    "TESSERA_DB_CORE_DSN=$(app_dsn lazy tessera-core)" "TESSERA_DB_TEST_DSN=$(app_dsn lazy tessera-test)" \
    "TESSERA_DB_LIVE_DSN=$(app_dsn lazy tessera-live)" TESSERA_REDIS_URL="$REDIS_URL" ||
    { not_ok "a fleet with a DSN per mode starts"; exit 1; }
conns() { owner lazy "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$1'"; }
# The fleet's upkeep runs once at start in a child of its own, which connects
# (core, and each mode's store for its relay) and exits: on a loaded machine
# it may still be connected when the workers are ready. Its connections are
# not the workers' pools: wait for its line and for them to go (the workers'
# would stay), then look.
wait_until 30 sh -c "tail -c +$((log_at + 1)) '$T/fleet.log' | grep -q '\"event\":\"maintenance\"'"
no_conns() { test "$(conns tessera-core) $(conns tessera-test) $(conns tessera-live)" = "0 0 0"; }
wait_until 10 no_conns
check "a fresh fleet holds no connection at all (pools open on first use)" no_conns
login admin@example.com; ADMIN=$TOKEN
for i in $(seq 1 20); do
    req GET /v1/svc/crm/companies -H "$(auth "$ADMIN")"
    [ "$STATUS" = 200 ] || break
done
expect "test-mode record reads succeed" 200
for i in $(seq 1 6); do req GET /v1/orgs/current -H "$(auth "$ADMIN")" -H 'Tessera-Mode: test'; done
check "only-test traffic: no connection for live in pg_stat_activity" test "$(conns tessera-live)" = 0
check "connections within workers x modes used x connection_limit + core (2x1x2 + 2x2)" \
    test "$(conns tessera-test)" -ge 1 -a "$(conns tessera-test)" -le 4 -a "$(conns tessera-core)" -le 4
req GET /readyz
expect "readyz lists the opened test pool and not the unopened live one" 200 \
    '(.checks | has("db_core")) and (.checks.db_test.status == "ok" or .checks.db_test == null) and (.checks | has("db_live") | not)'
req GET /v1/svc/crm/companies -H "$(auth "$ADMIN")" -H 'Tessera-Mode: live'
check "a live request opens the live pool only then" test "$(conns tessera-live)" -ge 1
stack_down

# --- RLS on every tenant table of every schema (core and the services' data
# schemas the demo seed made), listed from the catalog: a table with org_id
# and no forced policy fails here, whoever added it.
app() { psql -X -At -q -v ON_ERROR_STOP=1 "$(app_dsn lazy)" "$@"; }
unguarded=$(owner lazy "
    SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
      AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped)
      AND NOT (c.relrowsecurity AND c.relforcerowsecurity AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid))")
check "every table with org_id, in any schema, has RLS enabled, forced and a policy" test -z "$unguarded"
TABLES=$(owner lazy "
    SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped)
    ORDER BY 1")
svc_rows=$(owner lazy "SELECT count(*) FROM (SELECT 1 FROM pg_namespace WHERE nspname LIKE 'svc\\_%') s")
check "the demo seed made data schemas whose tables the next checks cover ($(echo $TABLES | wc -w) tenant tables)" \
    test "$svc_rows" -gt 0
for tbl in $TABLES; do
    total=$(owner lazy "SELECT count(*) FROM $tbl")
    got=$(app -c "SELECT set_config('tessera.org_id', '$ACME', false)" \
        -c "SELECT count(*) FILTER (WHERE org_id <> '$ACME') FROM $tbl" 2>&1 | tail -1)
    none=$(app -c "SELECT count(*) FROM $tbl" 2>&1 | tail -1)
    if [ "$got" = 0 ] && { [ "$none" = 0 ] || grep -q ERROR <<<"$none"; }; then
        ok "$tbl ($total rows): the app sees no other org's rows, and none with no org set"
    else not_ok "$tbl ($total rows): the app sees no other org's rows, and none with no org set" "other orgs: $got; no org: $none"; fi
done
