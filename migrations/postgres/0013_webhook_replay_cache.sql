-- Webhook replay cache (postgres). Identical in meaning to migrations/sqlite.
-- A signed webhook call is accepted once: its (environment, timestamp, signature) is
-- recorded when it is accepted, and a second call carrying the same pair is refused.
-- Rows older than the signature window cannot be replayed anyway (the timestamp check
-- refuses them first) and are purged by the API as it records new ones.
CREATE TABLE webhook_signatures_seen (
    environment_id TEXT NOT NULL,
    signed_at BIGINT NOT NULL,
    signature TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    PRIMARY KEY (environment_id, signed_at, signature)
);
CREATE INDEX webhook_signatures_seen_by_time ON webhook_signatures_seen (seen_at);
