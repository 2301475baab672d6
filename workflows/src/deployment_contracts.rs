//! Inputs, outputs and activity declarations of environment deployments. As everywhere
//! in this crate, nothing here holds a secret: services name the secrets they need, and
//! the activity that writes them into the cluster resolves them for its run.

#![allow(unreachable_pub)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use temporalio_macros::activity_definitions;
use temporalio_sdk::activities::ActivityError;
use uuid::Uuid;
use windlass_core::clusters::ClusterSpec;
use windlass_core::deployments::{DeploymentState, GoodRevision};
use windlass_core::environments::{DeployPolicy, ServiceSpec};

use crate::cluster_contracts::{CloudTarget, ClusterStorage};

/// Deploy one revision of an environment. Started by the environment's deployment queue
/// as a child workflow whose id is the run's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployEnvironmentInput {
    pub run_id: Uuid,
    pub organization_id: Uuid,
    pub environment_id: Uuid,
    /// Kubernetes-safe name of the environment (labels its objects).
    pub environment_name: String,
    pub namespace: String,
    pub revision: u32,
    pub services: Vec<ServiceSpec>,
    /// Services deployed at once.
    pub max_parallel: u32,
    pub cluster: ClusterSpec,
    pub target: CloudTarget,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeployEnvironmentOutput {
    pub revision: u32,
    pub state: DeploymentState,
    /// Helm release revision per service.
    pub releases: BTreeMap<String, u32>,
}

/// A request waiting in the environment's queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentRequest {
    pub run_id: Uuid,
    pub workflow_id: String,
    pub policy: DeployPolicy,
    pub input: DeployEnvironmentInput,
}

/// The input of an environment's queue workflow: everything it promised, carried over a
/// continue-as-new (older histories carry `waiting` only; the rest defaults to empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentQueueInput {
    pub environment_id: Uuid,
    #[serde(default)]
    pub waiting: Vec<DeploymentRequest>,
    /// Requests that left the queue unrun and whose end is not recorded yet.
    #[serde(default)]
    pub dropped: Vec<DropQueued>,
    /// Runs that went through this queue lately (deployed, failed, dropped): a repeated
    /// request for one is not run again, a late cancel of one is answered as too late.
    #[serde(default)]
    pub settled: Vec<Uuid>,
    /// Continue as new after this many deployments (default 50; tests use a small one to
    /// cross the boundary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployments_per_history: Option<u32>,
}

/// What the queue did with a deployment request, answered once it is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueuedDeployment {
    /// Waiting, with this many requests (the running one included) ahead of it.
    Queued { ahead: u32 },
    /// The same run was already running or waiting (a repeated request).
    AlreadyQueued,
    /// The same run already went through the queue.
    AlreadySettled,
}

/// What a cancel did, answered once it is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelledDeployment {
    /// It was waiting: removed, it will never deploy.
    DroppedWhileWaiting,
    /// It is running: its deployment is being cancelled and rolled back.
    CancellingRunning,
    /// It already went through the queue: nothing to cancel.
    AlreadySettled,
    /// The queue never had it.
    Unknown,
}

/// The cluster a deployment acts on and where its kubeconfig is, never the kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterAccess {
    pub cluster: ClusterSpec,
    pub target: CloudTarget,
    pub storage: ClusterStorage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeginDeployment {
    pub run_id: Uuid,
    pub environment_id: Uuid,
    pub revision: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentStart {
    /// False when the deployment was cancelled or superseded before it started.
    pub proceed: bool,
    pub last_good: Option<GoodRevision>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepareNamespace {
    pub run_id: Uuid,
    pub organization_id: Uuid,
    pub access: ClusterAccess,
    pub environment_name: String,
    pub namespace: String,
    /// Service → (environment variable → secret name), for services with secrets.
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployService {
    pub access: ClusterAccess,
    pub environment_name: String,
    pub namespace: String,
    pub revision: u32,
    pub service: ServiceSpec,
    /// Digest of the sealed versions of the service's secrets (not of their values): a
    /// change rolls its pods.
    #[serde(default)]
    pub secrets_digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRelease {
    pub name: String,
    /// Helm release revision now deployed.
    pub revision: u32,
}

/// Return one service to the environment's last good revision: helm rollback to the
/// release revision it had then, or uninstall if it did not exist then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollBackService {
    pub access: ClusterAccess,
    pub environment_name: String,
    pub namespace: String,
    pub service: String,
    /// The release revision and spec of the last good revision; none: uninstall.
    pub to: Option<(u32, ServiceSpec)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneServices {
    pub access: ClusterAccess,
    pub namespace: String,
    /// Releases of the previous revision that this one no longer has.
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishDeployment {
    pub run_id: Uuid,
    pub state: DeploymentState,
    pub releases: BTreeMap<String, u32>,
    pub detail: Option<String>,
}

/// A request that leaves the queue without running (superseded or cancelled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropQueued {
    pub run_id: Uuid,
    pub state: DeploymentState,
    pub detail: String,
}

pub mod deployment_activity_names {
    pub const PREPARE_NAMESPACE: &str = "deploy.prepare_namespace";
    pub const DEPLOY_SERVICE: &str = "deploy.deploy_service";
    pub const ROLL_BACK_SERVICE: &str = "deploy.roll_back_service";
    pub const PRUNE_SERVICES: &str = "deploy.prune_services";
}

pub mod deployment_record_names {
    pub const BEGIN: &str = "deploy.begin";
    pub const FINISH: &str = "deploy.finish";
    pub const DROP_QUEUED: &str = "deploy.drop_queued";
}

/// Kubernetes and helm work in the environment's namespace.
pub struct DeploymentActivities;

#[activity_definitions]
impl DeploymentActivities {
    /// The namespace, and one Secret per service holding the secrets it names. Returns
    /// each such service's secrets digest.
    #[activity(name = deployment_activity_names::PREPARE_NAMESPACE)]
    pub fn prepare_namespace(
        _: PrepareNamespace,
    ) -> Result<BTreeMap<String, String>, ActivityError> {
        unimplemented!()
    }

    /// helm upgrade --install of the service, then a watch until it has rolled out.
    #[activity(name = deployment_activity_names::DEPLOY_SERVICE)]
    pub fn deploy_service(_: DeployService) -> Result<ServiceRelease, ActivityError> {
        unimplemented!()
    }

    #[activity(name = deployment_activity_names::ROLL_BACK_SERVICE)]
    pub fn roll_back_service(_: RollBackService) -> Result<(), ActivityError> {
        unimplemented!()
    }

    #[activity(name = deployment_activity_names::PRUNE_SERVICES)]
    pub fn prune_services(_: PruneServices) -> Result<(), ActivityError> {
        unimplemented!()
    }
}

/// The deployment read model.
pub struct DeploymentRecordActivities;

#[activity_definitions]
impl DeploymentRecordActivities {
    /// Marks the deployment started and reads the environment's last good revision.
    #[activity(name = deployment_record_names::BEGIN)]
    pub fn begin(_: BeginDeployment) -> Result<DeploymentStart, ActivityError> {
        unimplemented!()
    }

    #[activity(name = deployment_record_names::FINISH)]
    pub fn finish(_: FinishDeployment) -> Result<(), ActivityError> {
        unimplemented!()
    }

    /// Ends a queued request's run and deployment without running it.
    #[activity(name = deployment_record_names::DROP_QUEUED)]
    pub fn drop_queued(_: DropQueued) -> Result<(), ActivityError> {
        unimplemented!()
    }
}
