-- 0016_projector_pending: the projector's look for pending events costs what
-- is pending, not what the outbox holds (issue 18, pg-create's profile).
--
-- core.cqrs_project (0008) found the orgs with pending events and the oldest
-- pending event with a DISTINCT and a min() over `pos IS NULL`. The partial
-- index _outbox_pending holds exactly those rows, but the planner chose it
-- only while the statistics said few were pending: an ANALYZE that ran while
-- a write burst had the projector behind (8 % pending) turned both into
-- sequential scans of the whole outbox — 19 ms a round at 100 000 events,
-- two per round — which kept the projector behind, so the next ANALYZE saw
-- as many pending again. Each is now a walk of the index that cannot be a
-- scan of the table: the next org above the last (ORDER BY org_id LIMIT 1,
-- the one plan an index on org_id gives), and per pending org its first
-- pending event's at_ms (ORDER BY seq LIMIT 1). The oldest pending event is
-- now the oldest of each org's first by seq, which is the write order within
-- a connection: the lag it reports can miss by what two concurrent writes'
-- clocks differ. Everything else is 0008's function unchanged.

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
    -- the orgs with pending events, one index probe each on _outbox_pending
    -- (a loose index scan: org_id ascending, each the next above the last)
    pending_orgs constant text :=
        'd AS ((SELECT org_id FROM %1$I._outbox WHERE pos IS NULL ORDER BY org_id LIMIT 1) '
        'UNION ALL SELECT (SELECT x.org_id FROM %1$I._outbox x WHERE x.pos IS NULL AND x.org_id > d.org_id '
        'ORDER BY x.org_id LIMIT 1) FROM d WHERE d.org_id IS NOT NULL)';
BEGIN
    IF p_mode IS NULL OR p_mode NOT IN ('test', 'live') OR p_max IS NULL OR p_max < 1 OR p_max > 100000 THEN
        RAISE EXCEPTION 'cqrs_project: bad mode or batch' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR svc IN SELECT DISTINCT service FROM core.resources WHERE mode = p_mode ORDER BY service LOOP
        sch := core.svc_schema_name(svc.service, p_mode);
        CONTINUE WHEN to_regclass(format('%I._feed', sch)) IS NULL;
        budget := p_max;
        -- the events, an org at a time
        FOR o IN EXECUTE format('WITH RECURSIVE ' || pending_orgs || ' SELECT org_id FROM d WHERE org_id IS NOT NULL', sch) LOOP
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
        EXECUTE format('WITH RECURSIVE ' || pending_orgs || ' SELECT min((SELECT x.at_ms FROM %1$I._outbox x '
                       'WHERE x.org_id = d.org_id AND x.pos IS NULL ORDER BY x.seq LIMIT 1)), count(*) > 0 '
                       'FROM d WHERE d.org_id IS NOT NULL', sch)
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
