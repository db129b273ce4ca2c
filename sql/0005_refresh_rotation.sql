-- 0005_refresh_rotation: a refresh family has at most one live token (DESIGN
-- §3). A rotation records on the parent the child it made (child_id) and that
-- child's text sealed by the app (child_sealed: AES-256-GCM under the data key,
-- AAD org|family|parent, so it opens on no other row), so that a replay of the
-- parent within refresh_reuse_interval is given that same child instead of a
-- second branch; the child records its parent (parent_id), so that its own
-- rotation wipes the parent's seal, which can no longer be served then. A
-- revocation of the family wipes them all (lib/engine.h, refresh rotation).
-- Tokens rotated before this file have no child_id: a replay of one is reuse.

ALTER TABLE core.refresh_tokens ADD COLUMN IF NOT EXISTS parent_id uuid;
ALTER TABLE core.refresh_tokens ADD COLUMN IF NOT EXISTS child_id uuid;
ALTER TABLE core.refresh_tokens
    ADD COLUMN IF NOT EXISTS child_sealed text CHECK (octet_length(child_sealed) < 192);
