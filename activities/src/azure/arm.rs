//! Minimal Azure Resource Manager client: only the calls Windlass needs.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use azure_core::{credentials::TokenCredential, http::Method};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;
use uuid::Uuid;

use super::{
    config::AzureClientConfig,
    credential::federated_credential,
    error::AzureError,
    http::{Http, Reply, error_from},
    lro::{self, LroSettings},
    role::RoleDefinition,
};

const PROVIDERS_API: &str = "2021-04-01";
const AUTHZ_API: &str = "2022-04-01";
const RESOURCES_API: &str = "2021-04-01";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RoleDefinitionResource {
    pub id: String,
    pub name: String,
    pub properties: RoleDefinition,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignmentProperties {
    pub role_definition_id: String,
    pub principal_id: String,
    #[serde(default)]
    pub principal_type: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RoleAssignment {
    pub id: String,
    pub name: String,
    pub properties: RoleAssignmentProperties,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ResourceGroup {
    pub id: String,
    pub name: String,
    pub location: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub properties: Value,
}

pub struct ArmClient {
    pub(super) http: Http,
    pub(super) base: Url,
    pub(super) lro: LroSettings,
    provider_poll_initial: Duration,
    provider_poll_max: Duration,
    provider_timeout: Duration,
}

impl ArmClient {
    pub fn new(config: &AzureClientConfig) -> Result<Self, AzureError> {
        Self::with_credential(config, federated_credential(config)?)
    }

    pub fn with_credential(
        config: &AzureClientConfig,
        credential: Arc<dyn TokenCredential>,
    ) -> Result<Self, AzureError> {
        Ok(Self {
            http: Http::new(config, credential, &config.endpoints.arm_scope)?
                .limited_by(config.rate_limiter.clone()),
            base: config.endpoints.arm.clone(),
            lro: LroSettings {
                default_interval: config.lro_default_poll_interval,
                timeout: config.lro_timeout,
            },
            provider_poll_initial: config.provider_poll_initial,
            provider_poll_max: config.provider_poll_max,
            provider_timeout: config.provider_timeout,
        })
    }

    pub(super) fn url(&self, path: &str, api_version: &str) -> Result<Url, AzureError> {
        if !path.starts_with('/') || path.contains("..") || path.contains('?') {
            return Err(AzureError::Config(format!(
                "not an ARM resource path: {path:?}"
            )));
        }
        let raw = format!(
            "{}{path}?api-version={api_version}",
            self.base.as_str().trim_end_matches('/')
        );
        Url::parse(&raw).map_err(|e| AzureError::Config(format!("ARM URL for {path}: {e}")))
    }

    pub(super) async fn call(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Value>,
    ) -> Result<Reply, AzureError> {
        self.http.send(method, url, body).await
    }

    // ------------------------------------------------------------ providers

    /// Current `registrationState` of a provider.
    pub async fn provider_state(
        &self,
        subscription_id: &str,
        namespace: &str,
    ) -> Result<String, AzureError> {
        let url = self.url(
            &format!("/subscriptions/{subscription_id}/providers/{namespace}"),
            PROVIDERS_API,
        )?;
        let reply = self.call(Method::Get, &url, None).await?;
        if !reply.is_success() {
            return Err(error_from(Method::Get, &url, &reply));
        }
        registration_state(&reply)
    }

    /// Registers a provider and waits until ARM reports `Registered`.
    /// Safe to repeat: registering a registered provider is a no-op.
    pub async fn register_provider(
        &self,
        subscription_id: &str,
        namespace: &str,
    ) -> Result<(), AzureError> {
        if self.provider_state(subscription_id, namespace).await? == "Registered" {
            return Ok(());
        }
        let url = self.url(
            &format!("/subscriptions/{subscription_id}/providers/{namespace}/register"),
            PROVIDERS_API,
        )?;
        let reply = self.call(Method::Post, &url, None).await?;
        if !reply.is_success() {
            return Err(error_from(Method::Post, &url, &reply));
        }
        let mut state = registration_state(&reply)?;
        let started = Instant::now();
        let mut interval = self.provider_poll_initial;
        while state != "Registered" {
            if started.elapsed() + interval > self.provider_timeout {
                return Err(AzureError::Timeout {
                    what: format!("{namespace} to become Registered (last state {state})"),
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(interval).await;
            interval = (interval * 2).min(self.provider_poll_max);
            state = self.provider_state(subscription_id, namespace).await?;
            tracing::debug!(namespace, state, "provider registration");
        }
        Ok(())
    }

    pub async fn unregister_provider(
        &self,
        subscription_id: &str,
        namespace: &str,
    ) -> Result<(), AzureError> {
        let url = self.url(
            &format!("/subscriptions/{subscription_id}/providers/{namespace}/unregister"),
            PROVIDERS_API,
        )?;
        let reply = self.call(Method::Post, &url, None).await?;
        if !reply.is_success() {
            return Err(error_from(Method::Post, &url, &reply));
        }
        Ok(())
    }

    // ----------------------------------------------------- role definitions

    fn role_definition_url(&self, subscription_id: &str, id: Uuid) -> Result<Url, AzureError> {
        self.url(
            &format!("/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{id}"),
            AUTHZ_API,
        )
    }

    pub async fn put_role_definition(
        &self,
        subscription_id: &str,
        id: Uuid,
        role: &RoleDefinition,
    ) -> Result<RoleDefinitionResource, AzureError> {
        let url = self.role_definition_url(subscription_id, id)?;
        let body = json!({"properties": role});
        let reply = self.call(Method::Put, &url, Some(&body)).await?;
        if !reply.is_success() {
            return Err(error_from(Method::Put, &url, &reply));
        }
        parse(&reply)
    }

    pub async fn get_role_definition(
        &self,
        subscription_id: &str,
        id: Uuid,
    ) -> Result<Option<RoleDefinitionResource>, AzureError> {
        let url = self.role_definition_url(subscription_id, id)?;
        self.get_optional(&url).await
    }

    /// Returns whether it existed. Deleting an absent definition succeeds.
    pub async fn delete_role_definition(
        &self,
        subscription_id: &str,
        id: Uuid,
    ) -> Result<bool, AzureError> {
        let url = self.role_definition_url(subscription_id, id)?;
        self.delete_simple(&url).await
    }

    // ----------------------------------------------------- role assignments

    fn role_assignment_url(&self, scope: &str, id: Uuid) -> Result<Url, AzureError> {
        self.url(
            &format!(
                "{}/providers/Microsoft.Authorization/roleAssignments/{id}",
                scope.trim_end_matches('/')
            ),
            AUTHZ_API,
        )
    }

    /// Assigns `role_definition_id` (full ARM id) to a service principal.
    /// `PrincipalNotFound` (replication lag) comes back as a retryable error.
    pub async fn put_role_assignment(
        &self,
        scope: &str,
        id: Uuid,
        role_definition_id: &str,
        principal_id: &str,
    ) -> Result<RoleAssignment, AzureError> {
        let url = self.role_assignment_url(scope, id)?;
        // principalType lets ARM skip one directory lookup, which narrows
        // (but does not close) the replication-delay window.
        let body = json!({"properties": {
            "roleDefinitionId": role_definition_id,
            "principalId": principal_id,
            "principalType": "ServicePrincipal",
        }});
        let reply = self.call(Method::Put, &url, Some(&body)).await?;
        if !reply.is_success() {
            let err = error_from(Method::Put, &url, &reply);
            if err.code() == Some("PrincipalNotFound") {
                let (_, message) = reply.error_detail();
                return Err(AzureError::PrincipalNotFound {
                    principal_id: principal_id.to_string(),
                    message,
                });
            }
            return Err(err);
        }
        parse(&reply)
    }

    pub async fn get_role_assignment(
        &self,
        scope: &str,
        id: Uuid,
    ) -> Result<Option<RoleAssignment>, AzureError> {
        let url = self.role_assignment_url(scope, id)?;
        self.get_optional(&url).await
    }

    pub async fn delete_role_assignment(&self, scope: &str, id: Uuid) -> Result<bool, AzureError> {
        let url = self.role_assignment_url(scope, id)?;
        self.delete_simple(&url).await
    }

    // ------------------------------------------------------ resource groups

    fn resource_group_url(&self, subscription_id: &str, name: &str) -> Result<Url, AzureError> {
        self.url(
            &format!("/subscriptions/{subscription_id}/resourcegroups/{name}"),
            RESOURCES_API,
        )
    }

    /// Creates or updates a resource group, following an LRO if ARM starts one.
    pub async fn put_resource_group(
        &self,
        subscription_id: &str,
        name: &str,
        location: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<ResourceGroup, AzureError> {
        let url = self.resource_group_url(subscription_id, name)?;
        let body = json!({"location": location, "tags": tags});
        let reply = self.call(Method::Put, &url, Some(&body)).await?;
        if !reply.is_success() {
            return Err(error_from(Method::Put, &url, &reply));
        }
        let result =
            lro::follow(&self.http, &self.base, Method::Put, &url, reply, &self.lro).await?;
        let value = result.ok_or_else(|| AzureError::InvalidResponse {
            message: "resource group PUT finished without a resource body".into(),
        })?;
        serde_json::from_value(value).map_err(|e| AzureError::InvalidResponse {
            message: format!("resource group body: {e}"),
        })
    }

    pub async fn get_resource_group(
        &self,
        subscription_id: &str,
        name: &str,
    ) -> Result<Option<ResourceGroup>, AzureError> {
        let url = self.resource_group_url(subscription_id, name)?;
        self.get_optional(&url).await
    }

    /// Deletes a resource group and waits for the operation to finish.
    /// An already-absent group counts as deleted.
    pub async fn delete_resource_group(
        &self,
        subscription_id: &str,
        name: &str,
    ) -> Result<(), AzureError> {
        let url = self.resource_group_url(subscription_id, name)?;
        let reply = self.call(Method::Delete, &url, None).await?;
        if reply.status == 404 {
            return Ok(());
        }
        if !reply.is_success() {
            return Err(error_from(Method::Delete, &url, &reply));
        }
        lro::follow(
            &self.http,
            &self.base,
            Method::Delete,
            &url,
            reply,
            &self.lro,
        )
        .await?;
        Ok(())
    }

    // -------------------------------------------------------------- helpers

    pub(super) async fn get_optional<T: serde::de::DeserializeOwned>(
        &self,
        url: &Url,
    ) -> Result<Option<T>, AzureError> {
        let reply = self.call(Method::Get, url, None).await?;
        if reply.status == 404 {
            return Ok(None);
        }
        if !reply.is_success() {
            return Err(error_from(Method::Get, url, &reply));
        }
        parse(&reply).map(Some)
    }

    async fn delete_simple(&self, url: &Url) -> Result<bool, AzureError> {
        let reply = self.call(Method::Delete, url, None).await?;
        match reply.status {
            200 | 202 => Ok(true),
            204 | 404 => Ok(false),
            _ => Err(error_from(Method::Delete, url, &reply)),
        }
    }
}

pub(super) fn parse<T: serde::de::DeserializeOwned>(reply: &Reply) -> Result<T, AzureError> {
    serde_json::from_slice(&reply.body).map_err(|e| AzureError::InvalidResponse {
        message: format!("unexpected body (status {}): {e}", reply.status),
    })
}

fn registration_state(reply: &Reply) -> Result<String, AzureError> {
    reply.json()?["registrationState"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| AzureError::InvalidResponse {
            message: "provider without registrationState".into(),
        })
}
