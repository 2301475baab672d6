//! The Kubernetes versions AKS offers in a region (`locations/orchestrators/read` in the
//! seed's role covers this call).

use azure_core::http::Method;
use serde::Deserialize;

use super::http::error_from;
use super::{ArmClient, AzureError};

const CONTAINER_SERVICE_API: &str = "2025-01-01";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesVersion {
    /// `major.minor`
    pub version: String,
    pub preview: bool,
    /// Patch releases of this minor version.
    pub patches: Vec<String>,
}

#[derive(Deserialize)]
struct Listing {
    #[serde(default)]
    values: Vec<RawVersion>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawVersion {
    version: String,
    #[serde(default)]
    is_preview: bool,
    #[serde(default)]
    patch_versions: std::collections::BTreeMap<String, serde_json::Value>,
}

impl ArmClient {
    pub async fn kubernetes_versions(
        &self,
        subscription_id: &str,
        location: &str,
    ) -> Result<Vec<KubernetesVersion>, AzureError> {
        let url = self.url(
            &format!(
                "/subscriptions/{subscription_id}/providers/Microsoft.ContainerService/locations/{location}/kubernetesVersions"
            ),
            CONTAINER_SERVICE_API,
        )?;
        let reply = self.call(Method::Get, &url, None).await?;
        if !reply.is_success() {
            return Err(error_from(Method::Get, &url, &reply));
        }
        let listing: Listing = super::arm::parse(&reply)?;
        Ok(listing
            .values
            .into_iter()
            .map(|v| KubernetesVersion {
                version: v.version,
                preview: v.is_preview,
                patches: v.patch_versions.into_keys().collect(),
            })
            .collect())
    }
}
