-- Clusters (sqlite). Keep column names and meaning identical to migrations/postgres.
-- The spec is what the cluster should be (JSON, no secret); what it is lives in the
-- cluster's own terraform state, and what Windlass did to it in its runs (target 'cluster:<id>').

CREATE TABLE clusters (
    id                TEXT PRIMARY KEY NOT NULL,
    organization_id   TEXT NOT NULL REFERENCES organizations(id),
    cloud_account_id  TEXT NOT NULL REFERENCES cloud_accounts(id),
    name              TEXT NOT NULL,
    spec              TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    UNIQUE (organization_id, name)
);
