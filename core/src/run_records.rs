//! The run bookkeeping workers write (directly, or through the API's placement routes for a
//! placed worker): one code path for both, so a placed run is recorded exactly like another.

use uuid::Uuid;

use crate::audit::{ActorKind, AuditResult, NewAuditEntry};
use crate::deployments::{DeploymentState, GoodRevision};
use crate::runs::RunStatus;
use crate::{Result, Store};

impl Store {
    /// Marks a queued deployment deploying. Whether to go on (false: it was cancelled or
    /// superseded first; a retry that finds it deploying goes on) and the environment's
    /// last good revision before this one.
    pub async fn begin_deployment_run(
        &self,
        run_id: Uuid,
        environment_id: Uuid,
        revision: u32,
    ) -> Result<(bool, Option<GoodRevision>)> {
        let started = self.start_deployment(run_id).await?;
        let deployment = self.deployment(run_id).await?;
        let proceed = started || deployment.state == DeploymentState::Deploying;
        let last_good = self.last_good_revision(environment_id, revision).await?;
        tracing::info!(%run_id, revision, proceed,
            last_good = ?last_good.as_ref().map(|g| g.revision), "deployment starting");
        Ok((proceed, last_good))
    }

    /// A request that left its environment's queue unrun: its deployment and run end.
    pub async fn drop_queued_run(
        &self,
        run_id: Uuid,
        state: DeploymentState,
        detail: &str,
    ) -> Result<()> {
        self.finish_deployment(run_id, state, &Default::default(), Some(detail))
            .await?;
        let status = match state {
            DeploymentState::Failed => RunStatus::Failed,
            _ => RunStatus::Cancelled,
        };
        self.finish_run(run_id, status, None, Some(detail)).await?;
        Ok(())
    }

    /// Records a run's end and appends `workflow.finished`, in one transaction: the end is
    /// recorded with its entry or not at all, so a worker dying between the two (or an
    /// append that fails) leaves the run unfinished for the retry, never finished without
    /// its entry. Idempotent: a repeated end (a retry, the API's repair) changes nothing
    /// and appends nothing. Returns whether this call recorded it.
    pub async fn record_run_end(
        &self,
        run_id: Uuid,
        status: RunStatus,
        output: Option<&serde_json::Value>,
        error: Option<&str>,
        client: &str,
    ) -> Result<bool> {
        let run = self.run_by_id(run_id).await?;
        let (output, error) = (output.cloned(), error.map(str::to_owned));
        let client = client.to_owned();
        let (recorded, _) = self
            .audited(
                move |conn| {
                    Box::pin(async move {
                        Self::finish_run_on(conn, run_id, status, output.as_ref(), error.as_deref())
                            .await
                    })
                },
                |recorded| {
                    recorded.then(|| NewAuditEntry {
                        client: Some(client),
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
                    })
                },
            )
            .await
            .map_err(crate::store::AuditedError::into_inner)?;
        Ok(recorded)
    }
}
