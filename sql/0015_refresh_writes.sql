-- 0015_sessions_hot: what a refresh's writes cost the server (issue 18's
-- refresh profile, after 0014).
--
-- 1. A refresh's update of its session made HOT.
--
-- Every rotation moves its session's last_used_at and expires_at. The index
-- on expires_at (0011, for the reaper) made each of those updates a new
-- version in all three of the table's indexes; with no index on a column a
-- refresh moves, and room on the page for the new version, the update is HOT
-- and touches none. The reaper's DELETE of sessions past expiry and grace
-- (core.reap_accounts) scans the table instead, once per reap interval, as
-- core.reap_core's of refresh tokens — a far larger table — already does.
-- Measured on the bench's refresh load (one statement per refresh, 0014's
-- fillfactor on refresh_tokens): 4 090–4 460 → 4 620–4 910 refreshes/s.
--
-- Half of each new page is left free: a session row is small and updated at
-- every refresh of its family, and sessions are few beside refresh tokens
-- (one per signed-in device), so the room costs little and keeps the next
-- version on the page when refreshes of rows on one page come close together.
-- New pages only; a table rewritten (VACUUM FULL) gets it throughout.

DROP INDEX IF EXISTS core.sessions_expiry_idx;
ALTER TABLE core.sessions SET (fillfactor = 50);

-- 2. core.refresh_tokens' check on token_hash without a counted repetition:
-- PostgreSQL's regex engine took 5.3 µs to match '^[0-9a-f]{64}$' against a
-- hash (the bounded repetition expands its automaton), 0.34 µs for the same
-- rule as a length and '^[0-9a-f]+$', and a table's checks run at every
-- INSERT and UPDATE of a row, whatever the columns: a refresh's rotation ran
-- it two or three times (the parent, the child, the grandparent's seal), 5 %
-- of the server's time in a refresh's profile. The same rows pass. NOT VALID
-- then VALIDATE: the table is checked without holding off its writes.
ALTER TABLE core.refresh_tokens DROP CONSTRAINT IF EXISTS refresh_tokens_token_hash_check;
DO $$
BEGIN
    ALTER TABLE core.refresh_tokens ADD CONSTRAINT refresh_tokens_token_hash_hex
        CHECK (octet_length(token_hash) = 64 AND token_hash ~ '^[0-9a-f]+$') NOT VALID;
EXCEPTION WHEN duplicate_object THEN
    NULL; -- replayed: already there
END $$;
ALTER TABLE core.refresh_tokens VALIDATE CONSTRAINT refresh_tokens_token_hash_hex;
