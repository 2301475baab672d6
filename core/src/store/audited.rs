//! A change and its audit entry commit together or not at all: the change runs inside the
//! transaction that appends the entry (holding the audit lock, so the chain cannot fork),
//! and if the entry cannot be written, the change is rolled back.

use futures::future::BoxFuture;
use sqlx::AnyConnection;

use super::Store;
use super::audit::append_in;
use crate::Error;
use crate::audit::{AuditEntry, NewAuditEntry};

/// Why an audited change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AuditedError {
    /// The change itself failed (nothing was written; record the attempt separately).
    #[error(transparent)]
    Change(Error),
    /// Its entry could not be written, so the change was rolled back.
    #[error("the audit log could not be written, so nothing was changed: {0}")]
    Audit(Error),
}

impl AuditedError {
    /// The underlying store error, whichever half failed.
    pub fn into_inner(self) -> Error {
        match self {
            Self::Change(e) | Self::Audit(e) => e,
        }
    }
}

impl Store {
    /// Runs `change` and appends the entry `entry` makes of its result (none: the change
    /// needs no entry, e.g. it found the work already done) in one transaction.
    pub async fn audited<T, C, E>(
        &self,
        change: C,
        entry: E,
    ) -> std::result::Result<(T, Option<AuditEntry>), AuditedError>
    where
        C: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, crate::Result<T>>,
        E: FnOnce(&T) -> Option<NewAuditEntry>,
    {
        let mut tx = self
            .begin_audit_append()
            .await
            .map_err(AuditedError::Audit)?;
        // Dropping the transaction on an error rolls the change back.
        let value = change(&mut tx).await.map_err(AuditedError::Change)?;
        let appended = match entry(&value) {
            Some(entry) => Some(
                append_in(&mut tx, entry)
                    .await
                    .map_err(AuditedError::Audit)?,
            ),
            None => None,
        };
        tx.commit()
            .await
            .map_err(|e| AuditedError::Audit(e.into()))?;
        Ok((value, appended))
    }

    /// For a change outside the store (a Temporal cancel, a schedule's pause): appends
    /// `entry` first, then makes the change, then commits. If the entry cannot be written
    /// the change is never attempted (the outer error); if the change fails the entry is
    /// rolled back with it and the change's own error is handed back (the inner one). Only
    /// a commit failing after the change could leave it unrecorded, and the entry is
    /// already written by then.
    pub async fn audited_ahead<T, E>(
        &self,
        entry: NewAuditEntry,
        change: impl std::future::Future<Output = std::result::Result<T, E>>,
    ) -> crate::Result<std::result::Result<T, E>> {
        let mut tx = self.begin_audit_append().await?;
        append_in(&mut tx, entry).await?;
        let value = match change.await {
            Ok(value) => value,
            // Dropping the transaction rolls the entry back.
            Err(error) => return Ok(Err(error)),
        };
        tx.commit().await?;
        Ok(Ok(value))
    }
}
