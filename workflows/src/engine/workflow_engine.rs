//! What the API asks of the workflow engine, as a trait: [`Engine`] (Temporal) in every
//! deployment and system test; an in-process stand-in (`windlass-test-support`) for router
//! tests that check who may do what without a Temporal server.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::schedules::MaintenanceSchedule;
use super::{Accepted, Engine, EngineError, WorkflowInput, WorkflowState};
use crate::cluster_contracts::MaintenanceInput;
use crate::deployment_contracts::{CancelledDeployment, DeploymentRequest, QueuedDeployment};

#[async_trait::async_trait]
pub trait WorkflowEngine: Send + Sync {
    /// Starts a run's workflow; starting the same workflow id again returns the run
    /// already going. Returns Temporal's run id.
    async fn start(
        &self,
        organization_id: Uuid,
        workflow_id: &str,
        input: WorkflowInput,
    ) -> Result<String, EngineError>;

    /// Asks the workflow to stop (it cancels its activities and records its end).
    async fn cancel(&self, workflow_id: &str, reason: &str) -> Result<(), EngineError>;

    async fn describe(&self, workflow_id: &str) -> Result<WorkflowState, EngineError>;

    /// Queues a deployment on its environment's queue workflow.
    async fn request_deployment(
        &self,
        request: DeploymentRequest,
    ) -> Result<Accepted<QueuedDeployment>, EngineError>;

    async fn cancel_deployment(
        &self,
        organization_id: Uuid,
        environment_id: Uuid,
        run_id: Uuid,
    ) -> Result<Accepted<CancelledDeployment>, EngineError>;

    async fn ensure_maintenance_schedule(
        &self,
        input: MaintenanceInput,
    ) -> Result<String, EngineError>;

    async fn delete_maintenance_schedule(&self, cluster_id: Uuid) -> Result<(), EngineError>;

    async fn maintenance_schedule(
        &self,
        cluster_id: Uuid,
    ) -> Result<MaintenanceSchedule, EngineError>;

    async fn pause_maintenance(
        &self,
        cluster_id: Uuid,
        pause: bool,
        note: &str,
    ) -> Result<(), EngineError>;

    async fn trigger_maintenance(&self, cluster_id: Uuid) -> Result<(), EngineError>;

    async fn backfill_maintenance(
        &self,
        cluster_id: Uuid,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<(), EngineError>;
}

#[async_trait::async_trait]
impl WorkflowEngine for Engine {
    async fn start(
        &self,
        organization_id: Uuid,
        workflow_id: &str,
        input: WorkflowInput,
    ) -> Result<String, EngineError> {
        Engine::start(self, organization_id, workflow_id, input).await
    }

    async fn cancel(&self, workflow_id: &str, reason: &str) -> Result<(), EngineError> {
        Engine::cancel(self, workflow_id, reason).await
    }

    async fn describe(&self, workflow_id: &str) -> Result<WorkflowState, EngineError> {
        Engine::describe(self, workflow_id).await
    }

    async fn request_deployment(
        &self,
        request: DeploymentRequest,
    ) -> Result<Accepted<QueuedDeployment>, EngineError> {
        Engine::request_deployment(self, request).await
    }

    async fn cancel_deployment(
        &self,
        organization_id: Uuid,
        environment_id: Uuid,
        run_id: Uuid,
    ) -> Result<Accepted<CancelledDeployment>, EngineError> {
        Engine::cancel_deployment(self, organization_id, environment_id, run_id).await
    }

    async fn ensure_maintenance_schedule(
        &self,
        input: MaintenanceInput,
    ) -> Result<String, EngineError> {
        Engine::ensure_maintenance_schedule(self, input).await
    }

    async fn delete_maintenance_schedule(&self, cluster_id: Uuid) -> Result<(), EngineError> {
        Engine::delete_maintenance_schedule(self, cluster_id).await
    }

    async fn maintenance_schedule(
        &self,
        cluster_id: Uuid,
    ) -> Result<MaintenanceSchedule, EngineError> {
        Engine::maintenance_schedule(self, cluster_id).await
    }

    async fn pause_maintenance(
        &self,
        cluster_id: Uuid,
        pause: bool,
        note: &str,
    ) -> Result<(), EngineError> {
        Engine::pause_maintenance(self, cluster_id, pause, note).await
    }

    async fn trigger_maintenance(&self, cluster_id: Uuid) -> Result<(), EngineError> {
        Engine::trigger_maintenance(self, cluster_id).await
    }

    async fn backfill_maintenance(
        &self,
        cluster_id: Uuid,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        Engine::backfill_maintenance(self, cluster_id, start, end).await
    }
}
