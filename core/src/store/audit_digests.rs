//! Signed digests of the audit chains, stored apart from the log (see `audit_digests.rs`).

use sqlx::Row;
use uuid::Uuid;

use super::{Store, parse_uuid};
use crate::Result;
use crate::audit::AuditDigest;

impl Store {
    pub async fn insert_audit_digest(&self, digest: &AuditDigest) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_digests (id, organization_id, chain_seq, chain_hash, signed_at, \
             key_id, signature) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(digest.id.to_string())
        .bind(digest.organization_id.map(|id| id.to_string()))
        .bind(digest.chain_seq)
        .bind(&digest.chain_hash)
        .bind(&digest.signed_at)
        .bind(&digest.key_id)
        .bind(&digest.signature)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// One chain's digests (`None`: the platform's), oldest first.
    pub async fn audit_digests(&self, organization_id: Option<Uuid>) -> Result<Vec<AuditDigest>> {
        let rows = sqlx::query(
            "SELECT id, organization_id, chain_seq, chain_hash, signed_at, key_id, signature \
             FROM audit_digests WHERE organization_id IS NOT DISTINCT FROM $1 \
             ORDER BY chain_seq, signed_at",
        )
        .bind(organization_id.map(|id| id.to_string()))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditDigest {
                    id: parse_uuid(&row.try_get::<String, _>("id")?, "audit_digests.id")?,
                    organization_id: row
                        .try_get::<Option<String>, _>("organization_id")?
                        .map(|id| parse_uuid(&id, "audit_digests.organization_id"))
                        .transpose()?,
                    chain_seq: row.try_get("chain_seq")?,
                    chain_hash: row.try_get("chain_hash")?,
                    signed_at: row.try_get("signed_at")?,
                    key_id: row.try_get("key_id")?,
                    signature: row.try_get("signature")?,
                })
            })
            .collect()
    }
}
