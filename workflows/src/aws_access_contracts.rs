//! The AWS access verification's input, output and activity declaration. As in
//! [`crate::contracts`], nothing here may hold a secret: the role is named by its ARN and
//! the organisation's ExternalId is derived by the activity (it is not secret, but it must
//! never come from the caller).

#![allow(unreachable_pub)]

use serde::{Deserialize, Serialize};
use temporalio_macros::activity_definitions;
use temporalio_sdk::activities::ActivityError;

use crate::cluster_contracts::AwsTarget;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsAccessVerifyInput {
    /// The account to verify and the role Windlass assumes in it.
    pub target: AwsTarget,
}

/// What the verification proved: Windlass assumed the role with the organisation's
/// ExternalId, and the session belongs to the registered account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AwsAccessVerified {
    /// The account STS's GetCallerIdentity reported for the assumed session.
    pub account_id: String,
    /// The assumed session's ARN (`arn:aws:sts::<account>:assumed-role/<role>/<session>`).
    pub assumed_role_arn: String,
    /// The ExternalId Windlass presented: the organisation's.
    pub external_id: String,
}

pub mod aws_access_activity_names {
    pub const VERIFY_ASSUME_ROLE: &str = "aws.verify_assume_role";
}

/// Implemented in `windlass-activities` (`aws/verify_access.rs`).
pub struct AwsAccessActivities;

#[activity_definitions]
impl AwsAccessActivities {
    /// A fresh STS AssumeRole of the target's role with the organisation's ExternalId,
    /// then GetCallerIdentity on the assumed credentials; fails terminally when the role
    /// refuses or the session is in another account. Read-only, so idempotent.
    #[activity(name = aws_access_activity_names::VERIFY_ASSUME_ROLE)]
    pub fn verify_assume_role(_: AwsTarget) -> Result<AwsAccessVerified, ActivityError> {
        unimplemented!()
    }
}
