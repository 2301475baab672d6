-- Proven ownership of cloud accounts (postgres). Keep column names and meaning identical to
-- migrations/sqlite.
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
-- purpose.
ALTER TABLE data_keys DROP CONSTRAINT data_keys_purpose_check;
ALTER TABLE data_keys ADD CONSTRAINT data_keys_purpose_check
    CHECK (purpose IN ('organization', 'temporal_payloads', 'workload_identity'));
