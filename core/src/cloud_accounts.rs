use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CloudProvider {
    Azure,
    Aws,
}

impl CloudProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Azure => "azure",
            Self::Aws => "aws",
        }
    }

    /// As people write it in a sentence.
    pub fn display_name(self) -> &'static str {
        match self {
            Self::Azure => "Azure",
            Self::Aws => "AWS",
        }
    }

    /// The machine size of a cluster's system pool unless the request names one.
    pub fn default_instance_type(self) -> &'static str {
        match self {
            Self::Azure => "Standard_D4s_v5",
            Self::Aws => "m6i.xlarge",
        }
    }

    /// Checks the identifiers an account is registered with: on Azure a tenant id and a
    /// subscription id (UUIDs), on AWS a 12-digit account id and no tenant. The error
    /// names the field and what it must be.
    pub fn check_account_ids(
        self,
        tenant_id: Option<&str>,
        external_id: &str,
    ) -> std::result::Result<(), &'static str> {
        let is_uuid = |s: &str| s.parse::<Uuid>().is_ok();
        match self {
            Self::Azure => {
                if !tenant_id.is_some_and(is_uuid) {
                    return Err("tenant_id: an Azure tenant id (a UUID) is required");
                }
                if !is_uuid(external_id) {
                    return Err("external_id: an Azure subscription id is a UUID");
                }
            }
            Self::Aws => {
                if tenant_id.is_some() {
                    return Err("tenant_id: not used for AWS");
                }
                if external_id.len() != 12 || !external_id.bytes().all(|b| b.is_ascii_digit()) {
                    return Err("external_id: an AWS account id is 12 digits");
                }
            }
        }
        Ok(())
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "azure" => Some(Self::Azure),
            "aws" => Some(Self::Aws),
            _ => None,
        }
    }
}

/// A customer's cloud account as Windlass knows it: for Azure a subscription in a tenant,
/// for AWS an account. It holds identifiers only, never credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CloudAccount {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub provider: CloudProvider,
    /// Azure tenant (directory) id; empty for AWS.
    pub tenant_id: String,
    /// Azure subscription id or AWS account id.
    pub external_id: String,
    pub display_name: String,
    /// Whether Windlass has proven that this organisation controls the account. Cluster,
    /// maintenance and teardown runs start on verified accounts only.
    pub verification: Verification,
    /// When the account was verified.
    pub verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl CloudAccount {
    pub fn is_verified(&self) -> bool {
        self.verification == Verification::Verified
    }
}

/// The ownership proof of a cloud account. Azure: a successful access setup, which
/// authenticates as the customer's setup identity with a workload-identity assertion whose
/// subject names this organisation (`windlass:organization:<id>`), so it succeeds only if
/// the customer's federated credential trusts exactly this organisation. AWS: an
/// AssumeRole that presents this organisation's ExternalId. At most one organisation holds
/// a verified claim on a given account (a unique index in the store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    Unverified,
    Verified,
}

impl Verification {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unverified => "unverified",
            Self::Verified => "verified",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "unverified" => Some(Self::Unverified),
            "verified" => Some(Self::Verified),
            _ => None,
        }
    }
}

/// The ExternalId Windlass presents when assuming a role in an AWS account for
/// `organization_id`, which the customer's trust policy requires.
///
/// It is not a secret and need not be unguessable: its job is to differ between
/// organisations and to be chosen by Windlass, never by the caller, so one organisation
/// cannot make Windlass assume a role that another organisation's trust policy names. It
/// must also be stable forever, because customers paste it into their trust policies:
/// changing this format locks every existing customer out.
pub fn aws_external_id(organization_id: Uuid) -> String {
    format!("windlass-{}", organization_id.hyphenated())
}

/// The role customers create in their AWS account for Windlass, trusting it with their
/// organisation's ExternalId ([`aws_external_id`]).
pub const AWS_ROLE_NAME: &str = "windlass-access";

/// The ARN of [`AWS_ROLE_NAME`] in `account_id`.
pub fn aws_role_arn(account_id: &str) -> String {
    format!("arn:aws:iam::{account_id}:role/{AWS_ROLE_NAME}")
}

#[derive(Debug, Clone)]
pub struct NewCloudAccount {
    pub organization_id: Uuid,
    pub provider: CloudProvider,
    pub tenant_id: String,
    pub external_id: String,
    pub display_name: String,
}
