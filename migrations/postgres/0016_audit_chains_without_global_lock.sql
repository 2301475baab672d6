-- Audit appends no longer take one lock for the whole platform (postgres; identical in
-- meaning to migrations/sqlite).
-- Every entry since 0015 links into its organisation's own chain (chain_seq,
-- chain_prev_hash, chain_hash). From here on that is the only chain an entry joins: an
-- append locks its organisation's chain alone (an advisory lock, core/src/store/audit.rs),
-- so appends for different organisations never wait on each other. The platform-wide chain
-- (seq, prev_hash, hash) ends at the entry recorded below; a later entry's prev_hash and
-- hash repeat its chain_prev_hash and chain_hash, and seq comes from a sequence (a gap in
-- seq is a rolled-back append; a removed entry shows as a gap in its chain's chain_seq).
CREATE TABLE audit_chain_cutover (seq BIGINT NOT NULL);
INSERT INTO audit_chain_cutover (seq) SELECT COALESCE(MAX(seq), 0) FROM audit_log;
CREATE TRIGGER audit_chain_cutover_no_change BEFORE UPDATE OR DELETE ON audit_chain_cutover
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();

CREATE SEQUENCE audit_log_seq_seq OWNED BY audit_log.seq;
SELECT setval('audit_log_seq_seq', (SELECT seq FROM audit_chain_cutover) + 1, false);
ALTER TABLE audit_log ALTER COLUMN seq SET DEFAULT nextval('audit_log_seq_seq');
