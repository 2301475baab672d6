-- The audit log (PostgreSQL). Keep column names and meaning identical to migrations/sqlite.
-- Immutable and hash-chained: hash = sha256(prev_hash || every other field), see
-- core/src/audit.rs. seq is assigned by the store under a table lock, not by a sequence, so
-- it has no gaps (a rolled-back sequence value would leave one) and a gap always means a
-- removed entry.
-- organization_id, cluster_id and project_id are plain text without foreign keys: recording
-- an event must never fail because what it names is unknown or gone (an `authz.denied` on a
-- made-up id is worth recording too).

CREATE TABLE audit_log (
    seq              BIGINT PRIMARY KEY NOT NULL,
    id               TEXT NOT NULL UNIQUE,
    -- NULL for platform-wide events.
    organization_id  TEXT,
    occurred_at      TEXT NOT NULL,
    -- Pseudonymous subject id, never a name or an email.
    actor            TEXT NOT NULL,
    actor_kind       TEXT NOT NULL CHECK (actor_kind IN ('user', 'api_token', 'system', 'support')),
    action           TEXT NOT NULL,
    resource         TEXT NOT NULL,
    cluster_id       TEXT,
    project_id       TEXT,
    environment      TEXT CHECK (environment IN ('production', 'staging', 'development', 'preview')),
    service          TEXT,
    client           TEXT,
    ip               TEXT,
    result           TEXT NOT NULL CHECK (result IN ('success', 'denied', 'failed')),
    -- JSON object, never secrets.
    details          TEXT NOT NULL,
    prev_hash        TEXT NOT NULL,
    hash             TEXT NOT NULL UNIQUE
);
CREATE INDEX audit_log_by_org ON audit_log (organization_id, seq);

-- Append-only, enforced by the database itself rather than trusted to the application.
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_log_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();

-- TRUNCATE bypasses row triggers, so it gets a statement trigger of its own.
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
