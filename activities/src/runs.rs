//! Activities on Windlass's own read model.

use std::sync::Arc;

use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use windlass_core::Store;
use windlass_core::audit::{ActorKind, AuditResult, NewAuditEntry};
use windlass_core::runs::{Run, RunStatus};
use windlass_workflows::contracts::{OutcomeStatus, RunOutcome, activity_names};

use crate::error::retryable_unless;

pub struct RunRecorder {
    store: Store,
}

impl RunRecorder {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[activities]
impl RunRecorder {
    /// Idempotent: the first recorded end of a run wins, a repeat changes nothing.
    #[activity(name = activity_names::RECORD_OUTCOME)]
    pub async fn record_outcome(
        self: Arc<Self>,
        _ctx: ActivityContext,
        outcome: RunOutcome,
    ) -> Result<(), ActivityError> {
        // Workflows started outside the API (benchmarks, tests) have no run to record into.
        let Some(run_id) = Run::id_from_workflow_id(&outcome.workflow_id) else {
            return Ok(());
        };
        let status = match outcome.status {
            OutcomeStatus::Succeeded => RunStatus::Succeeded,
            OutcomeStatus::Failed => RunStatus::Failed,
            OutcomeStatus::Cancelled => RunStatus::Cancelled,
        };
        let recorded = self
            .store
            .finish_run(
                run_id,
                status,
                outcome.output.as_ref(),
                outcome.error.as_deref(),
            )
            .await
            .map_err(|e| retryable_unless(!e.is_retryable(), e))?;
        // Only the call that recorded the end appends it, so a duplicate delivery of this
        // activity adds no second entry. (If that append fails, the retry finds the run
        // already finished and the entry is lost: see the issue notes.)
        if recorded {
            let run = self.store.run_by_id(run_id).await.ok().flatten();
            let entry = NewAuditEntry {
                client: Some("windlass-worker".to_owned()),
                ..NewAuditEntry::new(
                    run.as_ref().map(|r| r.organization_id),
                    "system:worker",
                    ActorKind::System,
                    "workflow.finished",
                    format!("run:{run_id}"),
                    match status {
                        RunStatus::Succeeded => AuditResult::Success,
                        _ => AuditResult::Failed,
                    },
                    serde_json::json!({
                        "status": status.as_str(),
                        "workflow": run.as_ref().map(|r| r.kind.as_str()),
                    }),
                )
            };
            self.store
                .append_audit(entry)
                .await
                .map_err(|e| retryable_unless(!e.is_retryable(), e))?;
        }
        tracing::info!(%run_id, status = status.as_str(), "run finished");
        Ok(())
    }
}
