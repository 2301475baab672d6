//! The AWS ownership proof: Windlass assumes the customer's role with the organisation's
//! ExternalId, then asks STS which account the session is in. Only the organisation whose
//! ExternalId the role's trust policy requires gets past the first call, and the second
//! makes sure the role really is in the registered account. The run recorder turns a
//! succeeded verification into the account's verified claim.

use std::sync::Arc;

use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use windlass_workflows::aws_access_contracts::{AwsAccessVerified, aws_access_activity_names};
use windlass_workflows::cluster_contracts::AwsTarget;

use super::assume_role::{AssumedRoleProvider, AwsError, StandInCredentials, external_id};
use super::caller_identity::caller_identity;
use crate::error::{FailureCode, StepError, Verdict, failure};
use crate::heartbeat::heartbeating;

/// Why an account could not be verified. Texts name roles, accounts and the ExternalId
/// (none of them secret), never credentials.
#[derive(Debug, thiserror::Error)]
pub enum VerificationError {
    /// The role refused: it does not exist, does not trust Windlass, or requires another
    /// ExternalId. The customer fixes the trust policy; retrying cannot help.
    #[error(
        "{source}. The trust policy of {role_arn} must allow Windlass to call sts:AssumeRole \
         with the condition StringEquals sts:ExternalId = \"{external_id}\" (your \
         organization's ExternalId; it is not a secret)"
    )]
    RoleRefused {
        role_arn: String,
        external_id: String,
        source: AwsError,
    },

    /// The role ARN names the registered account, but STS says the session is elsewhere.
    #[error(
        "assuming {role_arn} gave a session in AWS account {actual}, not the registered \
         account {expected}"
    )]
    WrongAccount {
        role_arn: String,
        expected: String,
        actual: String,
    },

    #[error(transparent)]
    Aws(AwsError),
}

impl StepError for VerificationError {
    fn verdict(&self) -> Verdict {
        match self {
            Self::Aws(e) => e.verdict(),
            Self::RoleRefused { .. } | Self::WrongAccount { .. } => Verdict::Terminal,
        }
    }

    fn failure_code(&self) -> FailureCode {
        match self {
            Self::Aws(e) => e.failure_code(),
            Self::RoleRefused { .. } => FailureCode::AwsRoleRefused,
            Self::WrongAccount { .. } => FailureCode::AwsWrongAccount,
        }
    }
}

/// Cheap to clone; its own STS client, since a verification never uses cached sessions.
#[derive(Clone)]
pub struct AwsAccessActivities {
    roles: Arc<AssumedRoleProvider>,
}

impl AwsAccessActivities {
    /// `endpoint_url` overrides the STS endpoint (moto, or the trust-policy stand-in in
    /// front of it); Windlass's own credentials come from the standard AWS chain unless
    /// `standin_credentials` are given (local stand-ins only).
    pub async fn new(
        endpoint_url: Option<String>,
        standin_credentials: Option<StandInCredentials>,
    ) -> Self {
        Self {
            roles: Arc::new(AssumedRoleProvider::new(endpoint_url, standin_credentials).await),
        }
    }

    /// A fresh AssumeRole as the organisation, then GetCallerIdentity on its session.
    pub async fn verify(&self, target: &AwsTarget) -> Result<AwsAccessVerified, VerificationError> {
        let external_id = external_id(target.organization_id);
        let credentials = self
            .roles
            .assume_fresh(target.organization_id, &target.role_arn)
            .await
            .map_err(|source| match source {
                AwsError::AccessDenied { .. } => VerificationError::RoleRefused {
                    role_arn: target.role_arn.clone(),
                    external_id: external_id.clone(),
                    source,
                },
                other => VerificationError::Aws(other),
            })?;
        let identity = caller_identity(self.roles.sts_config(), &target.role_arn, &credentials)
            .await
            .map_err(VerificationError::Aws)?;
        if identity.account != target.account_id {
            return Err(VerificationError::WrongAccount {
                role_arn: target.role_arn.clone(),
                expected: target.account_id.clone(),
                actual: identity.account,
            });
        }
        tracing::info!(
            organization_id = %target.organization_id,
            cloud_account_id = %target.cloud_account_id,
            session = %identity.arn,
            "AWS account verified by AssumeRole"
        );
        Ok(AwsAccessVerified {
            account_id: identity.account,
            assumed_role_arn: identity.arn,
            external_id,
        })
    }
}

#[activities]
impl AwsAccessActivities {
    #[activity(name = aws_access_activity_names::VERIFY_ASSUME_ROLE)]
    pub async fn verify_assume_role(
        self: Arc<Self>,
        ctx: ActivityContext,
        target: AwsTarget,
    ) -> Result<AwsAccessVerified, ActivityError> {
        heartbeating(&ctx, self.verify(&target))
            .await?
            .map_err(failure)
    }
}
