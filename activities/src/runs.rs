//! Activities on Windlass's own read model.

use std::sync::Arc;

use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use windlass_core::Store;
use windlass_core::audit::{ActorKind, AuditResult, NewAuditEntry};
use windlass_core::runs::{Run, RunStatus, WorkflowKind};
use windlass_workflows::cluster_contracts::UpgradeClusterInput;
use windlass_workflows::contracts::{
    AzureAccessSetupInput, OutcomeStatus, RunOutcome, activity_names,
};

use crate::error::retryable_unless;

pub struct RunRecorder {
    store: Store,
}

impl RunRecorder {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// A succeeded upgrade moves the cluster's spec to its new version (idempotent: a
    /// repeated delivery sets the same version).
    async fn apply_to_cluster(&self, run_id: uuid::Uuid) -> Result<(), ActivityError> {
        let Some(run) = self
            .store
            .run_by_id(run_id)
            .await
            .map_err(|e| retryable_unless(!e.is_retryable(), e))?
        else {
            return Ok(());
        };
        if run.kind != WorkflowKind::UpgradeCluster {
            return Ok(());
        }
        let Ok(input) = serde_json::from_value::<UpgradeClusterInput>(run.input.clone()) else {
            tracing::error!(%run_id, "an upgrade run's input is unreadable");
            return Ok(());
        };
        let mut spec = match self
            .store
            .cluster(run.organization_id, input.cluster.id)
            .await
        {
            Ok(spec) => spec,
            Err(windlass_core::Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(retryable_unless(!e.is_retryable(), e)),
        };
        spec.kubernetes_version = input.to_version;
        spec.node_pool_version = None;
        self.store
            .update_cluster_spec(&spec)
            .await
            .map_err(|e| retryable_unless(!e.is_retryable(), e))?;
        Ok(())
    }
}

impl RunRecorder {
    /// A succeeded Azure access setup proves the organisation controls the account: it
    /// authenticated as the customer's setup identity with the organisation's own subject.
    /// `Err(reason)` when another organisation verified the same account first (the run
    /// then ends failed); the reason does not say which organisation.
    async fn verify_account(&self, run: &Run) -> Result<Result<(), String>, ActivityError> {
        if run.kind != WorkflowKind::AzureAccessSetup {
            return Ok(Ok(()));
        }
        let Ok(input) = serde_json::from_value::<AzureAccessSetupInput>(run.input.clone()) else {
            tracing::error!(run_id = %run.id, "a setup run's input is unreadable");
            return Ok(Ok(()));
        };
        let target = &input.target;
        let verified = self
            .store
            .mark_cloud_account_verified(target.organization_id, target.cloud_account_id)
            .await;
        let (result, refusal) = match verified {
            Ok(_) => (AuditResult::Success, None),
            Err(windlass_core::Error::Conflict(reason)) => (AuditResult::Failed, Some(reason)),
            Err(windlass_core::Error::NotFound { .. }) => return Ok(Ok(())),
            Err(e) => return Err(retryable_unless(!e.is_retryable(), e)),
        };
        let entry = NewAuditEntry {
            client: Some("windlass-worker".to_owned()),
            ..NewAuditEntry::new(
                Some(run.organization_id),
                "system:worker",
                ActorKind::System,
                "cloud_accounts.verify",
                format!("cloud_account:{}", target.cloud_account_id),
                result,
                serde_json::json!({"run_id": run.id, "proof": "azure_access_setup"}),
            )
        };
        self.store
            .append_audit(entry)
            .await
            .map_err(|e| retryable_unless(!e.is_retryable(), e))?;
        Ok(match refusal {
            None => Ok(()),
            Some(reason) => Err(reason),
        })
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
        let mut status = match outcome.status {
            OutcomeStatus::Succeeded => RunStatus::Succeeded,
            OutcomeStatus::Failed => RunStatus::Failed,
            OutcomeStatus::Cancelled => RunStatus::Cancelled,
        };
        let mut error = outcome.error.clone();
        // Before the end is recorded, so a setup whose proof lost the race ends failed.
        if status == RunStatus::Succeeded
            && let Some(run) = self
                .store
                .run_by_id(run_id)
                .await
                .map_err(|e| retryable_unless(!e.is_retryable(), e))?
            && run.finished_at.is_none()
            && let Err(reason) = self.verify_account(&run).await?
        {
            status = RunStatus::Failed;
            error = Some(format!(
                "the setup succeeded but the account cannot be verified: {reason}"
            ));
        }
        let recorded = self
            .store
            .finish_run(run_id, status, outcome.output.as_ref(), error.as_deref())
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
        if status == RunStatus::Succeeded {
            self.apply_to_cluster(run_id).await?;
        }
        tracing::info!(%run_id, status = status.as_str(), "run finished");
        Ok(())
    }
}
