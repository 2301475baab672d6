-- Projects, environments and their deployments. Keep column names and meaning identical
-- to migrations/postgres. Services are JSON (no secret: they name secrets, never hold them).

CREATE TABLE projects (
    id               TEXT PRIMARY KEY NOT NULL,
    organization_id  TEXT NOT NULL REFERENCES organizations(id),
    name             TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    UNIQUE (organization_id, name)
);

CREATE TABLE environments (
    id                TEXT PRIMARY KEY NOT NULL,
    organization_id   TEXT NOT NULL REFERENCES organizations(id),
    project_id        TEXT NOT NULL REFERENCES projects(id),
    cluster_id        TEXT NOT NULL REFERENCES clusters(id),
    name              TEXT NOT NULL,
    environment_type  TEXT NOT NULL CHECK (environment_type IN ('production', 'staging', 'development', 'preview')),
    namespace         TEXT NOT NULL,
    deploy_policy     TEXT NOT NULL CHECK (deploy_policy IN ('queue', 'supersede')),
    max_parallel      INTEGER NOT NULL,
    services          TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    UNIQUE (project_id, name),
    UNIQUE (cluster_id, namespace)
);

-- One row per deployment run; `revision` numbers an environment's deployments.
CREATE TABLE deployments (
    run_id          TEXT PRIMARY KEY NOT NULL REFERENCES workflow_runs(id),
    environment_id  TEXT NOT NULL REFERENCES environments(id),
    revision        INTEGER NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('queued', 'deploying', 'deployed', 'rolled_back', 'failed', 'superseded', 'cancelled')),
    trigger_source  TEXT NOT NULL CHECK (trigger_source IN ('api', 'webhook')),
    services        TEXT NOT NULL,
    releases        TEXT NOT NULL,
    detail          TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    finished_at     TEXT,
    UNIQUE (environment_id, revision)
);
CREATE INDEX deployments_by_state ON deployments (environment_id, state, revision);
