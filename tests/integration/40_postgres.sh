#!/usr/bin/env bash
# Issue 5, the database half: `tessera migrate` against a real PostgreSQL
# (applies once, twice is a no-op, dry run, tampered file refused, concurrent
# runs serialised), and the core schema's isolation proven as the app role with
# psql: RLS on every tenant table the catalog lists, WITH CHECK, an append-only
# audit log, partitions made ahead, and an app role that owns and bypasses nothing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg.sh"

pg_up || { not_ok "postgresql starts"; exit 1; }
ok "postgresql starts (initdb in the suite's folder, as postgres, on a free port)"
redis_up || { not_ok "redis starts"; exit 1; }
check "redis starts on a free port" redis-cli -p "$REDIS_PORT" ping

export TESSERA_ENV=test TESSERA_DB_MIGRATE_DSN=$PG_OWNER_DSN TESSERA_DB_SQL_DIR=$ROOT/sql
NFILES=$(ls "$ROOT"/sql/[0-9]*_*.sql | wc -l)

owner_sql() { psql -X -At -q -v ON_ERROR_STOP=1 "$PG_OWNER_DSN" "$@"; }
app_sql() { psql -X -At -q -v ON_ERROR_STOP=1 "$PG_APP_DSN" "$@"; }
# migrate [ARGS]: runs `tessera migrate`, sets OUT (stdout+stderr) and RC.
migrate() { OUT=$("$TESSERA" migrate "$@" 2>&1); RC=$?; }
# fails_with NAME PATTERN COMMAND...: the command fails and says PATTERN (the right reason).
fails_with() {
    local name=$1 pat=$2 out; shift 2
    if out=$("$@" 2>&1); then not_ok "$name" "succeeded: $out"
    elif grep -qiE "$pat" <<<"$out"; then ok "$name"
    else not_ok "$name" "failed for another reason: $out"; fi
}

# --- migrate
migrate --dry-run
if [ "$RC" = 0 ] && grep -q "would apply 0001_core.sql" <<<"$OUT" &&
    [ "$(grep -c '^would apply ' <<<"$OUT")" = "$NFILES" ]; then
    ok "migrate --dry-run on a fresh database lists every file"
else not_ok "migrate --dry-run on a fresh database lists every file" "rc $RC: $OUT"; fi
check "a dry run creates nothing" test "$(owner_sql -c "SELECT to_regnamespace('core') IS NULL")" = t

migrate
if [ "$RC" = 0 ] && [ "$(owner_sql -c 'SELECT count(*) FROM core.schema_migrations')" = "$NFILES" ]; then
    ok "migrate applies every file and records each in core.schema_migrations"
else not_ok "migrate applies every file and records each in core.schema_migrations" "rc $RC: $OUT"; fi
check "each record carries the file's sha256" test \
    "$(owner_sql -c "SELECT checksum FROM core.schema_migrations WHERE filename = '0001_core.sql'")" = \
    "$(sha256sum "$ROOT/sql/0001_core.sql" | cut -d' ' -f1)"

migrate
if [ "$RC" = 0 ] && ! grep -q '^applied ' <<<"$OUT" && grep -q "^0 of $NFILES migrations applied" <<<"$OUT"; then
    ok "a second migrate applies nothing"
else not_ok "a second migrate applies nothing" "rc $RC: $OUT"; fi
migrate --dry-run
if [ "$RC" = 0 ] && ! grep -q '^would apply' <<<"$OUT"; then ok "--dry-run lists nothing pending after a migrate"
else not_ok "--dry-run lists nothing pending after a migrate" "rc $RC: $OUT"; fi

for f in "$ROOT"/sql/[0-9]*_*.sql; do
    check "every statement of $(basename "$f") is idempotent (replayed by hand)" \
        owner_sql -c "SET client_min_messages = warning" -f "$f"
done
check "core.resources is keyed by (service, mode, name)" test "$(owner_sql -c "
    SELECT pg_get_constraintdef(oid) FROM pg_constraint
    WHERE conrelid = 'core.resources'::regclass AND contype = 'p'")" = "PRIMARY KEY (service, mode, name)"

mkdir "$T/sql" && cp "$ROOT"/sql/*.sql "$T/sql/"
printf '\n-- an edit after the fact\n' >>"$T/sql/0001_core.sql"
OUT=$(TESSERA_DB_SQL_DIR=$T/sql "$TESSERA" migrate 2>&1); RC=$?
if [ "$RC" = 1 ] && grep -q "0001_core.sql: changed since it was applied" <<<"$OUT"; then
    ok "a tampered applied file is refused, naming the file (exit 1)"
else not_ok "a tampered applied file is refused, naming the file (exit 1)" "rc $RC: $OUT"; fi
OUT=$(TESSERA_DB_SQL_DIR=$T/sql "$TESSERA" migrate --dry-run 2>&1); RC=$?
check "--dry-run refuses a tampered file too" test "$RC" = 1

cp "$ROOT"/sql/*.sql "$T/sql/"
printf 'CREATE TABLE core.half_done (id int);\n\nCREATE TABEL core.oops (id int);\n' >"$T/sql/9999_broken.sql"
OUT=$(TESSERA_DB_SQL_DIR=$T/sql "$TESSERA" migrate 2>&1); RC=$?
if [ "$RC" = 1 ] && grep -q "9999_broken.sql: .*syntax error.*(line 3)" <<<"$OUT"; then
    ok "a failing file is reported with its name and line"
else not_ok "a failing file is reported with its name and line" "rc $RC: $OUT"; fi
check "a failing file leaves nothing behind (one transaction per file)" test \
    "$(owner_sql -c "SELECT to_regclass('core.half_done') IS NULL AND
        NOT EXISTS (SELECT 1 FROM core.schema_migrations WHERE filename = '9999_broken.sql')")" = t
rm "$T/sql/9999_broken.sql"
printf 'CREATE TABLE IF NOT EXISTS core.probe_added_later (id int);\n' >"$T/sql/9998_added_later.sql"
OUT=$(TESSERA_DB_SQL_DIR=$T/sql "$TESSERA" migrate 2>&1); RC=$?
if [ "$RC" = 0 ] && [ "$(grep '^applied ' <<<"$OUT")" = "applied 9998_added_later.sql" ]; then
    ok "a file added later is the only one a migrate then applies"
else not_ok "a file added later is the only one a migrate then applies" "rc $RC: $OUT"; fi

pg_createdb tessera_race
RACE_DSN="host=$PG_SOCK port=$PG_PORT dbname=tessera_race user=tessera_owner"
for k in 1 2 3; do
    TESSERA_DB_MIGRATE_DSN=$RACE_DSN "$TESSERA" migrate >"$T/race$k.out" 2>"$T/race$k.err" &
    PIDS+=($!)
done
race_ok=1
for k in 1 2 3; do
    wait "${PIDS[-$k]}" || race_ok=0
done
if [ "$race_ok" = 1 ] && ! grep -q . "$T"/race?.err &&
    [ "$(cat "$T"/race?.out | grep -c '^applied ')" = "$NFILES" ] &&
    [ "$(psql -X -At "$RACE_DSN" -c 'SELECT count(*) FROM core.schema_migrations')" = "$NFILES" ]; then
    ok "three concurrent migrates on a fresh database all succeed and apply each file once"
else not_ok "three concurrent migrates on a fresh database all succeed and apply each file once" \
    "$(tail -n +1 "$T"/race?.out "$T"/race?.err)"; fi

# --- fixtures: two orgs with a row in every tenant table, written as the owner
A=aaaaaaaa-0000-4000-8000-00000000000a
B=bbbbbbbb-0000-4000-8000-00000000000b
UA=aaaaaaaa-0000-4000-8000-0000000000a1
UB=bbbbbbbb-0000-4000-8000-0000000000b1
fixture() { # org user letter
    cat <<SQL
INSERT INTO core.organizations (id, name, slug) VALUES ('$1', 'Org $3', 'org-$3');
INSERT INTO core.users (id, email_enc, email_hmac, password_hash)
    VALUES ('$2', 'sealed-$3', repeat('$3', 64), '\$scrypt\$x');
INSERT INTO core.memberships (org_id, user_id, role) VALUES ('$1', '$2', 'owner');
INSERT INTO core.roles (org_id, name, permissions) VALUES ('$1', 'auditor', ARRAY['audit:read:*']);
INSERT INTO core.api_keys (id, org_id, mode, name, prefix, key_hash, role, created_by)
    VALUES (gen_random_uuid(), '$1', 'test', 'ci', 'tk_test_$3', repeat('$3', 63) || '1', 'admin', '$2');
INSERT INTO core.refresh_tokens (id, family_id, user_id, org_id, mode, token_hash, expires_at)
    VALUES (gen_random_uuid(), gen_random_uuid(), '$2', '$1', 'test', repeat('$3', 63) || '2',
            now() + interval '30 days');
INSERT INTO core.invites (id, org_id, role, token_hash, created_by, expires_at)
    VALUES (gen_random_uuid(), '$1', 'member', repeat('$3', 63) || '3', '$2', now() + interval '7 days');
INSERT INTO core.sessions (id, org_id, user_id, mode, created_at, last_used_at, expires_at)
    VALUES (gen_random_uuid(), '$1', '$2', 'test', now(), now(), now() + interval '30 days');
INSERT INTO core.audit_log (id, org_id, actor, action, target)
    VALUES (gen_random_uuid(), '$1', '$2', 'auth.login', '$2');
INSERT INTO core.audit_relay (id, org_id, actor, action, target, created_at)
    VALUES (gen_random_uuid(), '$1', '$2', 'schema.put', 'crm/x', now());
INSERT INTO core.org_placement (org_id, database) VALUES ('$1', 'db_$3');
SQL
}
check "fixtures for org A and org B go in as the owner" owner_sql -c "$(fixture $A $UA a; fixture $B $UB b)"

# The tenant tables, from the catalog: every table of schema core with an
# org_id column (partitions included), and organizations (isolated on id).
TENANT_TABLES=$(app_sql -c "
    SELECT c.relname || ' ' || c.relispartition FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'core' AND c.relkind IN ('r', 'p')
      AND (c.relname = 'organizations' OR EXISTS (SELECT 1 FROM pg_attribute a
           WHERE a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped))
    ORDER BY 1")
check "the catalog lists the tenant tables" grep -q '^audit_log false' <<<"$TENANT_TABLES"

while read -r tbl part; do
    col=org_id; [ "$tbl" = organizations ] && col=id
    q="SELECT count(*) FILTER (WHERE $col = '$A') || ' ' || count(*) FILTER (WHERE $col IS DISTINCT FROM '$A')
       FROM core.$tbl"
    got=$(app_sql -c "SELECT set_config('tessera.org_id', '$A', false)" -c "$q" 2>&1 | tail -1)
    if [ "$part" = true ]; then
        # a partition: reached directly, the app gets an error or (RLS forced, no policy) nothing
        if grep -q 'permission denied' <<<"$got" || [ "${got#* }" = 0 ]; then ok "core.$tbl (a partition): no rows of another org reach the app directly"
        else not_ok "core.$tbl (a partition): no rows of another org reach the app directly" "$got"; fi
    elif [ "${got% *}" -gt 0 ] 2>/dev/null && [ "${got#* }" = 0 ]; then
        ok "core.$tbl with tessera.org_id = A: only org A's rows"
    else
        not_ok "core.$tbl with tessera.org_id = A: only org A's rows" \
            "got '$got' (A's rows, others); a new tenant table needs a policy and a row in fixture()"
    fi
    for how in unset empty; do
        unset_sql="SELECT 1"; [ "$how" = empty ] && unset_sql="SELECT set_config('tessera.org_id', '', false)"
        got=$(app_sql -c "$unset_sql" -c "SELECT count(*) FROM core.$tbl" 2>&1 | tail -1)
        label="core.$tbl with tessera.org_id $how: zero rows or an error, never all rows"
        if [ "$got" = 0 ] || grep -qE 'ERROR' <<<"$got"; then ok "$label"; else not_ok "$label" "$got"; fi
    done
done <<<"$TENANT_TABLES"

got=$(app_sql -c "BEGIN" -c "SELECT set_config('tessera.org_id', '$A', true)" -c "SELECT 1 FROM core.memberships" \
    -c "COMMIT" -c "SELECT count(*) FROM core.memberships")
check "after a transaction-local org, the same session sees nothing (the NULLIF case)" test "${got##*$'\n'}" = 0

set_a="SELECT set_config('tessera.org_id', '$A', false)"
fails_with "INSERT into core.memberships for org B while set to A fails (WITH CHECK)" 'row-level security' \
    app_sql -c "$set_a" -c "INSERT INTO core.memberships (org_id, user_id, role) VALUES ('$B', '$UA', 'owner')"
fails_with "INSERT into core.audit_log for org B while set to A fails (WITH CHECK)" 'row-level security' \
    app_sql -c "$set_a" -c "INSERT INTO core.audit_log (id, org_id, action) VALUES (gen_random_uuid(), '$B', 'x')"
fails_with "INSERT into core.organizations of another id while set to A fails (WITH CHECK)" 'row-level security' \
    app_sql -c "$set_a" -c "INSERT INTO core.organizations (id, name, slug) VALUES (gen_random_uuid(), 'C', 'org-c')"
fails_with "UPDATE moving an org A row to org B fails (WITH CHECK)" 'row-level security' \
    app_sql -c "$set_a" -c "UPDATE core.api_keys SET org_id = '$B'"
check "the app writes its own org's audit rows" \
    app_sql -c "$set_a" -c "INSERT INTO core.audit_log (id, org_id, action) VALUES (gen_random_uuid(), '$A', 'x')"

# --- the audit log is append-only
fails_with "UPDATE on core.audit_log as tessera_app fails" 'permission denied|append-only' \
    app_sql -c "$set_a" -c "UPDATE core.audit_log SET action = 'forged'"
fails_with "DELETE on core.audit_log as tessera_app fails" 'permission denied|append-only' \
    app_sql -c "$set_a" -c "DELETE FROM core.audit_log"
fails_with "TRUNCATE on core.audit_log as tessera_app fails" 'permission denied|append-only' \
    app_sql -c "TRUNCATE core.audit_log"
fails_with "UPDATE on core.audit_log fails even as the owner (row trigger)" 'append-only: UPDATE' \
    owner_sql -c "UPDATE core.audit_log SET action = 'forged'"
fails_with "DELETE on core.audit_log fails even as the owner (row trigger)" 'append-only: DELETE' \
    owner_sql -c "DELETE FROM core.audit_log"
fails_with "TRUNCATE on core.audit_log fails even as the owner (statement trigger)" 'append-only: TRUNCATE' \
    owner_sql -c "TRUNCATE core.audit_log"
part=$(owner_sql -c "SELECT 'core.audit_log_' || to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM')")
fails_with "TRUNCATE on this month's partition fails even as the owner" 'append-only: TRUNCATE' \
    owner_sql -c "TRUNCATE $part"
check "the audit rows are all still there" test "$(owner_sql -c 'SELECT count(*) FROM core.audit_log')" = 3

for m in 0 1 2; do
    p=$(owner_sql -c "SELECT 'audit_log_' || to_char(date_trunc('month', now() AT TIME ZONE 'UTC') + interval '$m month', 'YYYY_MM')")
    check "audit partition $p exists (month +$m)" test \
        "$(owner_sql -c "SELECT count(*) FROM pg_inherits WHERE inhparent = 'core.audit_log'::regclass
                         AND inhrelid = to_regclass('core.$p')")" = 1
done

# --- the roles
check "every tenant table has relforcerowsecurity (partitions too)" test "$(owner_sql -c "
    SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'core' AND c.relkind IN ('r', 'p')
      AND (c.relname = 'organizations' OR EXISTS (SELECT 1 FROM pg_attribute a
           WHERE a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped))
      AND NOT (c.relrowsecurity AND c.relforcerowsecurity)")" = 0
check "tessera_app is NOBYPASSRLS, not superuser, and owns nothing" test "$(owner_sql -c "
    SELECT NOT rolbypassrls AND NOT rolsuper AND NOT rolcreaterole
       AND NOT EXISTS (SELECT 1 FROM pg_class WHERE relowner = r.oid)
       AND NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspowner = r.oid)
       AND NOT EXISTS (SELECT 1 FROM pg_proc WHERE proowner = r.oid)
    FROM pg_roles r WHERE rolname = 'tessera_app'")" = t
check "tessera_app has no TRUNCATE and no REFERENCES on any core table" test "$(owner_sql -c "
    SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'core' AND c.relkind IN ('r', 'p')
      AND (has_table_privilege('tessera_app', c.oid, 'TRUNCATE')
           OR has_table_privilege('tessera_app', c.oid, 'REFERENCES'))")" = 0
check "tessera_app may only INSERT and SELECT core.audit_log" test "$(owner_sql -c "
    SELECT string_agg(p, ',' ORDER BY p) FROM unnest(ARRAY['SELECT','INSERT','UPDATE','DELETE','TRUNCATE','REFERENCES','TRIGGER']) p
    WHERE has_table_privilege('tessera_app', 'core.audit_log', p)")" = "INSERT,SELECT"
fails_with "tessera_app cannot read core.schema_migrations" 'permission denied' \
    app_sql -c "SELECT * FROM core.schema_migrations"
check "every SECURITY DEFINER function has a fixed search_path and no EXECUTE for PUBLIC" test "$(owner_sql -c "
    SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = 'core' AND p.prosecdef
      AND (NOT coalesce('search_path=core, pg_temp' = ANY (p.proconfig), false)
           OR p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) x WHERE x.grantee = 0))")" = 0
check "the bootstrap lookups find a credential across orgs with no org set" test "$(app_sql -c "
    SELECT concat((SELECT count(*) FROM core.api_key_resolve(repeat('b', 63) || '1')),
                  (SELECT count(*) FROM core.refresh_resolve(repeat('b', 63) || '2')),
                  (SELECT count(*) FROM core.invite_resolve(repeat('b', 63) || '3')),
                  (SELECT count(*) FROM core.user_memberships('$UB')))")" = 1111
p3=$(owner_sql -c "SELECT 'audit_log_' || to_char(date_trunc('month', now() AT TIME ZONE 'UTC') + interval '3 month', 'YYYY_MM')")
check "the app (the projector) makes partitions ahead through core.ensure_audit_partitions" test \
    "$(app_sql -c "SELECT core.ensure_audit_partitions(3)")" = 1
check "a partition the app made is the owner's, with RLS forced" test "$(owner_sql -c "
    SELECT pg_get_userbyid(relowner) || ' ' || relforcerowsecurity FROM pg_class
    WHERE oid = to_regclass('core.$p3')")" = "tessera_owner true"
fails_with "core.ensure_audit_partitions refuses more than 24 months ahead" 'out of 0..24' \
    app_sql -c "SELECT core.ensure_audit_partitions(25)"
check "the built-in roles are there, once each, with the engine's permissions" test "$(app_sql -c "
    SELECT string_agg(name || '=' || cardinality(permissions), ',' ORDER BY name) FROM core.builtin_roles()")" = \
    "admin=7,member=3,owner=1,viewer=1"
