-- Proven ownership of cloud accounts (sqlite). Keep column names and meaning identical to
-- migrations/postgres.
-- An account starts unverified; it becomes verified when Windlass has acted in it as the
-- organisation (Azure: a setup authenticated with the organisation's own workload-identity
-- subject; AWS: an AssumeRole with the organisation's ExternalId). At most one organisation
-- holds a verified claim on a (provider, tenant, subscription or account).

ALTER TABLE cloud_accounts ADD COLUMN verification TEXT NOT NULL DEFAULT 'unverified'
    CHECK (verification IN ('unverified', 'verified'));
ALTER TABLE cloud_accounts ADD COLUMN verified_at TEXT;

CREATE UNIQUE INDEX cloud_accounts_one_verified_claim
    ON cloud_accounts (provider, tenant_id, external_id) WHERE verification = 'verified';

-- Windlass's workload-identity issuer derives its signing keys from a data key of its own
-- purpose. SQLite cannot change a CHECK in place: the table is rebuilt.
CREATE TABLE data_keys_new (
    purpose          TEXT NOT NULL
        CHECK (purpose IN ('organization', 'temporal_payloads', 'workload_identity')),
    organization_id  TEXT NOT NULL,
    version          INTEGER NOT NULL,
    kek_id           TEXT NOT NULL,
    wrapped_key      TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    PRIMARY KEY (purpose, organization_id, version)
);
INSERT INTO data_keys_new (purpose, organization_id, version, kek_id, wrapped_key, created_at)
    SELECT purpose, organization_id, version, kek_id, wrapped_key, created_at FROM data_keys;
DROP TABLE data_keys;
ALTER TABLE data_keys_new RENAME TO data_keys;
