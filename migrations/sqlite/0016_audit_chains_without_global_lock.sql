-- Audit appends no longer take one lock for the whole platform (sqlite; identical in
-- meaning to migrations/postgres, though SQLite still serialises every write).
-- Every entry since 0015 links into its organisation's own chain (chain_seq,
-- chain_prev_hash, chain_hash). From here on that is the only chain an entry joins. The
-- platform-wide chain (seq, prev_hash, hash) ends at the entry recorded below; a later
-- entry's prev_hash and hash repeat its chain_prev_hash and chain_hash, and seq is the
-- rowid SQLite assigns (a removed entry shows as a gap in its chain's chain_seq).
CREATE TABLE audit_chain_cutover (seq INTEGER NOT NULL);
INSERT INTO audit_chain_cutover (seq) SELECT COALESCE(MAX(seq), 0) FROM audit_log;

CREATE TRIGGER audit_chain_cutover_no_update BEFORE UPDATE ON audit_chain_cutover
BEGIN
    SELECT RAISE(ABORT, 'audit_chain_cutover is append-only: UPDATE is not allowed');
END;

CREATE TRIGGER audit_chain_cutover_no_delete BEFORE DELETE ON audit_chain_cutover
BEGIN
    SELECT RAISE(ABORT, 'audit_chain_cutover is append-only: DELETE is not allowed');
END;
