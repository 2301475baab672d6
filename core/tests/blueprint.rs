//! Blueprint rendering: the AKS inventory against the requirements seed, the rendered HCL
//! against the inventory, no secrets in any file, formatted as terraform formats it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveTime, Weekday};
use windlass_core::Error;
use windlass_core::blueprint::{Origin, ResourceKind as K, render};
use windlass_core::cloud_accounts::{CloudAccount, CloudProvider};
use windlass_core::clusters::{ClusterSpec, NetworkSpec, NodePoolSpec};
use windlass_core::maintenance::MaintenanceWindow;

use windlass_test_support::clusters::{aks_cluster, assert_no_secrets, resource_addresses, tfvars};

mod real_terraform;
use real_terraform::{tf, write};

fn spec() -> ClusterSpec {
    aks_cluster().0
}

fn account() -> CloudAccount {
    aks_cluster().1
}

#[test]
fn the_aks_inventory_is_the_seeds_table() {
    let blueprint = render(&spec(), &account()).unwrap();
    let inv = &blueprint.inventory;
    // The seed's "What Qovery creates in your account", row by row.
    for (kind, count) in [
        (K::ResourceGroup, 1),
        (K::KubernetesCluster, 1),
        (K::VirtualNetwork, 1),
        (K::Subnet, 3),
        (K::NatGateway, 3),
        (K::PublicIp, 3),
        (K::StorageAccount, 1),
        (K::BlobContainer, 3),
        (K::ContainerRegistry, 1),
        (K::ManagedIdentity, 3),
        (K::LoadBalancer, 1),
    ] {
        assert_eq!(inv.count(kind), count, "{kind:?}");
    }
    // Beyond the table: terraform's state container, and what wires the table together.
    assert_eq!(inv.count(K::StateContainer), 1);
    assert_eq!(inv.count(K::FederatedCredential), 3);
    assert_eq!(inv.count(K::NatGatewayPublicIpAssociation), 3);
    assert_eq!(inv.count(K::SubnetNatGatewayAssociation), 3);
    assert_eq!(inv.count(K::RoleAssignment), 6);
    assert_eq!(inv.count(K::NodePool), 0);

    let names: BTreeSet<&str> = inv.resources.iter().map(|r| r.name.as_str()).collect();
    for name in [
        "windlass-prod-eu-5f0c6a8e1d2b",
        "wl5f0c6a8e1d2bsa",
        "wl5f0c6a8e1d2bacr",
        "windlass-kubeconfigs-5f0c6a8e1d2b",
        "windlass-logs-5f0c6a8e1d2b",
        "windlass-metrics-5f0c6a8e1d2b",
        "windlass-prod-eu-5f0c6a8e1d2b-karpenter",
    ] {
        assert!(names.contains(name), "{name} missing from {names:?}");
    }
    let lb = inv
        .resources
        .iter()
        .find(|r| r.kind == K::LoadBalancer)
        .unwrap();
    assert_eq!(lb.origin, Origin::CloudManaged);
    assert_eq!(lb.terraform_address, "azurerm_kubernetes_cluster.this");
    // The backend exists before terraform: made by the bootstrap step, adopted by import.
    let imports = &blueprint.files["terraform/imports.tf"];
    for item in inv
        .resources
        .iter()
        .filter(|r| r.origin == Origin::Bootstrap)
    {
        assert!(
            imports.contains(&format!("to = {}\n", item.terraform_address)),
            "{} is not imported",
            item.terraform_address
        );
    }
    assert_eq!(imports.matches("import {").count(), 3);
}

#[test]
fn the_rendered_resource_blocks_are_the_inventory() {
    {
        let mut spec = spec();
        spec.node_pools.push(NodePoolSpec {
            name: "batch".into(),
            instance_type: "Standard_E8s_v5".into(),
            min_count: 0,
            max_count: 10,
        });
        let blueprint = render(&spec, &account()).unwrap();
        let inventory: BTreeSet<String> = blueprint
            .inventory
            .terraform_managed()
            .map(|r| r.terraform_address.clone())
            .collect();
        assert_eq!(resource_addresses(&blueprint), inventory);
        assert_eq!(blueprint.inventory.count(K::NodePool), 1);
    }
    // Every kind in the cloud rendering is its azurerm type.
    let blueprint = render(&spec(), &account()).unwrap();
    let hcl: String = blueprint.files.values().cloned().collect();
    let by_type: BTreeMap<&str, usize> = [
        ("azurerm_resource_group", 1),
        ("azurerm_kubernetes_cluster", 1),
        ("azurerm_virtual_network", 1),
        ("azurerm_subnet", 1),
        ("azurerm_nat_gateway", 1),
        ("azurerm_public_ip", 1),
        ("azurerm_storage_account", 1),
        ("azurerm_storage_container", 4),
        ("azurerm_container_registry", 1),
        ("azurerm_user_assigned_identity", 1),
        ("azurerm_federated_identity_credential", 1),
        ("azurerm_role_assignment", 6),
    ]
    .into_iter()
    .collect();
    for (ty, blocks) in by_type {
        assert_eq!(
            hcl.matches(&format!("resource \"{ty}\" ")).count(),
            blocks,
            "{ty}"
        );
    }
}

#[test]
fn the_cloud_rendering_has_the_seeds_aks_settings() {
    let blueprint = render(&spec(), &account()).unwrap();
    let aks = &blueprint.files["terraform/aks.tf"];
    for setting in [
        r#"network_plugin      = "azure""#,
        r#"network_plugin_mode = "overlay""#,
        r#"network_data_plane  = "cilium""#,
        r#"network_policy      = "cilium""#,
        r#"load_balancer_sku   = "standard""#,
        "oidc_issuer_enabled       = true",
        "workload_identity_enabled = true",
        r#"type = "SystemAssigned""#,
        "zones                = keys(var.zone_subnets)",
        "auto_scaling_enabled = true",
        "min_count            = var.system_node_pool.min_count",
        "kubernetes_version  = var.kubernetes_version",
        "maintenance_window {",
        "maintenance_window_auto_upgrade {",
    ] {
        assert!(aks.contains(setting), "aks.tf lacks {setting}");
    }
    let vars = tfvars(&blueprint);
    assert_eq!(
        vars["zone_subnets"],
        serde_json::json!({"1": "10.0.0.0/20", "2": "10.0.16.0/20", "3": "10.0.32.0/20"})
    );
    assert_eq!(vars["system_node_pool"]["min_count"], 3);
    assert_eq!(vars["system_node_pool"]["max_count"], 6);
    assert_eq!(vars["kubernetes_version"], "1.33");

    let backend = &blueprint.files["terraform/backend.tf"];
    for setting in [
        r#"backend "azurerm" {"#,
        r#"storage_account_name = "wl5f0c6a8e1d2bsa""#,
        r#"container_name       = "windlass-tfstate-5f0c6a8e1d2b""#,
        r#"key                  = "cluster.tfstate""#,
        "use_azuread_auth     = true",
    ] {
        assert!(backend.contains(setting), "backend.tf lacks {setting}");
    }
    let storage = &blueprint.files["terraform/storage.tf"];
    assert!(storage.contains(r#"account_replication_type        = "ZRS""#));
    assert!(storage.contains(r#"account_kind                    = "StorageV2""#));
    let identity = &blueprint.files["terraform/identity.tf"];
    for role in [
        "Virtual Machine Contributor",
        "Network Contributor",
        "Storage Blob Data Contributor",
        "AcrPull",
    ] {
        assert!(identity.contains(&format!("\"{role}\"")), "{role}");
    }
    assert_eq!(
        vars["workload_identities"]["metrics"],
        serde_json::json!({"namespace": "monitoring", "service_account": "thanos"})
    );
    let outputs = &blueprint.files["terraform/outputs.tf"];
    for output in [
        "cluster_id",
        "oidc_issuer_url",
        "kube_config_raw",
        "registry_login_server",
        "karpenter_client_id",
        "storage_client_id",
        "metrics_client_id",
        "storage_account_name",
        "kubeconfigs_container",
        "logs_container",
        "metrics_container",
    ] {
        assert!(
            outputs.contains(&format!("output \"{output}\" {{")),
            "{output}"
        );
    }
}

#[test]
fn resources_carry_the_seeds_tags() {
    let blueprint = render(&spec(), &account()).unwrap();
    let locals = &blueprint.files["terraform/locals.tf"];
    for tag in [
        r#"cluster_id      = "5f0c6a8e-1d2b-4c3d-9e8f-0a1b2c3d4e5f""#,
        r#"organization_id = "0b9d6c1e-3f4a-4b5c-8d7e-9f0a1b2c3d4e""#,
        r#"region          = "westeurope""#,
        r#"creation_date   = "2026-11-24""#,
    ] {
        assert!(locals.contains(tag), "locals.tf lacks {tag}");
    }
    let network = &blueprint.files["terraform/network.tf"];
    let group = network.split("\n}\n").next().unwrap();
    assert!(group.contains("resource \"azurerm_resource_group\" \"this\""));
    assert!(group.contains("tags     = local.tags"));
}

#[test]
fn the_maintenance_window_is_the_specs() {
    let blueprint = render(&spec(), &account()).unwrap();
    assert_eq!(
        tfvars(&blueprint)["maintenance_window"],
        serde_json::json!({
            "allowed": [{"day": "Tuesday", "hours": [21, 22]}],
            "day_of_week": "Tuesday",
            "start_time": "21:00",
            "duration_hours": 4,
        })
    );
    let mut spec = spec();
    spec.maintenance_window = MaintenanceWindow {
        weekday: Weekday::Sat,
        start: NaiveTime::from_hms_opt(3, 0, 0).unwrap(),
        duration_minutes: 6 * 60,
    };
    let blueprint = render(&spec, &account()).unwrap();
    let window = &tfvars(&blueprint)["maintenance_window"];
    assert_eq!(window["allowed"][0]["day"], "Saturday");
    assert_eq!(
        window["allowed"][0]["hours"],
        serde_json::json!([3, 4, 5, 6, 7, 8])
    );
    assert_eq!(window["duration_hours"], 6);
}

#[test]
fn a_custom_network_changes_the_zonal_resources() {
    let mut spec = spec();
    spec.network = NetworkSpec {
        cidr: "172.20.0.0/16".into(),
        zones: vec!["1".into(), "2".into()],
    };
    let blueprint = render(&spec, &account()).unwrap();
    let vars = tfvars(&blueprint);
    assert_eq!(vars["network_cidr"], "172.20.0.0/16");
    assert_eq!(
        vars["zone_subnets"],
        serde_json::json!({"1": "172.20.0.0/20", "2": "172.20.16.0/20"})
    );
    for kind in [K::Subnet, K::NatGateway, K::PublicIp] {
        assert_eq!(blueprint.inventory.count(kind), 2, "{kind:?}");
    }
    let addresses = resource_addresses(&blueprint);
    assert!(addresses.contains(r#"azurerm_subnet.zone["2"]"#));
    assert!(!addresses.contains(r#"azurerm_subnet.zone["3"]"#));

    // The overlay's pod and service ranges must stay outside the VNet.
    spec.network.cidr = "100.64.0.0/12".into();
    let err = render(&spec, &account()).unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)));
    assert!(err.to_string().contains("overlaps"), "{err}");
}

/// Values or shapes that are credentials, wherever they appear.
/// Attributes whose value would be a secret if set; the backend's `key` is a blob name.
#[test]
fn no_file_holds_a_secret() {
    {
        let blueprint = render(&spec(), &account()).unwrap();
        assert_no_secrets(&blueprint);
    }
    let cloud = render(&spec(), &account()).unwrap();
    let all: String = cloud.files.values().cloned().collect();
    // No key or password paths are even enabled.
    assert!(all.contains("shared_access_key_enabled       = false"));
    assert!(all.contains("admin_enabled       = false"));
    assert!(all.contains("use_azuread_auth     = true"));
    assert!(all.contains("storage_use_azuread = true"));
}

#[test]
fn helm_values_refer_to_terraform_outputs() {
    let blueprint = render(&spec(), &account()).unwrap();
    let charts: Vec<&str> = blueprint
        .files
        .keys()
        .filter_map(|p| p.strip_prefix("helm/"))
        .collect();
    assert_eq!(
        charts,
        [
            "cert-manager.values.json",
            "external-dns.values.json",
            "ingress-nginx.values.json",
            "karpenter.values.json",
            "loki.values.json",
            "thanos.values.json",
            "windlass-agent.values.json",
        ]
    );
    let outputs = &blueprint.files["terraform/outputs.tf"];
    for (chart, output) in [
        ("karpenter", "karpenter_client_id"),
        ("loki", "storage_client_id"),
        ("thanos", "metrics_client_id"),
    ] {
        let values = &blueprint.files[&format!("helm/{chart}.values.json")];
        serde_json::from_str::<serde_json::Value>(values).unwrap();
        assert!(values.contains(&format!("${{{output}}}")), "{chart}");
        assert!(outputs.contains(&format!("output \"{output}\"")));
    }
    let loki: serde_json::Value =
        serde_json::from_str(&blueprint.files["helm/loki.values.json"]).unwrap();
    assert_eq!(
        loki["loki"]["storage"]["azure"]["accountName"],
        "wl5f0c6a8e1d2bsa"
    );
    assert!(blueprint.files["README.md"].contains("envsubst"));
}

#[test]
fn an_aws_cluster_on_an_azure_shaped_account_is_refused_clearly() {
    // The Azure account's subscription GUID is no AWS account id.
    let mut spec = spec();
    let mut account = account();
    spec.provider = CloudProvider::Aws;
    spec.region = "eu-west-3".into();
    account.provider = CloudProvider::Aws;
    let err = render(&spec, &account).unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)));
    assert!(err.to_string().contains("12-digit"), "{err}");
}

// ---- the real terraform ----

#[test]
fn the_blueprint_is_formatted_as_terraform_fmt_would() {
    {
        let dir = tempfile::tempdir().unwrap();
        write(&render(&spec(), &account()).unwrap(), dir.path());
        tf(dir.path(), &["fmt", "-check", "-diff", "-recursive"]);
    }
}
