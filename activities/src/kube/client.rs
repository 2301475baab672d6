use kube::config::{KubeConfigOptions, Kubeconfig};

use super::KubeError;

/// A client for the cluster a kubeconfig (read from the cluster's storage) describes. The
/// text is parsed in memory: it never touches the worker's disk.
pub async fn client_from_kubeconfig(text: &str) -> Result<kube::Client, KubeError> {
    let kubeconfig =
        Kubeconfig::from_yaml(text).map_err(|e| KubeError::Kubeconfig(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| KubeError::Kubeconfig(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| KubeError::Kubeconfig(e.to_string()))
}
