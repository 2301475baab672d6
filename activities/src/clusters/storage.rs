//! The cluster's storage account: made before terraform (it holds terraform's state),
//! reached through short-lived SAS tokens ARM issues.

use std::collections::BTreeMap;

use chrono::Utc;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use windlass_core::blueprint::AzureNames;
use windlass_core::clusters::ClusterSpec;
use windlass_workflows::cluster_contracts::{
    ClusterRequest, ClusterStorage, KubeconfigRef, PublishKubeconfig,
};
use windlass_workflows::contracts::AzureTarget;

use super::ClusterWork;
use crate::azure::BlobContainer;
use crate::azure_access::azure_failure;
use crate::error::{retryable, terminal};
use crate::heartbeat::heartbeating;
use crate::terraform::RemoteState;

/// The state blob's name, as the blueprint's `azurerm` backend names it.
pub(crate) const STATE_BLOB: &str = "cluster.tfstate";
const KUBECONFIG_BLOB: &str = "kubeconfig";

/// The seed's resource group tags.
pub(crate) fn cluster_tags(cluster: &ClusterSpec) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cluster_id".to_owned(), cluster.id.to_string()),
        (
            "organization_id".to_owned(),
            cluster.organization_id.to_string(),
        ),
        ("region".to_owned(), cluster.region.clone()),
        (
            "creation_date".to_owned(),
            cluster.created_at.format("%Y-%m-%d").to_string(),
        ),
    ])
}

pub(super) async fn bootstrap(
    work: &ClusterWork,
    ctx: &ActivityContext,
    request: &ClusterRequest,
) -> Result<ClusterStorage, ActivityError> {
    request
        .cluster
        .validate()
        .map_err(|e| terminal(e, "InvalidInput"))?;
    let names = AzureNames::new(&request.cluster);
    let arm = &work.azure.clients(&request.target)?.arm;
    let sub = &request.target.subscription_id;
    let tags = cluster_tags(&request.cluster);
    heartbeating(
        ctx,
        arm.put_resource_group(sub, &names.resource_group, &request.cluster.region, &tags),
    )
    .await?
    .map_err(azure_failure)?;
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
    .map_err(azure_failure)?;
    let storage = ClusterStorage {
        resource_group: names.resource_group.clone(),
        storage_account: names.storage_account.clone(),
        blob_endpoint: account.blob_endpoint,
        state_container: names.state_container.clone(),
        kubeconfigs_container: names.kubeconfigs_container.clone(),
    };
    let state = container(work, &request.target, &storage, &storage.state_container).await?;
    heartbeating(ctx, state.ensure_exists())
        .await?
        .map_err(azure_failure)?;
    tracing::info!(cluster = %request.cluster.id, storage_account = %storage.storage_account, "cluster storage ready");
    Ok(storage)
}

/// A container of the cluster's storage account, with a SAS valid for an hour.
pub(crate) async fn container(
    work: &ClusterWork,
    target: &AzureTarget,
    storage: &ClusterStorage,
    name: &str,
) -> Result<BlobContainer, ActivityError> {
    let arm = &work.azure.clients(target)?.arm;
    let sas = arm
        .blob_account_sas(
            &target.subscription_id,
            &storage.resource_group,
            &storage.storage_account,
            Utc::now() + chrono::Duration::hours(1),
        )
        .await
        .map_err(azure_failure)?;
    BlobContainer::with_sas(&storage.blob_endpoint, name, &sas).map_err(azure_failure)
}

pub(crate) async fn remote_state(
    work: &ClusterWork,
    target: &AzureTarget,
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
    let remote = remote_state(work, &request.target, &request.storage).await?;
    let state = heartbeating(ctx, remote.read())
        .await?
        .map_err(|e| retryable(e, "StateUnreadable", None))?
        .ok_or_else(|| terminal(missing("the cluster has no terraform state yet"), "NoState"))?;
    let state: serde_json::Value =
        serde_json::from_slice(&state).map_err(|e| terminal(e, "StateUnreadable"))?;
    let kubeconfig = state["outputs"]["kube_config_raw"]["value"]
        .as_str()
        .ok_or_else(|| {
            terminal(
                missing("terraform state has no kube_config_raw output"),
                "NoKubeconfig",
            )
        })?
        .to_owned();
    let kubeconfig = zeroize::Zeroizing::new(kubeconfig);
    let container = container(
        work,
        &request.target,
        &request.storage,
        &request.storage.kubeconfigs_container,
    )
    .await?;
    heartbeating(ctx, async {
        container.ensure_exists().await?;
        container
            .put(KUBECONFIG_BLOB, kubeconfig.as_bytes().to_vec())
            .await
    })
    .await?
    .map_err(azure_failure)?;
    tracing::info!(cluster = %request.cluster.id, container = %container.name(), "kubeconfig stored");
    Ok(KubeconfigRef {
        container: request.storage.kubeconfigs_container.clone(),
        blob: KUBECONFIG_BLOB.to_owned(),
    })
}

fn missing(message: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotFound, message.to_owned())
}
