//! Terraform's credentials for one cluster run: the cloud provider's own federated
//! identity settings, handed to the terraform process as environment, never written to
//! the blueprint (users run the same files with their own `az login`).
//!
//! On Azure the provider authenticates as Windlass's platform application in the
//! customer's tenant (`ARM_USE_OIDC`, `ARM_CLIENT_ID`, `ARM_TENANT_ID`) with a federated
//! token read from `ARM_OIDC_TOKEN_FILE_PATH`. Windlass's assertions live ten minutes
//! and an apply can take longer, so the file is renewed while terraform runs; the
//! provider reads it whenever it needs a new access token.
//!
//! On AWS the provider runs as the organisation's role (STS AssumeRole with its
//! ExternalId), whose credentials live 15 minutes: they reach the provider through a
//! profile whose `credential_process` prints a file the worker renews, so the provider's
//! SDK takes fresh ones whenever its own expire. Nothing else may stand in for them: the
//! worker's own credentials (environment, `~/.aws`, instance metadata) are out of reach of
//! the terraform process.

use std::path::{Path, PathBuf};
use std::time::Duration;

use temporalio_sdk::activities::ActivityError;
use windlass_workflows::cluster_contracts::{AwsTarget, CloudTarget};

use super::ClusterWork;
use super::aws_clients::AssumedRoleSource;
use crate::azure::ClientAssertionSource;
use crate::azure_access::FederatedToken;
use crate::error::{FailureCode, retryable, terminal};

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
    let target = match target {
        CloudTarget::Azure(target) => target,
        CloudTarget::Aws(target) => return for_aws(work, target, dir).await,
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

async fn for_aws(
    work: &ClusterWork,
    target: &AwsTarget,
    dir: &Path,
) -> Result<TerraformCredentials, ActivityError> {
    let clients = work.aws.as_ref().ok_or_else(|| {
        terminal(
            std::io::Error::other("this worker has no AWS access configured"),
            FailureCode::NoAwsConfiguration,
        )
    })?;
    let source = clients.credential_source(target);
    let io = |e: std::io::Error| retryable(e, FailureCode::Workspace, None);
    let file = dir.join(".windlass-aws-credentials.json");
    write_aws_credentials(&file, &source).await?;
    let config = dir.join(".windlass-aws-config");
    // `sh -c` runs it (the SDK's way on Unix): the path is quoted for the shell.
    let quoted = format!("'{}'", file.display().to_string().replace('\'', r"'\''"));
    write_private(
        &config,
        format!("[profile windlass]\ncredential_process = cat {quoted}\n").as_bytes(),
    )
    .map_err(io)?;
    let mut env = vec![
        ("AWS_CONFIG_FILE".to_owned(), config.display().to_string()),
        ("AWS_PROFILE".to_owned(), "windlass".to_owned()),
        // No other source: no shared credentials file, no instance or container role.
        (
            "AWS_SHARED_CREDENTIALS_FILE".to_owned(),
            dir.join(".windlass-aws-no-credentials")
                .display()
                .to_string(),
        ),
        ("AWS_EC2_METADATA_DISABLED".to_owned(), "true".to_owned()),
    ];
    env.extend(clients.terraform_cloud_env());
    let renewal = Renewal {
        task: tokio::spawn({
            let file = file.clone();
            async move {
                loop {
                    tokio::time::sleep(RENEW_EVERY).await;
                    if let Err(error) = write_aws_credentials(&file, &source).await {
                        tracing::warn!(
                            ?error,
                            "the AWS credentials for terraform were not renewed"
                        );
                    }
                }
            }
        }),
        file,
        also: vec![config],
    };
    Ok(TerraformCredentials {
        env,
        _renewal: Some(renewal),
    })
}

/// The organisation's current credentials in the shape `credential_process` prints
/// (cached by the provider until five minutes before they expire, so every renewal leaves
/// the file with minutes to go).
async fn write_aws_credentials(
    file: &Path,
    source: &AssumedRoleSource,
) -> Result<(), ActivityError> {
    let credentials = source.fetch().await?;
    let printed = zeroize::Zeroizing::new(
        serde_json::json!({
            "Version": 1,
            "AccessKeyId": credentials.access_key_id,
            "SecretAccessKey": credentials.secret_access_key.as_str(),
            "SessionToken": credentials.session_token.as_str(),
            "Expiration": credentials.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
        .to_string(),
    );
    replace_private(file, printed.as_bytes())
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
    Renewal {
        task,
        file,
        also: Vec::new(),
    }
}

/// Mints a token and replaces the file with it at once (a reader never sees half a token),
/// readable by this worker's user only.
async fn write_token(file: &Path, source: &ClientAssertionSource) -> Result<(), ActivityError> {
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
fn replace_private(file: &Path, content: &[u8]) -> Result<(), ActivityError> {
    let staged = file.with_extension("new");
    let io = |e: std::io::Error| retryable(e, FailureCode::Workspace, None);
    write_private(&staged, content).map_err(io)?;
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
