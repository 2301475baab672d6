//! Deployment bookkeeping in the read model (the deployment row and its run), through the
//! run backplane.

use std::sync::Arc;

use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use windlass_core::Store;
use windlass_workflows::deployment_contracts::{
    BeginDeployment, DeploymentStart, DropQueued, FinishDeployment, deployment_record_names,
};

use crate::backplane::{SharedBackplane, StoreBackplane};
use crate::error::failure;

pub struct DeploymentRecordActivities {
    backplane: SharedBackplane,
}

impl DeploymentRecordActivities {
    pub fn new(store: Store) -> Self {
        Self::with_backplane(Arc::new(StoreBackplane::new(store, None)))
    }

    pub fn with_backplane(backplane: SharedBackplane) -> Self {
        Self { backplane }
    }
}

#[activities]
impl DeploymentRecordActivities {
    #[activity(name = deployment_record_names::BEGIN)]
    pub async fn begin(
        self: Arc<Self>,
        _ctx: ActivityContext,
        request: BeginDeployment,
    ) -> Result<DeploymentStart, ActivityError> {
        self.backplane
            .begin_deployment(&request)
            .await
            .map_err(failure)
    }

    #[activity(name = deployment_record_names::FINISH)]
    pub async fn finish(
        self: Arc<Self>,
        _ctx: ActivityContext,
        request: FinishDeployment,
    ) -> Result<(), ActivityError> {
        self.backplane
            .finish_deployment(&request)
            .await
            .map_err(failure)
    }

    #[activity(name = deployment_record_names::DROP_QUEUED)]
    pub async fn drop_queued(
        self: Arc<Self>,
        _ctx: ActivityContext,
        request: DropQueued,
    ) -> Result<(), ActivityError> {
        self.backplane.drop_queued(&request).await.map_err(failure)
    }
}
