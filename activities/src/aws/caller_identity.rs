//! STS GetCallerIdentity on a set of assumed credentials: which account and principal a
//! session really is, whatever the role ARN claimed.

use aws_sdk_sts::config::Credentials;

use super::assume_role::{AssumedCredentials, AwsError};

/// The session as STS reports it. Neither field is secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    /// The 12-digit account the session belongs to.
    pub account: String,
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>` for an assumed role.
    pub arn: String,
}

/// Asks the STS endpoint of `sts` (Windlass's own configuration: region, endpoint) who
/// `credentials` are. `role_arn` names the role in errors.
pub async fn caller_identity(
    sts: &aws_sdk_sts::Config,
    role_arn: &str,
    credentials: &AssumedCredentials,
) -> Result<CallerIdentity, AwsError> {
    let config = sts
        .to_builder()
        .credentials_provider(Credentials::new(
            credentials.access_key_id.clone(),
            credentials.secret_access_key.to_string(),
            Some(credentials.session_token.to_string()),
            Some(credentials.expires_at.into()),
            "windlass-assumed-role",
        ))
        .build();
    let output = aws_sdk_sts::Client::from_conf(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(role_arn, e))?;
    Ok(CallerIdentity {
        account: output.account.ok_or(AwsError::IncompleteResponse {
            missing: "the caller's account",
        })?,
        arn: output.arn.ok_or(AwsError::IncompleteResponse {
            missing: "the caller's ARN",
        })?,
    })
}
