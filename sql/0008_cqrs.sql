-- 0008_cqrs: the read side (DESIGN §6, issue 14): the projector, views, the
-- change feed and the reaper, on every data schema.
--
-- Per data schema, beside the outbox every record write already fills:
--   _outbox   gains pos (the event's position in its org's change feed, NULL
--             until projected), projected_at (unix s) and at_ms (the write's
--             wall-clock ms, for lag); a statement trigger NOTIFYs
--             'tessera_outbox' (payload: the schema) for the projectors' LISTEN.
--   _feed     per org: last_pos (the feed's head) and trimmed_pos (events up
--             to it may be gone: an older cursor is 410).
--   _views    per (org, resource): the read model, every view's rows as
--             jsonb, and the fingerprint of the definition it was built for.
-- and in core, core.cqrs_defs: per data schema and resource, the fingerprint
-- its read models were last rebuilt for (no tenant data; the app cannot read it).
-- _feed and _views are tenant tables under forced RLS (the policy of 0004);
-- tessera_app may only SELECT them, and may INSERT into _outbox only the
-- columns a write sets: numbering and projecting are the projector's.
--
-- Projecting (core.cqrs_project, SECURITY DEFINER: it works across orgs, as
-- the projector must, and gives back only counts and the (service, org,
-- resource) it touched, never data). Per org with unprojected events: its
-- _feed row is locked (FOR UPDATE SKIP LOCKED: an org another projector holds
-- is skipped), its next events claimed in seq order (FOR UPDATE SKIP LOCKED)
-- and numbered after the head, and the read model of each resource they
-- touched rebuilt from the org's rows with one GROUP BY per view, all in the
-- caller's one transaction. One projector at a time per org is what makes a
-- position visible only after every smaller one. A rebuilt read model equals
-- a GROUP BY over the table by construction, so an event applied twice (a
-- projector killed after its work, before its commit, is simply rolled back;
-- two projectors cannot claim one event) changes nothing. The price: a batch
-- costs O(rows of each touched org and resource); applying deltas per event
-- is the next step when an org's resource grows past what one GROUP BY per
-- batch affords. A definition whose fingerprint (the views and the types of
-- the fields they name) changed is rebuilt for every org: the back-fill of a
-- new view, the drop of a removed one, the rebuild after a retype.
--
-- Every statement is safe to run twice.

-- What each resource's read models were last rebuilt for (core.cqrs_fp); the
-- projector's alone: no grant to tessera_app.
CREATE TABLE IF NOT EXISTS core.cqrs_defs (
    schema_name text NOT NULL,
    resource    text NOT NULL,
    fp          text NOT NULL,
    PRIMARY KEY (schema_name, resource)
);
REVOKE ALL ON core.cqrs_defs FROM PUBLIC;

-- ---- the wake-up ------------------------------------------------------------------

CREATE OR REPLACE FUNCTION core.cqrs_notify() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pg_notify('tessera_outbox', TG_TABLE_SCHEMA);
    RETURN NULL;
END $$;

-- ---- per data schema ------------------------------------------------------------------

-- What 0008 adds to a data schema; idempotent, and cheap when done (it
-- looks before it alters: ALTER TABLE takes the outbox's lock even to do nothing).
CREATE OR REPLACE FUNCTION core.cqrs_ensure(p_schema text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cond text := format('org_id = NULLIF(current_setting(%L, true), %L)::uuid', 'tessera.org_id', '');
    ob regclass := to_regclass(format('%I._outbox', p_schema));
    t text;
BEGIN
    IF ob IS NULL THEN
        RAISE EXCEPTION 'cqrs_ensure: % has no outbox', p_schema USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = ob AND attname = 'at_ms' AND NOT attisdropped) THEN
        EXECUTE format('ALTER TABLE %I._outbox ADD COLUMN pos bigint, ADD COLUMN projected_at bigint, '
                       'ADD COLUMN at_ms bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint',
                       p_schema);
        EXECUTE format('CREATE INDEX _outbox_pending ON %I._outbox (org_id, seq) WHERE pos IS NULL', p_schema);
        EXECUTE format('CREATE INDEX _outbox_feed ON %I._outbox (org_id, resource, pos) WHERE pos IS NOT NULL',
                       p_schema);
        EXECUTE format('REVOKE INSERT ON %I._outbox FROM tessera_app', p_schema);
        EXECUTE format('GRANT INSERT (org_id, resource, record_id, op, version, created_at) ON %I._outbox '
                       'TO tessera_app', p_schema);
        EXECUTE format('CREATE TRIGGER cqrs_notify AFTER INSERT ON %I._outbox '
                       'FOR EACH STATEMENT EXECUTE FUNCTION core.cqrs_notify()', p_schema);
    END IF;
    IF to_regclass(format('%I._feed', p_schema)) IS NULL THEN
        EXECUTE format('CREATE TABLE %I._feed (org_id uuid PRIMARY KEY, last_pos bigint NOT NULL DEFAULT 0, '
                       'trimmed_pos bigint NOT NULL DEFAULT 0)', p_schema);
        EXECUTE format('CREATE TABLE %I._views (org_id uuid NOT NULL, resource text NOT NULL, fp text NOT NULL, '
                       'views jsonb NOT NULL, built_at bigint NOT NULL, PRIMARY KEY (org_id, resource))', p_schema);
        FOREACH t IN ARRAY ARRAY['_feed', '_views'] LOOP
            EXECUTE format('ALTER TABLE %I.%I ENABLE ROW LEVEL SECURITY', p_schema, t);
            EXECUTE format('ALTER TABLE %I.%I FORCE ROW LEVEL SECURITY', p_schema, t);
            EXECUTE format('CREATE POLICY tenant_isolation ON %I.%I USING (%s) WITH CHECK (%s)',
                           p_schema, t, cond, cond);
            EXECUTE format('REVOKE ALL ON %I.%I FROM PUBLIC', p_schema, t);
            EXECUTE format('GRANT SELECT ON %I.%I TO tessera_app', p_schema, t);
        END LOOP;
    END IF;
END $$;

-- As 0004 made it, and then 0008's objects (new schemas get them at birth).
CREATE OR REPLACE FUNCTION core.svc_ensure_schema(p_schema text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cond text := format('org_id = NULLIF(current_setting(%L, true), %L)::uuid', 'tessera.org_id', '');
BEGIN
    IF to_regnamespace(quote_ident(p_schema)) IS NULL THEN
        EXECUTE format('CREATE SCHEMA %I', p_schema);
        EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', p_schema);
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO tessera_app', p_schema);
        -- One entry per record write, in the record's transaction (DESIGN §6).
        EXECUTE format('CREATE TABLE %I._outbox ('
                       'seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, '
                       'org_id uuid NOT NULL, resource text NOT NULL, record_id uuid NOT NULL, '
                       'op text NOT NULL CHECK (op IN (%L, %L, %L)), version bigint NOT NULL, '
                       'created_at bigint NOT NULL)', p_schema, 'create', 'update', 'delete');
        EXECUTE format('CREATE INDEX ON %I._outbox (org_id, seq)', p_schema);
        EXECUTE format('ALTER TABLE %I._outbox ENABLE ROW LEVEL SECURITY', p_schema);
        EXECUTE format('ALTER TABLE %I._outbox FORCE ROW LEVEL SECURITY', p_schema);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I._outbox USING (%s) WITH CHECK (%s)',
                       p_schema, cond, cond);
        EXECUTE format('GRANT SELECT, INSERT ON %I._outbox TO tessera_app', p_schema);
    END IF;
    PERFORM core.cqrs_ensure(p_schema);
END $$;

DO $$
DECLARE
    s text;
BEGIN
    FOR s IN SELECT DISTINCT core.svc_schema_name(service, mode) FROM core.resources LOOP
        IF to_regclass(format('%I._outbox', s)) IS NOT NULL THEN
            PERFORM core.cqrs_ensure(s);
        END IF;
    END LOOP;
END $$;

-- ---- views ---------------------------------------------------------------------------------

-- What a resource's read models are built for: its views and the types of
-- the fields they name; '' without views.
CREATE OR REPLACE FUNCTION core.cqrs_fp(p_fields jsonb, p_options jsonb) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN jsonb_typeof(p_options->'views') IS DISTINCT FROM 'object' OR p_options->'views' = '{}'::jsonb
                THEN ''
                ELSE md5((p_options->'views')::text || '|' || coalesce(
                    (SELECT string_agg((f->>'name') || ':' || (f->>'type'), ',' ORDER BY f->>'name')
                     FROM jsonb_array_elements(p_fields) f
                     WHERE f->>'name' IN (SELECT jsonb_array_elements_text(v->'group_by') FROM jsonb_each(p_options->'views') e (k, v)
                                          UNION
                                          SELECT jsonb_array_elements_text(coalesce(v->'sum', '[]'::jsonb))
                                          FROM jsonb_each(p_options->'views') e (k, v))), ''))
           END
$$;

-- The org's read model of one resource, from its live rows: per view one
-- GROUP BY, rows as engine.h has them ({key, count?, sum?}). Dropped when
-- the resource has no views. Names come from the stored definition (checked
-- by svc_resource_put) and are quoted all the same.
CREATE OR REPLACE FUNCTION core.cqrs_build(p_schema text, p_resource text, p_org uuid, p_fields jsonb,
                                           p_options jsonb, p_now bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    fp text := core.cqrs_fp(p_fields, p_options);
    v record;
    keyx text;
    grp text;
    sumx text;
    q text;
    got jsonb;
    out jsonb := '{}'::jsonb;
BEGIN
    IF fp = '' THEN
        EXECUTE format('DELETE FROM %I._views WHERE org_id = $1 AND resource = $2', p_schema) USING p_org, p_resource;
        RETURN;
    END IF;
    FOR v IN SELECT key, value FROM jsonb_each(p_options->'views') LOOP
        SELECT coalesce(string_agg(format('%L, %I', g, g), ', ' ORDER BY o), ''),
               coalesce(string_agg(format('%I', g), ', ' ORDER BY o), '')
          INTO keyx, grp
          FROM jsonb_array_elements_text(coalesce(v.value->'group_by', '[]'::jsonb)) WITH ORDINALITY a (g, o);
        SELECT coalesce(string_agg(format('%L, coalesce(sum(%I), 0)', x, x), ', ' ORDER BY o), '')
          INTO sumx
          FROM jsonb_array_elements_text(coalesce(v.value->'sum', '[]'::jsonb)) WITH ORDINALITY a (x, o);
        q := format('SELECT coalesce(jsonb_agg(r), %L) FROM (SELECT jsonb_build_object(%L, jsonb_build_object(%s)%s%s) AS r '
                    'FROM %I.%I WHERE org_id = $1 AND (expires_at IS NULL OR expires_at > $2) %s HAVING count(*) > 0) g',
                    '[]', 'key', keyx,
                    CASE WHEN coalesce((v.value->>'count')::boolean, false) THEN ', ''count'', count(*)' ELSE '' END,
                    CASE WHEN sumx <> '' THEN format(', %L, jsonb_build_object(%s)', 'sum', sumx) ELSE '' END,
                    p_schema, p_resource,
                    CASE WHEN grp <> '' THEN 'GROUP BY ' || grp ELSE '' END);
        EXECUTE q INTO got USING p_org, p_now;
        out := out || jsonb_build_object(v.key, got);
    END LOOP;
    EXECUTE format('INSERT INTO %I._views (org_id, resource, fp, views, built_at) VALUES ($1, $2, $3, $4, $5) '
                   'ON CONFLICT (org_id, resource) DO UPDATE SET fp = EXCLUDED.fp, views = EXCLUDED.views, '
                   'built_at = EXCLUDED.built_at', p_schema)
        USING p_org, p_resource, fp, out, p_now;
END $$;

-- ---- the projector ---------------------------------------------------------------------------

-- One batch of mode's data stores, in the caller's transaction: up to p_max
-- events per store; {applied, rebuilt, touched: [[service, org, resource]],
-- pending_ms (the oldest event left), more}.
CREATE OR REPLACE FUNCTION core.cqrs_project(p_mode text, p_max integer) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = core, pg_temp AS $$
DECLARE
    now_s bigint := extract(epoch FROM now())::bigint;
    svc record;
    sch text;
    o record;
    t record;
    r record;
    budget integer;
    locked integer;
    v_fp text;
    old text;
    pnd bigint;
    left_over boolean;
    applied bigint := 0;
    rebuilt bigint := 0;
    touched jsonb := '[]'::jsonb;
    pending bigint := 0;
    more boolean := false;
BEGIN
    IF p_mode IS NULL OR p_mode NOT IN ('test', 'live') OR p_max IS NULL OR p_max < 1 OR p_max > 100000 THEN
        RAISE EXCEPTION 'cqrs_project: bad mode or batch' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR svc IN SELECT DISTINCT service FROM core.resources WHERE mode = p_mode ORDER BY service LOOP
        sch := core.svc_schema_name(svc.service, p_mode);
        CONTINUE WHEN to_regclass(format('%I._feed', sch)) IS NULL;
        budget := p_max;
        -- the events, an org at a time
        FOR o IN EXECUTE format('SELECT DISTINCT org_id FROM %I._outbox WHERE pos IS NULL', sch) LOOP
            IF budget <= 0 THEN
                more := true;
                EXIT;
            END IF;
            EXECUTE format('INSERT INTO %I._feed (org_id) VALUES ($1) ON CONFLICT DO NOTHING', sch) USING o.org_id;
            locked := NULL;
            EXECUTE format('SELECT 1 FROM %I._feed WHERE org_id = $1 FOR UPDATE SKIP LOCKED', sch)
                INTO locked USING o.org_id;
            CONTINUE WHEN locked IS NULL; -- another projector numbers this org's feed now
            FOR t IN EXECUTE format(
                'WITH c AS (SELECT seq FROM %1$I._outbox WHERE org_id = $1 AND pos IS NULL ORDER BY seq LIMIT $2 '
                '           FOR UPDATE SKIP LOCKED), '
                '     n AS (SELECT c.seq, f.last_pos + row_number() OVER (ORDER BY c.seq) AS pos '
                '           FROM c, %1$I._feed f WHERE f.org_id = $1), '
                '     u AS (UPDATE %1$I._outbox ob SET pos = n.pos, projected_at = $3 FROM n WHERE ob.seq = n.seq '
                '           RETURNING ob.resource, ob.pos), '
                '     h AS (UPDATE %1$I._feed SET last_pos = (SELECT max(pos) FROM u) WHERE org_id = $1 '
                '           AND EXISTS (SELECT 1 FROM u)) '
                'SELECT resource, count(*) AS k FROM u GROUP BY resource ORDER BY resource', sch)
                USING o.org_id, budget, now_s LOOP
                applied := applied + t.k;
                budget := budget - t.k::integer;
                SELECT fields, options INTO r FROM core.resources
                 WHERE service = svc.service AND mode = p_mode AND name = t.resource;
                IF FOUND THEN
                    PERFORM core.cqrs_build(sch, t.resource, o.org_id, r.fields, r.options, now_s);
                    touched := touched || jsonb_build_array(jsonb_build_array(svc.service, o.org_id, t.resource));
                END IF;
            END LOOP;
        END LOOP;
        -- definitions changed since their read models were built: every org again
        FOR r IN SELECT name, fields, options FROM core.resources WHERE service = svc.service AND mode = p_mode LOOP
            v_fp := core.cqrs_fp(r.fields, r.options);
            INSERT INTO core.cqrs_defs (schema_name, resource, fp) VALUES (sch, r.name, '') ON CONFLICT DO NOTHING;
            old := NULL;
            SELECT d.fp INTO old FROM core.cqrs_defs d WHERE d.schema_name = sch AND d.resource = r.name
               FOR UPDATE SKIP LOCKED;
            CONTINUE WHEN old IS NULL OR old = v_fp; -- locked by another projector, or up to date
            EXECUTE format('DELETE FROM %I._views WHERE resource = $1', sch) USING r.name;
            IF v_fp <> '' THEN
                FOR o IN EXECUTE format('SELECT DISTINCT org_id FROM %I.%I', sch, r.name) LOOP
                    PERFORM core.cqrs_build(sch, r.name, o.org_id, r.fields, r.options, now_s);
                    rebuilt := rebuilt + 1;
                    touched := touched || jsonb_build_array(jsonb_build_array(svc.service, o.org_id, r.name));
                END LOOP;
            END IF;
            UPDATE core.cqrs_defs SET fp = v_fp WHERE schema_name = sch AND resource = r.name;
        END LOOP;
        EXECUTE format('SELECT min(at_ms), count(*) > 0 FROM %I._outbox WHERE pos IS NULL', sch)
            INTO pnd, left_over;
        IF left_over THEN
            more := more OR budget <= 0;
            IF pending = 0 OR pnd < pending THEN
                pending := pnd;
            END IF;
        END IF;
    END LOOP;
    RETURN jsonb_build_object('applied', applied, 'rebuilt', rebuilt, 'touched', touched,
                              'pending_ms', pending, 'more', more);
END $$;

-- ---- the reaper ---------------------------------------------------------------------------------

-- Mode's expired records deleted as a write deletes them (their 'delete'
-- events reach the views and the feed, their sealed values and blind
-- indexes go with the rows), and projected events older than p_retention
-- seconds trimmed (raising each org's trim point); up to p_max of each per
-- resource and store. {records, changes, touched: [[service, org, resource]], more}.
CREATE OR REPLACE FUNCTION core.cqrs_reap(p_mode text, p_now bigint, p_max integer, p_retention bigint)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = core, pg_temp AS $$
DECLARE
    svc record;
    r record;
    o record;
    sch text;
    records bigint := 0;
    changes bigint := 0;
    touched jsonb := '[]'::jsonb;
    more boolean := false;
BEGIN
    IF p_mode IS NULL OR p_mode NOT IN ('test', 'live') OR p_max IS NULL OR p_max < 1 OR p_max > 100000
       OR p_now IS NULL OR p_retention IS NULL OR p_retention < 0 THEN
        RAISE EXCEPTION 'cqrs_reap: bad arguments' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR svc IN SELECT DISTINCT service FROM core.resources WHERE mode = p_mode ORDER BY service LOOP
        sch := core.svc_schema_name(svc.service, p_mode);
        CONTINUE WHEN to_regclass(format('%I._feed', sch)) IS NULL;
        FOR r IN SELECT name FROM core.resources WHERE service = svc.service AND mode = p_mode AND expire_after > 0 LOOP
            FOR o IN EXECUTE format(
                'WITH d AS (DELETE FROM %1$I.%2$I WHERE ctid IN (SELECT ctid FROM %1$I.%2$I WHERE expires_at <= $1 '
                '           LIMIT $2) RETURNING org_id, id, version), '
                '     i AS (INSERT INTO %1$I._outbox (org_id, resource, record_id, op, version, created_at) '
                '           SELECT org_id, $3, id, %3$L, version + 1, $1 FROM d RETURNING org_id) '
                'SELECT org_id, count(*) AS k FROM i GROUP BY org_id', sch, r.name, 'delete')
                USING p_now, p_max, r.name LOOP
                records := records + o.k;
                more := more OR o.k >= p_max;
                touched := touched || jsonb_build_array(jsonb_build_array(svc.service, o.org_id, r.name));
            END LOOP;
        END LOOP;
        FOR o IN EXECUTE format(
            'WITH d AS (DELETE FROM %1$I._outbox WHERE seq IN (SELECT seq FROM %1$I._outbox WHERE pos IS NOT NULL '
            '           AND projected_at <= $1 ORDER BY seq LIMIT $2) RETURNING org_id, pos) '
            'SELECT org_id, max(pos) AS top, count(*) AS k FROM d GROUP BY org_id', sch)
            USING p_now - p_retention, p_max * 4 LOOP
            EXECUTE format('UPDATE %I._feed SET trimmed_pos = greatest(trimmed_pos, $2) WHERE org_id = $1', sch)
                USING o.org_id, o.top;
            changes := changes + o.k;
        END LOOP;
    END LOOP;
    RETURN jsonb_build_object('records', records, 'changes', changes, 'touched', touched, 'more', more);
END $$;

-- The core side: refresh tokens and invites past expiry + p_grace seconds,
-- and the audit log's monthly partitions that end before the first day of
-- the month p_months whole months back (0: kept). The app role still cannot
-- DROP or TRUNCATE anything: this function is the only way, and it drops only
-- partitions named as core.ensure_audit_partitions names them (the default
-- partition, which takes rows no month covers, is kept).
-- {refresh_tokens, invites, audit_partitions}.
CREATE OR REPLACE FUNCTION core.reap_core(p_now bigint, p_grace bigint, p_months integer) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = core, pg_temp AS $$
DECLARE
    tokens bigint;
    invites bigint;
    parts bigint := 0;
    cutoff timestamp;
    part text;
BEGIN
    IF p_now IS NULL OR p_grace IS NULL OR p_grace < 0 OR p_months IS NULL OR p_months < 0 OR p_months > 1200 THEN
        RAISE EXCEPTION 'reap_core: bad arguments' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM core.refresh_tokens WHERE expires_at <= to_timestamp(p_now - p_grace);
    GET DIAGNOSTICS tokens = ROW_COUNT;
    DELETE FROM core.invites WHERE expires_at <= to_timestamp(p_now - p_grace);
    GET DIAGNOSTICS invites = ROW_COUNT;
    IF p_months > 0 THEN
        cutoff := date_trunc('month', to_timestamp(p_now) AT TIME ZONE 'UTC') - make_interval(months => p_months);
        FOR part IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                    WHERE i.inhparent = 'core.audit_log'::regclass AND c.relname ~ '^audit_log_[0-9]{4}_[0-9]{2}$'
                    ORDER BY c.relname LOOP
            IF to_date(substr(part, 11), 'YYYY_MM') + interval '1 month' <= cutoff THEN
                EXECUTE format('ALTER TABLE core.audit_log DETACH PARTITION core.%I', part);
                EXECUTE format('DROP TABLE core.%I', part);
                parts := parts + 1;
            END IF;
        END LOOP;
    END IF;
    RETURN jsonb_build_object('refresh_tokens', tokens, 'invites', invites, 'audit_partitions', parts);
END $$;

-- The platform's own organization (the oldest if several), for the
-- reaper's summary row: tessera_app sees no org without tessera.org_id.
CREATE OR REPLACE FUNCTION core.platform_org() RETURNS SETOF core.organizations
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = core, pg_temp AS $$
    SELECT * FROM core.organizations WHERE is_platform ORDER BY created_at, id LIMIT 1
$$;

REVOKE ALL ON FUNCTION core.cqrs_notify(), core.cqrs_ensure(text), core.cqrs_fp(jsonb, jsonb),
    core.cqrs_build(text, text, uuid, jsonb, jsonb, bigint), core.cqrs_project(text, integer),
    core.cqrs_reap(text, bigint, integer, bigint), core.reap_core(bigint, bigint, integer),
    core.platform_org() FROM PUBLIC;
-- The projector calls these three, the view read the fingerprint, the reaper's
-- summary the platform org; the builders stay the owner's.
GRANT EXECUTE ON FUNCTION core.cqrs_project(text, integer), core.cqrs_reap(text, bigint, integer, bigint),
    core.reap_core(bigint, bigint, integer), core.cqrs_fp(jsonb, jsonb), core.platform_org() TO tessera_app;
