//! A maintenance holds its cluster the way every other cluster operation does: as the
//! cluster target's one unfinished run. So a maintenance firing during a provisioning,
//! an upgrade or a delete waits for it, and none of those can start while maintenance
//! works (they answer 409, naming the maintenance run).

use uuid::Uuid;

use super::Store;
use crate::clusters::ClusterSpec;
use crate::runs::{InsertedRun, NewRun, Run, RunStatus, WorkflowKind};
use crate::{Error, Result};

/// The cluster as it is once held: maintenance works on this spec, not the schedule's.
#[derive(Debug, Clone)]
pub struct MaintenanceHold {
    pub run: Run,
    pub cluster: ClusterSpec,
}

pub fn cluster_target(cluster_id: Uuid) -> String {
    format!("cluster:{cluster_id}")
}

impl Store {
    /// Takes the cluster for the `hold`-th stretch of work of maintenance `workflow_id`.
    /// Repeating the call (a retried activity) returns the same hold.
    ///
    /// `Ok(None)`: the cluster is gone, there is nothing to maintain. A cluster busy with
    /// another run is [`Error::Conflict`]; so is a hold that was taken back (a delete
    /// preempted it), which the caller must not work under.
    pub async fn hold_cluster_for_maintenance(
        &self,
        organization_id: Uuid,
        cluster_id: Uuid,
        workflow_id: &str,
        hold: u32,
    ) -> Result<Option<MaintenanceHold>> {
        match self.cluster(organization_id, cluster_id).await {
            Ok(_) => {}
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
        let new = NewRun {
            organization_id,
            kind: WorkflowKind::ClusterMaintenance,
            target: cluster_target(cluster_id),
            idempotency_key: Some(format!("maintenance-hold:{workflow_id}:{hold}")),
            request_fingerprint: "maintenance-hold".to_owned(),
            input: serde_json::json!({
                "maintenance_workflow_id": workflow_id,
                "hold": hold,
            }),
        };
        let run = match self
            .insert_run_as(new, |_| {
                Run::maintenance_hold_workflow_id(workflow_id, hold)
            })
            .await?
        {
            InsertedRun::Created(run) => self.mark_run_started(run.id, "").await?,
            InsertedRun::Existing(run) if run.status.is_finished() => {
                return Err(Error::Conflict(format!(
                    "maintenance hold {} on cluster {cluster_id} was taken back ({})",
                    run.id,
                    run.status.as_str()
                )));
            }
            InsertedRun::Existing(run) => run,
        };
        // Read under the hold: a delete that finished just before it removed the cluster.
        match self.cluster(organization_id, cluster_id).await {
            Ok(cluster) => Ok(Some(MaintenanceHold { run, cluster })),
            Err(Error::NotFound { .. }) => {
                let output = serde_json::json!({"cluster_deleted": true});
                self.finish_run(run.id, RunStatus::Succeeded, Some(&output), None)
                    .await?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}
