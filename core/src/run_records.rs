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

    /// Records a run's end and appends `workflow.finished`. Idempotent: only the call that
    /// recorded the end appends the entry (if that append fails, the retry finds the run
    /// already finished and the entry is lost: see the issue notes). Returns whether this
    /// call recorded it.
    pub async fn record_run_end(
        &self,
        run_id: Uuid,
        status: RunStatus,
        output: Option<&serde_json::Value>,
        error: Option<&str>,
        client: &str,
    ) -> Result<bool> {
        let recorded = self.finish_run(run_id, status, output, error).await?;
        if recorded {
            let run = self.run_by_id(run_id).await.ok().flatten();
            let entry = NewAuditEntry {
                client: Some(client.to_owned()),
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
            self.append_audit(entry).await?;
        }
        Ok(recorded)
    }
}
