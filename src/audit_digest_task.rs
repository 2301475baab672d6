//! `windlass serve` signs the audit chains' heads periodically (hourly by default), like
//! CloudTrail's digest files: what happened since the last digest can no longer be
//! rewritten unnoticed once the next one is signed.

use std::sync::Arc;
use std::time::Duration;

use windlass_core::Store;
use windlass_core::audit_digests::AuditDigests;
use windlass_core::keys::KeyRing;

pub fn spawn(store: Store, keys: Arc<KeyRing>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let digests = AuditDigests::new(keys);
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            match digests.sign_heads(&store).await {
                Ok(signed) if !signed.is_empty() => {
                    tracing::info!(signed = signed.len(), "audit chain heads signed");
                }
                Ok(_) => {}
                Err(error) => tracing::error!(%error, "could not sign the audit chain heads"),
            }
        }
    })
}
