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
        let run = self.store.run_by_id(run_id).await.ok().flatten();
        let entry = NewAuditEntry {
            organization_id: run.as_ref().map(|r| r.organization_id),
            actor: "system:worker".to_owned(),
            actor_kind: ActorKind::System,
            action: "workflow.finished".to_owned(),
            resource: format!("run:{run_id}"),
            cluster_id: None,
            project_id: None,
            environment: None,
            service: None,
            client: Some("windlass-worker".to_owned()),
            ip: None,
            result: match status {
                RunStatus::Succeeded => AuditResult::Success,
                _ => AuditResult::Failed,
            },
            details: serde_json::json!({
                "status": status.as_str(),
                "workflow": run.as_ref().map(|r| r.kind.as_str()),
            }),
        };
        // A retried activity appends again only if the first append failed.
        if recorded {
            self.store
                .append_audit(entry)
                .await
                .map_err(|e| retryable_unless(!e.is_retryable(), e))?;
        }
        tracing::info!(%run_id, status = status.as_str(), "run finished");
        Ok(())
    }
}
