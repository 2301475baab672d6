//! Terraform's aws provider runs as the organisation's role (STS AssumeRole with its
//! ExternalId), whose credentials live 15 minutes: they reach the provider through a
//! profile whose `credential_process` prints a file the worker renews, so the provider's
//! SDK takes fresh ones whenever its own expire. Nothing else may stand in for them: the
//! worker's own credentials (environment, `~/.aws`, instance metadata) are out of reach of
//! the terraform process.

use std::path::Path;

use temporalio_sdk::activities::ActivityError;
use windlass_workflows::cluster_contracts::AwsTarget;

use super::AwsClients;
use super::clients::AssumedRoleSource;
use crate::clusters::terraform_credentials::{
    Renewal, TerraformCredentials, replace_private, write_private,
};
use crate::error::{FailureCode, retryable};

/// The environment for terraform's aws provider in the organisation's role; the
/// credentials file and profile are written under `dir`.
pub(super) async fn as_assumed_role(
    clients: &AwsClients,
    target: &AwsTarget,
    dir: &Path,
) -> Result<TerraformCredentials, ActivityError> {
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
    let renewal = Renewal::every_few_minutes(file.clone(), vec![config], move || {
        let (file, source) = (file.clone(), source.clone());
        async move { write_aws_credentials(&file, &source).await }
    });
    Ok(TerraformCredentials::new(env, Some(renewal)))
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
