-- Envelope encryption and scoped secrets (SQLite). Identical in meaning to migrations/postgres.

-- Data keys, stored only wrapped by a key-encryption key (local key file or KMS).
-- purpose: 'organization' (one line of versions per organisation) or 'temporal_payloads'
-- (the platform key of the payload codec; organization_id is '').
CREATE TABLE data_keys (
    purpose          TEXT NOT NULL CHECK (purpose IN ('organization', 'temporal_payloads')),
    organization_id  TEXT NOT NULL,
    version          INTEGER NOT NULL,
    kek_id           TEXT NOT NULL,
    wrapped_key      TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    PRIMARY KEY (purpose, organization_id, version)
);

-- Secret values, AES-256-GCM under the organisation's data key, with the organisation id
-- and secret name as associated data.
CREATE TABLE secrets (
    organization_id  TEXT NOT NULL REFERENCES organizations(id),
    name             TEXT NOT NULL,
    key_version      INTEGER NOT NULL,
    ciphertext       TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    PRIMARY KEY (organization_id, name)
);

-- What each run may read: exactly the secrets its job needs, granted when it starts.
CREATE TABLE run_secret_grants (
    run_id       TEXT NOT NULL REFERENCES workflow_runs(id),
    secret_name  TEXT NOT NULL,
    PRIMARY KEY (run_id, secret_name)
);
