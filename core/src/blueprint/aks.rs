//! The AKS blueprint: terraform (azurerm) for the seed's per-cluster Azure inventory. It
//! is what users export and what the tests apply, through the provider stand-in.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;

use super::Blueprint;
use super::context::{CloudTemplates, ClusterContext, tfvars_json};
use super::inventory::{Inventory, Origin, ResourceKind};
use super::maintenance::{AksMaintenance, aks_maintenance};
use super::names::{AzureNames, WORKLOAD_IDENTITIES};
use super::templates::Templates;
use crate::cloud_accounts::CloudAccount;
use crate::clusters::ClusterSpec;
use crate::{Error, Result};

/// Kubernetes-internal ranges of the overlay network. They must not overlap the VNet, so
/// they come from the shared address space (RFC 6598), which customers' VNets rarely use.
pub(crate) const POD_CIDR: &str = "100.64.0.0/16";
pub(crate) const SERVICE_CIDR: &str = "100.96.0.0/16";
pub(crate) const DNS_SERVICE_IP: &str = "100.96.0.10";

/// The terraform files, in the order a reader would open them.
const TERRAFORM_FILES: [&str; 10] = [
    "versions.tf",
    "backend.tf",
    "locals.tf",
    "variables.tf",
    "network.tf",
    "storage.tf",
    "registry.tf",
    "identity.tf",
    "aks.tf",
    "outputs.tf",
];

#[derive(Serialize)]
struct Context<'a> {
    names: &'a AzureNames,
    #[serde(flatten)]
    cluster: ClusterContext<'a>,
    /// The zone whose subnet holds the node pools (see aks.tf).
    system_zone: &'a str,
    subscription_id: &'a str,
    identities: Vec<IdentityContext>,
    maintenance: AksMaintenance,
}

#[derive(Serialize)]
struct IdentityContext {
    role: &'static str,
    subject: String,
}

pub(crate) fn render(
    spec: &ClusterSpec,
    account: &CloudAccount,
    templates: &Templates,
) -> Result<Blueprint> {
    check_account(account)?;
    check_no_overlap(&spec.network.cidr)?;
    let names = AzureNames::new(spec);
    let inventory = inventory(spec, &names);
    let context = Context {
        names: &names,
        cluster: ClusterContext::of(spec, &inventory),
        system_zone: &spec.network.zones[0],
        subscription_id: &account.external_id,
        identities: WORKLOAD_IDENTITIES
            .iter()
            .map(|w| IdentityContext {
                role: w.role,
                subject: w.subject(),
            })
            .collect(),
        maintenance: aks_maintenance(&spec.maintenance_window),
    };

    let files = CloudTemplates {
        templates,
        dir: "aks",
        terraform_files: &TERRAFORM_FILES,
        readme: "README.md",
    }
    .files(&context, tfvars(spec, account, &context.maintenance))?;
    Ok(Blueprint { files, inventory })
}

fn check_account(account: &CloudAccount) -> Result<()> {
    let is_guid = |s: &str| uuid::Uuid::parse_str(s).is_ok();
    if !is_guid(&account.external_id) || !is_guid(&account.tenant_id) {
        return Err(Error::InvalidInput(format!(
            "cloud account {}: an Azure account needs a subscription id and a tenant id (GUIDs)",
            account.id
        )));
    }
    Ok(())
}

/// The overlay's pod and service ranges are routed inside the cluster only; a VNet that
/// overlaps them would make part of the VNet unreachable from pods.
fn check_no_overlap(network: &str) -> Result<()> {
    let range = |cidr: &str| -> Option<(u32, u32)> {
        let (address, prefix) = cidr.split_once('/')?;
        let address = u32::from(address.parse::<std::net::Ipv4Addr>().ok()?);
        let prefix: u32 = prefix.parse().ok()?;
        let size = 1u64 << (32 - prefix);
        let first = address & !((size - 1) as u32);
        Some((first, first + (size - 1) as u32))
    };
    let (first, last) = range(network).expect("validated by ClusterSpec::validate");
    for (what, cidr) in [("pod", POD_CIDR), ("service", SERVICE_CIDR)] {
        let (f, l) = range(cidr).expect("static CIDR");
        if first <= l && f <= last {
            return Err(Error::InvalidInput(format!(
                "network.cidr {network} overlaps the cluster's {what} range {cidr}"
            )));
        }
    }
    Ok(())
}

/// The inputs a person may tune when running the blueprint themselves; names and tags
/// stay in locals.tf because changing them would replace resources.
fn tfvars(spec: &ClusterSpec, account: &CloudAccount, maintenance: &AksMaintenance) -> String {
    let zone_subnets: BTreeMap<&str, String> = spec
        .network
        .zones
        .iter()
        .map(String::as_str)
        .zip(spec.zone_subnets())
        .collect();
    let system = &spec.node_pools[0];
    let node_pools: BTreeMap<&str, serde_json::Value> = spec.node_pools[1..]
        .iter()
        .map(|p| {
            let pool = json!({
                "vm_size": p.instance_type,
                "min_count": p.min_count,
                "max_count": p.max_count,
            });
            (p.name.as_str(), pool)
        })
        .collect();
    let identities: BTreeMap<&str, serde_json::Value> = WORKLOAD_IDENTITIES
        .iter()
        .map(|w| {
            let sa = json!({"namespace": w.namespace, "service_account": w.service_account});
            (w.role, sa)
        })
        .collect();
    let vars = json!({
        "subscription_id": account.external_id,
        "tenant_id": account.tenant_id,
        "location": spec.region,
        "kubernetes_version": spec.kubernetes_version,
        "node_pool_version": spec.node_pool_version(),
        "network_cidr": spec.network.cidr,
        "zone_subnets": zone_subnets,
        "pod_cidr": POD_CIDR,
        "service_cidr": SERVICE_CIDR,
        "dns_service_ip": DNS_SERVICE_IP,
        "system_node_pool": {
            "name": system.name,
            "vm_size": system.instance_type,
            "min_count": system.min_count,
            "max_count": system.max_count,
        },
        "node_pools": node_pools,
        "maintenance_window": maintenance,
        "workload_identities": identities,
    });
    tfvars_json(&vars)
}

/// The resource list, with each item's terraform address.
fn inventory(spec: &ClusterSpec, names: &AzureNames) -> Inventory {
    let address = |ty: &str, name: &str, key: Option<&str>| match key {
        Some(k) => format!("{ty}.{name}[\"{k}\"]"),
        None => format!("{ty}.{name}"),
    };
    // What the bootstrap step makes before terraform exists.
    let adopted = Origin::Bootstrap;
    use Origin::Terraform as Tf;
    use ResourceKind as K;

    let mut inv = Inventory::default();
    inv.push(
        K::ResourceGroup,
        &names.resource_group,
        address("azurerm_resource_group", "this", None),
        adopted,
    );
    inv.push(
        K::VirtualNetwork,
        &names.virtual_network,
        address("azurerm_virtual_network", "this", None),
        Tf,
    );
    for zone in &spec.network.zones {
        let z = Some(zone.as_str());
        inv.push(
            K::Subnet,
            names.subnet(zone),
            address("azurerm_subnet", "zone", z),
            Tf,
        );
        inv.push(
            K::PublicIp,
            names.public_ip(zone),
            address("azurerm_public_ip", "nat", z),
            Tf,
        );
        inv.push(
            K::NatGateway,
            names.nat_gateway(zone),
            address("azurerm_nat_gateway", "zone", z),
            Tf,
        );
        inv.push(
            K::NatGatewayPublicIpAssociation,
            format!("{} ↔ {}", names.nat_gateway(zone), names.public_ip(zone)),
            address("azurerm_nat_gateway_public_ip_association", "zone", z),
            Tf,
        );
        inv.push(
            K::SubnetNatGatewayAssociation,
            format!("{} ↔ {}", names.subnet(zone), names.nat_gateway(zone)),
            address("azurerm_subnet_nat_gateway_association", "zone", z),
            Tf,
        );
    }
    inv.push(
        K::StorageAccount,
        &names.storage_account,
        address("azurerm_storage_account", "this", None),
        adopted,
    );
    for (container, name) in [
        (&names.kubeconfigs_container, "kubeconfigs"),
        (&names.logs_container, "logs"),
        (&names.metrics_container, "metrics"),
    ] {
        inv.push(
            K::BlobContainer,
            container,
            address("azurerm_storage_container", name, None),
            Tf,
        );
    }
    inv.push(
        K::StateContainer,
        &names.state_container,
        address("azurerm_storage_container", "tfstate", None),
        adopted,
    );
    inv.push(
        K::ContainerRegistry,
        &names.registry,
        address("azurerm_container_registry", "this", None),
        Tf,
    );
    for w in &WORKLOAD_IDENTITIES {
        let r = Some(w.role);
        inv.push(
            K::ManagedIdentity,
            names.identity(w.role),
            address("azurerm_user_assigned_identity", "workload", r),
            Tf,
        );
        // Named like its identity; it trusts `w.subject()` (the README lists them).
        inv.push(
            K::FederatedCredential,
            names.identity(w.role),
            address("azurerm_federated_identity_credential", "workload", r),
            Tf,
        );
    }
    let rg = &names.resource_group;
    let sa = &names.storage_account;
    for (name, what) in [
        (
            "karpenter_vm_contributor",
            format!("karpenter: Virtual Machine Contributor on {rg}"),
        ),
        (
            "karpenter_network_contributor",
            format!("karpenter: Network Contributor on {rg}"),
        ),
        (
            "storage_blob_data",
            format!("storage: Storage Blob Data Contributor on {sa}"),
        ),
        (
            "metrics_blob_data",
            format!("metrics: Storage Blob Data Contributor on {sa}"),
        ),
        (
            "kubelet_acr_pull",
            format!("AKS kubelet identity: AcrPull on {}", names.registry),
        ),
        (
            "cluster_network_contributor",
            format!(
                "AKS cluster identity: Network Contributor on {}",
                names.virtual_network
            ),
        ),
    ] {
        inv.push(
            K::RoleAssignment,
            what,
            address("azurerm_role_assignment", name, None),
            Tf,
        );
    }
    let cluster = address("azurerm_kubernetes_cluster", "this", None);
    inv.push(K::KubernetesCluster, &names.cluster, &cluster, Tf);
    for pool in &spec.node_pools[1..] {
        inv.push(
            K::NodePool,
            &pool.name,
            address(
                "azurerm_kubernetes_cluster_node_pool",
                "pool",
                Some(&pool.name),
            ),
            Tf,
        );
    }
    // AKS makes the `kubernetes` load balancer in the node resource group when the first
    // Service of type LoadBalancer (ingress-nginx's) appears.
    inv.push(
        K::LoadBalancer,
        format!("{}/kubernetes", names.node_resource_group),
        cluster,
        Origin::CloudManaged,
    );
    inv
}
