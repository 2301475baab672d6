-- Plain-HTTP chart repositories (postgres). Identical in meaning to migrations/sqlite.
-- Services name charts from https:// repositories or oci:// registries; an organisation
-- whose charts are served over plain http:// inside its own network opts in explicitly.
-- 0 or 1 (an integer, which sqlx's Any driver reads alike on both databases).
ALTER TABLE organizations ADD COLUMN allow_plain_http_charts BIGINT NOT NULL DEFAULT 0
    CHECK (allow_plain_http_charts IN (0, 1));
