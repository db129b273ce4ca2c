#!/usr/bin/env bash
# Issue 11 §1: a service's resource schemas are the platform's (DESIGN §8).
# Every org that uses a service keeps its records in the same tables, so only
# a platform admin (or a platform key one made), from the platform's org,
# changes a schema; no org role can grant it. A refused cast names the field
# and a count, never another tenant's value. Field names that PostgreSQL
# keeps for system columns are refused alike on both engines. On PostgreSQL
# the DDL function refuses the same callers (as the app role, with psql), and
# a schema change and its audit row commit together or the relay delivers the
# row exactly once.
# engines: memory postgres
. "$(dirname "$0")/lib.sh"

stack_up TESSERA_FLEET_MAINTENANCE_INTERVAL=1 || { not_ok "stack starts"; exit 1; }
ok "stack starts with the dev seed"
J='Content-Type: application/json'

put_schema() { # token resource json
    req PUT "/v1/svc/crm/schema/$2" -H "$(auth "$1")" -H "$J" -d "$3"
}
login admin@example.com; ADMIN=$TOKEN      # platform admin, owner of Acme (a platform org)
login alice@acme.test; ALICE=$TOKEN        # admin of Acme, not a platform admin
login bob@globex.test; BOB=$TOKEN          # owner of Globex, a customer

# --- the fleet's table, for the console (issue 16)
req GET /v1/admin/fleet -H "$(auth "$ADMIN")"
expect "a platform admin reads the fleet's process table" 200 \
    '(.slots | map(select(.role == "api" and .pid > 0 and .state != null)) | length) >= 1 and .master_pid > 0'
req GET /v1/admin/fleet -H "$(auth "$ALICE")"
expect_error "an org admin who is no platform admin may not → 403" 403 forbidden

# --- who may shape a schema
put_schema "$ADMIN" notes '{"fields":{"secret":{"type":"string"},"n":{"type":"integer"}}}'
expect "a platform admin defines a resource" 200 '.version == 1 and .fields.n.type == "integer"'
req POST /v1/svc/crm/notes -H "$(auth "$BOB")" -H "$J" -d '{"secret":"s3cr3t","n":5}'
expect "a customer stores a record in it" 201 '.secret == "s3cr3t" and .n == 5'
BOB_NOTE=$(jq -r .id <<<"$BODY")
req GET /v1/svc/crm/notes -H "$(auth "$BOB")"
BEFORE=$BODY

put_schema "$BOB" notes '{"fields":{"n":{"type":"string"}}}'
expect_error "a customer org's owner may not change a shared schema → 403" 403 forbidden
put_schema "$ALICE" notes '{"fields":{"n":{"type":"string"}}}'
expect_error "an org admin who is no platform admin → 403 (even in a platform org)" 403 forbidden
req POST /v1/auth/signup -H "$J" -d '{"email":"eve@evil.test","password":"correct horse battery","org_name":"Evil"}'
expect "a new customer signs up as owner of a new org" 201 '.role == "owner" and .org.platform == false'
EVE=$(jq -r .access_token <<<"$BODY")
put_schema "$EVE" notes '{"fields":{"secret":{"type":"integer"}}}'
expect_error "a freshly signed-up owner (role *:*) → 403" 403 forbidden
put_schema "$EVE" brand_new '{"fields":{"x":{"type":"string"}}}'
expect_error "… also for a resource nobody has defined yet" 403 forbidden
req POST /v1/roles -H "$(auth "$BOB")" -H "$J" -d '{"name":"shaper","permissions":["schema:write:*"]}'
expect "schema:write is not an org permission: a role that names it → 422" 422 \
    '.error.code == "validation_failed" and (.error.details.permissions | test("platform"))'
req GET /v1/roles -H "$(auth "$BOB")"
expect "no built-in role grants schema:write" 200 '[.data[].permissions[] | select(startswith("schema:"))] | length == 0'
req GET /v1/svc/crm/notes -H "$(auth "$BOB")"
check "org B's records are byte-identical after the refused attempts" test "$BODY" = "$BEFORE"
req GET /v1/svc/crm/schema -H "$(auth "$BOB")"
expect "every caller of the service still reads the schema" 200 '.resources.notes.version == 1'
req GET /v1/audit -H "$(auth "$ADMIN")"
expect "the change is audited in the platform org's trail" 200 \
    '[.data[] | select(.action == "schema.put" and .target == "crm/notes")] | length == 1'

# --- API keys: a platform key only from a platform admin
req POST /v1/auth/api-keys -H "$(auth "$BOB")" -H "$J" -d '{"name":"ci","platform":true}'
expect_error "a customer cannot make a platform key → 403" 403 forbidden
req POST /v1/auth/api-keys -H "$(auth "$ADMIN")" -H "$J" -d '{"name":"ci","platform":"yes"}'
expect "platform must be a boolean → 422" 422 '.error.details.platform | length > 0'
req POST /v1/auth/api-keys -H "$(auth "$ADMIN")" -H "$J" -d '{"name":"plain"}'
expect "a platform admin's ordinary key" 201 '.platform == false'
PLAIN=$(jq -r .key <<<"$BODY")
req POST /v1/auth/api-keys -H "$(auth "$ADMIN")" -H "$J" -d '{"name":"shaper","platform":true}'
expect "a platform admin's platform key" 201 '.platform == true'
PKEY=$(jq -r .key <<<"$BODY")
put_schema "$PLAIN" notes '{"fields":{"secret":{"type":"string"},"n":{"type":"integer"},"tag":{"type":"string"}}}'
expect_error "a key that does not say platform → 403, whoever made it" 403 forbidden
put_schema "$PKEY" notes '{"fields":{"secret":{"type":"string"},"n":{"type":"integer"},"tag":{"type":"string"}}}'
expect "the platform key changes the schema" 200 '.version == 2 and .fields.tag.type == "string"'

# --- a refused cast: the field and a count, never another tenant's value
put_schema "$ADMIN" notes '{"fields":{"secret":{"type":"integer"},"n":{"type":"integer"},"tag":{"type":"string"}}}'
expect "a cast org B's value refuses → 409 naming the field and how many records" 409 \
    '.error.code == "conflict" and (.error.message | test("field secret")) and (.error.message | test("1 record"))'
check "… and the message holds none of org B's values" bash -c '! grep -q s3cr3t <<<"$1"' _ "$BODY"
req GET "/v1/svc/crm/notes/$BOB_NOTE" -H "$(auth "$BOB")"
expect "… and org B's record is as it was" 200 '.secret == "s3cr3t" and .n == 5'

# --- names PostgreSQL keeps for system columns
for col in ctid xmin xmax cmin cmax tableoid oid; do
    put_schema "$ADMIN" sys "{\"fields\":{\"$col\":{\"type\":\"string\"}}}"
    expect "field name $col → 422 naming it" 422 ".error.code == \"validation_failed\" and (.error.details[\"fields.$col\"] | length > 0)"
done

if [ "${ENGINE:-memory}" = postgres ]; then
    owner_sql() { psql -X -At -q -v ON_ERROR_STOP=1 "$PG_DB_OWNER_DSN" "$@"; }
    app_sql() { psql -X -At -q -v ON_ERROR_STOP=1 "$PG_DB_APP_DSN" "$@"; }
    fails_with() { # name pattern command...
        local name=$1 pat=$2 out; shift 2
        if out=$("$@" 2>&1); then not_ok "$name" "succeeded: $out"
        elif grep -qiE "$pat" <<<"$out"; then ok "$name"
        else not_ok "$name" "failed for another reason: $out"; fi
    }
    ACME=11111111-1111-4111-8111-111111111111
    GLOBEX=22222222-2222-4222-8222-222222222222
    DEF='{"name":"notes","fields":[{"name":"n","type":"string"}]}'
    put_fn() { # org-setting-sql
        app_sql -c "$1" -c "SELECT core.svc_resource_put('crm', 'test', '$DEF', '[]', 0, NULL)"
    }
    fails_with "the DDL function refuses the app role with no org set" 'platform' put_fn "SELECT 1"
    fails_with "… and with a customer org set" 'platform' \
        put_fn "SELECT set_config('tessera.org_id', '$GLOBEX', false)"
    check "org B's value survived both calls" test \
        "$(owner_sql -c "SELECT secret || ':' || n FROM svc_crm_sandbox.notes WHERE id = '$BOB_NOTE'")" = "s3cr3t:5"
    fails_with "the app role cannot make its org a platform org" 'permission denied' \
        app_sql -c "SELECT set_config('tessera.org_id', '$GLOBEX', false)" \
                -c "UPDATE core.organizations SET is_platform = true"
    check "the app role may still call it from the platform org (the API's path)" \
        put_fn "SELECT set_config('tessera.org_id', '$ACME', false)"

    # The audit insert fails at COMMIT (a deferred trigger): the change has
    # committed on the data connection, its relay row with it; the
    # maintenance delivers the audit row once the log accepts it again.
    owner_sql -c "CREATE FUNCTION public.no_schema_audit() RETURNS trigger LANGUAGE plpgsql AS \$\$
                  BEGIN IF NEW.action = 'schema.put' THEN RAISE EXCEPTION 'injected audit failure'; END IF;
                  RETURN NEW; END \$\$" \
              -c "CREATE CONSTRAINT TRIGGER no_schema_audit AFTER INSERT ON core.audit_log
                  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.no_schema_audit()"
    audit_rows() { owner_sql -c "SELECT count(*) FROM core.audit_log WHERE action = 'schema.put' AND target = 'crm/$1'"; }
    put_schema "$ADMIN" faulty '{"fields":{"a":{"type":"string"}}}'
    check "with the audit insert failing at commit, the request does not claim success" test "$STATUS" = 503
    check "… the change did commit (data first)" test \
        "$(owner_sql -c "SELECT version FROM core.resources WHERE service = 'crm' AND name = 'faulty'")" = 1
    check "… and its audit entry waits in the relay" test \
        "$(owner_sql -c "SELECT count(*) FROM core.audit_relay WHERE target = 'crm/faulty'")" = 1
    check "… not yet in the log" test "$(audit_rows faulty)" = 0
    owner_sql -c "DROP TRIGGER no_schema_audit ON core.audit_log" -c "DROP FUNCTION public.no_schema_audit()"
    relay_empty() { test "$(owner_sql -c "SELECT count(*) FROM core.audit_relay")" = 0; }
    delivered() { test "$(audit_rows faulty)" = 1; }
    check "once the log accepts rows, the maintenance delivers it (within a few intervals)" wait_until 15 delivered
    wait_until 15 relay_empty
    check "… exactly once, and the relay is empty" test "$(audit_rows faulty):$(owner_sql -c "SELECT count(*) FROM core.audit_relay")" = "1:0"
    sleep 2.5
    check "… and stays exactly once across further maintenance runs" test "$(audit_rows faulty)" = 1

    # The data commit fails instead: neither the change nor an audit row.
    owner_sql -c "CREATE FUNCTION public.no_relay() RETURNS trigger LANGUAGE plpgsql AS \$\$
                  BEGIN RAISE EXCEPTION 'injected data failure'; END \$\$" \
              -c "CREATE CONSTRAINT TRIGGER no_relay AFTER INSERT ON core.audit_relay
                  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.no_relay()"
    put_schema "$ADMIN" doomed '{"fields":{"a":{"type":"string"}}}'
    check "with the data commit failing, the request fails" test "$STATUS" = 503
    check "… the resource does not exist" test \
        "$(owner_sql -c "SELECT count(*) FROM core.resources WHERE service = 'crm' AND name = 'doomed'")" = 0
    sleep 1.5
    check "… and no audit row names it" test "$(audit_rows doomed)" = 0
    owner_sql -c "DROP TRIGGER no_relay ON core.audit_relay" -c "DROP FUNCTION public.no_relay()"
    put_schema "$ADMIN" ordinary '{"fields":{"a":{"type":"string"}}}'
    check "an ordinary change: one audit row and no relay row left behind" \
        test "$(audit_rows ordinary):$(owner_sql -c "SELECT count(*) FROM core.audit_relay")" = "1:0"

    # A serialization failure at COMMIT (as a concurrent transaction would
    # cause) kept nothing: the worker runs the request once more, and after a
    # second one the client is told to retry (409), not 503. The sequence
    # counts attempts outside the transactions (nextval is never rolled back).
    owner_sql -c "CREATE SEQUENCE public.racy_attempts" \
              -c "CREATE FUNCTION public.racy() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
                  SET search_path = pg_catalog AS \$\$
                  BEGIN IF NEW.name = 'racy' OR (NEW.name = 'racy_once' AND nextval('public.racy_attempts') = 1)
                  THEN RAISE EXCEPTION 'injected' USING ERRCODE = 'serialization_failure';
                  END IF; RETURN NEW; END \$\$" \
              -c "CREATE CONSTRAINT TRIGGER racy AFTER INSERT ON core.roles
                  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.racy()"
    req POST /v1/roles -H "$(auth "$BOB")" -H "$J" -d '{"name":"racy_once","permissions":["records:read:*"]}'
    check "one serialization failure at commit: the request is run again and succeeds (201)" test "$STATUS" = 201
    check "… the role is kept once, from the second run" test "$(owner_sql -c "
        SELECT count(*) || ':' || (SELECT last_value FROM public.racy_attempts) FROM core.roles WHERE name = 'racy_once'")" = "1:2"
    check "… and its audit row once" test "$(owner_sql -c "
        SELECT count(*) FROM core.audit_log WHERE org_id = '$GLOBEX' AND action = 'roles.create' AND target = 'racy_once'")" = 1
    req POST /v1/roles -H "$(auth "$BOB")" -H "$J" -d '{"name":"racy","permissions":["records:read:*"]}'
    expect_error "a serialization failure on the second run too → 409 conflict (retry), not 503" 409 conflict
    check "… and nothing of it was kept" test "$(owner_sql -c "SELECT count(*) FROM core.roles WHERE name = 'racy'")" = 0
    check "the fleet's log says the request was run again, then left to the client" \
        bash -c "grep -q 'run again' '$T/fleet.log' && grep -q 'the client retries' '$T/fleet.log'"
    owner_sql -c "DROP TRIGGER racy ON core.roles" -c "DROP FUNCTION public.racy()" -c "DROP SEQUENCE public.racy_attempts"

    # Issue 11 §5: the audit log keeps accepting rows without a migrate.
    cur=$(owner_sql -c "SELECT 'audit_log_' || to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM')")
    nxt=$(owner_sql -c "SELECT 'audit_log_' || to_char(date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month', 'YYYY_MM')")
    # as if no migrate had run for months: this month's partition is gone
    owner_sql -c "ALTER TABLE core.audit_log DETACH PARTITION core.$cur" -c "ALTER TABLE core.$cur RENAME TO old_$cur" \
              -c "ALTER TABLE core.audit_log DETACH PARTITION core.$nxt" -c "DROP TABLE core.$nxt"
    login bob@globex.test
    check "with no partition for this month, a login still succeeds" test "$STATUS" = 200
    check "… and its audit row is stored (in the default partition)" test "$(owner_sql -c "
        SELECT count(*) FROM core.audit_log_default WHERE org_id = '$GLOBEX' AND action = 'auth.login'")" -ge 1
    check "a row dated years past the last partition is stored too" owner_sql -c "
        INSERT INTO core.audit_log (id, org_id, action, created_at)
        VALUES (gen_random_uuid(), '$GLOBEX', 'test.future', now() + interval '5 years')"
    remade() { test "$(owner_sql -c "SELECT to_regclass('core.$nxt') IS NOT NULL")" = t; }
    check "the fleet's maintenance makes next month's partition again" wait_until 10 remade
    check "… with forced RLS and its TRUNCATE trigger, like every partition" test "$(owner_sql -c "
        SELECT c.relrowsecurity AND c.relforcerowsecurity AND EXISTS (SELECT 1 FROM pg_trigger t
            WHERE t.tgrelid = c.oid AND t.tgname = 'audit_log_no_truncate')
        FROM pg_class c WHERE c.oid = 'core.$nxt'::regclass")" = t
    check "the maintenance says what it did in the fleet's log" grep -q '"maintenance"' "$T/fleet.log"
    check "the default partition: forced RLS, no grant to the app, its TRUNCATE trigger" test "$(owner_sql -c "
        SELECT c.relforcerowsecurity AND NOT has_table_privilege('tessera_app', c.oid, 'SELECT')
               AND EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = 'audit_log_no_truncate')
        FROM pg_class c WHERE c.oid = 'core.audit_log_default'::regclass")" = t
fi

check "no 5xx besides the injected failures in the access log" \
    bash -c '! grep "\"status\":5" "$1" | grep -v "/schema/faulty\|/schema/doomed"' _ "$T/fleet.log"
