//! The cluster activities declared in `windlass_workflows::cluster_contracts`.
//!
//! Secrets stay inside these functions: the SAS for the cluster's storage comes from ARM
//! when a step needs it, the kubeconfig goes from terraform's state straight to the
//! cluster's blob container and from there into helm's private temp file.

pub(crate) mod charts;
pub mod clouds;
mod lifecycle;
mod maintenance;
mod rendering;
pub(crate) mod storage;
pub mod terraform_credentials;
mod terraform_progress;
mod terraform_steps;

use crate::error::FailureCode;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use windlass_workflows::cluster_contracts::{
    ChartRelease, ClusterRequest, ClusterStorage, InstallChart, KubeconfigRef, PublishKubeconfig,
    TerraformRun, TerraformSummary, cluster_activity_names,
};

pub use clouds::AwsClients;
pub use lifecycle::ClusterLifecycleActivities;
pub use maintenance::ClusterMaintenanceActivities;

use crate::azure_access::AzureConnector;
use crate::helm::Helm;
use crate::terraform::Terraform;

/// What a worker needs to run cluster work.
pub struct ClusterWork {
    pub azure: AzureConnector,
    /// None: this worker takes no AWS cluster work.
    pub aws: Option<AwsClients>,
    pub terraform: Terraform,
    pub helm: Helm,
    /// Terraform working directories, one per cluster (a cache: the state is remote).
    pub workdir: PathBuf,
    /// Where the cluster charts are (`charts/` in the repository).
    pub charts_dir: PathBuf,
    /// How long a terraform interrupted by a lost heartbeat may take to release its lock
    /// before a retry breaks it, when the holder cannot be told dead
    /// (`crate::terraform::judge`).
    pub stale_lock_grace: Duration,
    /// How long helm waits for a chart's workloads to become ready.
    pub chart_timeout: Duration,
    /// Names this worker in state locks.
    pub worker_name: String,
    /// Where terraform's and helm's output goes, step by step.
    pub step_logs: crate::step_log::StepLogs,
    /// Which hosts user charts may be fetched from: public ones on shared workers; any on
    /// placed workers (their own network), tests and `windlass dev` (loopback stand-ins).
    pub chart_hosts: crate::helm::ChartHosts,
}

impl ClusterWork {
    pub(crate) fn aws(&self) -> Result<&AwsClients, ActivityError> {
        self.aws.as_ref().ok_or_else(|| {
            crate::error::terminal(
                std::io::Error::other("this worker is not configured for AWS"),
                FailureCode::NoAwsConfiguration,
            )
        })
    }
}

#[derive(Clone)]
pub struct ClusterActivities {
    pub(crate) work: Arc<ClusterWork>,
}

impl ClusterActivities {
    pub fn new(work: ClusterWork) -> Self {
        Self {
            work: Arc::new(work),
        }
    }

    /// The lifecycle activities (locate, delete), sharing this worker's clients.
    pub fn lifecycle(&self) -> ClusterLifecycleActivities {
        ClusterLifecycleActivities {
            work: self.work.clone(),
        }
    }

    /// The maintenance activities, sharing this worker's clients and settings.
    pub fn maintenance(&self) -> ClusterMaintenanceActivities {
        ClusterMaintenanceActivities {
            work: self.work.clone(),
        }
    }
}

#[activities]
impl ClusterActivities {
    #[activity(name = cluster_activity_names::BOOTSTRAP_STORAGE)]
    pub async fn bootstrap_storage(
        self: Arc<Self>,
        ctx: ActivityContext,
        request: ClusterRequest,
    ) -> Result<ClusterStorage, ActivityError> {
        storage::bootstrap(&self.work, &ctx, &request).await
    }

    #[activity(name = cluster_activity_names::TERRAFORM_PLAN)]
    pub async fn terraform_plan(
        self: Arc<Self>,
        ctx: ActivityContext,
        request: ClusterRequest,
    ) -> Result<TerraformSummary, ActivityError> {
        terraform_steps::plan_only(&self.work, &ctx, &request).await
    }

    #[activity(name = cluster_activity_names::TERRAFORM_APPLY)]
    pub async fn terraform_apply(
        self: Arc<Self>,
        ctx: ActivityContext,
        run: TerraformRun,
    ) -> Result<TerraformSummary, ActivityError> {
        terraform_steps::apply(&self.work, &ctx, &run).await
    }

    #[activity(name = cluster_activity_names::PUBLISH_KUBECONFIG)]
    pub async fn publish_kubeconfig(
        self: Arc<Self>,
        ctx: ActivityContext,
        request: PublishKubeconfig,
    ) -> Result<KubeconfigRef, ActivityError> {
        storage::publish_kubeconfig(&self.work, &ctx, &request).await
    }

    #[activity(name = cluster_activity_names::INSTALL_CHART)]
    pub async fn install_chart(
        self: Arc<Self>,
        ctx: ActivityContext,
        request: InstallChart,
    ) -> Result<ChartRelease, ActivityError> {
        charts::install(&self.work, &ctx, &request).await
    }
}
