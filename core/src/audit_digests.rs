//! Signed digests of the audit chains, like CloudTrail's digest files: each organisation's
//! chain head (and the platform's), signed with a key the database does not hold. Whoever
//! can write the database can rewrite an entry and recompute every hash after it, but
//! cannot sign the new head: the rewritten entry then no longer matches a digest signed
//! before the rewrite.
//!
//! The key: ES256, derived (HKDF, under its own label, so it is never the workload-identity
//! key) from the platform signing data key, which exists in the store only wrapped by the
//! KEK (a local key file in the embedded default, KMS in production). The public keys are
//! exported with the entries, so a customer checks signatures and hashes with nothing from
//! Windlass but the export (`scripts/verify_audit_export.py`).

use std::sync::Arc;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

pub use crate::audit::AuditDigest;
use crate::crypto::{DerivedSigningKey, b64};
use crate::keys::KeyRing;
use crate::{Result, Store, clock};

/// The data key the digest key derives from: the platform's signing data key (the same
/// versions as the workload-identity keys; a rotation adds a digest key and keeps the old).
pub const PURPOSE: &str = crate::workload_identity::PURPOSE;
const LABEL: &[u8] = b"windlass audit digest es256";
/// Bumped if the signed text ever changes.
const DIGEST_TAG: &str = "windlass.audit.digest.v1";

/// The exact text a digest's signature covers, one field per line.
pub fn signed_text(
    organization_id: Option<Uuid>,
    chain_seq: i64,
    chain_hash: &str,
    signed_at: &str,
) -> String {
    let chain = organization_id.map_or_else(|| "platform".to_owned(), |id| id.to_string());
    format!("{DIGEST_TAG}\n{chain}\n{chain_seq}\n{chain_hash}\n{signed_at}")
}

/// What checking the digests found: the first digest whose signature or chain entry does
/// not match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DigestVerification {
    pub digests_checked: u64,
    pub first_mismatch: Option<DigestMismatch>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DigestMismatch {
    pub digest_id: Uuid,
    pub chain_seq: i64,
    /// `bad signature`, `unknown key`, `entry missing` or `entry rewritten`.
    pub reason: String,
}

pub struct AuditDigests {
    keys: Arc<KeyRing>,
}

impl AuditDigests {
    pub fn new(keys: Arc<KeyRing>) -> Self {
        Self { keys }
    }

    async fn keys(&self) -> Result<Vec<DerivedSigningKey>> {
        let mut keys = Vec::new();
        for (version, data_key) in self.keys.all_versions(PURPOSE, "").await? {
            keys.push(DerivedSigningKey::derive(
                LABEL, "audit", version, &data_key,
            )?);
        }
        Ok(keys)
    }

    /// Every digest-signing key's public half (`{"keys": [JWK, ...]}`).
    pub async fn public_keys(&self) -> Result<Value> {
        let keys: Vec<Value> = self.keys().await?.iter().map(|k| k.jwk()).collect();
        Ok(json!({ "keys": keys }))
    }

    /// Signs the head of every chain that grew since its last digest; returns the new
    /// digests.
    pub async fn sign_heads(&self, store: &Store) -> Result<Vec<AuditDigest>> {
        let (version, data_key) = self.keys.current(PURPOSE, "").await?;
        let key = DerivedSigningKey::derive(LABEL, "audit", version, &data_key)?;
        let mut signed = Vec::new();
        for chain in store.audit_chains().await? {
            let Some((chain_seq, chain_hash)) = store.audit_chain_head(chain).await? else {
                continue;
            };
            let last = store.audit_digests(chain).await?.into_iter().last();
            if last.is_some_and(|d| d.chain_seq >= chain_seq) {
                continue;
            }
            let signed_at = clock::now_db();
            let signature =
                key.sign(signed_text(chain, chain_seq, &chain_hash, &signed_at).as_bytes())?;
            let digest = AuditDigest {
                id: Uuid::new_v4(),
                organization_id: chain,
                chain_seq,
                chain_hash,
                signed_at,
                key_id: key.kid().to_owned(),
                signature: b64(&signature),
            };
            store.insert_audit_digest(&digest).await?;
            signed.push(digest);
        }
        Ok(signed)
    }

    /// Checks every digest of a chain: signed by one of the keys, and naming an entry whose
    /// stored chain hash is the signed one.
    pub async fn verify(&self, store: &Store, chain: Option<Uuid>) -> Result<DigestVerification> {
        let keys = self.keys().await?;
        let mut report = DigestVerification {
            digests_checked: 0,
            first_mismatch: None,
        };
        for digest in store.audit_digests(chain).await? {
            report.digests_checked += 1;
            if report.first_mismatch.is_some() {
                continue;
            }
            let reason = match keys.iter().find(|k| k.kid() == digest.key_id) {
                None => Some("unknown key"),
                Some(key) => {
                    let text = signed_text(
                        digest.organization_id,
                        digest.chain_seq,
                        &digest.chain_hash,
                        &digest.signed_at,
                    );
                    let signature = from_b64(&digest.signature);
                    let valid = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.public_key())
                        .verify(text.as_bytes(), &signature)
                        .is_ok();
                    if !valid {
                        Some("bad signature")
                    } else {
                        match store.audit_chain_hash_at(chain, digest.chain_seq).await? {
                            None => Some("entry missing"),
                            Some(hash) if hash != digest.chain_hash => Some("entry rewritten"),
                            Some(_) => None,
                        }
                    }
                }
            };
            report.first_mismatch = reason.map(|reason| DigestMismatch {
                digest_id: digest.id,
                chain_seq: digest.chain_seq,
                reason: reason.to_owned(),
            });
        }
        Ok(report)
    }
}

fn from_b64(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap_or_default()
}
