-- 0014_auth_hot_path: what a refresh (and a login, an API key's request, an
-- invite's acceptance) costs the server, from the bench's profile (issue 18).
--
-- 1. The lookups that run before the org is known (0001's bootstrap
-- functions) in PL/pgSQL, with the same names, arguments, rows, owner,
-- search_path and grants (CREATE OR REPLACE keeps the grants). A SQL-language
-- function that cannot be inlined (SECURITY DEFINER and SET search_path both
-- forbid it) has its body parsed and planned again at every call from a
-- prepared statement, as the engine's are: a refresh's core.refresh_resolve
-- cost 0.15–0.3 ms of server time for an index lookup, and the parser and
-- planner were a visible part of a refresh's profile. PL/pgSQL keeps its
-- query's plan for the session. What each returns is unchanged: the rows
-- whose secret hash (or user) matches. (Refreshes/s on the bench's load:
-- 3 069 → 3 489 with this alone.)

CREATE OR REPLACE FUNCTION core.api_key_resolve(p_key_hash text) RETURNS SETOF core.api_keys
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = core, pg_temp AS $$
BEGIN
    RETURN QUERY SELECT * FROM core.api_keys WHERE key_hash = p_key_hash;
END $$;

CREATE OR REPLACE FUNCTION core.refresh_resolve(p_token_hash text) RETURNS SETOF core.refresh_tokens
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = core, pg_temp AS $$
BEGIN
    RETURN QUERY SELECT * FROM core.refresh_tokens WHERE token_hash = p_token_hash;
END $$;

CREATE OR REPLACE FUNCTION core.invite_resolve(p_token_hash text) RETURNS SETOF core.invites
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = core, pg_temp AS $$
BEGIN
    RETURN QUERY SELECT * FROM core.invites WHERE token_hash = p_token_hash;
END $$;

CREATE OR REPLACE FUNCTION core.user_memberships(p_user_id uuid) RETURNS SETOF core.memberships
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = core, pg_temp AS $$
BEGIN
    RETURN QUERY SELECT * FROM core.memberships WHERE user_id = p_user_id ORDER BY created_at, org_id;
END $$;

CREATE OR REPLACE FUNCTION core.builtin_roles() RETURNS SETOF core.roles
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = core, pg_temp AS $$
BEGIN
    RETURN QUERY SELECT * FROM core.roles WHERE org_id IS NULL ORDER BY name;
END $$;

-- 2. Room on each page of core.refresh_tokens for the new version of a row a
-- refresh updates (the parent's used_at and child, the grandparent's seal
-- wiped): none of those columns is indexed, so with room the update is HOT
-- and touches none of the table's three indexes. Measured on the bench's
-- refresh load: 53 % of the updates HOT at the default fillfactor (100), 79 %
-- at 70. New pages only; a table rewritten (VACUUM FULL) gets it throughout.
-- core.sessions gains nothing from it: its refresh moves expires_at, which
-- the reaper's index holds (PostgreSQL 16 would let a BRIN index there stay
-- out of the way; 15 does not).
ALTER TABLE core.refresh_tokens SET (fillfactor = 70);
