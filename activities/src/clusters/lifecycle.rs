//! Reading and removing what the bootstrap made: the cluster's storage (the resource
//! group with its storage account; the state bucket with every version in it).

use std::sync::Arc;

use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use windlass_workflows::cluster_contracts::{
    ClusterRequest, ClusterStorage, lifecycle_activity_names,
};

use super::ClusterWork;
use super::clouds::{Step, cloud_of};

pub struct ClusterLifecycleActivities {
    pub(super) work: Arc<ClusterWork>,
}

#[activities]
impl ClusterLifecycleActivities {
    #[activity(name = lifecycle_activity_names::LOCATE_STORAGE)]
    pub async fn locate_storage(
        self: Arc<Self>,
        ctx: ActivityContext,
        request: ClusterRequest,
    ) -> Result<Option<ClusterStorage>, ActivityError> {
        cloud_of(&self.work, &request.target)?
            .locate_storage(Step::of(&ctx), &request.cluster)
            .await
    }

    /// Removes what the bootstrap made: the resource group (Azure) or the state bucket
    /// with every version in it (AWS). `false` if it was already gone.
    #[activity(name = lifecycle_activity_names::DELETE_RESOURCE_GROUP)]
    pub async fn delete_resource_group(
        self: Arc<Self>,
        ctx: ActivityContext,
        request: ClusterRequest,
    ) -> Result<bool, ActivityError> {
        cloud_of(&self.work, &request.target)?
            .delete_storage(Step::of(&ctx), &request.cluster)
            .await
    }
}
