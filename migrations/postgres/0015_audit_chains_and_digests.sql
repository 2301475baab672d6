-- One audit chain per organisation, and signed digests of each chain's head (postgres).
-- Identical in meaning to migrations/sqlite.
-- Next to the platform-wide chain (seq, prev_hash, hash), every entry from here on also
-- links into its organisation's own chain (platform entries, organization_id NULL, into
-- the platform's): chain_seq 1, 2, 3 ... per organisation, chain_hash over chain_prev_hash
-- and every other field (core/src/audit.rs). A customer verifies its own slice with these
-- alone. Entries written before this migration have no organisation chain (NULL); the
-- append-only triggers forbid adding one afterwards, which is the point.
ALTER TABLE audit_log ADD COLUMN chain_seq BIGINT;
ALTER TABLE audit_log ADD COLUMN chain_prev_hash TEXT;
ALTER TABLE audit_log ADD COLUMN chain_hash TEXT;
CREATE UNIQUE INDEX audit_log_by_chain ON audit_log (organization_id, chain_seq);

-- A digest is a chain's head signed with a key the database does not hold (derived from a
-- data key wrapped by the KEK: a local key file in the embedded default, KMS in
-- production). Whoever can rewrite audit_log and recompute its hashes still cannot sign a
-- matching digest, so a rewritten entry shows as a head that no longer matches a signature.
CREATE TABLE audit_digests (
    id               TEXT PRIMARY KEY NOT NULL,
    -- NULL: the platform chain.
    organization_id  TEXT,
    chain_seq        BIGINT NOT NULL,
    chain_hash       TEXT NOT NULL,
    signed_at        TEXT NOT NULL,
    key_id           TEXT NOT NULL,
    -- ES256, base64url of the fixed-width r || s, over the text in core/src/audit_digests.rs.
    signature        TEXT NOT NULL
);
CREATE INDEX audit_digests_by_org ON audit_digests (organization_id, chain_seq);
