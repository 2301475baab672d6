-- Deleted clusters (postgres). Identical in meaning to migrations/sqlite.
-- A cluster whose delete run succeeded is marked, not removed: its runs and audit entries
-- still name it. Reads, upgrades, deploys and maintenance see it as gone. Its row gives up
-- its name (the name column becomes '<name>#deleted-<id>'; the spec keeps the real name),
-- so the organisation can make a new cluster with the same name.
ALTER TABLE clusters ADD COLUMN deleted_at TEXT;
