//! Terraform's credentials for one cluster run: the cloud provider's own federated
//! identity settings, handed to the terraform process as environment, never written to
//! the blueprint (users run the same files with their own `az login`).
//!
//! On Azure the provider authenticates as Windlass's platform application in the
//! customer's tenant (`ARM_USE_OIDC`, `ARM_CLIENT_ID`, `ARM_TENANT_ID`) with a federated
//! token read from `ARM_OIDC_TOKEN_FILE_PATH`. Windlass's assertions live ten minutes
//! and an apply can take longer, so the file is renewed while terraform runs; the
//! provider reads it whenever it needs a new access token.

use std::path::{Path, PathBuf};
use std::time::Duration;

use temporalio_sdk::activities::ActivityError;
use windlass_workflows::cluster_contracts::CloudTarget;

use super::ClusterWork;
use crate::azure::ClientAssertionSource;
use crate::azure_access::FederatedToken;
use crate::error::retryable;

/// How often a minted token is replaced: well inside its ten-minute life.
const RENEW_EVERY: Duration = Duration::from_secs(4 * 60);

/// The environment terraform runs with for one target, and the renewal keeping its token
/// file fresh; dropping it stops the renewal and removes the file.
pub(super) struct TerraformCredentials {
    pub(super) env: Vec<(String, String)>,
    /// Held for its `Drop`: the renewal lasts as long as these credentials.
    _renewal: Option<Renewal>,
}

struct Renewal {
    task: tokio::task::JoinHandle<()>,
    file: PathBuf,
}

impl Drop for Renewal {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.file);
    }
}

impl TerraformCredentials {
    fn none() -> Self {
        Self {
            env: Vec::new(),
            _renewal: None,
        }
    }

    /// Whether a token is being renewed (for tests of this module).
    #[cfg(test)]
    fn renews(&self) -> bool {
        self._renewal.is_some()
    }
}

/// The credentials for `target`; a minted token is written under `dir` (the cluster's
/// working directory, private to the worker).
pub(super) async fn for_target(
    work: &ClusterWork,
    target: &CloudTarget,
    dir: &Path,
) -> Result<TerraformCredentials, ActivityError> {
    let CloudTarget::Azure(target) = target else {
        // EKS runs the provider-less stand-in rendering until the provider stand-in
        // manages aws resources; it needs no credentials.
        return Ok(TerraformCredentials::none());
    };
    let federation = work.azure.platform_federation(target)?;
    let mut env = vec![
        ("ARM_USE_OIDC".to_owned(), "true".to_owned()),
        ("ARM_TENANT_ID".to_owned(), federation.tenant_id),
        ("ARM_CLIENT_ID".to_owned(), federation.client_id),
    ];
    let renewal = match federation.token {
        FederatedToken::File(path) => {
            env.push((
                "ARM_OIDC_TOKEN_FILE_PATH".to_owned(),
                path.display().to_string(),
            ));
            None
        }
        FederatedToken::Minted(source) => {
            let file = dir.join(".windlass-oidc-token");
            write_token(&file, &source).await?;
            env.push((
                "ARM_OIDC_TOKEN_FILE_PATH".to_owned(),
                file.display().to_string(),
            ));
            Some(renew(file, source))
        }
    };
    Ok(TerraformCredentials {
        env,
        _renewal: renewal,
    })
}

fn renew(file: PathBuf, source: ClientAssertionSource) -> Renewal {
    let path = file.clone();
    let task = tokio::spawn(async move {
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            if let Err(error) = write_token(&path, &source).await {
                // The old token still has minutes to live; the next round tries again.
                tracing::warn!(?error, "the federated token for terraform was not renewed");
            }
        }
    });
    Renewal { task, file }
}

/// Mints a token and replaces the file with it at once (a reader never sees half a token),
/// readable by this worker's user only.
async fn write_token(file: &Path, source: &ClientAssertionSource) -> Result<(), ActivityError> {
    let token = source
        .fetch()
        .await
        .map_err(|e| retryable(std::io::Error::other(e), "FederatedTokenUnavailable", None))?;
    let staged = file.with_extension("new");
    let io = |e: std::io::Error| retryable(e, "Workspace", None);
    write_private(&staged, token.as_bytes()).map_err(io)?;
    std::fs::rename(&staged, file).map_err(io)
}

#[cfg(unix)]
fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
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
fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
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
        let credentials = TerraformCredentials {
            env: Vec::new(),
            _renewal: Some(renew(file.clone(), source)),
        };
        assert!(credentials.renews());
        drop(credentials);
        assert!(!file.exists());
    }
}
