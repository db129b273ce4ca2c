-- 0009_vector_indexes: approximate indexes for vector search (DESIGN §6,
-- issue 15) where the database has pgvector, and nothing where it has not.
--
-- Vectors stay what they are today, double precision[] columns: the API's
-- values are doubles on every engine, and pgvector's vector type holds
-- float4, so storing it would round what a client wrote (0.1 would read back
-- as 0.10000000149011612). The index is on an expression instead,
--     CREATE INDEX … USING hnsw ((field::<ext>.vector(N)) <ext>.vector_<metric>_ops)
-- one per vector field flagged index (for the field's metric), and the engine
-- orders by the same expression, then scores the rows it got exactly in
-- double precision. So adding the extension later (a DBA's CREATE EXTENSION
-- vector, once: it needs a superuser) changes no row: the fleet's upkeep
-- (core.svc_vector_indexes_all, at start and periodically) builds the
-- indexes, and dropping it (CASCADE) drops only them.
--
-- The DDL runs here, as the owner (SECURITY DEFINER, fixed search_path, no
-- EXECUTE for PUBLIC): tessera_app still creates and drops nothing itself.
-- pgvector's HNSW takes at most 2000 dimensions: a wider field is searched
-- exactly. Every statement is safe to run twice.

-- An index's name: "hnsw_" and 20 hex digits of table, field, metric and
-- dimension, so a rename, a retype or another metric names another index.
CREATE OR REPLACE FUNCTION core.svc_hnsw_name(p_table text, p_field text, p_metric text, p_dim integer)
RETURNS text LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
    SELECT 'hnsw_' || left(md5(p_table || '.' || p_field || '.' || p_metric || '.' || p_dim), 20)
$$;

-- The schema pgvector is installed in, or NULL when it is not.
CREATE OR REPLACE FUNCTION core.svc_vector_schema() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT n.nspname::text FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace
     WHERE x.extname = 'vector'
$$;

-- Makes the HNSW indexes of one resource what p_fields (a definition's
-- fields array; NULL: the stored definition's) asks for: each one not asked
-- for is dropped, each one missing is built. Called by the engine before a
-- schema change with the new fields (so an ALTER of a column never meets an
-- index on its old type) and after it with NULL. Dropping on a caller's word
-- is the platform's, as schema changes are (0006); conforming to the stored
-- definition is anyone's. Returns the indexes built.
CREATE OR REPLACE FUNCTION core.svc_vector_indexes(p_service text, p_mode text, p_name text, p_fields jsonb)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = core, pg_temp AS $$
DECLARE
    ext text := core.svc_vector_schema();
    v_schema text;
    v_fields jsonb := p_fields;
    v_org uuid := NULLIF(current_setting('tessera.org_id', true), '')::uuid;
    wanted text[] := '{}';
    made integer := 0;
    f record;
    ix record;
BEGIN
    IF ext IS NULL THEN
        RETURN 0;
    END IF;
    v_schema := core.svc_schema_name(p_service, p_mode);
    IF to_regclass(format('%I.%I', v_schema, p_name)) IS NULL THEN
        RETURN 0;
    END IF;
    IF p_fields IS NOT NULL AND (v_org IS NULL OR NOT EXISTS
            (SELECT 1 FROM core.organizations WHERE id = v_org AND is_platform)) THEN
        RAISE EXCEPTION 'svc_vector_indexes: only the platform changes a schema'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF v_fields IS NULL THEN
        SELECT fields INTO v_fields FROM core.resources WHERE service = p_service AND mode = p_mode AND name = p_name;
    END IF;
    FOR f IN SELECT x->>'name' AS name, substring(x->>'type' FROM '^vector\(([0-9]+)\)$')::int AS dim,
                    coalesce(x->>'metric', 'cosine') AS metric
               FROM jsonb_array_elements(coalesce(v_fields, '[]')) x
              WHERE x->>'type' LIKE 'vector(%' AND coalesce((x->>'index')::boolean, false) LOOP
        CONTINUE WHEN f.dim > 2000 OR f.metric NOT IN ('cosine', 'l2', 'inner');
        wanted := wanted || core.svc_hnsw_name(p_name, f.name, f.metric, f.dim);
    END LOOP;
    FOR ix IN SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
               WHERE i.indrelid = format('%I.%I', v_schema, p_name)::regclass AND c.relname LIKE 'hnsw\_%'
                 AND NOT c.relname = ANY (wanted) LOOP
        EXECUTE format('DROP INDEX %I.%I', v_schema, ix.relname);
    END LOOP;
    IF p_fields IS NOT NULL THEN
        RETURN 0;   -- before the change: its columns may not be there yet
    END IF;
    FOR f IN SELECT x->>'name' AS name, substring(x->>'type' FROM '^vector\(([0-9]+)\)$')::int AS dim,
                    coalesce(x->>'metric', 'cosine') AS metric
               FROM jsonb_array_elements(coalesce(v_fields, '[]')) x
              WHERE x->>'type' LIKE 'vector(%' AND coalesce((x->>'index')::boolean, false) LOOP
        CONTINUE WHEN f.dim > 2000 OR f.metric NOT IN ('cosine', 'l2', 'inner')
                   OR to_regclass(format('%I.%I', v_schema, core.svc_hnsw_name(p_name, f.name, f.metric, f.dim)))
                      IS NOT NULL;
        EXECUTE format('CREATE INDEX %I ON %I.%I USING hnsw ((%I::%I.vector(%s)) %I.%I)',
                       core.svc_hnsw_name(p_name, f.name, f.metric, f.dim), v_schema, p_name, f.name, ext, f.dim,
                       ext, CASE f.metric WHEN 'l2' THEN 'vector_l2_ops' WHEN 'inner' THEN 'vector_ip_ops'
                                          ELSE 'vector_cosine_ops' END);
        made := made + 1;
    END LOOP;
    RETURN made;
END $$;

-- Every resource of a mode conformed (the fleet's upkeep): the indexes a
-- database gains when pgvector is added to it later. Returns those built.
CREATE OR REPLACE FUNCTION core.svc_vector_indexes_all(p_mode text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = core, pg_temp AS $$
DECLARE
    r record;
    made integer := 0;
BEGIN
    IF core.svc_vector_schema() IS NULL THEN
        RETURN 0;
    END IF;
    FOR r IN SELECT service, name FROM core.resources
              WHERE mode = p_mode AND fields::text LIKE '%vector(%' ORDER BY service, name LOOP
        made := made + core.svc_vector_indexes(r.service, p_mode, r.name, NULL);
    END LOOP;
    RETURN made;
END $$;

REVOKE ALL ON FUNCTION core.svc_hnsw_name(text, text, text, integer), core.svc_vector_schema(),
    core.svc_vector_indexes(text, text, text, jsonb), core.svc_vector_indexes_all(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION core.svc_hnsw_name(text, text, text, integer), core.svc_vector_schema(),
    core.svc_vector_indexes(text, text, text, jsonb), core.svc_vector_indexes_all(text) TO tessera_app;
