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
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewCloudAccount {
    pub organization_id: Uuid,
    pub provider: CloudProvider,
    pub tenant_id: String,
    pub external_id: String,
    pub display_name: String,
}
