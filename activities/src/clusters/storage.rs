//! The cluster's storage: made before terraform (it holds terraform's state), opened on
//! short-lived grants of access from the cluster's cloud (`clouds::ClusterCloud`).

use std::sync::Arc;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

use windlass_workflows::cluster_contracts::{
    CloudTarget, ClusterRequest, ClusterStorage, KubeconfigRef, PublishKubeconfig,
};

use super::ClusterWork;
use super::clouds::{ClusterCloud, Step, cloud_of, missing};
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
    let cloud = cloud_of(work, &request.target)?;
    let storage = cloud
        .bootstrap_storage(Step::of(ctx), &request.cluster)
        .await?;
    let state = open_one(cloud.as_ref(), &storage, &storage.state_container).await?;
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
    let cloud = cloud_of(work, target)?;
    let kubeconfigs = open_one(cloud.as_ref(), storage, &kubeconfig.container).await?;
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
    cloud.kubeconfig_for_use(text).await
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
    open_one(cloud_of(work, target)?.as_ref(), storage, name).await
}

async fn open_one(
    cloud: &dyn ClusterCloud,
    storage: &ClusterStorage,
    name: &str,
) -> Result<Arc<dyn ObjectStore>, ActivityError> {
    let mut one = cloud.containers(storage, &[name]).await?;
    Ok(one.remove(0))
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
    let [state_container, container]: [Arc<dyn ObjectStore>; 2] = cloud_of(work, &request.target)?
        .containers(
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
