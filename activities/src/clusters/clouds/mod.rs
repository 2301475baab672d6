//! The one seam between cluster work and a cloud: [`ClusterCloud`], implemented once per
//! cloud (`azure.rs`, `aws/`), chosen for a run's target in [`cloud_of`] (the only place
//! that matches on `CloudTarget` in cluster work).
//!
//! Everything a cluster step asks of a cloud goes through it: the storage that holds
//! terraform's state (made, found, removed, opened), the kubeconfig as its users run it,
//! the Kubernetes versions the cloud offers, terraform's federated credentials, and what
//! of a blueprint already exists. The cluster activities (`storage.rs`, `lifecycle.rs`,
//! `maintenance.rs`, `terraform_steps.rs`) are written once against the trait.
//!
//! Every implementation passes the same conformance suite against its stand-in or
//! emulator (`tests/system/cloud_conformance.rs`, `for_every_cloud!`). Adding a cloud is
//! listed file by file in ARCHITECTURE.md ("Adding a cloud").

mod aws;
mod azure;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use temporalio_sdk::activities::{ActivityContext, ActivityError};
use windlass_core::blueprint::Blueprint;
use windlass_core::clusters::ClusterSpec;
use windlass_workflows::cluster_contracts::{AwsTarget, CloudTarget, ClusterStorage};
use windlass_workflows::contracts::AzureTarget;

use super::ClusterWork;
use super::terraform_credentials::TerraformCredentials;
use crate::azure_access::AzureConnector;
use crate::object_store::ObjectStore;
use crate::terraform::{Diagnostic, ExistingResource};

pub use aws::AwsClients;

/// What cluster work asks of one cloud account, as one organisation.
///
/// Errors are Temporal failures already carrying their verdict (`crate::error`): a
/// cloud decides what of its own errors is retried.
#[async_trait::async_trait]
pub trait ClusterCloud: Send + Sync {
    /// Makes the storage for the cluster's terraform state (resource group and storage
    /// account; a versioned bucket), or finds it made: running it again changes nothing.
    async fn bootstrap_storage(
        &self,
        step: Step<'_>,
        cluster: &ClusterSpec,
    ) -> Result<ClusterStorage, ActivityError>;

    /// The storage [`Self::bootstrap_storage`] made, if it exists.
    async fn locate_storage(
        &self,
        step: Step<'_>,
        cluster: &ClusterSpec,
    ) -> Result<Option<ClusterStorage>, ActivityError>;

    /// Removes what the bootstrap made, with everything in it; `false` if it was gone.
    async fn delete_storage(
        &self,
        step: Step<'_>,
        cluster: &ClusterSpec,
    ) -> Result<bool, ActivityError>;

    /// Containers (or key prefixes) of the cluster's storage on one short-lived grant of
    /// access, in the order of `names`.
    async fn containers(
        &self,
        storage: &ClusterStorage,
        names: &[&str],
    ) -> Result<Vec<Arc<dyn ObjectStore>>, ActivityError>;

    /// The kubeconfig terraform published, as a worker uses it (EKS: its `aws eks
    /// get-token` users replaced by tokens signed as the organisation).
    async fn kubeconfig_for_use(&self, published: String) -> Result<String, ActivityError>;

    /// The Kubernetes versions the cloud offers for new clusters and upgrades in
    /// `region` (previews left out).
    async fn offered_versions(
        &self,
        step: Step<'_>,
        region: &str,
    ) -> Result<Vec<String>, ActivityError>;

    /// The environment terraform runs with: the provider's federated identity, never a
    /// secret in the blueprint. Files it needs are written under `dir` and removed when
    /// the credentials are dropped.
    async fn terraform_credentials(
        &self,
        dir: &Path,
    ) -> Result<TerraformCredentials, ActivityError>;

    /// What of `blueprint` the cloud already has, found before an apply (an earlier
    /// attempt may have died after the cloud made it); `None` where the provider finds
    /// it itself ([`Self::refused_as_existing`]).
    async fn existing_resources(
        &self,
        blueprint: &Blueprint,
        cluster: &ClusterSpec,
    ) -> Result<Option<Vec<ExistingResource>>, ActivityError>;

    /// The resources a failed apply's provider refused to create because they exist,
    /// with their import ids.
    fn refused_as_existing(
        &self,
        diagnostics: &[Diagnostic],
        blueprint: &Blueprint,
    ) -> Vec<ExistingResource>;
}

/// The cloud behind `target`, for this worker: the registration of every cloud.
pub fn cloud_of<'a>(
    work: &'a ClusterWork,
    target: &'a CloudTarget,
) -> Result<Box<dyn ClusterCloud + 'a>, ActivityError> {
    Ok(match target {
        CloudTarget::Azure(target) => azure(&work.azure, target),
        CloudTarget::Aws(target) => aws(work.aws()?, target),
    })
}

/// An Azure subscription, acting as Windlass's platform application in its tenant.
pub fn azure<'a>(
    connector: &'a AzureConnector,
    target: &'a AzureTarget,
) -> Box<dyn ClusterCloud + 'a> {
    Box::new(azure::AzureCloud::new(connector, target))
}

/// An AWS account, acting as the organisation's role in it.
pub fn aws<'a>(clients: &'a AwsClients, target: &'a AwsTarget) -> Box<dyn ClusterCloud + 'a> {
    Box::new(aws::AwsCloud::new(clients, target))
}

/// The step a cloud operation runs in: it heartbeats while the cloud answers, and its
/// age (every attempt, never queue time) bounds how long Azure's lags are waited out.
/// Outside an activity (the conformance suite) it only awaits.
#[derive(Clone, Copy)]
pub struct Step<'a> {
    ctx: Option<&'a ActivityContext>,
}

impl<'a> Step<'a> {
    pub(crate) fn of(ctx: &'a ActivityContext) -> Self {
        Self { ctx: Some(ctx) }
    }

    /// A caller that is no activity: nothing to heartbeat, a step as young as can be.
    pub fn outside_activity() -> Self {
        Self { ctx: None }
    }

    pub(crate) async fn heartbeating<F: std::future::Future>(
        &self,
        work: F,
    ) -> Result<F::Output, ActivityError> {
        match self.ctx {
            Some(ctx) => crate::heartbeat::heartbeating(ctx, work).await,
            None => Ok(work.await),
        }
    }

    /// How long the step has been running.
    pub(crate) fn age(&self) -> Duration {
        self.ctx
            .map(|ctx| crate::step_time::running_time_of(ctx.info()))
            .unwrap_or_default()
    }
}

/// The refusal of storage that belongs to another cloud than the account's.
pub(crate) fn storage_in_another_cloud() -> ActivityError {
    crate::error::terminal(
        missing("the cluster's storage is in another cloud than its account"),
        crate::error::FailureCode::InvalidInput,
    )
}

/// Names a cloud gives no error type of its own.
pub(crate) fn missing(message: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotFound, message.to_owned())
}
