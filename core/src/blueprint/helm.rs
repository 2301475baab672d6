//! Helm values of the charts every cluster runs, one typed struct per chart. They hold
//! names and references, never credentials: components reach Azure through workload
//! identity and AWS through IRSA, so the only cloud-specific inputs are managed
//! identities' client ids (Azure) or IAM roles' ARNs (AWS), which exist only once
//! terraform has applied. Those are written `${<terraform output>}`; the README shows how
//! `envsubst` fills them from `terraform output`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::names::{AwsNames, AzureNames, WORKLOAD_IDENTITIES, WorkloadIdentity};
use crate::Result;
use crate::cloud_accounts::{CloudAccount, CloudProvider};
use crate::clusters::ClusterSpec;

/// The agent image, also the external-dns webhook that publishes records through Windlass.
const AGENT_IMAGE: &str = "ghcr.io/windlass/windlass-agent";

/// The pod label that makes the workload identity webhook project the federated token.
const USE_WORKLOAD_IDENTITY: (&str, &str) = ("azure.workload.identity/use", "true");
const CLIENT_ID_ANNOTATION: &str = "azure.workload.identity/client-id";
/// The annotation that makes EKS's pod identity webhook project a token for the role.
const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

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

    /// The service account an IRSA role trusts, annotated with the role's ARN (a terraform
    /// output reference). EKS's webhook needs no pod label.
    fn irsa(identity: &WorkloadIdentity) -> Self {
        Self {
            create: true,
            name: identity.service_account.into(),
            annotations: labels([(
                ROLE_ARN_ANNOTATION,
                output_reference(&format!("{}_role_arn", identity.role)).as_str(),
            )]),
            labels: Labels::new(),
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
    /// AKS creates its standard load balancer, EKS an NLB (the inventory's), for this
    /// Service.
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
    /// The workload identity label on Azure; IRSA needs none.
    #[serde(skip_serializing_if = "Labels::is_empty")]
    pub pod_labels: Labels,
    pub storage: LokiStorage,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LokiStorage {
    #[serde(rename = "type")]
    pub kind: String,
    pub bucket_names: BTreeMap<String, String>,
    /// Set on Azure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub azure: Option<LokiAzure>,
    /// Set on AWS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3: Option<LokiS3>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LokiAzure {
    pub account_name: String,
    /// Authenticate with the projected service account token (workload identity).
    pub use_federated_token: bool,
}

/// No endpoint or key: the AWS SDK finds the IRSA token the webhook projects.
#[derive(Debug, Clone, Serialize)]
pub struct LokiS3 {
    pub region: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThanosValues {
    pub service_account: ServiceAccount,
    /// The workload identity label on Azure; IRSA needs none.
    #[serde(skip_serializing_if = "Labels::is_empty")]
    pub common_labels: Labels,
    pub objstore_config: ThanosObjstore,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThanosObjstore {
    #[serde(rename = "type")]
    pub kind: String,
    pub config: ThanosBucket,
    /// Where in the bucket the blocks go: on AWS Thanos shares the telemetry bucket with
    /// Loki, and its IAM policy allows this prefix only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// Thanos's objstore `config`, whose shape depends on `type`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ThanosBucket {
    Azure(ThanosAzure),
    S3(ThanosS3),
}

#[derive(Debug, Clone, Serialize)]
pub struct ThanosAzure {
    pub storage_account: String,
    pub container: String,
    /// The managed identity's client id; no storage account key.
    pub user_assigned_id: String,
}

/// No access key: Thanos's S3 client reads the IRSA web identity token.
#[derive(Debug, Clone, Serialize)]
pub struct ThanosS3 {
    pub bucket: String,
    pub endpoint: String,
    pub region: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KarpenterValues {
    pub service_account: ServiceAccount,
    /// The workload identity label on Azure; IRSA needs none.
    #[serde(skip_serializing_if = "Labels::is_empty")]
    pub pod_labels: Labels,
    pub settings: KarpenterSettings,
}

/// The settings of Karpenter's Azure (AKS) or AWS provider, which are different charts.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum KarpenterSettings {
    Azure(AzureKarpenterSettings),
    Aws(AwsKarpenterSettings),
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsKarpenterSettings {
    pub cluster_name: String,
    /// Karpenter's nodes join through this endpoint (the `cluster_endpoint` output).
    pub cluster_endpoint: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AzureKarpenterSettings {
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
    // The account matters only on Azure (the subnet id Karpenter needs names the
    // subscription); IRSA role ARNs are terraform outputs.
    Ok(match spec.provider {
        CloudProvider::Azure => aks_values(spec, account),
        CloudProvider::Aws => eks_values(spec),
    })
}

fn identity(role: &str) -> &'static WorkloadIdentity {
    WORKLOAD_IDENTITIES
        .iter()
        .find(|w| w.role == role)
        .expect("static identity")
}

fn aks_values(spec: &ClusterSpec, account: &CloudAccount) -> ClusterChartValues {
    let names = AzureNames::new(spec);
    let system_subnet = format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/virtualNetworks/{}/subnets/{}",
        account.external_id,
        names.resource_group,
        names.virtual_network,
        names.subnet(&spec.network.zones[0]),
    );
    ClusterChartValues {
        cert_manager: cert_manager(),
        external_dns: external_dns(spec),
        ingress_nginx: ingress_nginx(
            spec,
            "service.beta.kubernetes.io/azure-load-balancer-health-probe-request-path",
            "/healthz",
        ),
        loki: LokiValues {
            service_account: ServiceAccount::federated(identity("storage")),
            loki: LokiConfig {
                pod_labels: labels([USE_WORKLOAD_IDENTITY]),
                storage: LokiStorage {
                    kind: "azure".into(),
                    bucket_names: loki_buckets(&names.logs_container),
                    azure: Some(LokiAzure {
                        account_name: names.storage_account.clone(),
                        use_federated_token: true,
                    }),
                    s3: None,
                },
            },
        },
        thanos: ThanosValues {
            service_account: ServiceAccount::federated(identity("metrics")),
            common_labels: labels([USE_WORKLOAD_IDENTITY]),
            objstore_config: ThanosObjstore {
                kind: "AZURE".into(),
                config: ThanosBucket::Azure(ThanosAzure {
                    storage_account: names.storage_account.clone(),
                    container: names.metrics_container.clone(),
                    user_assigned_id: output_reference("metrics_client_id"),
                }),
                prefix: None,
            },
        },
        karpenter: KarpenterValues {
            service_account: ServiceAccount::federated(identity("karpenter")),
            pod_labels: labels([USE_WORKLOAD_IDENTITY]),
            settings: KarpenterSettings::Azure(AzureKarpenterSettings {
                cluster_name: names.cluster.clone(),
                subscription_id: account.external_id.clone(),
                location: spec.region.clone(),
                node_resource_group: names.node_resource_group.clone(),
                vnet_subnet_id: system_subnet,
                network_plugin: "azure".into(),
                network_plugin_mode: "overlay".into(),
                network_dataplane: "cilium".into(),
            }),
        },
        windlass_agent: windlass_agent(spec),
    }
}

fn eks_values(spec: &ClusterSpec) -> ClusterChartValues {
    let names = AwsNames::new(spec);
    ClusterChartValues {
        cert_manager: cert_manager(),
        external_dns: external_dns(spec),
        // An NLB rather than the legacy Classic Load Balancer.
        ingress_nginx: ingress_nginx(
            spec,
            "service.beta.kubernetes.io/aws-load-balancer-type",
            "nlb",
        ),
        loki: LokiValues {
            service_account: ServiceAccount::irsa(identity("storage")),
            loki: LokiConfig {
                pod_labels: Labels::new(),
                storage: LokiStorage {
                    kind: "s3".into(),
                    bucket_names: loki_buckets(&names.telemetry_bucket),
                    azure: None,
                    s3: Some(LokiS3 {
                        region: spec.region.clone(),
                    }),
                },
            },
        },
        thanos: ThanosValues {
            service_account: ServiceAccount::irsa(identity("metrics")),
            common_labels: Labels::new(),
            objstore_config: ThanosObjstore {
                kind: "S3".into(),
                config: ThanosBucket::S3(ThanosS3 {
                    bucket: names.telemetry_bucket.clone(),
                    endpoint: format!("s3.{}.amazonaws.com", spec.region),
                    region: spec.region.clone(),
                }),
                // locals.tf's metrics_prefix, which the metrics role is limited to.
                prefix: Some("metrics".into()),
            },
        },
        karpenter: KarpenterValues {
            service_account: ServiceAccount::irsa(identity("karpenter")),
            pod_labels: Labels::new(),
            settings: KarpenterSettings::Aws(AwsKarpenterSettings {
                cluster_name: names.cluster.clone(),
                cluster_endpoint: output_reference("cluster_endpoint"),
            }),
        },
        windlass_agent: windlass_agent(spec),
    }
}

fn cert_manager() -> CertManagerValues {
    CertManagerValues {
        crds: Enabled { enabled: true },
        replica_count: 2,
        pod_disruption_budget: Enabled { enabled: true },
    }
}

fn external_dns(spec: &ClusterSpec) -> ExternalDnsValues {
    ExternalDnsValues {
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
    }
}

fn ingress_nginx(spec: &ClusterSpec, annotation: &str, value: &str) -> IngressNginxValues {
    IngressNginxValues {
        controller: IngressController {
            replica_count: spec.network.zones.len() as u32,
            service: IngressService {
                kind: "LoadBalancer".into(),
                external_traffic_policy: "Local".into(),
                annotations: labels([(annotation, value)]),
            },
        },
    }
}

fn loki_buckets(bucket: &str) -> BTreeMap<String, String> {
    ["chunks", "ruler", "admin"]
        .into_iter()
        .map(|b| (b.to_owned(), bucket.to_owned()))
        .collect()
}

fn windlass_agent(spec: &ClusterSpec) -> WindlassAgentValues {
    WindlassAgentValues {
        // The agent proves itself to Windlass with its projected service account token,
        // which Windlass verifies against the cluster's OIDC issuer.
        service_account: ServiceAccount::plain("windlass-agent"),
        cluster: AgentCluster {
            id: spec.id.to_string(),
            organization_id: spec.organization_id.to_string(),
            provider: spec.provider,
            region: spec.region.clone(),
        },
    }
}

fn labels<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Labels {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}
