//! Activities on Windlass's own read model.

use std::sync::Arc;

use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use uuid::Uuid;
use windlass_core::Store;
use windlass_core::audit::{ActorKind, AuditResult, NewAuditEntry};
use windlass_core::runs::{Run, RunStatus, WorkflowKind};
use windlass_workflows::aws_access_contracts::AwsAccessVerifyInput;
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

/// What a succeeded run proves about a cloud account, if anything.
struct Proof {
    organization_id: Uuid,
    cloud_account_id: Uuid,
    /// Named in the `cloud_accounts.verify` audit entry.
    kind: &'static str,
    /// What succeeded, for the error of a run whose proof lost the race.
    what: &'static str,
}

impl Proof {
    /// Azure: the access setup authenticated as the customer's setup identity with the
    /// organisation's own workload-identity subject. AWS: the customer's role accepted the
    /// organisation's ExternalId and its session is in the registered account.
    fn of(run: &Run) -> Option<Self> {
        let unreadable = || {
            tracing::error!(run_id = %run.id, kind = run.kind.as_str(), "a verifying run's input is unreadable");
        };
        match run.kind {
            WorkflowKind::AzureAccessSetup => {
                let Ok(input) = serde_json::from_value::<AzureAccessSetupInput>(run.input.clone())
                else {
                    unreadable();
                    return None;
                };
                Some(Self {
                    organization_id: input.target.organization_id,
                    cloud_account_id: input.target.cloud_account_id,
                    kind: "azure_access_setup",
                    what: "the setup",
                })
            }
            WorkflowKind::AwsAccessVerify => {
                let Ok(input) = serde_json::from_value::<AwsAccessVerifyInput>(run.input.clone())
                else {
                    unreadable();
                    return None;
                };
                Some(Self {
                    organization_id: input.target.organization_id,
                    cloud_account_id: input.target.cloud_account_id,
                    kind: "aws_assume_role",
                    what: "the AssumeRole",
                })
            }
            _ => None,
        }
    }
}

impl RunRecorder {
    /// A `cloud_accounts.verify` entry: which proof, by which run, and why it failed.
    async fn audit_proof(
        &self,
        run: &Run,
        proof: &Proof,
        result: AuditResult,
        error: Option<&str>,
    ) -> Result<(), ActivityError> {
        let mut details = serde_json::json!({"run_id": run.id, "proof": proof.kind});
        if let Some(error) = error {
            details["error"] = error.into();
        }
        let entry = NewAuditEntry {
            client: Some("windlass-worker".to_owned()),
            ..NewAuditEntry::new(
                Some(run.organization_id),
                "system:worker",
                ActorKind::System,
                "cloud_accounts.verify",
                format!("cloud_account:{}", proof.cloud_account_id),
                result,
                details,
            )
        };
        self.store
            .append_audit(entry)
            .await
            .map_err(|e| retryable_unless(!e.is_retryable(), e))?;
        Ok(())
    }

    /// A succeeded verifying run (Azure access setup, AWS access verification) proves the
    /// organisation controls the account. `Err(reason)` when another organisation verified
    /// the same account first (the run then ends failed); the reason does not say which
    /// organisation.
    async fn verify_account(&self, run: &Run) -> Result<Result<(), String>, ActivityError> {
        let Some(proof) = Proof::of(run) else {
            return Ok(Ok(()));
        };
        let verified = self
            .store
            .mark_cloud_account_verified(proof.organization_id, proof.cloud_account_id)
            .await;
        let (result, refusal) = match verified {
            Ok(_) => (AuditResult::Success, None),
            Err(windlass_core::Error::Conflict(reason)) => (AuditResult::Failed, Some(reason)),
            Err(windlass_core::Error::NotFound { .. }) => return Ok(Ok(())),
            Err(e) => return Err(retryable_unless(!e.is_retryable(), e)),
        };
        self.audit_proof(run, &proof, result, refusal.as_deref())
            .await?;
        Ok(match refusal {
            None => Ok(()),
            Some(reason) => Err(format!(
                "{} succeeded but the account cannot be verified: {reason}",
                proof.what
            )),
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
            error = Some(reason);
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
            // An AWS verification exists only to prove ownership: its failure (the role
            // refused this organisation's ExternalId) is a refused proof, audited as such.
            // A proof that lost the race was audited by `verify_account` already.
            if outcome.status == OutcomeStatus::Failed
                && let Some(run) = run
                    .as_ref()
                    .filter(|r| r.kind == WorkflowKind::AwsAccessVerify)
                && let Some(proof) = Proof::of(run)
            {
                self.audit_proof(run, &proof, AuditResult::Failed, error.as_deref())
                    .await?;
            }
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
