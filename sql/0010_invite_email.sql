-- 0010_invite_email: an invite names the email it is for (issue 16), kept as
-- the same blind index as core.users.email_hmac (HMAC-SHA256 under the
-- deployment's key, never the address): only an account with that email
-- redeems it, at signup or by POST /v1/auth/invites/accept. NULL for invites
-- made before this migration, which keep working for whoever holds the token
-- until they expire (seven days). Safe to run twice.
ALTER TABLE core.invites ADD COLUMN IF NOT EXISTS email_hmac text
    CONSTRAINT invites_email_hmac_hex CHECK (email_hmac ~ '^[0-9a-f]{64}$');
