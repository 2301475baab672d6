//! The run backplane: what activities need from Windlass's store while they run a step
//! (the step journal, the step log, a run's granted secrets, the deployment records and
//! the run's outcome), behind one trait so activities do not care where it lives. Shared
//! workers reach the store directly ([`StoreBackplane`]); a placed worker, which holds no
//! database URL and no key-encryption key, reaches it through the API's placement routes
//! with its placement credential ([`crate::backplane_http::ApiBackplane`]), and the API
//! answers only for runs of that placement.

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;
use windlass_core::Result;
use windlass_core::placement_wire::{GrantedSecret, StepFinished, StepStarted};
use windlass_core::step_logs::LogLine;
use windlass_workflows::contracts::RunOutcome;
use windlass_workflows::deployment_contracts::{
    BeginDeployment, DeploymentStart, DropQueued, FinishDeployment,
};

#[async_trait]
pub trait RunBackplane: Send + Sync + 'static {
    async fn step_started(&self, run_id: Uuid, step: StepStarted) -> Result<()>;
    async fn step_finished(&self, run_id: Uuid, step: StepFinished) -> Result<()>;
    async fn append_step_log(&self, run_id: Uuid, step_key: &str, lines: &[LogLine]) -> Result<()>;
    /// A secret the run was granted when it started; Forbidden for any other.
    async fn run_secret(
        &self,
        run_id: Uuid,
        organization_id: Uuid,
        name: &str,
    ) -> Result<GrantedSecret>;
    async fn begin_deployment(&self, request: &BeginDeployment) -> Result<DeploymentStart>;
    async fn finish_deployment(&self, request: &FinishDeployment) -> Result<()>;
    async fn drop_queued(&self, request: &DropQueued) -> Result<()>;
    /// Idempotent: the first recorded end of a run wins.
    async fn record_outcome(&self, outcome: &RunOutcome) -> Result<()>;
}

pub type SharedBackplane = Arc<dyn RunBackplane>;

pub use crate::backplane_store::StoreBackplane;
