-- 0012_placement: where an organization's service data lives (issue 18 §7,
-- "silo and pool"): the pooled, shared data database under RLS, or a
-- [database.<name>] of its own (`tessera org place ORG DATABASE`).
--
-- The placement is a row per placed org in the core database; an org without
-- one is "shared". The workers read it with the org (one statement, carried
-- in the cached principal), so no request pays a round trip for it. moving:
-- a change under way, while which the engine refuses the org's data calls.
-- Like every tenant table it is under forced RLS (an org sees its own row
-- only); the app role may read and write it (the CLI runs as that role, as
-- `tessera seed` does), never delete or truncate it.
--
-- Every data database runs the same migrations (`tessera migrate` applies
-- them to every database the configuration names), so this table exists in
-- each; only the core database's is read.

CREATE TABLE IF NOT EXISTS core.org_placement (
    org_id     uuid PRIMARY KEY REFERENCES core.organizations (id) ON DELETE CASCADE,
    database   text NOT NULL CHECK (database ~ '^[a-z][a-z0-9_-]{0,30}$'),
    moving     boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE core.org_placement ENABLE ROW LEVEL SECURITY;
ALTER TABLE core.org_placement FORCE ROW LEVEL SECURITY;
DO $$
BEGIN
    CREATE POLICY tenant_isolation ON core.org_placement
        USING (org_id = NULLIF(current_setting('tessera.org_id', true), '')::uuid)
        WITH CHECK (org_id = NULLIF(current_setting('tessera.org_id', true), '')::uuid);
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
GRANT SELECT, INSERT, UPDATE ON core.org_placement TO tessera_app;

-- The calling org's records in this database, in every resource of mode
-- p_mode: what `tessera org place` must find zero of before it changes a
-- placement (nothing is moved, so nothing may be left behind). SECURITY
-- INVOKER: it runs as tessera_app, and RLS counts the caller's rows only.
CREATE OR REPLACE FUNCTION core.org_records(p_mode text) RETURNS bigint
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_org uuid := NULLIF(current_setting('tessera.org_id', true), '')::uuid;
    v_schema text;
    r record;
    c bigint;
    n bigint := 0;
BEGIN
    IF v_org IS NULL THEN
        RAISE EXCEPTION 'org_records: no tessera.org_id' USING ERRCODE = 'insufficient_privilege';
    END IF;
    FOR r IN SELECT service, name FROM core.resources WHERE mode = p_mode LOOP
        v_schema := core.svc_schema_name(r.service, p_mode);
        IF to_regclass(format('%I.%I', v_schema, r.name)) IS NULL THEN
            CONTINUE;
        END IF;
        EXECUTE format('SELECT count(*) FROM %I.%I WHERE org_id = $1', v_schema, r.name) INTO c USING v_org;
        n := n + c;
    END LOOP;
    RETURN n;
END $$;
REVOKE ALL ON FUNCTION core.org_records(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION core.org_records(text) TO tessera_app;
