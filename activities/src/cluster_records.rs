//! Activities on Windlass's read model of clusters.

use std::sync::Arc;

use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use windlass_core::Store;
use windlass_core::clusters::ClusterSpec;
use windlass_core::runs::RunStatus;
use windlass_workflows::cluster_contracts::{
    ClusterChange, ClusterRef, HeldCluster, HoldCluster, ReleaseCluster, record_activity_names,
};
use windlass_workflows::run_contracts::OutcomeStatus;

use crate::error::{FailureCode, failure, retryable};

/// How often a maintenance waiting for its cluster asks again: a provisioning or an
/// upgrade takes minutes, so asking every few seconds only fills the history of attempts.
const BUSY_RETRY: std::time::Duration = std::time::Duration::from_secs(15);

pub struct ClusterRecordActivities {
    store: Store,
}

impl ClusterRecordActivities {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[activities]
impl ClusterRecordActivities {
    #[activity(name = record_activity_names::CURRENT_SPEC)]
    pub async fn current_spec(
        self: Arc<Self>,
        _ctx: ActivityContext,
        cluster: ClusterRef,
    ) -> Result<Option<ClusterSpec>, ActivityError> {
        match self
            .store
            .cluster(cluster.organization_id, cluster.cluster_id)
            .await
        {
            Ok(spec) => Ok(Some(spec)),
            Err(windlass_core::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(failure(e)),
        }
    }

    #[activity(name = record_activity_names::HOLD_CLUSTER)]
    pub async fn hold_for_maintenance(
        self: Arc<Self>,
        _ctx: ActivityContext,
        request: HoldCluster,
    ) -> Result<Option<HeldCluster>, ActivityError> {
        let held = self
            .store
            .hold_cluster_for_maintenance(
                request.cluster.organization_id,
                request.cluster.cluster_id,
                &request.workflow_id,
                request.hold,
            )
            .await;
        match held {
            Ok(held) => Ok(held.map(|held| HeldCluster {
                run_id: held.run.id,
                cluster: held.cluster,
            })),
            // Another run has the cluster: wait for it (this is what serializes them).
            Err(windlass_core::Error::Conflict(busy)) => {
                tracing::info!(
                    cluster_id = %request.cluster.cluster_id,
                    workflow_id = %request.workflow_id,
                    %busy,
                    "maintenance waits for its cluster"
                );
                Err(retryable(busy, FailureCode::ClusterBusy, Some(BUSY_RETRY)))
            }
            Err(e) => Err(failure(e)),
        }
    }

    #[activity(name = record_activity_names::RELEASE_CLUSTER)]
    pub async fn release_from_maintenance(
        self: Arc<Self>,
        _ctx: ActivityContext,
        release: ReleaseCluster,
    ) -> Result<(), ActivityError> {
        let status = match release.status {
            OutcomeStatus::Succeeded => RunStatus::Succeeded,
            OutcomeStatus::Failed => RunStatus::Failed,
            OutcomeStatus::Cancelled => RunStatus::Cancelled,
        };
        // The first end wins: a hold a delete took back keeps its "cancelled".
        self.store
            .finish_run(release.run_id, status, None, release.error.as_deref())
            .await
            .map(|_| ())
            .map_err(failure)
    }

    #[activity(name = record_activity_names::RECORD_CHANGE)]
    pub async fn record_change(
        self: Arc<Self>,
        _ctx: ActivityContext,
        change: ClusterChange,
    ) -> Result<(), ActivityError> {
        let recorded = match &change {
            ClusterChange::Upgraded {
                cluster,
                kubernetes_version,
            } => {
                self.store
                    .record_cluster_version(
                        cluster.organization_id,
                        cluster.cluster_id,
                        kubernetes_version,
                    )
                    .await
            }
            ClusterChange::Deleted { cluster } => {
                self.store
                    .mark_cluster_deleted(cluster.organization_id, cluster.cluster_id)
                    .await
            }
        };
        recorded.map_err(failure)
    }
}
