-- 0011_sessions: a session is one refresh family, from the login that began it
-- (issue 17): what a person sees in GET /v1/auth/sessions and ends with DELETE.
-- It keeps of the client only what helps them recognise it, minimized (seed
-- 001): the user agent cut to 127 printable bytes and the address as its /24
-- or /48; the reaper deletes it with its family's last token.
--
-- Tenant isolation as every core table: forced RLS on org_id. A person's
-- sessions span orgs, so listing and ending them goes through two SECURITY
-- DEFINER functions (as core.user_memberships does), each touching only the
-- rows of the user it is given; ending one also revokes its family's tokens.
-- Safe to run twice.

CREATE TABLE IF NOT EXISTS core.sessions (
    id           uuid PRIMARY KEY,      -- the refresh family's id
    org_id       uuid NOT NULL REFERENCES core.organizations (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES core.users (id) ON DELETE CASCADE,
    mode         text NOT NULL CHECK (mode IN ('test', 'live')),
    user_agent   text NOT NULL DEFAULT '' CHECK (octet_length(user_agent) < 128),
    address      text NOT NULL DEFAULT '' CHECK (octet_length(address) < 48),
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX IF NOT EXISTS sessions_user_idx ON core.sessions (user_id);
CREATE INDEX IF NOT EXISTS sessions_expiry_idx ON core.sessions (expires_at);

ALTER TABLE core.sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE core.sessions FORCE ROW LEVEL SECURITY;
DO $$
BEGIN
    CREATE POLICY tenant_isolation ON core.sessions
        USING (org_id = NULLIF(current_setting('tessera.org_id', true), '')::uuid)
        WITH CHECK (org_id = NULLIF(current_setting('tessera.org_id', true), '')::uuid);
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
GRANT SELECT, INSERT, UPDATE ON core.sessions TO tessera_app;

-- p_user's sessions neither revoked nor expired at p_now, newest first.
CREATE OR REPLACE FUNCTION core.user_sessions(p_user uuid, p_now bigint) RETURNS SETOF core.sessions
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = core, pg_temp AS $$
    SELECT * FROM core.sessions
    WHERE user_id = p_user AND revoked_at IS NULL AND expires_at > to_timestamp(p_now)
    ORDER BY created_at DESC, id DESC
$$;

-- Ends p_user's live sessions (in p_org only unless NULL; only p_family unless
-- NULL; all but p_except unless NULL) and revokes their families' tokens, as
-- refresh_revoke_family does; returns the ids ended.
CREATE OR REPLACE FUNCTION core.user_sessions_revoke(p_user uuid, p_org uuid, p_family uuid, p_except uuid,
                                                     p_at bigint) RETURNS SETOF uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = core, pg_temp AS $$
DECLARE
    ended uuid[];
BEGIN
    IF p_user IS NULL OR p_at IS NULL THEN
        RAISE EXCEPTION 'user_sessions_revoke: bad arguments' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    WITH s AS (
        UPDATE core.sessions SET revoked_at = to_timestamp(p_at)
        WHERE user_id = p_user AND revoked_at IS NULL
          AND (p_org IS NULL OR org_id = p_org)
          AND (p_family IS NULL OR id = p_family)
          AND (p_except IS NULL OR id <> p_except)
        RETURNING id)
    SELECT coalesce(array_agg(id ORDER BY id), '{}') INTO ended FROM s;
    UPDATE core.refresh_tokens SET revoked_at = to_timestamp(p_at), child_sealed = NULL
    WHERE family_id = ANY (ended) AND user_id = p_user AND revoked_at IS NULL;
    RETURN QUERY SELECT unnest(ended);
END $$;

-- The reaper's part (core.reap_core keeps tokens, invites and the audit):
-- sessions whose last token expired p_grace seconds ago, with what they kept.
CREATE OR REPLACE FUNCTION core.reap_sessions(p_now bigint, p_grace bigint) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = core, pg_temp AS $$
DECLARE
    n bigint;
BEGIN
    IF p_now IS NULL OR p_grace IS NULL OR p_grace < 0 THEN
        RAISE EXCEPTION 'reap_sessions: bad arguments' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM core.sessions WHERE expires_at <= to_timestamp(p_now - p_grace);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

REVOKE ALL ON FUNCTION core.user_sessions(uuid, bigint), core.user_sessions_revoke(uuid, uuid, uuid, uuid, bigint),
    core.reap_sessions(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION core.user_sessions(uuid, bigint), core.user_sessions_revoke(uuid, uuid, uuid, uuid, bigint),
    core.reap_sessions(bigint, bigint) TO tessera_app;
