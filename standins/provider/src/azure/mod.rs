//! azurerm's resources against the ARM stand-in (`windlass_standins::azure`).
//!
//! The ARM stand-in is found as the real provider finds a custom Azure cloud: from the
//! cloud metadata at `https://$ARM_METADATA_HOSTNAME/metadata/endpoints` (the provider's
//! `metadata_host`), trusting the CAs in `SSL_CERT_FILE` (which the real provider, a Go
//! program, reads too). `WINDLASS_STANDIN_ARM_URL` and `WINDLASS_STANDIN_ARM_CA_FILE`
//! name the origin and its CA directly, for tests of the provider alone. The credential
//! is the real provider's workload identity federation: `ARM_CLIENT_ID`, `ARM_TENANT_ID`
//! (or the provider's `tenant_id`) and `ARM_OIDC_TOKEN` / `ARM_OIDC_TOKEN_FILE_PATH`.

mod arm;
mod kinds;

use std::time::Duration;

use serde_json::json;

use crate::cloud::{Cloud, CloudError};
use crate::value::Value;
use arm::{ArmClient, OidcToken};
use kinds::Kind;

pub struct AzureCloud {
    arm: ArmClient,
    subscription: String,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl AzureCloud {
    /// The cloud the provider configuration (and the environment) points at.
    pub async fn configure(config: &Value) -> Result<Self, CloudError> {
        let setting = |attr: &str, var: &str| {
            config
                .str_attr(attr)
                .map(str::to_owned)
                .or_else(|| env(var))
                .ok_or_else(|| CloudError::NotConfigured(format!("{attr} (or {var}) is not set")))
        };
        let subscription = setting("subscription_id", "ARM_SUBSCRIPTION_ID")?;
        let tenant = setting("tenant_id", "ARM_TENANT_ID")?;
        let client_id = setting("client_id", "ARM_CLIENT_ID")?;
        let ca = match env("WINDLASS_STANDIN_ARM_CA_FILE").or_else(|| env("SSL_CERT_FILE")) {
            Some(path) => Some(std::fs::read_to_string(&path).map_err(|e| {
                CloudError::NotConfigured(format!("the CA certificates in {path}: {e}"))
            })?),
            None => None,
        };
        let metadata_host = config
            .str_attr("metadata_host")
            .map(str::to_owned)
            .or_else(|| env("ARM_METADATA_HOSTNAME"));
        let base_url = match (env("WINDLASS_STANDIN_ARM_URL"), metadata_host) {
            (Some(url), _) => url,
            (None, Some(host)) => arm::resource_manager_of(&host, ca.as_deref()).await?,
            (None, None) => {
                return Err(CloudError::NotConfigured(
                    "ARM_METADATA_HOSTNAME is not set: the provider stand-in manages resources only in the ARM stand-in, found as a custom cloud's metadata host"
                        .into(),
                ));
            }
        };
        let oidc = match (env("ARM_OIDC_TOKEN"), env("ARM_OIDC_TOKEN_FILE_PATH")) {
            (Some(token), _) => OidcToken::Value(token),
            (None, Some(path)) => OidcToken::File(path),
            (None, None) => {
                return Err(CloudError::NotConfigured(
                    "ARM_OIDC_TOKEN or ARM_OIDC_TOKEN_FILE_PATH is not set (workload identity federation is the only credential)"
                        .into(),
                ));
            }
        };
        let poll = env("WINDLASS_STANDIN_ARM_POLL_SECONDS")
            .and_then(|s| s.parse().ok())
            .map_or(Duration::from_secs(5), Duration::from_secs);
        Ok(Self {
            arm: ArmClient::new(base_url, ca.as_deref(), tenant, client_id, oidc, poll)?,
            subscription,
        })
    }

    fn kind(type_name: &str) -> Result<Kind, CloudError> {
        kinds::kind(type_name).ok_or_else(|| CloudError::Unsupported(type_name.to_owned()))
    }

    /// Puts the resource `attrs` describes; returns what ARM computed.
    async fn put(&self, kind: Kind, attrs: &Value) -> Result<Value, CloudError> {
        let id = kind
            .arm_id(&self.subscription, attrs)
            .map_err(CloudError::Refused)?;
        let api = kind.api_version();
        let doc = match kind {
            Kind::NatGatewayPublicIp | Kind::SubnetNatGateway => {
                let mut holder = self.holder(&id, api).await?;
                associate(kind, &mut holder, attrs, true);
                self.arm.put(&id, api, &holder).await?
            }
            _ => {
                let body = kind
                    .body(&self.subscription, attrs)
                    .map_err(CloudError::Refused)?;
                self.arm.put(&id, api, &body).await?
            }
        };
        let mut observed = kind.observed(&id, attrs, &doc);
        if kind == Kind::InGroup(kinds::MANAGED_CLUSTERS) {
            self.add_credentials(&id, &mut observed).await?;
        }
        Ok(observed)
    }

    /// A managed cluster's admin kubeconfig, as the real provider reads it after
    /// creating the cluster (`listClusterAdminCredential`): `kube_config_raw` and the
    /// `kube_config` block's host and CA.
    async fn add_credentials(&self, id: &str, observed: &mut Value) -> Result<(), CloudError> {
        let body = self
            .arm
            .post(
                &format!("{id}/listClusterAdminCredential"),
                Kind::InGroup(kinds::MANAGED_CLUSTERS).api_version(),
            )
            .await?;
        let encoded = body["kubeconfigs"][0]["value"].as_str().unwrap_or_default();
        let kubeconfig =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    CloudError::Refused(format!("{id}: no kubeconfig in the credentials"))
                })?;
        let field = |key: &str| {
            kubeconfig
                .lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .map(|v| Value::String(v.trim().trim_matches('"').to_owned()))
                .unwrap_or(Value::Null)
        };
        let block = Value::Map(
            [
                ("host", field("server:")),
                (
                    "cluster_ca_certificate",
                    field("certificate-authority-data:"),
                ),
                ("client_certificate", field("client-certificate-data:")),
                ("client_key", field("client-key-data:")),
                ("username", Value::String("clusterAdmin".into())),
                ("password", field("token:")),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        );
        if let Value::Map(fields) = observed {
            fields.insert("kube_config_raw".into(), Value::String(kubeconfig.clone()));
            fields.insert("kube_admin_config_raw".into(), Value::String(kubeconfig));
            fields.insert("kube_config".into(), Value::List(vec![block.clone()]));
            fields.insert("kube_admin_config".into(), Value::List(vec![block]));
        }
        Ok(())
    }

    async fn holder(&self, id: &str, api: &str) -> Result<serde_json::Value, CloudError> {
        self.arm
            .get(id, api)
            .await?
            .ok_or_else(|| CloudError::Refused(format!("{id} does not exist")))
    }
}

/// Adds (or removes) the association `attrs` describes on its holder's document.
fn associate(kind: Kind, holder: &mut serde_json::Value, attrs: &Value, add: bool) {
    match kind {
        Kind::NatGatewayPublicIp => {
            let ip = attrs.str_attr("public_ip_address_id").unwrap_or_default();
            let list = holder["properties"]["publicIpAddresses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut kept: Vec<_> = list
                .into_iter()
                .filter(|e| !e["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(ip)))
                .collect();
            if add {
                kept.push(json!({"id": ip}));
            }
            holder["properties"]["publicIpAddresses"] = json!(kept);
        }
        Kind::SubnetNatGateway => {
            holder["properties"]["natGateway"] = if add {
                json!({"id": attrs.str_attr("nat_gateway_id").unwrap_or_default()})
            } else {
                serde_json::Value::Null
            };
        }
        _ => {}
    }
}

fn associated(kind: Kind, holder: &serde_json::Value, attrs: &Value) -> bool {
    match kind {
        Kind::NatGatewayPublicIp => {
            let ip = attrs.str_attr("public_ip_address_id").unwrap_or_default();
            holder["properties"]["publicIpAddresses"]
                .as_array()
                .is_some_and(|l| {
                    l.iter()
                        .any(|e| e["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(ip)))
                })
        }
        Kind::SubnetNatGateway => holder["properties"]["natGateway"]["id"].is_string(),
        _ => true,
    }
}

#[tonic::async_trait]
impl Cloud for AzureCloud {
    async fn create(&self, type_name: &str, planned: &Value) -> Result<Value, CloudError> {
        let kind = Self::kind(type_name)?;
        let id = kind
            .arm_id(&self.subscription, planned)
            .map_err(CloudError::Refused)?;
        // The real provider refuses to create over an existing resource: it must be
        // imported first (this is what makes a retried apply's reconciliation matter).
        if !matches!(kind, Kind::NatGatewayPublicIp | Kind::SubnetNatGateway)
            && self.arm.get(&id, kind.api_version()).await?.is_some()
        {
            return Err(CloudError::Refused(format!(
                "A resource with the ID \"{id}\" already exists - to be managed via Terraform this resource needs to be imported into the State. Please see the resource documentation for \"{type_name}\" for more information."
            )));
        }
        self.put(kind, planned).await
    }

    async fn update(&self, type_name: &str, planned: &Value) -> Result<Value, CloudError> {
        self.put(Self::kind(type_name)?, planned).await
    }

    async fn exists(&self, type_name: &str, state: &Value) -> Result<bool, CloudError> {
        let kind = Self::kind(type_name)?;
        let id = kind
            .arm_id(&self.subscription, state)
            .map_err(CloudError::Refused)?;
        match self.arm.get(&id, kind.api_version()).await? {
            None => Ok(false),
            Some(doc) => Ok(associated(kind, &doc, state)),
        }
    }

    async fn delete(&self, type_name: &str, state: &Value) -> Result<(), CloudError> {
        let kind = Self::kind(type_name)?;
        let id = kind
            .arm_id(&self.subscription, state)
            .map_err(CloudError::Refused)?;
        let api = kind.api_version();
        match kind {
            Kind::NatGatewayPublicIp | Kind::SubnetNatGateway => {
                if let Some(mut holder) = self.arm.get(&id, api).await? {
                    associate(kind, &mut holder, state, false);
                    self.arm.put(&id, api, &holder).await?;
                }
                Ok(())
            }
            _ => self.arm.delete(&id, api).await,
        }
    }

    async fn import(&self, type_name: &str, id: &str) -> Result<Value, CloudError> {
        let kind = Self::kind(type_name)?;
        match self.arm.get(id, kind.api_version()).await? {
            Some(doc) => Ok(kind.imported(id, &doc)),
            None => Err(CloudError::Refused(format!(
                "Cannot import non-existent remote object: {type_name} {id} does not exist"
            ))),
        }
    }
}
