//! Deployment requests go to their environment's queue workflow, never straight to a
//! deploy workflow: the queue is what keeps two deployments of one environment apart.
//! Both requests and cancels are Updates: the call returns once the queue accepted them,
//! with what it did. A queue whose workers are away (a customer's placed workers offline)
//! cannot accept anything; after [`ACCEPT_WAIT`] the request or cancel is sent as a signal
//! instead, which Temporal keeps durably until the queue runs, and the caller is told it is
//! not confirmed yet. The queue de-duplicates by run id, so both arriving is harmless.

use std::time::Duration;
use temporalio_client::errors::{WorkflowUpdateError, WorkflowUpdateWithStartError};
use temporalio_client::{
    WorkflowExecuteUpdateOptions, WorkflowIdConflictPolicy, WorkflowUpdateWithStartOptions,
};
use uuid::Uuid;

use temporalio_client::{WorkflowSignalOptions, WorkflowStartOptions};

use super::codec::{PayloadScope, with_scope};
use super::error::from_status;
use super::{Engine, EngineError};
use crate::EnvironmentDeployments;
use crate::deployment_contracts::{
    CancelledDeployment, DeploymentRequest, EnvironmentQueueInput, QueuedDeployment,
};
use crate::environment_queue::environment_queue_id;

/// How long a request or cancel waits for its queue to accept it before it is left to a
/// durable signal.
pub const ACCEPT_WAIT: Duration = Duration::from_secs(5);

/// What the queue said, or that it has not answered yet (workers away; delivered later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted<T> {
    Confirmed(T),
    Pending,
}

impl Engine {
    /// Queues a deployment in its environment, starting the environment's queue workflow
    /// if it is not running (on the environment queue of the cluster's placement, so only
    /// that placement's workers see it). Repeating a request (same run) is harmless: the
    /// update id is the run's, and the queue answers `AlreadyQueued`.
    pub async fn request_deployment(
        &self,
        request: DeploymentRequest,
    ) -> Result<Accepted<QueuedDeployment>, EngineError> {
        let environment_id = request.input.environment_id;
        let task_queue = crate::task_queues::placed(
            &self.environment_task_queue,
            request.input.cluster.placement.as_deref(),
        );
        let queue_id = environment_queue_id(environment_id);
        let input = EnvironmentQueueInput {
            environment_id,
            deployments_per_history: self.queue_deployments_per_history,
            ..EnvironmentQueueInput::default()
        };
        let options = WorkflowUpdateWithStartOptions::new(
            task_queue.clone(),
            queue_id.clone(),
            WorkflowIdConflictPolicy::UseExisting,
        )
        .update_id(format!("deploy-{}", request.run_id))
        .build();
        let scope = PayloadScope {
            organization_id: request.input.organization_id,
            workflow_id: queue_id.clone(),
        };
        let update = self.client.execute_update_with_start_workflow(
            EnvironmentDeployments::run,
            input.clone(),
            EnvironmentDeployments::enqueue,
            request.clone(),
            options,
        );
        match tokio::time::timeout(ACCEPT_WAIT, with_scope(scope.clone(), update)).await {
            Ok(answer) => {
                return Ok(Accepted::Confirmed(
                    answer.map_err(update_with_start_error)?,
                ));
            }
            Err(_) => tracing::info!(run_id = %request.run_id, "queue did not answer; signalling"),
        }
        let options = WorkflowStartOptions::new(task_queue, queue_id)
            .id_conflict_policy(WorkflowIdConflictPolicy::UseExisting)
            .build();
        let call = self.client.signal_with_start_workflow(
            EnvironmentDeployments::run,
            input,
            EnvironmentDeployments::request_deployment,
            request,
            options,
        );
        with_scope(scope, call).await?;
        Ok(Accepted::Pending)
    }

    /// Asks the environment's queue to cancel a deployment: dropped if waiting, cancelled
    /// (and rolled back) if running. The answer says which, once the queue accepted it.
    pub async fn cancel_deployment(
        &self,
        organization_id: Uuid,
        environment_id: Uuid,
        run_id: Uuid,
    ) -> Result<Accepted<CancelledDeployment>, EngineError> {
        let workflow_id = environment_queue_id(environment_id);
        let scope = PayloadScope {
            organization_id,
            workflow_id: workflow_id.clone(),
        };
        let handle = self
            .client
            .get_workflow_handle::<EnvironmentDeployments>(workflow_id);
        let update = handle.execute_update(
            EnvironmentDeployments::cancel,
            run_id,
            WorkflowExecuteUpdateOptions::builder()
                .update_id(format!("cancel-{run_id}"))
                .build(),
        );
        match tokio::time::timeout(ACCEPT_WAIT, with_scope(scope.clone(), update)).await {
            Ok(answer) => return Ok(Accepted::Confirmed(answer.map_err(update_error)?)),
            Err(_) => tracing::info!(%run_id, "queue did not answer the cancel; signalling"),
        }
        let call = handle.signal(
            EnvironmentDeployments::cancel_deployment,
            run_id,
            WorkflowSignalOptions::default(),
        );
        with_scope(scope, call).await?;
        Ok(Accepted::Pending)
    }
}

fn update_error(error: WorkflowUpdateError) -> EngineError {
    match error {
        WorkflowUpdateError::NotFound(status) => EngineError::NotFound(status.message().into()),
        WorkflowUpdateError::Rpc(status) => from_status(&status),
        // The validator refused it: the request is wrong, not the engine.
        WorkflowUpdateError::Failed(failure) => EngineError::InvalidInput(failure.message),
        other => EngineError::Other(other.to_string()),
    }
}

fn update_with_start_error(error: WorkflowUpdateWithStartError) -> EngineError {
    match error {
        WorkflowUpdateWithStartError::Start(start) => start.into(),
        WorkflowUpdateWithStartError::Update(update) => update_error(update),
        WorkflowUpdateWithStartError::Rpc(status) => from_status(&status),
        other => EngineError::Other(other.to_string()),
    }
}
