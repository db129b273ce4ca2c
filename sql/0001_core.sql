-- 0001_core: the core schema (DESIGN §4), its two roles and tenant isolation
-- (DESIGN §3 "Tenant isolation", §10 "RLS", "Audit log").
--
-- Roles. The migration owner is whichever role runs `tessera migrate`
-- ([db] migrate_dsn): it owns every object here, and needs BYPASSRLS (checked
-- below) because FORCE ROW LEVEL SECURITY binds table owners too and the
-- SECURITY DEFINER lookups at the end must see across orgs. tessera_app is
-- what the workers connect as: it owns nothing, cannot bypass RLS, and holds
-- only the grants listed here. It is created LOGIN without a password: give it
-- one (ALTER ROLE tessera_app PASSWORD …) or use peer/cert authentication.
--
-- Every statement is safe to run twice: migrate runs each file once, but an
-- operator replaying a file by hand must not break anything.
-- No BEGIN/COMMIT here: migrate wraps each file in its own transaction.

DO $$
BEGIN
    IF NOT (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'tessera migrate: role % needs BYPASSRLS (it owns the core tables, and '
                        'FORCE ROW LEVEL SECURITY applies to owners)', current_user;
    END IF;
    IF current_user = 'tessera_app' THEN
        RAISE EXCEPTION 'tessera migrate: run as the migration owner, not as tessera_app';
    END IF;
END $$;

DO $$
BEGIN
    CREATE ROLE tessera_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
-- A role that existed before must still be what the isolation relies on
-- (changing those attributes takes a superuser, so check rather than alter).
DO $$
BEGIN
    IF (SELECT rolsuper OR rolbypassrls OR rolcreaterole FROM pg_roles
        WHERE rolname = 'tessera_app') THEN
        RAISE EXCEPTION 'tessera migrate: role tessera_app must be NOSUPERUSER NOBYPASSRLS '
                        'NOCREATEROLE';
    END IF;
END $$;

CREATE SCHEMA IF NOT EXISTS core;
REVOKE ALL ON SCHEMA core FROM PUBLIC;
GRANT USAGE ON SCHEMA core TO tessera_app;
-- Functions are executable by PUBLIC unless revoked: make that the exception.
ALTER DEFAULT PRIVILEGES IN SCHEMA core REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- Global tables (no org_id, no RLS): users, apps, resources.

CREATE TABLE IF NOT EXISTS core.users (
    id                uuid PRIMARY KEY,
    email_enc         text NOT NULL CHECK (octet_length(email_enc) < 512),
    email_hmac        text NOT NULL UNIQUE CHECK (email_hmac ~ '^[0-9a-f]{64}$'),
    password_hash     text NOT NULL CHECK (octet_length(password_hash) < 256),
    is_platform_admin boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS core.apps (
    id         uuid PRIMARY KEY,
    name       text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    kind       text NOT NULL CHECK (octet_length(kind) < 32),
    base_url   text NOT NULL DEFAULT '' CHECK (octet_length(base_url) < 256),
    status     text NOT NULL DEFAULT 'active' CHECK (octet_length(status) < 32),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Resource schemas of the MicroService API (a later issue); shaped by platform admins.
CREATE TABLE IF NOT EXISTS core.resources (
    service    text NOT NULL,
    name       text NOT NULL,
    fields     jsonb NOT NULL DEFAULT '[]'::jsonb,
    options    jsonb NOT NULL DEFAULT '{}'::jsonb,
    version    integer NOT NULL DEFAULT 1 CHECK (version > 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, name)
);

-- Tenant tables. Uniques that hold tenant data are scoped by org_id, so a
-- conflict never tells one org about another's rows. The exceptions are the
-- hashes of random 256-bit secrets (api_keys, refresh_tokens, invites): they
-- are globally unique so that a lookup by hash finds exactly one row, and a
-- conflict on one reveals nothing (nobody can choose a colliding value).

CREATE TABLE IF NOT EXISTS core.organizations (
    id         uuid PRIMARY KEY,
    name       text NOT NULL CHECK (octet_length(name) < 128),
    slug       text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    plan       text NOT NULL DEFAULT 'free' CHECK (octet_length(plan) < 32),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS core.memberships (
    org_id     uuid NOT NULL REFERENCES core.organizations (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES core.users (id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (octet_length(role) < 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX IF NOT EXISTS memberships_user_idx ON core.memberships (user_id);

-- org_id NULL: a built-in role, shared by every org (read through core.builtin_roles()).
CREATE TABLE IF NOT EXISTS core.roles (
    org_id      uuid REFERENCES core.organizations (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,30}$'),
    permissions text[] NOT NULL DEFAULT '{}' CHECK (cardinality(permissions) <= 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT roles_org_name_key UNIQUE NULLS NOT DISTINCT (org_id, name)
);

CREATE TABLE IF NOT EXISTS core.api_keys (
    id         uuid PRIMARY KEY,
    org_id     uuid NOT NULL REFERENCES core.organizations (id) ON DELETE CASCADE,
    mode       text NOT NULL CHECK (mode IN ('test', 'live')),
    name       text NOT NULL CHECK (octet_length(name) < 128),
    prefix     text NOT NULL CHECK (octet_length(prefix) < 24),
    key_hash   text NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    role       text NOT NULL CHECK (octet_length(role) < 32),
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX IF NOT EXISTS api_keys_org_idx ON core.api_keys (org_id, created_at);

CREATE TABLE IF NOT EXISTS core.refresh_tokens (
    id         uuid PRIMARY KEY,
    family_id  uuid NOT NULL,
    user_id    uuid NOT NULL REFERENCES core.users (id) ON DELETE CASCADE,
    org_id     uuid NOT NULL REFERENCES core.organizations (id) ON DELETE CASCADE,
    mode       text NOT NULL CHECK (mode IN ('test', 'live')),
    token_hash text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    revoked_at timestamptz
);
CREATE INDEX IF NOT EXISTS refresh_tokens_family_idx ON core.refresh_tokens (org_id, family_id);

CREATE TABLE IF NOT EXISTS core.invites (
    id         uuid PRIMARY KEY,
    org_id     uuid NOT NULL REFERENCES core.organizations (id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (octet_length(role) < 32),
    token_hash text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);

-- The audit log: monthly range partitions on created_at, made ahead by
-- core.ensure_audit_partitions() (called by migrate, later by the projector);
-- retention drops whole partitions. No default partition: a row for a month
-- with no partition fails loudly instead of piling up where retention cannot
-- reach it.
CREATE TABLE IF NOT EXISTS core.audit_log (
    id         uuid NOT NULL,
    org_id     uuid NOT NULL,
    actor      text NOT NULL DEFAULT '' CHECK (octet_length(actor) < 37),
    action     text NOT NULL CHECK (octet_length(action) < 32),
    target     text NOT NULL DEFAULT '' CHECK (octet_length(target) < 128),
    meta       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX IF NOT EXISTS audit_log_org_idx ON core.audit_log (org_id, id);

-- Row triggers do not fire on TRUNCATE, hence the statement-level one as well.
CREATE OR REPLACE FUNCTION core.audit_log_refuse() RETURNS trigger
LANGUAGE plpgsql SET search_path = core, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'core.audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
REVOKE ALL ON FUNCTION core.audit_log_refuse() FROM PUBLIC;

DO $$
BEGIN
    CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON core.audit_log
        FOR EACH ROW EXECUTE FUNCTION core.audit_log_refuse();
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
DO $$
BEGIN
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON core.audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION core.audit_log_refuse();
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

-- Makes the partitions of this month and the next months_ahead months. Each
-- partition also gets RLS (enabled, forced, no policy: nothing is visible
-- through it directly), no grants, and its own TRUNCATE trigger, since
-- statement triggers are not inherited by partitions.
CREATE OR REPLACE FUNCTION core.ensure_audit_partitions(months_ahead integer)
RETURNS integer LANGUAGE plpgsql SET search_path = core, pg_temp AS $$
DECLARE
    first date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    lo date;
    part text;
    made integer := 0;
BEGIN
    IF months_ahead < 0 OR months_ahead > 24 THEN
        RAISE EXCEPTION 'ensure_audit_partitions: months_ahead % out of 0..24', months_ahead;
    END IF;
    FOR i IN 0..months_ahead LOOP
        lo := first + make_interval(months => i);
        part := 'audit_log_' || to_char(lo, 'YYYY_MM');
        IF to_regclass('core.' || part) IS NULL THEN
            EXECUTE format('CREATE TABLE core.%I PARTITION OF core.audit_log '
                           'FOR VALUES FROM (%L) TO (%L)',
                           part, lo::timestamp AT TIME ZONE 'UTC',
                           (lo + interval '1 month')::timestamp AT TIME ZONE 'UTC');
            made := made + 1;
        END IF;
        EXECUTE format('ALTER TABLE core.%I ENABLE ROW LEVEL SECURITY', part);
        EXECUTE format('ALTER TABLE core.%I FORCE ROW LEVEL SECURITY', part);
        BEGIN
            EXECUTE format('CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON core.%I '
                           'FOR EACH STATEMENT EXECUTE FUNCTION core.audit_log_refuse()', part);
        EXCEPTION WHEN duplicate_object THEN NULL;
        END;
    END LOOP;
    RETURN made;
END $$;
REVOKE ALL ON FUNCTION core.ensure_audit_partitions(integer) FROM PUBLIC;

-- Row-level security on every tenant table (DESIGN §3). NULLIF: on a session
-- that has used the setting before, an unset transaction-local value reads as
-- '' rather than NULL (§10). The list is a literal: identifiers never come
-- from anywhere else.
DO $$
DECLARE
    t text;
    cond text;
BEGIN
    FOREACH t IN ARRAY ARRAY['organizations', 'memberships', 'roles', 'api_keys',
                             'refresh_tokens', 'invites', 'audit_log'] LOOP
        cond := format('%I = NULLIF(current_setting(%L, true), %L)::uuid',
                       CASE t WHEN 'organizations' THEN 'id' ELSE 'org_id' END, 'tessera.org_id', '');
        EXECUTE format('ALTER TABLE core.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE core.%I FORCE ROW LEVEL SECURITY', t);
        BEGIN
            EXECUTE format('CREATE POLICY tenant_isolation ON core.%I USING (%s) WITH CHECK (%s)',
                           t, cond, cond);
        EXCEPTION WHEN duplicate_object THEN NULL;
        END;
    END LOOP;
END $$;

-- The app role's grants: what the engine needs, nothing more. No TRUNCATE and
-- no REFERENCES anywhere (RLS covers neither); the audit log is INSERT+SELECT.
GRANT SELECT, INSERT, UPDATE ON core.users, core.apps, core.resources TO tessera_app;
GRANT SELECT, INSERT, UPDATE ON core.organizations, core.api_keys, core.invites TO tessera_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON core.memberships, core.roles, core.refresh_tokens TO tessera_app;
GRANT SELECT, INSERT ON core.audit_log TO tessera_app;

-- Built-in roles: the same list as ENGINE_BUILTIN_ROLES in lib/engine.c.
INSERT INTO core.roles (org_id, name, permissions) VALUES
    (NULL, 'owner', ARRAY['*:*']),
    (NULL, 'admin', ARRAY['records:read:*', 'records:write:*', 'records:delete:*', 'schema:write:*',
                          'members:manage:*', 'keys:manage:*', 'audit:read:*', 'roles:manage:*']),
    (NULL, 'member', ARRAY['records:read:*', 'records:write:*', 'records:delete:*']),
    (NULL, 'viewer', ARRAY['records:read:*'])
ON CONFLICT ON CONSTRAINT roles_org_name_key DO UPDATE SET permissions = EXCLUDED.permissions
    WHERE roles.permissions IS DISTINCT FROM EXCLUDED.permissions;

-- The lookups that run before the org is known (lib/engine.h "bootstrap"):
-- each finds rows by an exact secret hash or user id, across orgs, as the
-- owner. Fixed search_path, no EXECUTE for PUBLIC (§10).
CREATE OR REPLACE FUNCTION core.api_key_resolve(p_key_hash text) RETURNS SETOF core.api_keys
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = core, pg_temp AS $$
    SELECT * FROM core.api_keys WHERE key_hash = p_key_hash
$$;
CREATE OR REPLACE FUNCTION core.refresh_resolve(p_token_hash text) RETURNS SETOF core.refresh_tokens
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = core, pg_temp AS $$
    SELECT * FROM core.refresh_tokens WHERE token_hash = p_token_hash
$$;
CREATE OR REPLACE FUNCTION core.invite_resolve(p_token_hash text) RETURNS SETOF core.invites
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = core, pg_temp AS $$
    SELECT * FROM core.invites WHERE token_hash = p_token_hash
$$;
CREATE OR REPLACE FUNCTION core.user_memberships(p_user_id uuid) RETURNS SETOF core.memberships
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = core, pg_temp AS $$
    SELECT * FROM core.memberships WHERE user_id = p_user_id ORDER BY created_at, org_id
$$;
CREATE OR REPLACE FUNCTION core.builtin_roles() RETURNS SETOF core.roles
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = core, pg_temp AS $$
    SELECT * FROM core.roles WHERE org_id IS NULL ORDER BY name
$$;

REVOKE ALL ON FUNCTION core.api_key_resolve(text), core.refresh_resolve(text),
    core.invite_resolve(text), core.user_memberships(uuid), core.builtin_roles() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION core.api_key_resolve(text), core.refresh_resolve(text),
    core.invite_resolve(text), core.user_memberships(uuid), core.builtin_roles() TO tessera_app;
