//! Inputs, outputs and activity declarations of the cluster workflows. As in
//! [`crate::contracts`], nothing here may hold a secret: the kubeconfig travels as a blob
//! reference, the state as a storage location, credentials not at all.

#![allow(unreachable_pub)]

use serde::{Deserialize, Serialize};
use temporalio_macros::activity_definitions;
use temporalio_sdk::activities::ActivityError;
use windlass_core::cluster_charts::ClusterChart;
use windlass_core::clusters::ClusterSpec;

use crate::contracts::AzureTarget;
use crate::key_rotation_contracts::KeyRotated;

/// The cloud account a cluster operation acts on, and as whom. Never a credential: the
/// activity obtains short-lived ones (workload identity federation on Azure, STS
/// AssumeRole with the organisation's ExternalId on AWS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "cloud", rename_all = "snake_case")]
pub enum CloudTarget {
    Azure(AzureTarget),
    Aws(AwsTarget),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsTarget {
    pub organization_id: uuid::Uuid,
    pub cloud_account_id: uuid::Uuid,
    /// The 12-digit account id.
    pub account_id: String,
    /// The role Windlass assumes in the account (it trusts Windlass with the
    /// organisation's ExternalId).
    pub role_arn: String,
}

impl CloudTarget {
    /// Whom cluster operations act as in `account`: Windlass's multi-tenant application
    /// (`application_id`) in the customer's tenant (the principal the access setup
    /// created and granted the custom role), or the role Windlass may assume in the
    /// customer's AWS account with the organisation's ExternalId.
    pub fn acting_for(
        account: &windlass_core::cloud_accounts::CloudAccount,
        application_id: &str,
    ) -> Self {
        use windlass_core::cloud_accounts::{CloudProvider, aws_role_arn};
        match account.provider {
            CloudProvider::Azure => Self::Azure(AzureTarget {
                organization_id: account.organization_id,
                cloud_account_id: account.id,
                tenant_id: account.tenant_id.clone(),
                subscription_id: account.external_id.clone(),
                setup_identity_client_id: application_id.to_owned(),
            }),
            CloudProvider::Aws => Self::Aws(AwsTarget {
                organization_id: account.organization_id,
                cloud_account_id: account.id,
                account_id: account.external_id.clone(),
                role_arn: aws_role_arn(&account.external_id),
            }),
        }
    }

    pub fn organization_id(&self) -> uuid::Uuid {
        match self {
            Self::Azure(t) => t.organization_id,
            Self::Aws(t) => t.organization_id,
        }
    }

    pub fn cloud_account_id(&self) -> uuid::Uuid {
        match self {
            Self::Azure(t) => t.cloud_account_id,
            Self::Aws(t) => t.cloud_account_id,
        }
    }

    /// Subscription id or AWS account id.
    pub fn account_external_id(&self) -> &str {
        match self {
            Self::Azure(t) => &t.subscription_id,
            Self::Aws(t) => &t.account_id,
        }
    }

    pub fn provider(&self) -> windlass_core::cloud_accounts::CloudProvider {
        use windlass_core::cloud_accounts::CloudProvider;
        match self {
            Self::Azure(_) => CloudProvider::Azure,
            Self::Aws(_) => CloudProvider::Aws,
        }
    }

    /// The directory (Entra) tenant the account belongs to; empty where a cloud has none.
    pub fn directory_tenant_id(&self) -> &str {
        match self {
            Self::Azure(t) => &t.tenant_id,
            Self::Aws(_) => "",
        }
    }
}

/// Provision (or converge) a cluster: storage bootstrap, terraform, kubeconfig, charts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProvisionClusterInput {
    pub cluster: ClusterSpec,
    /// The account, and whom Windlass acts as in it.
    pub target: CloudTarget,
    /// Plan only: nothing is created, the run's output is what would be.
    #[serde(default)]
    pub dry_run: bool,
    /// Let terraform replace or destroy the cluster itself if the plan says so.
    #[serde(default)]
    pub allow_cluster_replacement: bool,
    /// Install charts one after another instead of along the dependency graph (for
    /// comparison; the graph is never slower).
    #[serde(default)]
    pub sequential_charts: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProvisionClusterOutput {
    pub terraform: TerraformSummary,
    /// Empty for a dry run.
    pub charts: Vec<ChartRelease>,
    pub kubeconfig: Option<KubeconfigRef>,
}

/// Where a cluster's state and files live, in the customer's account. No credential: the
/// activity obtains short-lived access when it needs it (a SAS from ARM, STS credentials).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClusterStorage {
    pub location: StorageLocation,
    /// Blob container (Azure) or key prefix in the bucket (AWS; empty: the bucket root,
    /// where the blueprint's S3 backend keeps its state).
    pub state_container: String,
    pub kubeconfigs_container: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StorageLocation {
    /// The cluster's storage account.
    AzureBlob {
        resource_group: String,
        storage_account: String,
        blob_endpoint: String,
    },
    /// The cluster's state bucket.
    S3 { bucket: String, region: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TerraformAction {
    Apply,
    Destroy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRequest {
    pub cluster: ClusterSpec,
    pub target: CloudTarget,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerraformRun {
    pub cluster: ClusterSpec,
    pub target: CloudTarget,
    pub storage: ClusterStorage,
    pub action: TerraformAction,
    /// Whether the plan may replace or destroy the cluster resource.
    pub allow_cluster_removal: bool,
}

/// What a terraform plan did (or, for a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TerraformSummary {
    pub add: u32,
    pub change: u32,
    pub remove: u32,
    pub changes: Vec<PlannedChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlannedChange {
    pub address: String,
    /// create, update, replace, destroy
    pub action: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishKubeconfig {
    pub cluster: ClusterSpec,
    pub target: CloudTarget,
    pub storage: ClusterStorage,
}

/// A kubeconfig in the cluster's storage account: the only way one travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KubeconfigRef {
    pub container: String,
    pub blob: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallChart {
    pub cluster: ClusterSpec,
    pub target: CloudTarget,
    pub storage: ClusterStorage,
    pub kubeconfig: KubeconfigRef,
    pub chart: ClusterChart,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChartRelease {
    pub name: String,
    pub namespace: String,
    pub revision: u32,
    pub status: String,
}

pub mod cluster_activity_names {
    pub const BOOTSTRAP_STORAGE: &str = "cluster.bootstrap_storage";
    pub const TERRAFORM_PLAN: &str = "terraform.plan";
    pub const TERRAFORM_APPLY: &str = "terraform.apply";
    pub const PUBLISH_KUBECONFIG: &str = "cluster.publish_kubeconfig";
    pub const INSTALL_CHART: &str = "helm.install_chart";
}

pub struct ClusterActivities;

#[activity_definitions]
impl ClusterActivities {
    /// Resource group, storage account and its containers, through ARM and Blob storage.
    #[activity(name = cluster_activity_names::BOOTSTRAP_STORAGE)]
    pub fn bootstrap_storage(_: ClusterRequest) -> Result<ClusterStorage, ActivityError> {
        unimplemented!()
    }

    /// Plans against an empty state without touching the cloud (dry run).
    #[activity(name = cluster_activity_names::TERRAFORM_PLAN)]
    pub fn terraform_plan(_: ClusterRequest) -> Result<TerraformSummary, ActivityError> {
        unimplemented!()
    }

    #[activity(name = cluster_activity_names::TERRAFORM_APPLY)]
    pub fn terraform_apply(_: TerraformRun) -> Result<TerraformSummary, ActivityError> {
        unimplemented!()
    }

    #[activity(name = cluster_activity_names::PUBLISH_KUBECONFIG)]
    pub fn publish_kubeconfig(_: PublishKubeconfig) -> Result<KubeconfigRef, ActivityError> {
        unimplemented!()
    }

    #[activity(name = cluster_activity_names::INSTALL_CHART)]
    pub fn install_chart(_: InstallChart) -> Result<ChartRelease, ActivityError> {
        unimplemented!()
    }
}

/// Weekly maintenance of one cluster, started by its schedule when its window opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceInput {
    pub cluster: ClusterSpec,
    pub target: CloudTarget,
    /// What to do, in order; work left when the window closes waits for the next one.
    #[serde(default = "MaintenanceTask::all")]
    pub tasks: Vec<MaintenanceTask>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MaintenanceTask {
    /// Compare the cluster's version with what AKS offers in its region.
    UpgradeCheck,
    /// `terraform plan -detailed-exitcode` against the cluster's state: did anything
    /// change outside Windlass?
    DriftDetection,
    /// Re-apply the cluster charts (chart versions and values as Windlass ships them).
    ChartUpdates,
    /// Issue a fresh kubeconfig from the cluster's state into its storage account.
    CredentialRotation,
    /// Rotate the organisation's data key once it is 90 days old.
    KeyRotation,
}

impl MaintenanceTask {
    pub fn all() -> Vec<Self> {
        vec![
            Self::UpgradeCheck,
            Self::DriftDetection,
            Self::ChartUpdates,
            Self::CredentialRotation,
            Self::KeyRotation,
        ]
    }

    /// How much of the window a task needs to be started: work that would overrun the
    /// window waits for the next one instead of running into business hours.
    pub fn needs(self) -> std::time::Duration {
        let minutes = match self {
            Self::UpgradeCheck => 2,
            Self::DriftDetection => 15,
            Self::ChartUpdates => 45,
            Self::CredentialRotation => 5,
            Self::KeyRotation => 2,
        };
        std::time::Duration::from_secs(minutes * 60)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MaintenanceReport {
    pub upgrade: Option<UpgradeCheck>,
    pub drift: Option<DriftReport>,
    pub charts: Vec<ChartRelease>,
    pub kubeconfig: Option<KubeconfigRef>,
    pub key_rotation: Option<KeyRotated>,
    /// Windows the run waited for, with the task that did not fit.
    pub deferrals: Vec<Deferral>,
    /// The runs under which it held the cluster (one per stretch of work between waits
    /// for a window), in order.
    #[serde(default)]
    pub holds: Vec<uuid::Uuid>,
    /// The cluster was deleted before the maintenance could work on it.
    #[serde(default)]
    pub cluster_deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Deferral {
    pub task: MaintenanceTask,
    /// RFC 3339: when the next window opened.
    pub until: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UpgradeCheck {
    pub current: String,
    /// Newer non-preview minor versions offered in the region, oldest first. AKS
    /// upgrades one minor version at a time, so the first is the next step.
    pub newer: Vec<String>,
    /// The cluster's version is no longer offered: upgrading is urgent.
    pub unsupported: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DriftReport {
    pub drifted: bool,
    pub changes: Vec<PlannedChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftCheck {
    pub cluster: ClusterSpec,
    pub target: CloudTarget,
    pub storage: ClusterStorage,
}

pub mod maintenance_activity_names {
    pub const CHECK_UPGRADES: &str = "cluster.check_upgrades";
    pub const DETECT_DRIFT: &str = "terraform.detect_drift";
}

pub struct ClusterMaintenanceActivities;

#[activity_definitions]
impl ClusterMaintenanceActivities {
    #[activity(name = maintenance_activity_names::CHECK_UPGRADES)]
    pub fn check_upgrades(_: ClusterRequest) -> Result<UpgradeCheck, ActivityError> {
        unimplemented!()
    }

    #[activity(name = maintenance_activity_names::DETECT_DRIFT)]
    pub fn detect_drift(_: DriftCheck) -> Result<DriftReport, ActivityError> {
        unimplemented!()
    }
}

/// Delete a cluster and everything Windlass made for it. Safe to run again after a
/// delete that stopped halfway: what is gone stays gone, what is left is removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteClusterInput {
    pub cluster: ClusterSpec,
    pub target: CloudTarget,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeleteClusterOutput {
    /// None when the state was already gone (an earlier delete got that far).
    pub terraform: Option<TerraformSummary>,
    /// Whether this run removed the resource group (false: it was already gone).
    pub resource_group_deleted: bool,
}

/// Upgrade a cluster by one minor version: control plane first, then the node pools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpgradeClusterInput {
    /// The cluster as it is now (its current version).
    pub cluster: ClusterSpec,
    pub target: CloudTarget,
    /// `major.minor`: the next minor version, offered in the cluster's region.
    pub to_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UpgradeClusterOutput {
    pub offered: UpgradeCheck,
    pub control_plane: TerraformSummary,
    pub node_pools: TerraformSummary,
}

pub mod lifecycle_activity_names {
    pub const LOCATE_STORAGE: &str = "cluster.locate_storage";
    pub const DELETE_RESOURCE_GROUP: &str = "cluster.delete_resource_group";
}

pub struct ClusterLifecycleActivities;

#[activity_definitions]
impl ClusterLifecycleActivities {
    /// The cluster's storage, if its storage account still exists (read only).
    #[activity(name = lifecycle_activity_names::LOCATE_STORAGE)]
    pub fn locate_storage(_: ClusterRequest) -> Result<Option<ClusterStorage>, ActivityError> {
        unimplemented!()
    }

    /// Deletes the cluster's resource group; `false` if it was already gone.
    #[activity(name = lifecycle_activity_names::DELETE_RESOURCE_GROUP)]
    pub fn delete_resource_group(_: ClusterRequest) -> Result<bool, ActivityError> {
        unimplemented!()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRef {
    pub organization_id: uuid::Uuid,
    pub cluster_id: uuid::Uuid,
}

pub mod record_activity_names {
    pub const CURRENT_SPEC: &str = "clusters.current_spec";
    pub const HOLD_CLUSTER: &str = "clusters.hold_for_maintenance";
    pub const RELEASE_CLUSTER: &str = "clusters.release_from_maintenance";
    pub const RECORD_CHANGE: &str = "clusters.record_change";
}

/// What a cluster run did that Windlass's record of the cluster must show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "change")]
pub enum ClusterChange {
    /// Control plane and node pools run this version.
    Upgraded {
        cluster: ClusterRef,
        kubernetes_version: String,
    },
    /// Its cloud resources are gone.
    Deleted { cluster: ClusterRef },
}

/// Maintenance asks for its cluster before it works on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldCluster {
    pub cluster: ClusterRef,
    /// The maintenance workflow's id.
    pub workflow_id: String,
    /// Which stretch of work of that workflow (1, 2, ...), so a retried request returns
    /// the same hold and a later one is a new run.
    pub hold: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldCluster {
    /// The run standing for the hold (kind `cluster_maintenance`, target `cluster:<id>`).
    pub run_id: uuid::Uuid,
    /// The cluster as it is now.
    pub cluster: ClusterSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseCluster {
    pub run_id: uuid::Uuid,
    pub status: crate::run_contracts::OutcomeStatus,
    pub error: Option<String>,
}

/// Activities on Windlass's read model of clusters.
pub struct ClusterRecordActivities;

#[activity_definitions]
impl ClusterRecordActivities {
    /// The cluster's spec as it is now (a schedule's input is a snapshot); none once the
    /// cluster is deleted.
    #[activity(name = record_activity_names::CURRENT_SPEC)]
    pub fn current_spec(_: ClusterRef) -> Result<Option<ClusterSpec>, ActivityError> {
        unimplemented!()
    }

    /// Holds the cluster for maintenance: fails (retryably) while another run holds it;
    /// none once the cluster is deleted.
    #[activity(name = record_activity_names::HOLD_CLUSTER)]
    pub fn hold_for_maintenance(_: HoldCluster) -> Result<Option<HeldCluster>, ActivityError> {
        unimplemented!()
    }

    /// Lets go of the cluster (idempotent; a hold already taken back stays as it ended).
    #[activity(name = record_activity_names::RELEASE_CLUSTER)]
    pub fn release_from_maintenance(_: ReleaseCluster) -> Result<(), ActivityError> {
        unimplemented!()
    }

    /// Records what an upgrade or a delete did (idempotent), before the run ends and lets
    /// go of the cluster.
    #[activity(name = record_activity_names::RECORD_CHANGE)]
    pub fn record_change(_: ClusterChange) -> Result<(), ActivityError> {
        unimplemented!()
    }
}
