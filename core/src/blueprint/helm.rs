//! Helm values of the charts every cluster runs, one typed struct per chart. They hold
//! names and references, never credentials: components reach Azure through workload
//! identity, so the only cloud-specific inputs are managed identities' client ids, which
//! exist only once terraform has applied. Those are written `${<terraform output>}`; the
//! README shows how `envsubst` fills them from `terraform output`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::names::{AzureNames, WORKLOAD_IDENTITIES, WorkloadIdentity};
use crate::cloud_accounts::{CloudAccount, CloudProvider};
use crate::clusters::ClusterSpec;
use crate::{Error, Result};

/// The agent image, also the external-dns webhook that publishes records through Windlass.
const AGENT_IMAGE: &str = "ghcr.io/windlass/windlass-agent";

/// The pod label that makes the workload identity webhook project the federated token.
const USE_WORKLOAD_IDENTITY: (&str, &str) = ("azure.workload.identity/use", "true");
const CLIENT_ID_ANNOTATION: &str = "azure.workload.identity/client-id";

type Labels = BTreeMap<String, String>;

/// A terraform output's value, filled in after apply (see the module docs).
pub fn output_reference(output: &str) -> String {
    format!("${{{output}}}")
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterChartValues {
    pub cert_manager: CertManagerValues,
    pub external_dns: ExternalDnsValues,
    pub ingress_nginx: IngressNginxValues,
    pub loki: LokiValues,
    pub thanos: ThanosValues,
    pub karpenter: KarpenterValues,
    pub windlass_agent: WindlassAgentValues,
}

impl ClusterChartValues {
    /// `helm/<chart>.values.json` for each chart (JSON is YAML, so `helm -f` reads it).
    pub fn files(&self) -> BTreeMap<String, String> {
        fn json(value: &impl Serialize) -> String {
            let mut text = serde_json::to_string_pretty(value).expect("values serialise");
            text.push('\n');
            text
        }
        [
            ("cert-manager", json(&self.cert_manager)),
            ("external-dns", json(&self.external_dns)),
            ("ingress-nginx", json(&self.ingress_nginx)),
            ("loki", json(&self.loki)),
            ("thanos", json(&self.thanos)),
            ("karpenter", json(&self.karpenter)),
            ("windlass-agent", json(&self.windlass_agent)),
        ]
        .into_iter()
        .map(|(chart, text)| (format!("helm/{chart}.values.json"), text))
        .collect()
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccount {
    pub create: bool,
    pub name: String,
    pub annotations: Labels,
    pub labels: Labels,
}

impl ServiceAccount {
    /// The service account a federated credential trusts, annotated with the identity's
    /// client id (a terraform output reference).
    fn federated(identity: &WorkloadIdentity) -> Self {
        Self {
            create: true,
            name: identity.service_account.into(),
            annotations: labels([(
                CLIENT_ID_ANNOTATION,
                output_reference(&format!("{}_client_id", identity.role)).as_str(),
            )]),
            labels: labels([USE_WORKLOAD_IDENTITY]),
        }
    }

    fn plain(name: &str) -> Self {
        Self {
            create: true,
            name: name.into(),
            annotations: Labels::new(),
            labels: Labels::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertManagerValues {
    pub crds: Enabled,
    pub replica_count: u32,
    pub pod_disruption_budget: Enabled,
}

#[derive(Debug, Clone, Serialize)]
pub struct Enabled {
    pub enabled: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalDnsValues {
    /// Owner of the TXT records, so several clusters can share a zone.
    pub txt_owner_id: String,
    pub policy: String,
    pub sources: Vec<String>,
    pub provider: ExternalDnsProvider,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExternalDnsProvider {
    pub name: String,
    pub webhook: Webhook,
}

/// Records go to Windlass-managed DNS through the agent's webhook: the customer's
/// inventory holds no DNS zone and external-dns holds no DNS credential.
#[derive(Debug, Clone, Serialize)]
pub struct Webhook {
    pub image: Image,
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Image {
    pub repository: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct IngressNginxValues {
    pub controller: IngressController,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressController {
    pub replica_count: u32,
    pub service: IngressService,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressService {
    /// AKS creates its standard load balancer (the inventory's) for this Service.
    #[serde(rename = "type")]
    pub kind: String,
    /// Keeps client addresses; the load balancer then probes only nodes with a pod.
    pub external_traffic_policy: String,
    pub annotations: Labels,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LokiValues {
    pub service_account: ServiceAccount,
    pub loki: LokiConfig,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LokiConfig {
    pub pod_labels: Labels,
    pub storage: LokiStorage,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LokiStorage {
    #[serde(rename = "type")]
    pub kind: String,
    pub bucket_names: BTreeMap<String, String>,
    pub azure: LokiAzure,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LokiAzure {
    pub account_name: String,
    /// Authenticate with the projected service account token (workload identity).
    pub use_federated_token: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThanosValues {
    pub service_account: ServiceAccount,
    pub common_labels: Labels,
    pub objstore_config: ThanosObjstore,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThanosObjstore {
    #[serde(rename = "type")]
    pub kind: String,
    pub config: ThanosAzure,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThanosAzure {
    pub storage_account: String,
    pub container: String,
    /// The managed identity's client id; no storage account key.
    pub user_assigned_id: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KarpenterValues {
    pub service_account: ServiceAccount,
    pub pod_labels: Labels,
    pub settings: KarpenterSettings,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KarpenterSettings {
    pub cluster_name: String,
    pub subscription_id: String,
    pub location: String,
    pub node_resource_group: String,
    /// Karpenter picks each node's zone; the subnet ids of every zone are in
    /// `terraform output zone_subnet_ids`, this one is the system pool's.
    pub vnet_subnet_id: String,
    pub network_plugin: String,
    pub network_plugin_mode: String,
    pub network_dataplane: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WindlassAgentValues {
    pub service_account: ServiceAccount,
    pub cluster: AgentCluster,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCluster {
    pub id: String,
    pub organization_id: String,
    pub provider: CloudProvider,
    pub region: String,
}

/// The values of every cluster chart for this cluster.
pub fn render_values(spec: &ClusterSpec, account: &CloudAccount) -> Result<ClusterChartValues> {
    spec.validate()?;
    if spec.provider != CloudProvider::Azure {
        return Err(Error::InvalidInput(
            "EKS blueprints are not yet rendered: only Azure (AKS) clusters have chart values"
                .into(),
        ));
    }
    let names = AzureNames::new(spec);
    let identity = |role: &str| {
        WORKLOAD_IDENTITIES
            .iter()
            .find(|w| w.role == role)
            .expect("static identity")
    };
    let system_subnet = format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/virtualNetworks/{}/subnets/{}",
        account.external_id,
        names.resource_group,
        names.virtual_network,
        names.subnet(&spec.network.zones[0]),
    );
    Ok(ClusterChartValues {
        cert_manager: CertManagerValues {
            crds: Enabled { enabled: true },
            replica_count: 2,
            pod_disruption_budget: Enabled { enabled: true },
        },
        external_dns: ExternalDnsValues {
            txt_owner_id: format!("windlass-{}", spec.short_id()),
            policy: "sync".into(),
            sources: vec!["ingress".into(), "service".into()],
            provider: ExternalDnsProvider {
                name: "webhook".into(),
                webhook: Webhook {
                    image: Image {
                        repository: AGENT_IMAGE.into(),
                    },
                    args: vec!["dns-webhook".into()],
                },
            },
        },
        ingress_nginx: IngressNginxValues {
            controller: IngressController {
                replica_count: spec.network.zones.len() as u32,
                service: IngressService {
                    kind: "LoadBalancer".into(),
                    external_traffic_policy: "Local".into(),
                    annotations: labels([(
                        "service.beta.kubernetes.io/azure-load-balancer-health-probe-request-path",
                        "/healthz",
                    )]),
                },
            },
        },
        loki: LokiValues {
            service_account: ServiceAccount::federated(identity("storage")),
            loki: LokiConfig {
                pod_labels: labels([USE_WORKLOAD_IDENTITY]),
                storage: LokiStorage {
                    kind: "azure".into(),
                    bucket_names: ["chunks", "ruler", "admin"]
                        .into_iter()
                        .map(|b| (b.to_owned(), names.logs_container.clone()))
                        .collect(),
                    azure: LokiAzure {
                        account_name: names.storage_account.clone(),
                        use_federated_token: true,
                    },
                },
            },
        },
        thanos: ThanosValues {
            service_account: ServiceAccount::federated(identity("metrics")),
            common_labels: labels([USE_WORKLOAD_IDENTITY]),
            objstore_config: ThanosObjstore {
                kind: "AZURE".into(),
                config: ThanosAzure {
                    storage_account: names.storage_account.clone(),
                    container: names.metrics_container.clone(),
                    user_assigned_id: output_reference("metrics_client_id"),
                },
            },
        },
        karpenter: KarpenterValues {
            service_account: ServiceAccount::federated(identity("karpenter")),
            pod_labels: labels([USE_WORKLOAD_IDENTITY]),
            settings: KarpenterSettings {
                cluster_name: names.cluster.clone(),
                subscription_id: account.external_id.clone(),
                location: spec.region.clone(),
                node_resource_group: names.node_resource_group.clone(),
                vnet_subnet_id: system_subnet,
                network_plugin: "azure".into(),
                network_plugin_mode: "overlay".into(),
                network_dataplane: "cilium".into(),
            },
        },
        windlass_agent: WindlassAgentValues {
            // The agent proves itself to Windlass with its projected service account
            // token, which Windlass verifies against the cluster's OIDC issuer.
            service_account: ServiceAccount::plain("windlass-agent"),
            cluster: AgentCluster {
                id: spec.id.to_string(),
                organization_id: spec.organization_id.to_string(),
                provider: spec.provider,
                region: spec.region.clone(),
            },
        },
    })
}

fn labels<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Labels {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}
