//! Reading and removing what the bootstrap made: the cluster's resource group and storage.

use std::sync::Arc;

use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use windlass_core::blueprint::AzureNames;
use windlass_workflows::cluster_contracts::{
    ClusterRequest, ClusterStorage, lifecycle_activity_names,
};

use super::ClusterWork;
use crate::azure_access::azure_failure;
use crate::heartbeat::heartbeating;

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
        let names = AzureNames::new(&request.cluster);
        let arm = &self.work.azure.clients(&request.target)?.arm;
        let account = heartbeating(
            &ctx,
            arm.get_storage_account(
                &request.target.subscription_id,
                &names.resource_group,
                &names.storage_account,
            ),
        )
        .await?
        .map_err(azure_failure)?;
        Ok(account.map(|account| ClusterStorage {
            resource_group: names.resource_group.clone(),
            storage_account: names.storage_account.clone(),
            blob_endpoint: account.blob_endpoint,
            state_container: names.state_container.clone(),
            kubeconfigs_container: names.kubeconfigs_container.clone(),
        }))
    }

    #[activity(name = lifecycle_activity_names::DELETE_RESOURCE_GROUP)]
    pub async fn delete_resource_group(
        self: Arc<Self>,
        ctx: ActivityContext,
        request: ClusterRequest,
    ) -> Result<bool, ActivityError> {
        let names = AzureNames::new(&request.cluster);
        let arm = &self.work.azure.clients(&request.target)?.arm;
        let sub = &request.target.subscription_id;
        let existed = heartbeating(&ctx, arm.get_resource_group(sub, &names.resource_group))
            .await?
            .map_err(azure_failure)?
            .is_some();
        heartbeating(&ctx, arm.delete_resource_group(sub, &names.resource_group))
            .await?
            .map_err(azure_failure)?;
        tracing::info!(cluster = %request.cluster.id, resource_group = %names.resource_group, existed, "resource group deleted");
        Ok(existed)
    }
}
