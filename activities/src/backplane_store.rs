//! The run backplane on the store itself: shared workers (and the API's placement routes,
//! which serve placed workers through it after checking the run is theirs).

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;
use windlass_core::keys::KeyRing;
use windlass_core::placement_wire::{GrantedSecret, StepFinished, StepStarted};
use windlass_core::runs::{Run, RunStatus, WorkflowKind};
use windlass_core::secrets::{SecretRef, resolve_sealed_for_run};
use windlass_core::step_logs::LogLine;
use windlass_core::{Error, Result, Store};
use windlass_workflows::cluster_contracts::UpgradeClusterInput;
use windlass_workflows::contracts::{OutcomeStatus, RunOutcome};
use windlass_workflows::deployment_contracts::{
    BeginDeployment, DeploymentStart, DropQueued, FinishDeployment,
};

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
    async fn apply_to_cluster(&self, run_id: Uuid) -> Result<()> {
        let Some(run) = self.store.run_by_id(run_id).await? else {
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
            Err(Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        spec.kubernetes_version = input.to_version;
        spec.node_pool_version = None;
        self.store.update_cluster_spec(&spec).await?;
        Ok(())
    }
}

#[async_trait]
impl RunBackplane for StoreBackplane {
    async fn step_started(&self, run_id: Uuid, step: StepStarted) -> Result<()> {
        self.store
            .record_step_started(
                run_id,
                &step.step_key,
                &step.activity_type,
                step.attempt,
                step.at,
            )
            .await
    }

    async fn step_finished(&self, run_id: Uuid, step: StepFinished) -> Result<()> {
        self.store
            .record_step_finished(
                run_id,
                &step.step_key,
                step.attempt,
                &step.end.into(),
                step.at,
            )
            .await
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
        self.store
            .record_run_end(
                run_id,
                status,
                outcome.output.as_ref(),
                error.as_deref(),
                "windlass-worker",
            )
            .await?;
        if status == RunStatus::Succeeded {
            self.apply_to_cluster(run_id).await?;
        }
        tracing::info!(%run_id, status = status.as_str(), "run finished");
        Ok(())
    }
}
