//! Workflow runs and their steps: the read model the API serves.
//!
//! Temporal is the source of truth for execution; these rows are a projection written by
//! the API (when it starts or cancels a run) and by workers (as activities start and finish).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Every kind of workflow Windlass runs. The string form is the Temporal workflow type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowKind {
    AzureAccessSetup,
    AzureAccessTeardown,
    ProvisionCluster,
    UpgradeCluster,
    DeleteCluster,
    DeployEnvironment,
    AwsAccessVerify,
    /// A maintenance holding its cluster while it runs tasks inside the window. The
    /// workflow is started by the cluster's schedule, not by the API; each stretch of work
    /// between waits for a window is one run (see [`Run::engine_workflow_id`]).
    ClusterMaintenance,
}

impl WorkflowKind {
    pub const ALL: [WorkflowKind; 8] = [
        Self::AzureAccessSetup,
        Self::AzureAccessTeardown,
        Self::ProvisionCluster,
        Self::UpgradeCluster,
        Self::DeleteCluster,
        Self::DeployEnvironment,
        Self::AwsAccessVerify,
        Self::ClusterMaintenance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AzureAccessSetup => "azure_access_setup",
            Self::AzureAccessTeardown => "azure_access_teardown",
            Self::ProvisionCluster => "provision_cluster",
            Self::UpgradeCluster => "upgrade_cluster",
            Self::DeleteCluster => "delete_cluster",
            Self::DeployEnvironment => "deploy_environment",
            Self::AwsAccessVerify => "aws_access_verify",
            Self::ClusterMaintenance => "cluster_maintenance",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Recorded, not yet accepted by Temporal.
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Terminated,
    TimedOut,
}

impl RunStatus {
    pub const ALL: [RunStatus; 7] = [
        Self::Pending,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
        Self::Terminated,
        Self::TimedOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Terminated => "terminated",
            Self::TimedOut => "timed_out",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn is_finished(self) -> bool {
        !matches!(self, Self::Pending | Self::Running)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Run {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub kind: WorkflowKind,
    /// What the run acts on, e.g. `cloud_account:<id>`. One unfinished run per target.
    pub target: String,
    pub workflow_id: String,
    pub temporal_run_id: Option<String>,
    pub status: RunStatus,
    pub idempotency_key: Option<String>,
    /// The request as accepted (never holds a secret value: secrets travel as references).
    pub input: serde_json::Value,
    pub output: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub request_fingerprint: String,
}

impl Run {
    pub fn workflow_id_for(run_id: Uuid) -> String {
        format!("run-{run_id}")
    }

    /// The run a Temporal workflow id belongs to, for workflows started through the API.
    pub fn id_from_workflow_id(workflow_id: &str) -> Option<Uuid> {
        workflow_id.strip_prefix("run-")?.parse().ok()
    }

    /// The run's `workflow_id` for the `hold`-th time maintenance workflow `workflow_id`
    /// holds its cluster: workflow ids are unique per run, and one maintenance can hold
    /// its cluster several times (it lets go while it waits for the next window).
    pub fn maintenance_hold_workflow_id(workflow_id: &str, hold: u32) -> String {
        format!("{workflow_id}{MAINTENANCE_HOLD_SEPARATOR}{hold}")
    }

    /// The Temporal workflow this run is (or is a part of): what to describe or cancel.
    pub fn engine_workflow_id(&self) -> &str {
        match self.kind {
            WorkflowKind::ClusterMaintenance => self
                .workflow_id
                .split_once(MAINTENANCE_HOLD_SEPARATOR)
                .map_or(self.workflow_id.as_str(), |(workflow, _)| workflow),
            _ => &self.workflow_id,
        }
    }
}

/// Neither `run-<uuid>` nor a schedule's workflow ids (`<schedule id>-run-<time>`) hold it.
const MAINTENANCE_HOLD_SEPARATOR: &str = "#hold-";

#[derive(Debug, Clone)]
pub struct NewRun {
    pub organization_id: Uuid,
    pub kind: WorkflowKind,
    pub target: String,
    pub idempotency_key: Option<String>,
    /// A hash of the request, so a reused idempotency key with a different body is refused.
    pub request_fingerprint: String,
    pub input: serde_json::Value,
}

#[derive(Debug, Clone)]
pub enum InsertedRun {
    Created(Run),
    /// The idempotency key was seen before with the same request: this is that run.
    Existing(Run),
}

#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub kind: Option<WorkflowKind>,
    pub limit: Option<u32>,
    /// Runs older than this one only (the next page of a newest-first listing).
    pub before: Option<RunPosition>,
}

/// Where a run sits in a newest-first listing: its creation time and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPosition {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl RunPosition {
    pub fn of(run: &Run) -> Self {
        Self {
            created_at: run.created_at,
            id: run.id,
        }
    }
}

/// `<created_at as stored>|<id>`: what a listing's cursor carries.
impl std::fmt::Display for RunPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}|{}", crate::clock::to_db(self.created_at), self.id)
    }
}

impl std::str::FromStr for RunPosition {
    type Err = crate::Error;

    fn from_str(text: &str) -> Result<Self, crate::Error> {
        let invalid = || crate::Error::InvalidInput(format!("{text:?} is not a run's position"));
        let (at, id) = text.split_once('|').ok_or_else(invalid)?;
        Ok(Self {
            created_at: DateTime::parse_from_rfc3339(at)
                .map_err(|_| invalid())?
                .with_timezone(&Utc),
            id: id.parse().map_err(|_| invalid())?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Running,
    /// The last attempt failed with a retryable error; Temporal will try again.
    Retrying,
    Succeeded,
    Failed,
    Cancelled,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Running,
            Self::Retrying,
            Self::Succeeded,
            Self::Failed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Step {
    /// Stable within a run, e.g. `register-provider/Microsoft.Compute`.
    pub key: String,
    pub activity_type: String,
    pub status: StepStatus,
    pub attempts: u32,
    pub first_started_at: DateTime<Utc>,
    pub last_started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// The longest any attempt waited for a worker to take it after being scheduled, in
    /// milliseconds (unknown for steps recorded before Windlass measured it).
    pub longest_wait_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    Succeeded,
    Failed { error: String, will_retry: bool },
    Cancelled,
}
