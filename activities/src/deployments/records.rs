//! Deployment bookkeeping in the read model: the deployment row and its run.

use std::sync::Arc;

use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use windlass_core::Store;
use windlass_core::deployments::DeploymentState;
use windlass_core::runs::RunStatus;
use windlass_workflows::deployment_contracts::{
    BeginDeployment, DeploymentStart, DropQueued, FinishDeployment, deployment_record_names,
};

use crate::error::retryable_unless;

pub struct DeploymentRecords {
    store: Store,
}

impl DeploymentRecords {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

fn failure(error: windlass_core::Error) -> ActivityError {
    retryable_unless(!error.is_retryable(), error)
}

#[activities]
impl DeploymentRecords {
    #[activity(name = deployment_record_names::BEGIN)]
    pub async fn begin(
        self: Arc<Self>,
        _ctx: ActivityContext,
        request: BeginDeployment,
    ) -> Result<DeploymentStart, ActivityError> {
        let started = self
            .store
            .start_deployment(request.run_id)
            .await
            .map_err(failure)?;
        // A retry of this step after it marked the row finds it deploying: go on.
        let deployment = self
            .store
            .deployment(request.run_id)
            .await
            .map_err(failure)?;
        let proceed = started || deployment.state == DeploymentState::Deploying;
        let last_good = self
            .store
            .last_good_revision(request.environment_id, request.revision)
            .await
            .map_err(failure)?;
        tracing::info!(run_id = %request.run_id, revision = request.revision, proceed,
            last_good = ?last_good.as_ref().map(|g| g.revision), "deployment starting");
        Ok(DeploymentStart { proceed, last_good })
    }

    #[activity(name = deployment_record_names::FINISH)]
    pub async fn finish(
        self: Arc<Self>,
        _ctx: ActivityContext,
        request: FinishDeployment,
    ) -> Result<(), ActivityError> {
        self.store
            .finish_deployment(
                request.run_id,
                request.state,
                &request.releases,
                request.detail.as_deref(),
            )
            .await
            .map_err(failure)?;
        Ok(())
    }

    #[activity(name = deployment_record_names::DROP_QUEUED)]
    pub async fn drop_queued(
        self: Arc<Self>,
        _ctx: ActivityContext,
        request: DropQueued,
    ) -> Result<(), ActivityError> {
        self.store
            .finish_deployment(
                request.run_id,
                request.state,
                &Default::default(),
                Some(&request.detail),
            )
            .await
            .map_err(failure)?;
        let status = match request.state {
            DeploymentState::Failed => RunStatus::Failed,
            _ => RunStatus::Cancelled,
        };
        self.store
            .finish_run(request.run_id, status, None, Some(&request.detail))
            .await
            .map_err(failure)?;
        Ok(())
    }
}
