//! Activities on Windlass's read model of clusters.

use std::sync::Arc;

use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use windlass_core::Store;
use windlass_core::clusters::ClusterSpec;
use windlass_workflows::cluster_contracts::{ClusterRef, record_activity_names};

use crate::error::retryable_unless;

pub struct ClusterRecords {
    store: Store,
}

impl ClusterRecords {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[activities]
impl ClusterRecords {
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
            Err(e) => Err(retryable_unless(!e.is_retryable(), e)),
        }
    }
}
