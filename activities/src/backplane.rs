//! The run backplane: what activities need from Windlass's store while they run a step
//! (the step journal, the step log, a run's granted secrets, the deployment records and
//! the run's outcome), behind one trait so activities do not care where it lives. Shared
//! workers reach the store directly ([`StoreBackplane`]); a placed worker, which holds no
//! database URL and no key-encryption key, reaches it through the API's placement routes
//! with its placement credential ([`crate::backplane_http::ApiBackplane`]), and the API
//! answers only for runs of that placement.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;
use windlass_core::Result;
use windlass_core::placement_wire::{GrantedSecret, StepFinished, StepStarted};
use windlass_core::step_logs::LogLine;
use windlass_workflows::deployment_contracts::{
    BeginDeployment, DeploymentStart, DropQueued, FinishDeployment,
};
use windlass_workflows::run_contracts::RunOutcome;

#[async_trait]
pub trait RunBackplane: Send + Sync + 'static {
    /// Journals an attempt's start; returns when the step's first attempt started, as the
    /// journal holds it (`None` when it holds none, or from an API older than that answer).
    async fn step_started(
        &self,
        run_id: Uuid,
        step: StepStarted,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>>;
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

/// How long a write of the read model that no result depends on (a step's log lines, its
/// journal entries) is tried again through a database restart before it is given up: as
/// long as a restart takes, and well within a step's heartbeat timeout (10 s), since the
/// attempt does not heartbeat while its start or end is being journalled.
pub const PROJECTION_RETRY_LIMIT: Duration = Duration::from_secs(5);

/// Calls `write` again, with backoff, while it fails with an error a retry can get past
/// (a session ended by a restarting database, an API that cannot reach it), for up to
/// `limit`; then returns its last result. The writes it is used for are idempotent.
pub async fn retrying<T, F, Fut>(limit: Duration, mut write: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    // Tokio's clock, so tests can pause it.
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        match write().await {
            Err(error) if error.is_retryable() && started.elapsed() + delay < limit => {
                tracing::debug!(%error, ?delay, "read model write failed; trying again");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            result => return result,
        }
    }
}

mod store;
pub use store::StoreBackplane;

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use windlass_core::Error;

    use super::*;

    #[tokio::test]
    async fn a_write_is_tried_again_through_a_restart_but_never_when_it_is_wrong() {
        let calls = AtomicU32::new(0);
        let written = retrying(PROJECTION_RETRY_LIMIT, || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(Error::BackplaneUnavailable("restarting".into())),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(written.unwrap(), 2);

        let calls = AtomicU32::new(0);
        let refused: Result<()> = retrying(PROJECTION_RETRY_LIMIT, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Error::InvalidInput("wrong".into()))
        })
        .await;
        assert!(refused.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_is_given_up_within_the_limit() {
        let started = tokio::time::Instant::now();
        let given_up: Result<()> = retrying(PROJECTION_RETRY_LIMIT, || async {
            Err(Error::BackplaneUnavailable("down".into()))
        })
        .await;
        assert!(given_up.is_err());
        assert!(started.elapsed() <= PROJECTION_RETRY_LIMIT);
    }
}
