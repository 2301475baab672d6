//! Deployments of an environment: each is a numbered revision of its services, run by one
//! workflow run. The newest `deployed` revision is the environment's last good one, what a
//! failed deployment rolls the whole environment back to.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::environments::ServiceSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    /// Waiting for the deployment ahead of it in the environment.
    Queued,
    Deploying,
    /// Every service rolled out: this is now the environment's revision.
    Deployed,
    /// A service failed; the environment was rolled back to its last good revision.
    RolledBack,
    /// A service failed and the rollback did not complete either: look at the steps.
    Failed,
    /// Replaced by a newer request while it waited (policy `supersede`).
    Superseded,
    Cancelled,
}

impl DeploymentState {
    pub const ALL: [DeploymentState; 7] = [
        Self::Queued,
        Self::Deploying,
        Self::Deployed,
        Self::RolledBack,
        Self::Failed,
        Self::Superseded,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Deploying => "deploying",
            Self::Deployed => "deployed",
            Self::RolledBack => "rolled_back",
            Self::Failed => "failed",
            Self::Superseded => "superseded",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn is_finished(self) -> bool {
        !matches!(self, Self::Queued | Self::Deploying)
    }
}

/// Who asked for the deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentTrigger {
    Api,
    /// A CI pipeline, through the environment's signed webhook.
    Webhook,
}

impl DeploymentTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Webhook => "webhook",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Api, Self::Webhook]
            .into_iter()
            .find(|t| t.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Deployment {
    pub run_id: Uuid,
    pub environment_id: Uuid,
    pub revision: u32,
    pub state: DeploymentState,
    pub trigger: DeploymentTrigger,
    pub services: Vec<ServiceSpec>,
    /// Helm release revision of each service once deployed: what a rollback returns to.
    pub releases: BTreeMap<String, u32>,
    /// What happened, for a deployment that did not end deployed.
    pub detail: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The environment's last good revision, as a rollback needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GoodRevision {
    pub revision: u32,
    pub services: Vec<ServiceSpec>,
    pub releases: BTreeMap<String, u32>,
}
