-- 0004_svc_records: the data schemas of the MicroService API (DESIGN §3, §5,
-- issue 6) and the functions through which tessera_app shapes them.
--
-- Layout. Per service and mode one schema, svc_<service>_sandbox (test) or
-- svc_<service>_live, named by core.svc_schema_name (the only place the words
-- sandbox and live appear). In it one table per resource, named as the
-- resource, and one outbox, "_outbox" (resource names start with a letter, so
-- no resource can take it). A resource table has the system columns
--     id uuid, org_id uuid, version bigint, created_at bigint,
--     updated_at bigint, expires_at bigint (NULL: never), _bidx jsonb
-- (unix seconds, as the API speaks them; _bidx maps a pii field to its blind
-- index) and one typed column per field, named as the field. Field names are
-- ^[a-z][a-z0-9_]{0,62}$ and the reserved system names are refused, so a field
-- can never shadow a system column.
--
-- Why functions: tessera_app owns nothing and cannot run DDL, yet a schema
-- change must alter tables. core.svc_resource_put runs as the migration owner
-- (SECURITY DEFINER, fixed search_path, EXECUTE for tessera_app only), takes
-- the definition as jsonb, checks every name by regex and every type against
-- a whitelist itself (it trusts nothing the caller built), builds its DDL with
-- format('%I'), and writes the metadata row in core.resources in the same
-- transaction. It probes every cast with a SELECT before it alters anything,
-- so a refused change returns a conflict (as data, no SQL error) and has
-- changed nothing, and the caller's transaction stays usable.
--
-- Casts follow eng_value_cast (lib/engine_mem_records.c) value by value:
-- core.svc_cast maps a value (as jsonb) of the old type to the new one, or to
-- NULL when it cannot cast strictly; the probe looks for such NULLs, and
-- ALTER TABLE … TYPE … USING applies the same function.
--
-- Every statement is safe to run twice.

-- ---- names -------------------------------------------------------------------

-- The data schema of (service, mode). Identifiers hold at most 63 bytes: a
-- service name too long for "svc_<name>_<word>" keeps its first 42 characters
-- and gains 8 hex digits of its SHA-256, so two long names never share a schema
-- by truncation alone.
CREATE OR REPLACE FUNCTION core.svc_schema_name(p_service text, p_mode text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    word text := CASE p_mode WHEN 'test' THEN 'sandbox' WHEN 'live' THEN 'live' END;
    full_name text;
BEGIN
    IF p_service IS NULL OR p_service !~ '^[a-z0-9][a-z0-9_-]{0,62}$' OR word IS NULL THEN
        RAISE EXCEPTION 'svc_schema_name: bad service or mode' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    full_name := 'svc_' || p_service || '_' || word;
    IF octet_length(full_name) <= 63 THEN
        RETURN full_name;
    END IF;
    RETURN 'svc_' || left(p_service, 42) || '_'
        || left(encode(sha256(convert_to(p_service, 'UTF8')), 'hex'), 8) || '_' || word;
END $$;

-- The column type of a field type (whitelist; NULL for anything else). Text
-- columns collate "C": order and comparisons are bytewise, as the memory
-- engine's strcmp, whatever the database's locale.
CREATE OR REPLACE FUNCTION core.svc_sql_type(p_type text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE
        WHEN p_type IN ('string', 'text') THEN 'text COLLATE "C"'
        WHEN p_type IN ('integer', 'timestamp') THEN 'bigint'
        WHEN p_type = 'number' THEN 'double precision'
        WHEN p_type = 'boolean' THEN 'boolean'
        WHEN p_type = 'json' THEN 'jsonb'
        WHEN p_type ~ '^vector\(([1-9][0-9]{0,3})\)$'
             AND substring(p_type FROM '^vector\(([0-9]+)\)$')::int <= 4096 THEN 'double precision[]'
    END
$$;

-- ---- casts (eng_value_cast, value by value) -----------------------------------

-- %.17g of a double, exactly as C's printf prints it (number → string casts
-- must give the memory engine's text): the double's exact decimal expansion,
-- rounded half-even to 17 significant digits.
CREATE OR REPLACE FUNCTION core.svc_g17(x double precision) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    b bytea := float8send(x);
    neg boolean := get_byte(b, 0) >= 128;
    bexp int := ((get_byte(b, 0) & 127) << 4) | (get_byte(b, 1) >> 4);
    mant numeric := (get_byte(b, 1) & 15)::numeric;
    d text;          -- the exact value's digits, value = d × 10^-k
    k int := 0;
    e10 int;         -- decimal exponent of the first digit
    head numeric;
    rest text;
    s text;
BEGIN
    FOR i IN 2..7 LOOP
        mant := mant * 256 + get_byte(b, i);
    END LOOP;
    IF bexp = 0 AND mant = 0 THEN
        RETURN CASE WHEN neg THEN '-0' ELSE '0' END;
    END IF;
    IF bexp = 0 THEN
        bexp := 1;
    ELSE
        mant := mant + 4503599627370496;  -- 2^52
    END IF;
    bexp := bexp - 1075;
    IF bexp >= 0 THEN
        d := trunc(mant * power(2::numeric, bexp))::text;
    ELSE
        k := -bexp;
        d := trunc(mant * power(5::numeric, k))::text;
    END IF;
    e10 := length(d) - 1 - k;
    IF length(d) > 17 THEN
        head := substr(d, 1, 17)::numeric;
        rest := substr(d, 18);
        IF substr(rest, 1, 1) > '5' OR (substr(rest, 1, 1) = '5' AND (rtrim(substr(rest, 2), '0') <> ''
                                         OR head % 2 = 1)) THEN
            head := head + 1;
        END IF;
        d := head::text;
        IF length(d) > 17 THEN      -- 99…9 rounded up
            d := substr(d, 1, 17);
            e10 := e10 + 1;
        END IF;
    END IF;
    d := rtrim(d, '0');
    IF d = '' THEN d := '0'; END IF;
    IF e10 < -4 OR e10 >= 17 THEN
        s := substr(d, 1, 1) || CASE WHEN length(d) > 1 THEN '.' || substr(d, 2) ELSE '' END
             || 'e' || CASE WHEN e10 < 0 THEN '-' ELSE '+' END
             || CASE WHEN abs(e10) < 10 THEN '0' ELSE '' END || abs(e10)::text;
    ELSIF e10 < 0 THEN
        s := '0.' || repeat('0', -e10 - 1) || d;
    ELSIF length(d) > e10 + 1 THEN
        s := substr(d, 1, e10 + 1) || '.' || substr(d, e10 + 2);
    ELSE
        s := d || repeat('0', e10 + 1 - length(d));
    END IF;
    RETURN CASE WHEN neg THEN '-' || s ELSE s END;
END $$;

-- A string → number the way strtod reads it with the memory engine's guards
-- (no blanks, hex, inf or nan; the whole string; finite), NULL otherwise.
CREATE OR REPLACE FUNCTION core.svc_text_number(s text) RETURNS double precision
LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    f double precision;
BEGIN
    IF s !~ '^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$' THEN
        RETURN NULL;
    END IF;
    BEGIN
        f := s::double precision;
    EXCEPTION WHEN numeric_value_out_of_range THEN
        BEGIN
            -- strtod underflows to 0 (accepted), overflows to inf (refused)
            IF abs(s::numeric) < 1 THEN f := 0; ELSE RETURN NULL; END IF;
        EXCEPTION WHEN OTHERS THEN
            RETURN NULL;
        END;
    END;
    RETURN f;
END $$;

-- "YYYY-MM-DDTHH:MM:SSZ" or unix seconds → unix seconds as strptime + timegm
-- read them (days past a month's end roll over), NULL when not a timestamp.
CREATE OR REPLACE FUNCTION core.svc_text_timestamp(s text) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    m text[] := regexp_match(s, '^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z$');
    t bigint;
BEGIN
    IF m IS NOT NULL AND m[2]::int BETWEEN 1 AND 12 AND m[3]::int BETWEEN 1 AND 31
       AND m[4]::int <= 23 AND m[5]::int <= 59 AND m[6]::int <= 61 AND m[1]::int >= 1970 THEN
        t := (make_date(m[1]::int, m[2]::int, 1) - date '1970-01-01')::bigint * 86400
             + (m[3]::int - 1) * 86400 + m[4]::int * 3600 + m[5]::int * 60 + m[6]::int;
    ELSIF s ~ '^[0-9]{1,12}$' THEN
        t := s::bigint;
    END IF;
    RETURN CASE WHEN t BETWEEN 0 AND 253402300799 THEN t END;
END $$;

-- Whether v is already a value of type p_to (eng_value_check).
CREATE OR REPLACE FUNCTION core.svc_value_ok(v jsonb, p_to text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n numeric;
BEGIN
    CASE
    WHEN p_to IN ('string', 'text') THEN
        RETURN jsonb_typeof(v) = 'string' AND octet_length(v #>> '{}') <= 65536;
    WHEN p_to IN ('integer', 'timestamp') THEN
        IF jsonb_typeof(v) <> 'number' THEN RETURN false; END IF;
        n := v::numeric;
        RETURN n = trunc(n) AND (CASE WHEN p_to = 'integer' THEN abs(n) <= 9007199254740991
                                      ELSE n BETWEEN 0 AND 253402300799 END);
    WHEN p_to = 'number' THEN
        RETURN jsonb_typeof(v) = 'number' AND abs(v::numeric) <= 1.7976931348623157e308;
    WHEN p_to = 'boolean' THEN
        RETURN jsonb_typeof(v) = 'boolean';
    WHEN p_to = 'json' THEN
        RETURN true;
    ELSE
        RETURN jsonb_typeof(v) = 'array'
           AND jsonb_array_length(v) = substring(p_to FROM '^vector\(([0-9]+)\)$')::int
           AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(v) x WHERE jsonb_typeof(x) <> 'number');
    END CASE;
END $$;

-- v (a non-null value of type p_from, as jsonb) cast to type p_to, or NULL
-- when it cannot cast strictly: the rules of eng_value_cast, branch by branch.
CREATE OR REPLACE FUNCTION core.svc_cast(v jsonb, p_from text, p_to text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s text;
    out jsonb;
    n numeric;
BEGIN
    IF p_from IN ('string', 'text') THEN
        s := v #>> '{}';
        out := CASE
            WHEN p_to IN ('string', 'text', 'json') THEN v
            WHEN p_to = 'integer' THEN
                CASE WHEN s ~ '^-?[0-9]+$' AND length(s) <= 17
                          AND abs(s::numeric) <= 9007199254740991 THEN to_jsonb(s::bigint) END
            WHEN p_to = 'number' THEN to_jsonb(core.svc_text_number(s))
            WHEN p_to = 'boolean' THEN
                CASE s WHEN 'true' THEN 'true'::jsonb WHEN 'false' THEN 'false'::jsonb END
            WHEN p_to = 'timestamp' THEN to_jsonb(core.svc_text_timestamp(s))
        END;
    ELSIF p_to IN ('string', 'text') THEN
        out := CASE
            WHEN p_from = 'integer' THEN to_jsonb(v::numeric::bigint::text)
            WHEN p_from = 'number' THEN to_jsonb(core.svc_g17(v::double precision))
            WHEN p_from = 'boolean' THEN to_jsonb(CASE WHEN v = 'true'::jsonb THEN 'true' ELSE 'false' END)
            WHEN p_from = 'timestamp' THEN
                to_jsonb(to_char(to_timestamp(v::numeric::bigint) AT TIME ZONE 'UTC',
                                 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
            WHEN p_from = 'json' THEN
                CASE WHEN jsonb_typeof(v) = 'string' THEN v ELSE to_jsonb(core.svc_json_compact(v)) END
        END;
    ELSIF p_to = 'json' THEN
        out := v;
    ELSIF p_from = 'boolean' AND p_to IN ('integer', 'number') THEN
        out := CASE WHEN v = 'true'::jsonb THEN '1'::jsonb ELSE '0'::jsonb END;
    ELSIF p_to = 'boolean' AND p_from IN ('integer', 'number') THEN
        n := v::numeric;
        out := CASE WHEN n = 1 THEN 'true'::jsonb WHEN n = 0 THEN 'false'::jsonb END;
    ELSIF p_from NOT LIKE 'vector(%' OR p_to LIKE 'vector(%' THEN
        out := v;
    END IF;
    IF out IS NULL OR NOT core.svc_value_ok(out, p_to) THEN
        RETURN NULL;
    END IF;
    RETURN out;
END $$;

-- Why svc_cast refuses (the memory engine's words, for the 409's message).
CREATE OR REPLACE FUNCTION core.svc_cast_why(p_from text, p_to text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE
        WHEN p_from IN ('string', 'text') THEN CASE p_to
            WHEN 'integer' THEN 'a string that is not an integer'
            WHEN 'number' THEN 'a string that is not a number'
            WHEN 'boolean' THEN 'a string other than "true" or "false"'
            WHEN 'timestamp' THEN 'a string that is not a timestamp (YYYY-MM-DDTHH:MM:SSZ or unix seconds)'
            ELSE 'a string cannot become that type' END
        WHEN p_to IN ('string', 'text') THEN 'the value cannot become a string'
        WHEN p_to = 'boolean' AND p_from IN ('integer', 'number') THEN 'only 0 and 1 become booleans'
        WHEN p_to = 'integer' THEN 'must be an integer within ±9007199254740991'
        WHEN p_to = 'timestamp' THEN 'must be unix seconds (an integer from 0 to 253402300799)'
        WHEN p_to = 'number' THEN 'must be a number'
        WHEN p_to = 'boolean' THEN 'must be true or false'
        WHEN p_to LIKE 'vector(%' THEN 'must be an array of numbers of the vector''s dimension'
        ELSE 'cannot cast'
    END
$$;

-- A cast value (jsonb) as the column type of p_to: the USING of a retype.
CREATE OR REPLACE FUNCTION core.svc_vector(v jsonb) RETURNS double precision[]
LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
    SELECT array_agg(x::double precision ORDER BY i) FROM jsonb_array_elements(v) WITH ORDINALITY AS e (x, i)
$$;

CREATE OR REPLACE FUNCTION core.svc_from_jsonb_sql(p_expr text, p_to text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE
        WHEN p_to IN ('string', 'text') THEN format('((%s) #>> %L)', p_expr, '{}')
        WHEN p_to IN ('integer', 'timestamp') THEN format('((%s)::numeric::bigint)', p_expr)
        WHEN p_to = 'number' THEN format('((%s)::double precision)', p_expr)
        WHEN p_to = 'boolean' THEN format('((%s)::boolean)', p_expr)
        WHEN p_to = 'json' THEN format('(%s)', p_expr)
        ELSE format('core.svc_vector(%s)', p_expr)
    END
$$;

-- jsonb text without the blanks jsonb puts after ',' and ':', as cJSON
-- prints a value (a json → string cast). Strings are escaped alike by both;
-- an object's keys come in jsonb's order, not the order they were written.
CREATE OR REPLACE FUNCTION core.svc_json_compact(v jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN CASE jsonb_typeof(v)
        WHEN 'object' THEN '{' || coalesce((SELECT string_agg(to_jsonb(e.key)::text || ':'
                                                              || core.svc_json_compact(e.value), ',' ORDER BY i)
                                            FROM jsonb_each(v) WITH ORDINALITY e (key, value, i)), '') || '}'
        WHEN 'array' THEN '[' || coalesce((SELECT string_agg(core.svc_json_compact(x), ',' ORDER BY i)
                                           FROM jsonb_array_elements(v) WITH ORDINALITY a (x, i)), '') || ']'
        ELSE v::text
    END;
END $$;

-- The name of a field's index: "ix_" and 20 hex digits of a hash of table,
-- field and kind (a column, or a pii field's blind index).
CREATE OR REPLACE FUNCTION core.svc_index_name(p_table text, p_field text, p_pii boolean) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT 'ix_' || left(md5(p_table || '/' || p_field || CASE WHEN p_pii THEN '/bidx' ELSE '' END), 20)
$$;

-- ---- the DDL ---------------------------------------------------------------------

-- Makes the data schema of (service, mode) and its outbox when missing. The
-- RLS policy is the core tables' (0001): USING and WITH CHECK on org_id.
CREATE OR REPLACE FUNCTION core.svc_ensure_schema(p_schema text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cond text := format('org_id = NULLIF(current_setting(%L, true), %L)::uuid', 'tessera.org_id', '');
BEGIN
    IF to_regnamespace(quote_ident(p_schema)) IS NOT NULL THEN
        RETURN;
    END IF;
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
    -- The projector (a later issue) will trim what it consumed: DELETE then.
    EXECUTE format('GRANT SELECT, INSERT ON %I._outbox TO tessera_app', p_schema);
END $$;

-- A resource table with its system columns, RLS and grants (no TRUNCATE,
-- no REFERENCES: RLS covers neither).
CREATE OR REPLACE FUNCTION core.svc_create_table(p_schema text, p_table text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cond text := format('org_id = NULLIF(current_setting(%L, true), %L)::uuid', 'tessera.org_id', '');
BEGIN
    EXECUTE format('CREATE TABLE %I.%I ('
                   'id uuid NOT NULL, org_id uuid NOT NULL, version bigint NOT NULL, '
                   'created_at bigint NOT NULL, updated_at bigint NOT NULL, expires_at bigint, '
                   '_bidx jsonb NOT NULL DEFAULT %L, PRIMARY KEY (org_id, id))',
                   p_schema, p_table, '{}');
    EXECUTE format('ALTER TABLE %I.%I ENABLE ROW LEVEL SECURITY', p_schema, p_table);
    EXECUTE format('ALTER TABLE %I.%I FORCE ROW LEVEL SECURITY', p_schema, p_table);
    EXECUTE format('CREATE POLICY tenant_isolation ON %I.%I USING (%s) WITH CHECK (%s)',
                   p_schema, p_table, cond, cond);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I.%I TO tessera_app', p_schema, p_table);
END $$;

-- Drops the CHECK constraints on one column (before a retype) …
CREATE OR REPLACE FUNCTION core.svc_drop_checks(p_schema text, p_table text, p_col text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c text;
BEGIN
    FOR c IN SELECT con.conname FROM pg_constraint con
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attname = p_col
             WHERE con.conrelid = format('%I.%I', p_schema, p_table)::regclass
               AND con.contype = 'c' AND con.conkey = ARRAY[a.attnum] LOOP
        EXECUTE format('ALTER TABLE %I.%I DROP CONSTRAINT %I', p_schema, p_table, c);
    END LOOP;
END $$;

-- … and adds the one a type carries: a vector's length, no null elements.
CREATE OR REPLACE FUNCTION core.svc_add_checks(p_schema text, p_table text, p_col text, p_type text)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_type LIKE 'vector(%' THEN
        EXECUTE format('ALTER TABLE %I.%I ADD CHECK (cardinality(%I) = %s AND array_position(%I, NULL) IS NULL)',
                       p_schema, p_table, p_col,
                       substring(p_type FROM '^vector\(([0-9]+)\)$')::int, p_col);
    END IF;
END $$;

-- A sample row of the caller's org (else of any org) matching p_where:
-- (matched, record id or '' when only other orgs' rows match). p_where is SQL
-- that svc_resource_put builds (names through %I, types from its whitelist);
-- only the owner may call this.
CREATE OR REPLACE FUNCTION core.svc_sample(p_schema text, p_table text, p_where text,
                                           OUT matched boolean, OUT record_id text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    org uuid := NULLIF(current_setting('tessera.org_id', true), '')::uuid;
    mine boolean;
    rid uuid;
BEGIN
    EXECUTE format('SELECT id, org_id IS NOT DISTINCT FROM $1 FROM %I.%I WHERE %s '
                   'ORDER BY (org_id IS NOT DISTINCT FROM $1) DESC LIMIT 1', p_schema, p_table, p_where)
        INTO rid, mine USING org;
    matched := rid IS NOT NULL;
    record_id := CASE WHEN mine THEN rid::text ELSE '' END;
END $$;

-- Creates or changes a resource to exactly p_def and records it in
-- core.resources, in the caller's transaction. p_def:
--   {"name": r, "fields": [{"name", "type", "required", "pii", "index", "default"}],
--    "expire_after": seconds, "views": object or null}
-- p_renames: [{"from": old, "to": new}]. Returns {"ok": true, "version": n},
-- or {"ok": false, "field", "record_id", "reason"} having changed nothing.
-- Malformed input raises invalid_parameter_value (the engine checks first:
-- this is the second line of defence, not the API's validation).
CREATE OR REPLACE FUNCTION core.svc_resource_put(p_service text, p_mode text, p_def jsonb,
                                                 p_renames jsonb, p_now bigint)
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
    reserved constant text[] := ARRAY['id', 'org_id', 'version', 'created_at', 'updated_at',
                                      'expires_at', 'deleted_at'];
BEGIN
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
                    SELECT * INTO hit FROM core.svc_sample(v_schema, v_table, format('%I IS NULL', s.src));
                    IF hit.matched THEN
                        RETURN jsonb_build_object('ok', false, 'field', s.name, 'record_id', hit.record_id,
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
                SELECT * INTO hit FROM core.svc_sample(v_schema, v_table, probe);
                IF hit.matched THEN
                    RETURN jsonb_build_object('ok', false, 'field', s.name, 'record_id', hit.record_id,
                                              'reason', why);
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
    RETURN jsonb_build_object('ok', true, 'version', v_version);
END $$;

REVOKE ALL ON FUNCTION core.svc_schema_name(text, text), core.svc_sql_type(text),
    core.svc_g17(double precision), core.svc_text_number(text), core.svc_text_timestamp(text),
    core.svc_value_ok(jsonb, text), core.svc_cast(jsonb, text, text), core.svc_cast_why(text, text),
    core.svc_vector(jsonb), core.svc_from_jsonb_sql(text, text), core.svc_json_compact(jsonb),
    core.svc_index_name(text, text, boolean), core.svc_ensure_schema(text),
    core.svc_create_table(text, text), core.svc_drop_checks(text, text, text),
    core.svc_add_checks(text, text, text, text), core.svc_sample(text, text, text),
    core.svc_resource_put(text, text, jsonb, jsonb, bigint) FROM PUBLIC;
-- The app computes schema names through the same function the DDL uses, and
-- changes schemas only through svc_resource_put; the helpers stay the owner's.
GRANT EXECUTE ON FUNCTION core.svc_schema_name(text, text),
    core.svc_resource_put(text, text, jsonb, jsonb, bigint) TO tessera_app;
