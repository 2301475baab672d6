-- Placements (postgres). Identical in meaning to migrations/sqlite.
-- A placement is a pool of workers run by one organisation (in its own network), polling
-- `windlass-<kind>@<name>`. Task queue names are global, so placement names are too.
-- Only a SHA-256 of the placement credential is stored: it is shown once, at registration.
CREATE TABLE placements (
    id               TEXT PRIMARY KEY NOT NULL,
    organization_id  TEXT NOT NULL REFERENCES organizations(id),
    name             TEXT NOT NULL UNIQUE,
    credential_hash  TEXT NOT NULL UNIQUE,
    created_at       TEXT NOT NULL
);
CREATE INDEX placements_by_organization ON placements (organization_id);
