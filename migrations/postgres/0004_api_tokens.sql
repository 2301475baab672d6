-- API tokens for machine clients (PostgreSQL). Identical in meaning to migrations/sqlite.
-- Only a SHA-256 of the token is stored: the token itself is shown once, at issue.
CREATE TABLE api_tokens (
    id               TEXT PRIMARY KEY NOT NULL,
    organization_id  TEXT NOT NULL REFERENCES organizations(id),
    name             TEXT NOT NULL,
    token_hash       TEXT NOT NULL UNIQUE,
    -- The role the token acts with (JSON of windlass_core::rbac::Role).
    role             TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    revoked_at       TEXT,
    UNIQUE (organization_id, name)
);
