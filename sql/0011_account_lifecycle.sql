-- 0011_account_lifecycle: what an account needs over its life (issue 17):
-- sessions a person sees and ends, one-time tokens for a password reset and an
-- email verification, and the auth outbox a deployment's mailer reads.
--
-- A session is one refresh family, from the login that began it: what a
-- person sees in GET /v1/auth/sessions and ends with DELETE. It keeps of the
-- client only what helps them recognise it, minimized (seed 001): the user
-- agent cut to 127 printable bytes and the address as its /24 or /48; the
-- reaper deletes it with its family's last token. Tenant isolation as every
-- core table: forced RLS on org_id. A person's sessions span orgs, so listing
-- and ending them goes through two SECURITY DEFINER functions (as
-- core.user_memberships does), each touching only the rows of the user it is
-- given; ending one also revokes its family's tokens.
--
-- A person's tokens and events belong to no org (as core.users): the app
-- role reads and writes them directly. A token is kept as its SHA-256 only;
-- an event's payload (address and token, for the mailer) is sealed by the
-- app under the data key. Both go past their expiry and the grace.
-- Safe to run twice.

-- Accounts made before verification existed count as verified: they were
-- let in without it, and nobody can be asked to verify in the past.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = 'core' AND table_name = 'users' AND column_name = 'email_verified_at') THEN
        ALTER TABLE core.users ADD COLUMN email_verified_at timestamptz;
        UPDATE core.users SET email_verified_at = created_at;
    END IF;
END $$;

CREATE TABLE IF NOT EXISTS core.user_tokens (
    token_hash text PRIMARY KEY CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    kind       text NOT NULL CHECK (kind IN ('reset', 'verify')),
    user_id    uuid NOT NULL REFERENCES core.users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX IF NOT EXISTS user_tokens_expiry_idx ON core.user_tokens (expires_at);
GRANT SELECT, INSERT, UPDATE ON core.user_tokens TO tessera_app;

CREATE TABLE IF NOT EXISTS core.auth_events (
    seq        bigserial PRIMARY KEY,
    kind       text NOT NULL CHECK (kind ~ '^[a-z_.]{1,47}$'),
    user_id    uuid NOT NULL REFERENCES core.users (id) ON DELETE CASCADE,
    sealed     text NOT NULL CHECK (octet_length(sealed) < 1024),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS auth_events_expiry_idx ON core.auth_events (expires_at);
GRANT SELECT, INSERT ON core.auth_events TO tessera_app;
GRANT USAGE ON SEQUENCE core.auth_events_seq_seq TO tessera_app;

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

-- Erases a person (DELETE /v1/auth/me, an admin's DELETE /v1/admin/users/{id}):
-- the keys they made and the invites naming their email (by its blind index),
-- then the user row, whose foreign keys take their memberships, refresh
-- tokens, sessions, one-time tokens and outbox events with it. Audit entries
-- keep the actor's uuid, which then names nobody. Returns the sessions that
-- were live (their access tokens are the app's to refuse).
CREATE OR REPLACE FUNCTION core.user_erase(p_user uuid, p_now bigint) RETURNS SETOF uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = core, pg_temp AS $$
DECLARE
    hmac text;
    live uuid[];
BEGIN
    SELECT email_hmac INTO hmac FROM core.users WHERE id = p_user FOR UPDATE;
    IF NOT FOUND THEN
        RETURN; -- nobody to erase (the app read the user in this transaction first)
    END IF;
    SELECT coalesce(array_agg(id), '{}') INTO live FROM core.sessions
    WHERE user_id = p_user AND revoked_at IS NULL AND expires_at > to_timestamp(p_now);
    DELETE FROM core.api_keys WHERE created_by = p_user;
    DELETE FROM core.invites WHERE email_hmac = hmac;
    DELETE FROM core.users WHERE id = p_user;
    RETURN QUERY SELECT unnest(live);
END $$;

-- The reaper's part for accounts (core.reap_core keeps refresh tokens,
-- invites and the audit): sessions, tokens and events past expiry and grace.
CREATE OR REPLACE FUNCTION core.reap_accounts(p_now bigint, p_grace bigint) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = core, pg_temp AS $$
DECLARE
    sessions bigint;
    tokens bigint;
    events bigint;
BEGIN
    IF p_now IS NULL OR p_grace IS NULL OR p_grace < 0 THEN
        RAISE EXCEPTION 'reap_accounts: bad arguments' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM core.sessions WHERE expires_at <= to_timestamp(p_now - p_grace);
    GET DIAGNOSTICS sessions = ROW_COUNT;
    DELETE FROM core.user_tokens WHERE expires_at <= to_timestamp(p_now - p_grace);
    GET DIAGNOSTICS tokens = ROW_COUNT;
    DELETE FROM core.auth_events WHERE expires_at <= to_timestamp(p_now - p_grace);
    GET DIAGNOSTICS events = ROW_COUNT;
    RETURN jsonb_build_object('sessions', sessions, 'user_tokens', tokens, 'auth_events', events);
END $$;

REVOKE ALL ON FUNCTION core.user_sessions(uuid, bigint), core.user_sessions_revoke(uuid, uuid, uuid, uuid, bigint),
    core.user_erase(uuid, bigint), core.reap_accounts(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION core.user_sessions(uuid, bigint), core.user_sessions_revoke(uuid, uuid, uuid, uuid, bigint),
    core.user_erase(uuid, bigint), core.reap_accounts(bigint, bigint) TO tessera_app;
