//! Reading and removing what the bootstrap made: the cluster's resource group and storage.

use std::sync::Arc;

use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use windlass_core::blueprint::{AwsNames, AzureNames};
use windlass_workflows::cluster_contracts::{
    CloudTarget, ClusterRequest, ClusterStorage, StorageLocation, lifecycle_activity_names,
};

use super::ClusterWork;
use crate::aws::s3::delete_bucket_with_contents;
use crate::error::{FailureCode, failure};
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
        match &request.target {
            CloudTarget::Azure(target) => {
                let names = AzureNames::new(&request.cluster);
                let arm = &self.work.azure.platform_clients(target)?.arm;
                let account = heartbeating(
                    &ctx,
                    arm.get_storage_account(
                        &target.subscription_id,
                        &names.resource_group,
                        &names.storage_account,
                    ),
                )
                .await?
                .map_err(self.work.azure.failure(&ctx))?;
                Ok(account.map(|account| ClusterStorage {
                    location: StorageLocation::AzureBlob {
                        resource_group: names.resource_group.clone(),
                        storage_account: names.storage_account.clone(),
                        blob_endpoint: account.blob_endpoint,
                    },
                    state_container: names.state_container.clone(),
                    kubeconfigs_container: names.kubeconfigs_container.clone(),
                }))
            }
            CloudTarget::Aws(target) => {
                let names = AwsNames::new(&request.cluster);
                let region = &request.cluster.region;
                let s3 = self.work.aws()?.s3(target, region).await?;
                let exists = heartbeating(&ctx, bucket_exists(&s3, &names.state_bucket)).await??;
                Ok(exists.then(|| ClusterStorage {
                    location: StorageLocation::S3 {
                        bucket: names.state_bucket.clone(),
                        region: region.clone(),
                    },
                    state_container: String::new(),
                    kubeconfigs_container: "kubeconfigs".to_owned(),
                }))
            }
        }
    }

    /// Removes what the bootstrap made: the resource group (Azure) or the state bucket
    /// with every version in it (AWS). `false` if it was already gone.
    #[activity(name = lifecycle_activity_names::DELETE_RESOURCE_GROUP)]
    pub async fn delete_resource_group(
        self: Arc<Self>,
        ctx: ActivityContext,
        request: ClusterRequest,
    ) -> Result<bool, ActivityError> {
        match &request.target {
            CloudTarget::Azure(target) => {
                let names = AzureNames::new(&request.cluster);
                let arm = &self.work.azure.platform_clients(target)?.arm;
                let sub = &target.subscription_id;
                let existed =
                    heartbeating(&ctx, arm.get_resource_group(sub, &names.resource_group))
                        .await?
                        .map_err(self.work.azure.failure(&ctx))?
                        .is_some();
                heartbeating(&ctx, arm.delete_resource_group(sub, &names.resource_group))
                    .await?
                    .map_err(self.work.azure.failure(&ctx))?;
                tracing::info!(cluster = %request.cluster.id, resource_group = %names.resource_group, existed, "resource group deleted");
                Ok(existed)
            }
            CloudTarget::Aws(target) => {
                let names = AwsNames::new(&request.cluster);
                let s3 = self.work.aws()?.s3(target, &request.cluster.region).await?;
                let existed =
                    heartbeating(&ctx, delete_bucket_with_contents(&s3, &names.state_bucket))
                        .await?
                        .map_err(failure)?;
                tracing::info!(cluster = %request.cluster.id, bucket = %names.state_bucket, existed, "state bucket deleted");
                Ok(existed)
            }
        }
    }
}

async fn bucket_exists(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<bool, ActivityError> {
    match s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(true),
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(false),
        Err(e) => Err(crate::error::retryable(
            std::io::Error::other(format!(
                "HeadBucket {bucket}: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )),
            FailureCode::AwsUnavailable,
            None,
        )),
    }
}
