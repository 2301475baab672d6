//! Deployment requests go to their environment's queue workflow, never straight to a
//! deploy workflow: the queue is what keeps two deployments of one environment apart.

use temporalio_client::{WorkflowIdConflictPolicy, WorkflowSignalOptions, WorkflowStartOptions};
use uuid::Uuid;

use super::codec::{PayloadScope, with_scope};
use super::{Engine, EngineError};
use crate::EnvironmentDeployments;
use crate::deployment_contracts::{DeploymentRequest, EnvironmentQueueInput};
use crate::environment_queue::environment_queue_id;

impl Engine {
    /// Queues a deployment in its environment, starting the environment's queue workflow
    /// if it is not running (on the environment queue of the cluster's placement, so only
    /// that placement's workers see it). Repeating a request (same run) is harmless.
    pub async fn request_deployment(&self, request: DeploymentRequest) -> Result<(), EngineError> {
        let environment_id = request.input.environment_id;
        let task_queue = crate::task_queues::placed(
            &self.environment_task_queue,
            request.input.cluster.placement.as_deref(),
        );
        let workflow_id = environment_queue_id(environment_id);
        let scope = PayloadScope {
            organization_id: request.input.organization_id,
            workflow_id: workflow_id.clone(),
        };
        let options = WorkflowStartOptions::new(task_queue, workflow_id)
            .id_conflict_policy(WorkflowIdConflictPolicy::UseExisting)
            .build();
        let call = self.client.signal_with_start_workflow(
            EnvironmentDeployments::run,
            EnvironmentQueueInput {
                environment_id,
                waiting: Vec::new(),
            },
            EnvironmentDeployments::request_deployment,
            request,
            options,
        );
        with_scope(scope, call).await?;
        Ok(())
    }

    /// Asks the environment's queue to cancel a deployment: dropped if waiting, cancelled
    /// (and rolled back) if running.
    pub async fn cancel_deployment(
        &self,
        organization_id: Uuid,
        environment_id: Uuid,
        run_id: Uuid,
    ) -> Result<(), EngineError> {
        let workflow_id = environment_queue_id(environment_id);
        let scope = PayloadScope {
            organization_id,
            workflow_id: workflow_id.clone(),
        };
        let handle = self
            .client
            .get_workflow_handle::<EnvironmentDeployments>(workflow_id);
        let call = handle.signal(
            EnvironmentDeployments::cancel_deployment,
            run_id,
            WorkflowSignalOptions::default(),
        );
        with_scope(scope, call).await?;
        Ok(())
    }
}
