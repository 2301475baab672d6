-- Foundation schema (PostgreSQL). Keep column names and meaning identical to migrations/sqlite.
-- Ids are UUID text, timestamps RFC 3339 UTC text with fixed width (so text order = time order).

CREATE TABLE organizations (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

CREATE TABLE cloud_accounts (
    id               TEXT PRIMARY KEY NOT NULL,
    organization_id  TEXT NOT NULL REFERENCES organizations(id),
    provider         TEXT NOT NULL CHECK (provider IN ('azure', 'aws')),
    -- Azure: tenant id; AWS: unused (empty).
    tenant_id        TEXT NOT NULL DEFAULT '',
    -- Azure: subscription id; AWS: account id.
    external_id      TEXT NOT NULL,
    display_name     TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    UNIQUE (organization_id, provider, external_id)
);

CREATE TABLE workflow_runs (
    id                   TEXT PRIMARY KEY NOT NULL,
    organization_id      TEXT NOT NULL REFERENCES organizations(id),
    kind                 TEXT NOT NULL,
    -- What the run acts on (e.g. a cloud account id): at most one unfinished run per target.
    target               TEXT NOT NULL,
    workflow_id          TEXT NOT NULL UNIQUE,
    temporal_run_id      TEXT,
    status               TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled', 'terminated', 'timed_out')),
    idempotency_key      TEXT,
    request_fingerprint  TEXT NOT NULL,
    input                TEXT NOT NULL,
    output               TEXT,
    error                TEXT,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    finished_at          TEXT
);
CREATE UNIQUE INDEX workflow_runs_idempotency ON workflow_runs (organization_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX workflow_runs_one_unfinished_per_target ON workflow_runs (target) WHERE finished_at IS NULL;
CREATE INDEX workflow_runs_by_org ON workflow_runs (organization_id, created_at);

CREATE TABLE run_steps (
    run_id         TEXT NOT NULL REFERENCES workflow_runs(id),
    step_key       TEXT NOT NULL,
    activity_type  TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('running', 'retrying', 'succeeded', 'failed', 'cancelled')),
    attempts       BIGINT NOT NULL,
    first_started_at TEXT NOT NULL,
    last_started_at  TEXT NOT NULL,
    finished_at    TEXT,
    last_error     TEXT,
    PRIMARY KEY (run_id, step_key)
);
