-- 0006_platform_schemas: a service's resource schemas are the platform's
-- (DESIGN §4, §8; issue 11). Every organization that uses a service stores its
-- records in the same tables, so a schema change rewrites every tenant's data:
-- only the platform's own organization may make one.
--
-- Mechanism. core.organizations.is_platform marks the platform's orgs (the
-- home org of a platform admin: `tessera admin create`, seed data). The app
-- role may set it when it creates an org but can never change it afterwards
-- (no UPDATE on that column), and signup never sets it. core.svc_resource_put,
-- the only way to change a schema, refuses (insufficient_privilege) a call
-- whose transaction carries no tessera.org_id or an org that is not a
-- platform org: a handler that forgot its own check still cannot let a
-- customer reshape other customers' data. The check reads core.organizations
-- of the database the data lives in, the core database unless [db]
-- test_dsn/live_dsn name another; such a database needs the platform org's
-- row too (issue 18 takes up databases per service or tenant).
--
-- The audit of a schema change. The change runs on the data connection, the
-- audit log is written on the core one: two transactions, possibly two
-- databases. So the change writes its audit entry into core.audit_relay in
-- its own transaction; the engine writes the same entry (same id and time)
-- into core.audit_log on core, and once both have committed removes the relay
-- row. Whatever fails in between, the relay row outlives it and the
-- maintenance run (core.audit_relay_pending / _done, every [fleet]
-- maintenance_interval) inserts it with ON CONFLICT DO NOTHING on the log's
-- key (id, created_at): exactly one audit row per committed change.
--
-- Also: field names that are PostgreSQL system columns (ctid, xmin, …) are
-- refused here as the API refuses them; a refused cast reports how many
-- records fail; the built-in admin role loses schema:write, which is no
-- longer an org permission at all; API keys may carry the platform flag.

ALTER TABLE core.organizations ADD COLUMN IF NOT EXISTS is_platform boolean NOT NULL DEFAULT false;
REVOKE UPDATE ON core.organizations FROM tessera_app;
GRANT UPDATE (name, slug, plan) ON core.organizations TO tessera_app;

ALTER TABLE core.api_keys ADD COLUMN IF NOT EXISTS platform boolean NOT NULL DEFAULT false;

UPDATE core.roles SET permissions = array_remove(permissions, 'schema:write:*')
 WHERE org_id IS NULL AND name = 'admin' AND 'schema:write:*' = ANY (permissions);

-- The relay: audit entries of schema changes, waiting for core.audit_log.
-- Under forced RLS with the core policy like every tenant table; tessera_app
-- may read its org's rows and writes or removes them only through the
-- functions below (svc_resource_put, audit_relay_done).
CREATE TABLE IF NOT EXISTS core.audit_relay (
    id         uuid PRIMARY KEY,
    org_id     uuid NOT NULL,
    actor      text NOT NULL DEFAULT '' CHECK (octet_length(actor) < 37),
    action     text NOT NULL CHECK (octet_length(action) < 32),
    target     text NOT NULL DEFAULT '' CHECK (octet_length(target) < 128),
    meta       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL
);
ALTER TABLE core.audit_relay ENABLE ROW LEVEL SECURITY;
ALTER TABLE core.audit_relay FORCE ROW LEVEL SECURITY;
DO $$
BEGIN
    CREATE POLICY tenant_isolation ON core.audit_relay
        USING (org_id = NULLIF(current_setting('tessera.org_id', true), '')::uuid)
        WITH CHECK (org_id = NULLIF(current_setting('tessera.org_id', true), '')::uuid);
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

GRANT SELECT ON core.audit_relay TO tessera_app;

-- The oldest relay rows (at most p_limit), for delivery; changes nothing.
CREATE OR REPLACE FUNCTION core.audit_relay_pending(p_limit integer)
RETURNS TABLE (id uuid, org_id uuid, actor text, action text, target text, meta text, created_at bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = core, pg_temp AS $$
    SELECT r.id, r.org_id, r.actor, r.action, r.target, r.meta::text, extract(epoch FROM r.created_at)::bigint
      FROM core.audit_relay r ORDER BY r.created_at, r.id LIMIT least(greatest(p_limit, 0), 1000)
$$;
-- Forgets relay rows whose entries core.audit_log holds now; returns how many.
CREATE OR REPLACE FUNCTION core.audit_relay_done(p_ids uuid[])
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = core, pg_temp AS $$
DECLARE
    n integer;
BEGIN
    DELETE FROM core.audit_relay WHERE id = ANY (p_ids);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- How many rows of p_table (every org's) match p_where, and one of the
-- caller's org's as a sample ('' when only other orgs' rows match: another
-- org's id is never named; values are never returned). p_where is SQL that
-- svc_resource_put builds (names through %I, types from its whitelist); only
-- the owner may call this.
CREATE OR REPLACE FUNCTION core.svc_failing(p_schema text, p_table text, p_where text,
                                            OUT n bigint, OUT record_id text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    org uuid := NULLIF(current_setting('tessera.org_id', true), '')::uuid;
BEGIN
    EXECUTE format('SELECT count(*), min(id::text) FILTER (WHERE org_id IS NOT DISTINCT FROM $1) '
                   'FROM %I.%I WHERE %s', p_schema, p_table, p_where)
        INTO n, record_id USING org;
    record_id := coalesce(record_id, '');
END $$;

DROP FUNCTION IF EXISTS core.svc_resource_put(text, text, jsonb, jsonb, bigint);

-- As 0004 made it, with four changes: the platform check first, system
-- column names refused, refusals counted (svc_failing), and the audit entry
-- written to the relay with the change.
CREATE OR REPLACE FUNCTION core.svc_resource_put(p_service text, p_mode text, p_def jsonb,
                                                 p_renames jsonb, p_now bigint, p_audit jsonb)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER
-- Fixed as every SECURITY DEFINER function of core has it (0001; 40_postgres
-- checks the exact setting): pg_catalog, absent from the list, is searched
-- first anyway, core is the owner's alone, and every name below is qualified.
SET search_path = core, pg_temp
-- the DDL's notices (IF NOT EXISTS skips) are not the client's business
SET client_min_messages = warning AS $$
DECLARE
    v_schema text := core.svc_schema_name(p_service, p_mode);
    v_table text := p_def->>'name';
    v_fields jsonb := p_def->'fields';
    v_views jsonb := p_def->'views';
    v_old jsonb;             -- the current fields ('[]' for a new resource)
    v_version integer;
    v_rows boolean;
    f jsonb;
    s record;
    hit record;
    probe text;
    why text;
    n int := 0;
    v_pairs text;
    v_col text;
    v_org uuid := NULLIF(current_setting('tessera.org_id', true), '')::uuid;
    reserved constant text[] := ARRAY['id', 'org_id', 'version', 'created_at', 'updated_at',
                                      'expires_at', 'deleted_at', '_bidx',
                                      -- PostgreSQL's system columns (pg_attribute, attnum < 0)
                                      'tableoid', 'cmax', 'xmax', 'cmin', 'xmin', 'ctid', 'oid'];
BEGIN
    -- The platform's own org only: the failsafe under the API's check.
    IF v_org IS NULL OR NOT EXISTS (SELECT 1 FROM core.organizations WHERE id = v_org AND is_platform) THEN
        RAISE EXCEPTION 'svc_resource_put: schema changes are made from the platform''s organization'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_audit IS NOT NULL AND NOT coalesce(jsonb_typeof(p_audit) = 'object'
                                            AND (p_audit->>'org_id')::uuid = v_org, false) THEN
        RAISE EXCEPTION 'svc_resource_put: malformed audit entry' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- validate everything first: names by regex, types by whitelist
    IF NOT coalesce(v_table ~ '^[a-z][a-z0-9_]{0,62}$' AND jsonb_typeof(v_fields) = 'array'
                    AND jsonb_array_length(v_fields) <= 200 AND jsonb_typeof(p_renames) = 'array'
                    AND jsonb_typeof(coalesce(p_def->'expire_after', '0')) = 'number'
                    AND coalesce((p_def->>'expire_after')::numeric, 0) BETWEEN 0 AND 9007199254740991
                    AND coalesce(jsonb_typeof(v_views) IN ('object', 'null'), true), false) THEN
        RAISE EXCEPTION 'svc_resource_put: malformed definition' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR f IN SELECT * FROM jsonb_array_elements(v_fields) LOOP
        IF NOT coalesce(jsonb_typeof(f) = 'object' AND (f->>'name') ~ '^[a-z][a-z0-9_]{0,62}$'
                        AND NOT (f->>'name') = ANY (reserved) AND core.svc_sql_type(f->>'type') IS NOT NULL
                        AND jsonb_typeof(coalesce(f->'pii', 'false')) = 'boolean'
                        AND jsonb_typeof(coalesce(f->'required', 'false')) = 'boolean'
                        AND jsonb_typeof(coalesce(f->'index', 'false')) = 'boolean'
                        AND NOT (coalesce((f->>'pii')::boolean, false) AND (f->>'type') NOT IN ('string', 'text'))
                        AND (f->'default' IS NULL OR f->'default' = 'null'::jsonb
                             OR core.svc_value_ok(f->'default', f->>'type'))
                        AND (SELECT count(*) FROM jsonb_array_elements(v_fields) g
                              WHERE g->>'name' = f->>'name') = 1, false) THEN
            RAISE EXCEPTION 'svc_resource_put: malformed field %', left(f->>'name', 64)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    FOR f IN SELECT * FROM jsonb_array_elements(p_renames) LOOP
        IF NOT coalesce((f->>'from') ~ '^[a-z][a-z0-9_]{0,62}$'
                        AND EXISTS (SELECT 1 FROM jsonb_array_elements(v_fields) g
                                     WHERE g->>'name' = f->>'to'), false) THEN
            RAISE EXCEPTION 'svc_resource_put: malformed rename' USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;

    -- One change per data schema at a time (two first resources of a new
    -- service would otherwise both create its schema). Record writers hold FOR
    -- KEY SHARE on the metadata row for their whole transaction, so FOR UPDATE
    -- here waits for them, and they for this change: nobody writes a column
    -- being altered.
    PERFORM pg_advisory_xact_lock(hashtextextended('tessera.svc:' || v_schema, 7));
    SELECT fields INTO v_old FROM core.resources
     WHERE service = p_service AND mode = p_mode AND name = v_table FOR UPDATE;

    PERFORM core.svc_ensure_schema(v_schema);
    IF v_old IS NULL THEN
        IF to_regclass(format('%I.%I', v_schema, v_table)) IS NOT NULL THEN
            RAISE EXCEPTION 'svc_resource_put: table %.% exists without its metadata', v_schema, v_table;
        END IF;
        PERFORM core.svc_create_table(v_schema, v_table);
        v_old := '[]'::jsonb;
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I.%I)', v_schema, v_table) INTO v_rows;

    -- The plan: where each new field takes its values from (source_of in the
    -- memory engine: an explicit rename, else nothing when its name was renamed
    -- away, else the old field of the same name). A temporary table, dropped
    -- on commit: it lives and dies inside this transaction.
    CREATE TEMP TABLE IF NOT EXISTS svc_plan (ord bigint, name text, type text, required boolean,
        pii boolean, idx boolean, def jsonb, src text, cur text, src_type text, src_pii boolean) ON COMMIT DROP;
    TRUNCATE pg_temp.svc_plan;
    INSERT INTO pg_temp.svc_plan
    SELECT x.i, x.g->>'name', x.g->>'type', coalesce((x.g->>'required')::boolean, false),
           coalesce((x.g->>'pii')::boolean, false), coalesce((x.g->>'index')::boolean, false), x.g->'default',
           so.o->>'name', so.o->>'name', so.o->>'type', coalesce((so.o->>'pii')::boolean, false)
      FROM jsonb_array_elements(v_fields) WITH ORDINALITY AS x (g, i)
      CROSS JOIN LATERAL (
          SELECT CASE
              WHEN EXISTS (SELECT 1 FROM jsonb_array_elements(p_renames) rr WHERE rr->>'to' = x.g->>'name')
                  THEN (SELECT rr->>'from' FROM jsonb_array_elements(p_renames) rr
                         WHERE rr->>'to' = x.g->>'name' LIMIT 1)
              WHEN EXISTS (SELECT 1 FROM jsonb_array_elements(p_renames) rr WHERE rr->>'from' = x.g->>'name')
                  THEN NULL
              ELSE x.g->>'name' END AS src_name) sn
      LEFT JOIN LATERAL (SELECT o FROM jsonb_array_elements(v_old) o
                          WHERE o->>'name' = sn.src_name LIMIT 1) so ON true;

    -- Probe: every refusal is found before anything is altered, so a refused
    -- change returns with nothing changed and no error raised.
    IF v_rows THEN
        FOR s IN SELECT * FROM pg_temp.svc_plan ORDER BY ord LOOP
            probe := NULL;
            IF s.src IS NULL THEN
                IF s.required AND (s.def IS NULL OR s.def = 'null'::jsonb) THEN
                    probe := 'true';
                    why := 'a new required field needs a default while records exist';
                END IF;
            ELSE
                IF s.required THEN
                    SELECT * INTO hit FROM core.svc_failing(v_schema, v_table, format('%I IS NULL', s.src));
                    IF hit.n > 0 THEN
                        RETURN jsonb_build_object('ok', false, 'field', s.name, 'record_id', hit.record_id,
                                                  'count', hit.n,
                                                  'reason', 'a record has no value for a field made required');
                    END IF;
                END IF;
                -- A sealed value is bound to its field's name (the app's AAD):
                -- renamed, it would no longer open, so refuse rather than lose it.
                IF (s.pii OR s.src_pii) AND (s.pii <> s.src_pii OR s.type <> s.src_type OR s.src <> s.name) THEN
                    probe := format('%I IS NOT NULL', s.src);
                    why := 'a pii field cannot be renamed or change its type or pii flag while records hold values';
                ELSIF NOT (s.pii OR s.src_pii) AND s.type <> s.src_type THEN
                    probe := format('%I IS NOT NULL AND core.svc_cast(to_jsonb(%I), %L, %L) IS NULL',
                                    s.src, s.src, s.src_type, s.type);
                    why := core.svc_cast_why(s.src_type, s.type);
                END IF;
            END IF;
            IF probe IS NOT NULL THEN
                SELECT * INTO hit FROM core.svc_failing(v_schema, v_table, probe);
                IF hit.n > 0 THEN
                    RETURN jsonb_build_object('ok', false, 'field', s.name, 'record_id', hit.record_id,
                                              'count', hit.n, 'reason', why);
                END IF;
            END IF;
        END LOOP;
    END IF;

    -- Apply: renamed sources to temporary names first (renames may swap two
    -- fields), drop every column no field takes its values from, then each
    -- field into place: added (with its default for existing rows) or renamed
    -- and cast by the same function the probe used.
    FOR s IN SELECT * FROM pg_temp.svc_plan WHERE src IS NOT NULL AND src <> name ORDER BY ord LOOP
        n := n + 1;
        EXECUTE format('ALTER TABLE %I.%I RENAME COLUMN %I TO %I', v_schema, v_table, s.src, '_svc_tmp_' || n);
        UPDATE pg_temp.svc_plan SET cur = '_svc_tmp_' || n WHERE ord = s.ord;
    END LOOP;
    FOR v_col IN SELECT a.attname FROM pg_attribute a
                  WHERE a.attrelid = format('%I.%I', v_schema, v_table)::regclass AND a.attnum > 0
                    AND NOT a.attisdropped
                    AND a.attname NOT IN ('id', 'org_id', 'version', 'created_at', 'updated_at',
                                          'expires_at', '_bidx')
                    AND a.attname NOT IN (SELECT cur FROM pg_temp.svc_plan WHERE cur IS NOT NULL) LOOP
        EXECUTE format('ALTER TABLE %I.%I DROP COLUMN %I', v_schema, v_table, v_col);
    END LOOP;
    FOR s IN SELECT * FROM pg_temp.svc_plan ORDER BY ord LOOP
        IF s.src IS NULL THEN
            EXECUTE format('ALTER TABLE %I.%I ADD COLUMN %I %s', v_schema, v_table, s.name,
                           core.svc_sql_type(s.type));
            PERFORM core.svc_add_checks(v_schema, v_table, s.name, s.type);
            IF v_rows AND s.def IS NOT NULL AND s.def <> 'null'::jsonb THEN
                EXECUTE format('UPDATE %I.%I SET %I = %s', v_schema, v_table, s.name,
                               core.svc_from_jsonb_sql(quote_literal(s.def::text) || '::jsonb', s.type));
            END IF;
            CONTINUE;
        END IF;
        IF s.cur <> s.name THEN
            EXECUTE format('ALTER TABLE %I.%I RENAME COLUMN %I TO %I', v_schema, v_table, s.cur, s.name);
        END IF;
        IF s.type <> s.src_type THEN
            PERFORM core.svc_drop_checks(v_schema, v_table, s.name);
            EXECUTE format('ALTER TABLE %I.%I ALTER COLUMN %I TYPE %s USING %s', v_schema, v_table,
                           s.name, core.svc_sql_type(s.type),
                           core.svc_from_jsonb_sql(format('core.svc_cast(to_jsonb(%I), %L, %L)',
                                                          s.name, s.src_type, s.type), s.type));
            PERFORM core.svc_add_checks(v_schema, v_table, s.name, s.type);
        END IF;
    END LOOP;

    -- Blind indexes follow their fields: renamed with them, gone with them.
    IF v_rows AND ((SELECT count(*) FROM jsonb_array_elements(v_old) o WHERE (o->>'pii')::boolean)
                   <> (SELECT count(*) FROM pg_temp.svc_plan WHERE pii AND src_pii)
                   OR EXISTS (SELECT 1 FROM pg_temp.svc_plan WHERE pii AND src_pii AND src <> name)) THEN
        SELECT string_agg(format('(%L, %L)', name, src), ', ') INTO v_pairs
          FROM pg_temp.svc_plan WHERE pii AND src_pii;
        EXECUTE format('UPDATE %I.%I SET _bidx = %s', v_schema, v_table,
                       CASE WHEN v_pairs IS NULL THEN quote_literal('{}') || '::jsonb'
                       ELSE format('(SELECT coalesce(jsonb_object_agg(m.n, _bidx->m.o) '
                                   'FILTER (WHERE _bidx ? m.o), %L::jsonb) FROM (VALUES %s) AS m (n, o))',
                                   '{}', v_pairs) END);
    END IF;
    -- Indexes: (org_id, column) for each field flagged index, (org_id, blind
    -- index) for each pii field (eq is its only filter). Each is named by a
    -- hash of table, field and kind, so a rename, a dropped flag or a pii
    -- change drops the old one and makes the new; a retype rebuilds them itself.
    UPDATE pg_temp.svc_plan SET idx = (idx AND type NOT IN ('json') AND type NOT LIKE 'vector(%') OR pii;
    FOR v_col IN SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
                  WHERE x.indrelid = format('%I.%I', v_schema, v_table)::regclass AND i.relname LIKE 'ix\_%'
                    AND i.relname NOT IN (SELECT core.svc_index_name(v_table, name, pii)
                                            FROM pg_temp.svc_plan WHERE idx) LOOP
        EXECUTE format('DROP INDEX %I.%I', v_schema, v_col);
    END LOOP;
    FOR s IN SELECT * FROM pg_temp.svc_plan WHERE idx ORDER BY ord LOOP
        EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I.%I (org_id, %s)',
                       core.svc_index_name(v_table, s.name, s.pii), v_schema, v_table,
                       CASE WHEN s.pii THEN format('(_bidx->>%L)', s.name) ELSE format('%I', s.name) END);
    END LOOP;
    DROP TABLE pg_temp.svc_plan;

    INSERT INTO core.resources AS cr (service, mode, name, fields, options, version, expire_after, updated_at)
    VALUES (p_service, p_mode, v_table, v_fields,
            CASE WHEN coalesce(jsonb_typeof(v_views), 'null') = 'null' THEN '{}'::jsonb
                 ELSE jsonb_build_object('views', v_views) END,
            1, coalesce((p_def->>'expire_after')::bigint, 0), to_timestamp(p_now))
    ON CONFLICT (service, mode, name) DO UPDATE
       SET fields = EXCLUDED.fields, options = EXCLUDED.options, version = cr.version + 1,
           expire_after = EXCLUDED.expire_after, updated_at = EXCLUDED.updated_at
    RETURNING version INTO v_version;
    -- The change's audit entry, in the change's own transaction: delivered to
    -- core.audit_log by the engine after commit, or by the next maintenance run.
    IF p_audit IS NOT NULL THEN
        INSERT INTO core.audit_relay (id, org_id, actor, action, target, meta, created_at)
        VALUES ((p_audit->>'id')::uuid, v_org, coalesce(p_audit->>'actor', ''), p_audit->>'action',
                coalesce(p_audit->>'target', ''), coalesce(p_audit->'meta', '{}'::jsonb),
                to_timestamp((p_audit->>'created_at')::bigint));
    END IF;
    RETURN jsonb_build_object('ok', true, 'version', v_version);
END $$;


REVOKE ALL ON FUNCTION core.audit_relay_pending(integer), core.audit_relay_done(uuid[]),
    core.svc_failing(text, text, text), core.svc_resource_put(text, text, jsonb, jsonb, bigint, jsonb)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION core.audit_relay_pending(integer), core.audit_relay_done(uuid[]),
    core.svc_resource_put(text, text, jsonb, jsonb, bigint, jsonb) TO tessera_app;
