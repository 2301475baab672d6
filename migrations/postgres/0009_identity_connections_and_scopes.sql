-- Identity providers per organisation, group mappings per connection, role binding ids,
-- secret scopes (postgres). Keep column names and meaning identical to migrations/sqlite.

-- An organisation's own OIDC connections: tokens from (issuer, audience), verified with
-- the keys at jwks_uri, authenticate people in this organisation only.
CREATE TABLE identity_connections (
    id               TEXT PRIMARY KEY NOT NULL,
    organization_id  TEXT NOT NULL REFERENCES organizations(id),
    name             TEXT NOT NULL,
    issuer           TEXT NOT NULL,
    audience         TEXT NOT NULL,
    jwks_uri         TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    UNIQUE (organization_id, name),
    UNIQUE (organization_id, issuer, audience)
);

-- A group mapping applies to tokens of its connection only. Mappings keyed by the group
-- name alone matched a group of that name from any IdP: they are not carried over.
DROP TABLE group_role_mappings;
CREATE TABLE group_mappings (
    id               TEXT PRIMARY KEY NOT NULL,
    organization_id  TEXT NOT NULL REFERENCES organizations(id),
    connection_id    TEXT NOT NULL REFERENCES identity_connections(id),
    idp_group        TEXT NOT NULL,
    role             TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    UNIQUE (connection_id, idp_group, role)
);

-- Role bindings get an id, so they can be listed and removed one by one.
ALTER TABLE role_bindings ADD COLUMN id TEXT;
UPDATE role_bindings SET id = md5(random()::text || clock_timestamp()::text || subject) WHERE id IS NULL;
CREATE UNIQUE INDEX role_bindings_by_id ON role_bindings (id);

-- Where a secret may be used (JSON of secrets::SecretScope); existing ones stay
-- organisation-wide.
ALTER TABLE secrets ADD COLUMN scope TEXT NOT NULL DEFAULT '{"kind":"organization"}';
