//! The cluster's storage account: made before terraform (it holds terraform's state),
//! reached through short-lived SAS tokens ARM issues.

use chrono::Utc;
use std::sync::Arc;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

use windlass_core::blueprint::{AwsNames, AzureNames};
use windlass_workflows::cluster_contracts::{
    CloudTarget, ClusterRequest, ClusterStorage, KubeconfigRef, PublishKubeconfig, StorageLocation,
};

use super::ClusterWork;
use crate::aws::s3::{S3Objects, ensure_state_bucket};
use crate::azure::BlobContainer;
use crate::error::{FailureCode, failure, retryable, terminal};
use crate::heartbeat::heartbeating;
use crate::object_store::ObjectStore;
use crate::terraform::RemoteState;

/// The state blob's name, as the blueprint's `azurerm` backend names it.
pub(crate) const STATE_BLOB: &str = "cluster.tfstate";
const KUBECONFIG_BLOB: &str = "kubeconfig";

pub(super) async fn bootstrap(
    work: &ClusterWork,
    ctx: &ActivityContext,
    request: &ClusterRequest,
) -> Result<ClusterStorage, ActivityError> {
    request
        .cluster
        .validate()
        .map_err(|e| terminal(e, FailureCode::InvalidInput))?;
    let tags = request.cluster.resource_tags();
    let storage = match &request.target {
        CloudTarget::Azure(target) => {
            let names = AzureNames::new(&request.cluster);
            let arm = &work.azure.platform_clients(target)?.arm;
            let sub = &target.subscription_id;
            heartbeating(
                ctx,
                arm.put_resource_group(sub, &names.resource_group, &request.cluster.region, &tags),
            )
            .await?
            .map_err(work.azure.failure(ctx))?;
            let account = heartbeating(
                ctx,
                arm.put_storage_account(
                    sub,
                    &names.resource_group,
                    &names.storage_account,
                    &request.cluster.region,
                    &tags,
                ),
            )
            .await?
            .map_err(work.azure.failure(ctx))?;
            ClusterStorage {
                location: StorageLocation::AzureBlob {
                    resource_group: names.resource_group.clone(),
                    storage_account: names.storage_account.clone(),
                    blob_endpoint: account.blob_endpoint,
                },
                state_container: names.state_container.clone(),
                kubeconfigs_container: names.kubeconfigs_container.clone(),
            }
        }
        CloudTarget::Aws(target) => {
            let names = AwsNames::new(&request.cluster);
            let s3 = work.aws()?.s3(target, &request.cluster.region).await?;
            heartbeating(
                ctx,
                ensure_state_bucket(&s3, &names.state_bucket, &request.cluster.region, &tags),
            )
            .await?
            .map_err(failure)?;
            ClusterStorage {
                location: StorageLocation::S3 {
                    bucket: names.state_bucket.clone(),
                    region: request.cluster.region.clone(),
                },
                // The blueprint's S3 backend keeps `cluster.tfstate` at the bucket root.
                state_container: String::new(),
                kubeconfigs_container: "kubeconfigs".to_owned(),
            }
        }
    };
    let state = container(work, &request.target, &storage, &storage.state_container).await?;
    heartbeating(ctx, state.ensure_exists())
        .await?
        .map_err(failure)?;
    tracing::info!(cluster = %request.cluster.id, storage = %state.describe(), "cluster storage ready");
    Ok(storage)
}

/// The cluster's kubeconfig, read from its storage at the last moment. It holds the
/// cluster's credentials: callers keep it in memory and mask it in their logs.
pub(crate) async fn read_kubeconfig(
    work: &ClusterWork,
    ctx: &ActivityContext,
    target: &CloudTarget,
    storage: &ClusterStorage,
    kubeconfig: &KubeconfigRef,
) -> Result<String, ActivityError> {
    let kubeconfigs = container(work, target, storage, &kubeconfig.container).await?;
    let blob = heartbeating(ctx, kubeconfigs.get(&kubeconfig.blob))
        .await?
        .map_err(failure)?
        .ok_or_else(|| {
            retryable(
                std::io::Error::new(std::io::ErrorKind::NotFound, "kubeconfig not published yet"),
                FailureCode::NoKubeconfig,
                None,
            )
        })?;
    let text = String::from_utf8_lossy(&blob.content).into_owned();
    match target {
        // An EKS kubeconfig runs `aws eks get-token` as whoever uses it: the worker signs
        // the token itself, as the organisation's role.
        CloudTarget::Aws(aws) => {
            let clients = work.aws.as_ref().ok_or_else(|| {
                terminal(
                    missing("this worker has no AWS access configured"),
                    FailureCode::NoAwsConfiguration,
                )
            })?;
            let text = zeroize::Zeroizing::new(text);
            Ok(clients
                .kubeconfig_with_tokens(aws, &text)
                .await?
                .to_string())
        }
        CloudTarget::Azure(_) => Ok(text),
    }
}

/// Where provisioning publishes a cluster's kubeconfig in its storage.
pub(crate) fn kubeconfig_ref(storage: &ClusterStorage) -> KubeconfigRef {
    KubeconfigRef {
        container: storage.kubeconfigs_container.clone(),
        blob: KUBECONFIG_BLOB.to_owned(),
    }
}

/// A container (Azure: with a SAS valid for an hour) or key prefix (AWS: with assumed-role
/// credentials) of the cluster's storage.
pub(crate) async fn container(
    work: &ClusterWork,
    target: &CloudTarget,
    storage: &ClusterStorage,
    name: &str,
) -> Result<Arc<dyn ObjectStore>, ActivityError> {
    let mut one = containers(work, target, storage, &[name]).await?;
    Ok(one.remove(0))
}

/// Several containers of the cluster's storage on one grant of access (one SAS from ARM,
/// one set of assumed-role credentials), in the order of `names`.
async fn containers(
    work: &ClusterWork,
    target: &CloudTarget,
    storage: &ClusterStorage,
    names: &[&str],
) -> Result<Vec<Arc<dyn ObjectStore>>, ActivityError> {
    match (target, &storage.location) {
        (
            CloudTarget::Azure(target),
            StorageLocation::AzureBlob {
                resource_group,
                storage_account,
                blob_endpoint,
            },
        ) => {
            let arm = &work.azure.platform_clients(target)?.arm;
            let sas = arm
                .blob_account_sas(
                    &target.subscription_id,
                    resource_group,
                    storage_account,
                    Utc::now() + chrono::Duration::hours(1),
                )
                .await
                .map_err(failure)?;
            names
                .iter()
                .map(|name| {
                    let container =
                        BlobContainer::with_sas(blob_endpoint, name, &sas).map_err(failure)?;
                    Ok(Arc::new(container) as Arc<dyn ObjectStore>)
                })
                .collect()
        }
        (CloudTarget::Aws(target), StorageLocation::S3 { bucket, region }) => {
            let s3 = work.aws()?.s3(target, region).await?;
            Ok(names
                .iter()
                .map(|name| {
                    Arc::new(S3Objects::new(
                        s3.clone(),
                        bucket.clone(),
                        (*name).to_owned(),
                    )) as Arc<dyn ObjectStore>
                })
                .collect())
        }
        _ => Err(terminal(
            missing("the cluster's storage is in another cloud than its account"),
            FailureCode::InvalidInput,
        )),
    }
}

pub(crate) async fn remote_state(
    work: &ClusterWork,
    target: &CloudTarget,
    storage: &ClusterStorage,
) -> Result<RemoteState, ActivityError> {
    let state = container(work, target, storage, &storage.state_container).await?;
    Ok(RemoteState::new(state, STATE_BLOB))
}

pub(super) async fn publish_kubeconfig(
    work: &ClusterWork,
    ctx: &ActivityContext,
    request: &PublishKubeconfig,
) -> Result<KubeconfigRef, ActivityError> {
    let storage = &request.storage;
    let [state_container, container]: [Arc<dyn ObjectStore>; 2] = containers(
        work,
        &request.target,
        storage,
        &[&storage.state_container, &storage.kubeconfigs_container],
    )
    .await?
    .try_into()
    .unwrap_or_else(|_| unreachable!("one store per name"));
    let remote = RemoteState::new(state_container, STATE_BLOB);
    let state = heartbeating(ctx, remote.read())
        .await?
        .map_err(|e| retryable(e, FailureCode::StateUnreadable, None))?
        .ok_or_else(|| {
            terminal(
                missing("the cluster has no terraform state yet"),
                FailureCode::NoState,
            )
        })?;
    let state: serde_json::Value =
        serde_json::from_slice(&state).map_err(|e| terminal(e, FailureCode::StateUnreadable))?;
    let kubeconfig = state["outputs"]["kube_config_raw"]["value"]
        .as_str()
        .ok_or_else(|| {
            terminal(
                missing("terraform state has no kube_config_raw output"),
                FailureCode::NoKubeconfig,
            )
        })?
        .to_owned();
    let kubeconfig = zeroize::Zeroizing::new(kubeconfig);
    heartbeating(ctx, async {
        container.ensure_exists().await?;
        container
            .put(KUBECONFIG_BLOB, kubeconfig.as_bytes().to_vec())
            .await
    })
    .await?
    .map_err(failure)?;
    tracing::info!(cluster = %request.cluster.id, storage = %container.describe(), "kubeconfig stored");
    Ok(KubeconfigRef {
        container: request.storage.kubeconfigs_container.clone(),
        blob: KUBECONFIG_BLOB.to_owned(),
    })
}

fn missing(message: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotFound, message.to_owned())
}
