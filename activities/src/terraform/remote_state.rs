//! Terraform state kept in the cluster's own storage account, synced by the runner.
//!
//! Terraform runs with its local backend, which writes the state file after every resource
//! it creates; remote backends (azurerm, http) only persist every 20 s during an apply, so a
//! worker killed mid-apply would forget up to 20 s of creations and make them again. The
//! runner uploads the local file to the state blob as it changes, so the blob is at most
//! one poll behind terraform: a retry on any worker downloads it and carries on.
//!
//! The state blob is the one the exported blueprint's `azurerm` backend reads, in the same
//! format. The lock is a separate blob created with `If-None-Match: *` holding terraform's
//! own lock-info JSON, so two runs can never both hold it, whichever workers they run on.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::error::TerraformError;
use super::messages::LockInfo;
use crate::object_store::{ObjectStore, StoreError};

/// The file the runner adds to every working directory so terraform keeps its state locally
/// (it overrides the blueprint's `azurerm` backend block, which the user keeps).
pub const BACKEND_OVERRIDE_FILE: &str = "windlass_backend_override.tf";
const BACKEND_OVERRIDE: &str = "terraform {\n  backend \"local\" {}\n}\n";
/// The state file terraform keeps in its working directory.
pub const LOCAL_STATE_FILE: &str = "terraform.tfstate";
const LOCAL_STATE: &str = LOCAL_STATE_FILE;
const SYNC_INTERVAL: Duration = Duration::from_millis(250);

/// Terraform's lock-info JSON, as its own backends write it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LockRecord {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Operation")]
    operation: String,
    #[serde(rename = "Info", default)]
    info: String,
    #[serde(rename = "Who")]
    who: String,
    #[serde(rename = "Version", default)]
    version: String,
    #[serde(rename = "Created")]
    created: String,
    #[serde(rename = "Path", default)]
    path: String,
}

impl From<LockRecord> for LockInfo {
    fn from(r: LockRecord) -> Self {
        LockInfo {
            id: r.id,
            path: r.path,
            operation: r.operation,
            who: r.who,
            // The format terraform prints, which `locks::is_stale` reads.
            created: r.created,
            info: r.info,
        }
    }
}

/// Where a cluster's state lives.
#[derive(Clone)]
pub struct RemoteState {
    container: Arc<dyn ObjectStore>,
    state_blob: String,
}

impl std::fmt::Debug for RemoteState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteState")
            .field("store", &self.container.describe())
            .field("state", &self.state_blob)
            .finish()
    }
}

/// The held lock on a remote state. Release it with [`StateLease::release`]; if the worker
/// dies instead, the lock stays until a retry finds it stale and breaks it.
pub struct StateLease {
    remote: RemoteState,
    lock_id: String,
    lock_etag: String,
    last_uploaded: Arc<Mutex<Option<[u8; 32]>>>,
}

impl RemoteState {
    pub fn new(container: Arc<dyn ObjectStore>, state_blob: impl Into<String>) -> Self {
        Self {
            container,
            state_blob: state_blob.into(),
        }
    }

    fn lock_blob(&self) -> String {
        format!("{}.lock", self.state_blob)
    }

    /// Takes the lock for `operation`, naming `holder` (worker and activity attempt).
    pub async fn lock(&self, operation: &str, holder: &str) -> Result<StateLease, TerraformError> {
        self.lock_with_info(operation, holder, "").await
    }

    /// [`Self::lock`], with `info` in the lock's `Info` (a [`super::LockHolder`], which
    /// lets a retry tell at once that the holder is dead).
    pub async fn lock_with_info(
        &self,
        operation: &str,
        holder: &str,
        info: &str,
    ) -> Result<StateLease, TerraformError> {
        let record = LockRecord {
            id: uuid::Uuid::new_v4().to_string(),
            operation: operation.to_owned(),
            info: info.to_owned(),
            who: holder.to_owned(),
            version: String::new(),
            created: Utc::now()
                .format("%Y-%m-%d %H:%M:%S%.f +0000 UTC")
                .to_string(),
            path: self.state_blob.clone(),
        };
        let body = serde_json::to_vec(&record).expect("lock info serialises");
        if self
            .container
            .create_if_absent(&self.lock_blob(), body)
            .await
            .map_err(storage)?
        {
            let etag = self
                .container
                .get(&self.lock_blob())
                .await
                .map_err(storage)?
                .map(|b| b.etag)
                .unwrap_or_default();
            return Ok(StateLease {
                remote: self.clone(),
                lock_id: record.id,
                lock_etag: etag,
                last_uploaded: Arc::default(),
            });
        }
        match self.holder().await? {
            Some(held) => Err(TerraformError::Locked(Box::new(held))),
            // Released between our attempt and the read: let the caller try again.
            None => Err(TerraformError::Output(
                "state lock changed hands; try again".into(),
            )),
        }
    }

    /// Who holds the lock now, if anyone.
    pub async fn holder(&self) -> Result<Option<LockInfo>, TerraformError> {
        let Some(blob) = self
            .container
            .get(&self.lock_blob())
            .await
            .map_err(storage)?
        else {
            return Ok(None);
        };
        let record: LockRecord = serde_json::from_slice(&blob.content)
            .map_err(|e| TerraformError::Output(format!("unreadable state lock: {e}")))?;
        Ok(Some(record.into()))
    }

    /// Removes lock `lock_id` if it is still the one held (by id, then ETag), for a holder
    /// known to be dead; `false` if the lock changed hands or is gone.
    pub async fn break_lock(&self, lock_id: &str) -> Result<bool, TerraformError> {
        let Some(blob) = self
            .container
            .get(&self.lock_blob())
            .await
            .map_err(storage)?
        else {
            return Ok(false);
        };
        let record: Option<LockRecord> = serde_json::from_slice(&blob.content).ok();
        if record.map(|r| r.id).as_deref() != Some(lock_id) {
            return Ok(false);
        }
        self.container
            .delete_if_unchanged(&self.lock_blob(), &blob.etag)
            .await
            .map_err(storage)
    }

    /// The state as stored, if any (for reading outputs without a working directory).
    pub async fn read(&self) -> Result<Option<Vec<u8>>, TerraformError> {
        Ok(self
            .container
            .get(&self.state_blob)
            .await
            .map_err(storage)?
            .map(|b| b.content.to_vec()))
    }
}

impl StateLease {
    pub fn lock_id(&self) -> &str {
        &self.lock_id
    }

    /// Makes `dir` ready for terraform: the backend override and the latest remote state.
    pub async fn check_out(&self, dir: &Path) -> Result<(), TerraformError> {
        write_backend_override(dir).map_err(TerraformError::Workspace)?;
        let local = dir.join(LOCAL_STATE);
        match self.remote.read().await? {
            Some(state) => {
                *self.last_uploaded.lock().await = Some(Sha256::digest(&state).into());
                std::fs::write(&local, state).map_err(TerraformError::Workspace)?;
            }
            None => {
                // No remote state yet: a local file left by another run must not win.
                let _ = std::fs::remove_file(&local);
                *self.last_uploaded.lock().await = None;
            }
        }
        Ok(())
    }

    /// Uploads the local state if it changed since the last upload.
    pub async fn sync(&self, dir: &Path) -> Result<(), TerraformError> {
        let Ok(state) = std::fs::read(dir.join(LOCAL_STATE)) else {
            return Ok(());
        };
        // Terraform replaces the file as it writes; a torn read is not valid JSON.
        if serde_json::from_slice::<serde_json::Value>(&state).is_err() {
            return Ok(());
        }
        let digest: [u8; 32] = Sha256::digest(&state).into();
        let mut last = self.last_uploaded.lock().await;
        if *last == Some(digest) {
            return Ok(());
        }
        // Only the lock's holder writes: an attempt whose lock was broken (it was taken for
        // dead) must not overwrite the state of the attempt that now holds it.
        self.check_held().await?;
        self.remote
            .container
            .put(&self.remote.state_blob, state)
            .await
            .map_err(storage)?;
        *last = Some(digest);
        Ok(())
    }

    /// Fails with [`TerraformError::LockLost`] unless this lease's lock is still the one
    /// held (same blob version).
    pub async fn check_held(&self) -> Result<(), TerraformError> {
        let current = self
            .remote
            .container
            .get(&self.remote.lock_blob())
            .await
            .map_err(storage)?;
        match current {
            Some(blob) if blob.etag == self.lock_etag => Ok(()),
            _ => Err(TerraformError::LockLost(self.lock_id.clone())),
        }
    }

    /// Runs `work` while uploading the state as terraform writes it, then once more after.
    /// If the lock is lost meanwhile, `work` is dropped at once (terraform is killed):
    /// another attempt owns the state now.
    pub async fn synced<T>(
        &self,
        dir: &Path,
        work: impl std::future::Future<Output = Result<T, TerraformError>>,
    ) -> Result<T, TerraformError> {
        let mut work = std::pin::pin!(work);
        let mut ticks = tokio::time::interval(SYNC_INTERVAL);
        let result = loop {
            tokio::select! {
                result = &mut work => break result,
                _ = ticks.tick() => match self.sync(dir).await {
                    Err(lost @ TerraformError::LockLost(_)) => return Err(lost),
                    Err(e) => tracing::warn!(error = %e, "terraform state upload failed; retrying"),
                    Ok(()) => {}
                }
            }
        };
        // Whatever happened, what terraform recorded must reach the blob.
        self.sync(dir).await?;
        result
    }

    /// Uploads the final state and releases the lock.
    pub async fn release(self, dir: &Path) -> Result<(), TerraformError> {
        self.sync(dir).await?;
        self.remote
            .container
            .delete_if_unchanged(&self.remote.lock_blob(), &self.lock_etag)
            .await
            .map_err(storage)?;
        Ok(())
    }
}

/// Makes terraform in `dir` keep its state in a local file, whatever backend the
/// blueprint names.
pub fn write_backend_override(dir: &Path) -> std::io::Result<()> {
    std::fs::write(dir.join(BACKEND_OVERRIDE_FILE), BACKEND_OVERRIDE)
}

fn storage(e: StoreError) -> TerraformError {
    TerraformError::Output(format!("terraform state storage: {e}"))
}
