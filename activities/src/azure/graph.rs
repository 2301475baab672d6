//! Minimal Microsoft Graph client for service principals.

use std::sync::Arc;

use azure_core::{credentials::TokenCredential, http::Method};
use serde::Deserialize;
use serde_json::json;
use url::Url;
use uuid::Uuid;

use super::{
    config::AzureClientConfig,
    credential::federated_credential,
    error::AzureError,
    http::{Http, error_from},
};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePrincipal {
    /// Object id: what role assignments reference as `principalId`.
    pub id: String,
    pub app_id: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

pub struct GraphClient {
    http: Http,
    base: Url,
}

impl GraphClient {
    pub fn new(config: &AzureClientConfig) -> Result<Self, AzureError> {
        Self::with_credential(config, federated_credential(config)?)
    }

    pub fn with_credential(
        config: &AzureClientConfig,
        credential: Arc<dyn TokenCredential>,
    ) -> Result<Self, AzureError> {
        Ok(Self {
            http: Http::new(config, credential, &config.endpoints.graph_scope)?,
            base: config.endpoints.graph.clone(),
        })
    }

    fn url(&self, path: &str) -> Result<Url, AzureError> {
        let raw = format!("{}/v1.0/{path}", self.base.as_str().trim_end_matches('/'));
        Url::parse(&raw).map_err(|e| AzureError::Config(format!("Graph URL: {e}")))
    }

    /// Creates the service principal for `app_id` in the tenant, or returns
    /// the existing one. Safe to repeat.
    pub async fn ensure_service_principal(
        &self,
        app_id: &str,
    ) -> Result<ServicePrincipal, AzureError> {
        let app_id = valid_guid(app_id)?;
        let url = self.url("servicePrincipals")?;
        let reply = self
            .http
            .send(Method::Post, &url, Some(&json!({"appId": app_id})))
            .await?;
        if reply.is_success() {
            return reply_json(&reply.body);
        }
        let (code, _) = reply.error_detail();
        if reply.status == 409 || code == "Request_MultipleObjectsWithSameKeyValue" {
            tracing::debug!(app_id, "service principal already exists; looking it up");
            return match self.get_service_principal_by_app_id(&app_id).await? {
                Some(sp) => Ok(sp),
                // Graph said it exists but the replica we read from lags.
                None => Err(AzureError::Api {
                    method: "GET".into(),
                    path: format!("/v1.0/servicePrincipals(appId='{app_id}')"),
                    status: 503,
                    code: "NotYetConsistent".into(),
                    message: "service principal exists but is not readable yet".into(),
                    retry_after: None,
                }),
            };
        }
        Err(error_from(Method::Post, &url, &reply))
    }

    pub async fn get_service_principal_by_app_id(
        &self,
        app_id: &str,
    ) -> Result<Option<ServicePrincipal>, AzureError> {
        let app_id = valid_guid(app_id)?;
        let url = self.url(&format!("servicePrincipals(appId='{app_id}')"))?;
        let reply = self.http.send(Method::Get, &url, None).await?;
        match reply.status {
            404 => Ok(None),
            s if (200..300).contains(&s) => reply_json(&reply.body).map(Some),
            _ => Err(error_from(Method::Get, &url, &reply)),
        }
    }

    /// Returns whether it existed.
    pub async fn delete_service_principal(&self, object_id: &str) -> Result<bool, AzureError> {
        let object_id = valid_guid(object_id)?;
        let url = self.url(&format!("servicePrincipals/{object_id}"))?;
        let reply = self.http.send(Method::Delete, &url, None).await?;
        match reply.status {
            204 | 200 => Ok(true),
            404 => Ok(false),
            _ => Err(error_from(Method::Delete, &url, &reply)),
        }
    }
}

/// Ids are interpolated into Graph paths, so only canonical GUIDs pass.
fn valid_guid(s: &str) -> Result<String, AzureError> {
    Uuid::parse_str(s)
        .map(|u| u.to_string())
        .map_err(|_| AzureError::Config(format!("{s:?} is not a GUID")))
}

fn reply_json(body: &[u8]) -> Result<ServicePrincipal, AzureError> {
    serde_json::from_slice(body).map_err(|e| AzureError::InvalidResponse {
        message: format!("service principal body: {e}"),
    })
}
