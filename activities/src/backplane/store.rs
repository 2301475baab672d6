//! The run backplane on the store itself: shared workers (and the API's placement routes,
//! which serve placed workers through it after checking the run is theirs).

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;
use windlass_core::keys::KeyRing;
use windlass_core::placement_wire::{GrantedSecret, StepFinished, StepStarted};
use windlass_core::runs::{Run, RunStatus, WorkflowKind};
use windlass_core::secret_vault::resolve_sealed_for_run;
use windlass_core::secrets::SecretRef;
use windlass_core::step_logs::LogLine;
use windlass_core::{Error, Result, Store};
use windlass_workflows::cluster_contracts::{DeleteClusterInput, UpgradeClusterInput};
use windlass_workflows::deployment_contracts::{
    BeginDeployment, DeploymentStart, DropQueued, FinishDeployment,
};
use windlass_workflows::run_contracts::{OutcomeStatus, RunOutcome};

use crate::account_proof;
use crate::backplane::RunBackplane;

#[derive(Clone)]
pub struct StoreBackplane {
    store: Store,
    /// To open granted secrets; a backplane without keys refuses secret reads.
    keys: Option<Arc<KeyRing>>,
}

impl StoreBackplane {
    pub fn new(store: Store, keys: Option<Arc<KeyRing>>) -> Self {
        Self { store, keys }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A succeeded upgrade moves the cluster's spec to its new version (idempotent: a
    /// repeated delivery sets the same version).
    /// What a successful cluster run changes in the read model, applied while the run
    /// still holds its cluster (so a maintenance waiting for it reads the cluster as the
    /// run left it). Workflows since `CLUSTER_CHANGE_IS_ITS_OWN_STEP` apply it in a step
    /// of their own first; repeating it here changes nothing.
    async fn apply_to_cluster(&self, run: &Run) -> Result<()> {
        match run.kind {
            WorkflowKind::UpgradeCluster => {
                let Ok(input) = serde_json::from_value::<UpgradeClusterInput>(run.input.clone())
                else {
                    tracing::error!(run_id = %run.id, "an upgrade run's input is unreadable");
                    return Ok(());
                };
                self.store
                    .record_cluster_version(
                        run.organization_id,
                        input.cluster.id,
                        &input.to_version,
                    )
                    .await
            }
            WorkflowKind::DeleteCluster => {
                let Ok(input) = serde_json::from_value::<DeleteClusterInput>(run.input.clone())
                else {
                    tracing::error!(run_id = %run.id, "a delete run's input is unreadable");
                    return Ok(());
                };
                self.store
                    .mark_cluster_deleted(run.organization_id, input.cluster.id)
                    .await
            }
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl RunBackplane for StoreBackplane {
    async fn step_started(
        &self,
        run_id: Uuid,
        step: StepStarted,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        self.store.record_reported_start(run_id, &step).await
    }

    async fn step_finished(&self, run_id: Uuid, step: StepFinished) -> Result<()> {
        self.store.record_reported_end(run_id, &step).await
    }

    async fn append_step_log(&self, run_id: Uuid, step_key: &str, lines: &[LogLine]) -> Result<()> {
        self.store.append_step_log(run_id, step_key, lines).await
    }

    async fn run_secret(
        &self,
        run_id: Uuid,
        organization_id: Uuid,
        name: &str,
    ) -> Result<GrantedSecret> {
        let keys = self
            .keys
            .as_ref()
            .ok_or_else(|| Error::Forbidden("this worker holds no secret keys".into()))?;
        let (sealed, value) = resolve_sealed_for_run(
            &self.store,
            keys,
            run_id,
            &SecretRef {
                organization_id,
                name: name.to_owned(),
            },
        )
        .await?;
        Ok(GrantedSecret {
            name: name.to_owned(),
            value: value.to_string(),
            sealed_tag: format!("{}:{}", sealed.key_version, sealed.ciphertext),
        })
    }

    async fn begin_deployment(&self, request: &BeginDeployment) -> Result<DeploymentStart> {
        let (proceed, last_good) = self
            .store
            .begin_deployment_run(request.run_id, request.environment_id, request.revision)
            .await?;
        Ok(DeploymentStart { proceed, last_good })
    }

    async fn finish_deployment(&self, request: &FinishDeployment) -> Result<()> {
        self.store
            .finish_deployment(
                request.run_id,
                request.state,
                &request.releases,
                request.detail.as_deref(),
            )
            .await?;
        Ok(())
    }

    async fn drop_queued(&self, request: &DropQueued) -> Result<()> {
        self.store
            .drop_queued_run(request.run_id, request.state, &request.detail)
            .await
    }

    async fn record_outcome(&self, outcome: &RunOutcome) -> Result<()> {
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
        // What the run proves about its cloud account is settled before its end is
        // recorded (and so before `workflow.finished`), read once from the unfinished run:
        // a setup whose proof lost the race ends failed, and a retry after a failed audit
        // append finds the run unfinished and audits again, never not at all.
        let unfinished = match outcome.status {
            OutcomeStatus::Cancelled => None,
            OutcomeStatus::Succeeded | OutcomeStatus::Failed => self
                .store
                .run_by_id(run_id)
                .await?
                .filter(|run| run.finished_at.is_none()),
        };
        if let Some(run) = &unfinished {
            match outcome.status {
                OutcomeStatus::Succeeded => {
                    if let Err(reason) = account_proof::verify_account(&self.store, run).await? {
                        status = RunStatus::Failed;
                        error = Some(reason);
                    }
                }
                OutcomeStatus::Failed => {
                    account_proof::audit_refused_proof(&self.store, run, error.as_deref()).await?;
                }
                OutcomeStatus::Cancelled => {}
            }
        }
        if let Some(run) = unfinished
            .as_ref()
            .filter(|_| status == RunStatus::Succeeded)
        {
            self.apply_to_cluster(run).await?;
        }
        self.store
            .record_run_end(
                run_id,
                status,
                outcome.output.as_ref(),
                error.as_deref(),
                "windlass-worker",
            )
            .await?;
        tracing::info!(%run_id, status = status.as_str(), "run finished");
        Ok(())
    }
}
