//! AWS access for activities. Workers never hold long-lived keys for a customer's account:
//! each call runs on short-lived credentials from STS AssumeRole, scoped to one
//! organisation by its ExternalId (see [`assume_role`]). Terraform state on AWS lives in S3
//! (see [`s3`]). An account is verified by assuming its role (see [`verify_access`]).

pub mod assume_role;
pub mod caller_identity;
pub mod eks_token;
pub mod s3;
pub mod verify_access;

pub use assume_role::{
    AssumedCredentials, AssumedRoleProvider, AwsError, DEFAULT_DURATION, DEFAULT_REFRESH_MARGIN,
    StandInCredentials, external_id, validate_role_arn,
};
pub use caller_identity::{CallerIdentity, caller_identity};
pub use s3::{S3Objects, delete_bucket_with_contents, ensure_state_bucket, s3_client};
pub use verify_access::{AwsAccessActivities, VerificationError};
