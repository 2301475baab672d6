//! The deployment activities declared in `windlass_workflows::deployment_contracts`: the
//! namespace and the services' secrets, each service's release and rollout, rollbacks.
//! The kubeconfig is read from the cluster's storage in each activity and never leaves it;
//! secret values go from the run backplane (the store, or the API for a placed worker)
//! straight into the cluster's Secret.

mod records;
mod services;

use std::sync::Arc;

use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use windlass_workflows::deployment_contracts::{
    DeployService, PrepareNamespace, PruneServices, RollBackService, ServiceRelease,
    deployment_activity_names,
};

pub use records::DeploymentRecordActivities;

use crate::backplane::SharedBackplane;
use crate::clusters::ClusterWork;

#[derive(Clone)]
pub struct DeploymentActivities {
    work: Arc<ClusterWork>,
    /// Where granted secrets come from: the store, or for a placed worker the API.
    backplane: SharedBackplane,
}

/// The deployment activities of a worker that runs cluster work share its clients and
/// settings (declared here: deployments build on clusters, not the other way round).
impl crate::clusters::ClusterActivities {
    /// The deployment activities, sharing this worker's cluster clients; they resolve
    /// secrets for their runs with `keys`.
    pub fn deployments(
        &self,
        store: windlass_core::Store,
        keys: Arc<windlass_core::keys::KeyRing>,
    ) -> DeploymentActivities {
        self.deployments_with(Arc::new(crate::backplane::StoreBackplane::new(
            store,
            Some(keys),
        )))
    }

    /// The deployment activities, reading granted secrets through `backplane`.
    pub fn deployments_with(
        &self,
        backplane: crate::backplane::SharedBackplane,
    ) -> DeploymentActivities {
        DeploymentActivities::new(self.work.clone(), backplane)
    }
}

impl DeploymentActivities {
    pub(crate) fn new(work: Arc<ClusterWork>, backplane: SharedBackplane) -> Self {
        Self { work, backplane }
    }
}

#[activities]
impl DeploymentActivities {
    #[activity(name = deployment_activity_names::PREPARE_NAMESPACE)]
    pub async fn prepare_namespace(
        self: Arc<Self>,
        ctx: ActivityContext,
        request: PrepareNamespace,
    ) -> Result<std::collections::BTreeMap<String, String>, ActivityError> {
        services::prepare_namespace(&self, &ctx, &request).await
    }

    #[activity(name = deployment_activity_names::DEPLOY_SERVICE)]
    pub async fn deploy_service(
        self: Arc<Self>,
        ctx: ActivityContext,
        request: DeployService,
    ) -> Result<ServiceRelease, ActivityError> {
        services::deploy(&self, &ctx, &request).await
    }

    #[activity(name = deployment_activity_names::ROLL_BACK_SERVICE)]
    pub async fn roll_back_service(
        self: Arc<Self>,
        ctx: ActivityContext,
        request: RollBackService,
    ) -> Result<(), ActivityError> {
        services::roll_back(&self, &ctx, &request).await
    }

    #[activity(name = deployment_activity_names::PRUNE_SERVICES)]
    pub async fn prune_services(
        self: Arc<Self>,
        ctx: ActivityContext,
        request: PruneServices,
    ) -> Result<(), ActivityError> {
        services::prune(&self, &ctx, &request).await
    }
}
