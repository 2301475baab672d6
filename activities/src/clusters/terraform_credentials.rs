//! Terraform's credentials for one cluster run: the cloud provider's own federated
//! identity settings, handed to the terraform process as environment, never written to
//! the blueprint (users run the same files with their own `az login`). Each cloud builds
//! its own (`clouds::*::terraform_credentials`); this module holds what they share: files
//! readable by the worker alone, renewed while terraform runs, removed with the
//! credentials.

use std::path::{Path, PathBuf};
use std::time::Duration;

use temporalio_sdk::activities::ActivityError;

use crate::azure::ClientAssertionSource;
use crate::error::{FailureCode, retryable};

/// How often a minted token is replaced: well inside its ten-minute life.
const RENEW_EVERY: Duration = Duration::from_secs(4 * 60);

/// The environment terraform runs with for one target, and the renewal keeping its token
/// file fresh; dropping it stops the renewal and removes the file.
pub struct TerraformCredentials {
    env: Vec<(String, String)>,
    /// Held for its `Drop`: the renewal lasts as long as these credentials.
    _renewal: Option<Renewal>,
}

/// A file of short-lived credentials rewritten while terraform runs.
pub(crate) struct Renewal {
    task: tokio::task::JoinHandle<()>,
    file: PathBuf,
    /// Other files written for the same credentials, removed with them.
    also: Vec<PathBuf>,
}

impl Drop for Renewal {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.file);
        for file in &self.also {
            let _ = std::fs::remove_file(file);
        }
    }
}

impl TerraformCredentials {
    pub(crate) fn new(env: Vec<(String, String)>, renewal: Option<Renewal>) -> Self {
        Self {
            env,
            _renewal: renewal,
        }
    }

    /// The variables terraform runs with: file paths and ids, never a secret itself.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// Whether a file of them is being renewed.
    pub fn renews(&self) -> bool {
        self._renewal.is_some()
    }
}

impl Renewal {
    /// Rewrites `file` every few minutes with what `refresh` writes; `also` are other
    /// files of the same credentials, removed with them.
    pub(crate) fn every_few_minutes<F, Fut>(file: PathBuf, also: Vec<PathBuf>, refresh: F) -> Self
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), ActivityError>> + Send,
    {
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                if let Err(error) = refresh().await {
                    // The old credentials still have minutes to live; the next round
                    // tries again.
                    tracing::warn!(?error, "credentials for terraform were not renewed");
                }
            }
        });
        Self { task, file, also }
    }
}

/// Keeps a federated token file fresh.
pub(crate) fn renew(file: PathBuf, source: ClientAssertionSource) -> Renewal {
    let path = file.clone();
    Renewal::every_few_minutes(file, Vec::new(), move || {
        let (path, source) = (path.clone(), source.clone());
        async move { write_token(&path, &source).await }
    })
}

/// Mints a token and replaces the file with it at once (a reader never sees half a token),
/// readable by this worker's user only.
pub(crate) async fn write_token(
    file: &Path,
    source: &ClientAssertionSource,
) -> Result<(), ActivityError> {
    let token = source.fetch().await.map_err(|e| {
        retryable(
            std::io::Error::other(e),
            FailureCode::FederatedTokenUnavailable,
            None,
        )
    })?;
    replace_private(file, token.as_bytes())
}

/// Replaces `file` with `content` at once (a reader never sees half of it), readable by
/// this worker's user only.
pub(crate) fn replace_private(file: &Path, content: &[u8]) -> Result<(), ActivityError> {
    let staged = file.with_extension("new");
    let io = |e: std::io::Error| retryable(e, FailureCode::Workspace, None);
    write_private(&staged, content).map_err(io)?;
    std::fs::rename(&staged, file).map_err(io)
}

#[cfg(unix)]
pub(crate) fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(content)
}

#[cfg(not(unix))]
pub(crate) fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_minted_token_is_written_privately_and_removed_with_its_renewal() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        let source = ClientAssertionSource::callback(|| async { Ok("assertion".to_owned()) });
        write_token(&file, &source).await.unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "assertion");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let credentials = TerraformCredentials::new(Vec::new(), Some(renew(file.clone(), source)));
        assert!(credentials.renews());
        drop(credentials);
        assert!(!file.exists());
    }
}
