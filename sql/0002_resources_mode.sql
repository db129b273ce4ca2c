-- 0002_resources_mode: a resource's schema belongs to a (service, mode), as
-- lib/engine.h's resources do (svc_<service>_sandbox and _live evolve apart),
-- and carries its record expiry (expire_after, seconds; 0: never).
-- core.resources held no rows before this file (nothing wrote it yet), so the
-- default 'test' only fills the column; it is not a choice made for old rows.

ALTER TABLE core.resources
    ADD COLUMN IF NOT EXISTS mode text NOT NULL DEFAULT 'test' CHECK (mode IN ('test', 'live'));
ALTER TABLE core.resources
    ADD COLUMN IF NOT EXISTS expire_after bigint NOT NULL DEFAULT 0 CHECK (expire_after >= 0);

-- The key becomes (service, mode, name); rebuilt only when it is not that yet.
DO $$
BEGIN
    IF (SELECT array_agg(a.attname::text ORDER BY k.ord)
        FROM pg_constraint c
        CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k (attnum, ord)
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
        WHERE c.conrelid = 'core.resources'::regclass AND c.contype = 'p')
       IS DISTINCT FROM ARRAY['service', 'mode', 'name'] THEN
        ALTER TABLE core.resources DROP CONSTRAINT IF EXISTS resources_pkey;
        ALTER TABLE core.resources ADD CONSTRAINT resources_pkey PRIMARY KEY (service, mode, name);
    END IF;
END $$;
