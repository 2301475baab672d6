//! Storage accounts through ARM: the cluster's own account holds its terraform state,
//! kubeconfig, logs and metrics. Data-plane access uses short-lived account SAS tokens
//! that ARM issues (`listAccountSas`, one of the seed's granted actions).

use std::collections::BTreeMap;

use azure_core::http::Method;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use zeroize::Zeroizing;

use super::http::error_from;
use super::{ArmClient, AzureError, lro};

const STORAGE_API: &str = "2023-05-01";

/// What Windlass needs to know of a storage account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageAccount {
    pub id: String,
    pub blob_endpoint: String,
    pub provisioning_state: String,
}

#[derive(Deserialize)]
struct RawAccount {
    id: String,
    properties: RawProperties,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProperties {
    #[serde(default)]
    provisioning_state: String,
    primary_endpoints: Option<RawEndpoints>,
}

#[derive(Deserialize)]
struct RawEndpoints {
    blob: Option<String>,
}

impl From<RawAccount> for StorageAccount {
    fn from(raw: RawAccount) -> Self {
        Self {
            id: raw.id,
            blob_endpoint: raw
                .properties
                .primary_endpoints
                .and_then(|e| e.blob)
                .unwrap_or_default(),
            provisioning_state: raw.properties.provisioning_state,
        }
    }
}

impl ArmClient {
    fn storage_account_path(subscription_id: &str, resource_group: &str, name: &str) -> String {
        format!(
            "/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/Microsoft.Storage/storageAccounts/{name}"
        )
    }

    /// Creates (or converges) a zone-redundant StorageV2 account and waits for the
    /// creation's long-running operation.
    pub async fn put_storage_account(
        &self,
        subscription_id: &str,
        resource_group: &str,
        name: &str,
        location: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<StorageAccount, AzureError> {
        let path = Self::storage_account_path(subscription_id, resource_group, name);
        let url = self.url(&path, STORAGE_API)?;
        let body = json!({
            "location": location,
            "kind": "StorageV2",
            "sku": {"name": "Standard_ZRS"},
            "tags": tags,
            "properties": {
                "minimumTlsVersion": "TLS1_2",
                "allowBlobPublicAccess": false,
                "supportsHttpsTrafficOnly": true,
            },
        });
        let reply = self.call(Method::Put, &url, Some(&body)).await?;
        if !reply.is_success() {
            return Err(error_from(Method::Put, &url, &reply));
        }
        lro::follow(&self.http, &self.base, Method::Put, &url, reply, &self.lro).await?;
        self.get_storage_account(subscription_id, resource_group, name)
            .await?
            .ok_or_else(|| AzureError::InvalidResponse {
                message: format!("storage account {name} missing after its creation succeeded"),
            })
    }

    pub async fn get_storage_account(
        &self,
        subscription_id: &str,
        resource_group: &str,
        name: &str,
    ) -> Result<Option<StorageAccount>, AzureError> {
        let path = Self::storage_account_path(subscription_id, resource_group, name);
        let url = self.url(&path, STORAGE_API)?;
        Ok(self
            .get_optional::<RawAccount>(&url)
            .await?
            .map(StorageAccount::from))
    }

    /// An account SAS for the Blob service (`rwdlac` on service, container and object),
    /// valid until `expiry`. The token is a credential: keep it out of logs and history.
    pub async fn blob_account_sas(
        &self,
        subscription_id: &str,
        resource_group: &str,
        name: &str,
        expiry: DateTime<Utc>,
    ) -> Result<Zeroizing<String>, AzureError> {
        let path = format!(
            "{}/listAccountSas",
            Self::storage_account_path(subscription_id, resource_group, name)
        );
        let url = self.url(&path, STORAGE_API)?;
        let body = json!({
            "signedServices": "b",
            "signedResourceTypes": "sco",
            "signedPermission": "rwdlac",
            "signedProtocol": "https,http",
            "signedExpiry": expiry.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "keyToSign": "key1",
        });
        let reply = self.call(Method::Post, &url, Some(&body)).await?;
        if !reply.is_success() {
            return Err(error_from(Method::Post, &url, &reply));
        }
        let value = reply.json()?;
        value["accountSasToken"]
            .as_str()
            .map(|t| Zeroizing::new(t.to_owned()))
            .ok_or_else(|| AzureError::InvalidResponse {
                message: "listAccountSas answered without accountSasToken".into(),
            })
    }
}
