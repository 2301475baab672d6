//! Clusters as the blueprint tests know them: one AKS and one EKS cluster with fixed ids,
//! so what renders is the same on every run, and the checks every cloud's blueprint must
//! pass (no secret in any file, every resource block an address of the inventory).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use uuid::Uuid;
use windlass_core::blueprint::Blueprint;
use windlass_core::cloud_accounts::{CloudAccount, CloudProvider, Verification};
use windlass_core::clusters::{ClusterSpec, NetworkSpec, NodePoolSpec};
use windlass_core::maintenance::MaintenanceWindow;

/// The Azure tenant and subscription of [`aks_cluster`].
pub const AZURE_TENANT: &str = "11111111-2222-3333-4444-555555555555";
pub const AZURE_SUBSCRIPTION: &str = "66666666-7777-8888-9999-000000000000";
/// The AWS account of [`eks_cluster`] (moto's).
pub const AWS_ACCOUNT: &str = "123456789012";

pub fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// `prod-eu` in westeurope, in a verified Azure subscription.
pub fn aks_cluster() -> (ClusterSpec, CloudAccount) {
    cluster(
        CloudProvider::Azure,
        "westeurope",
        AZURE_TENANT,
        AZURE_SUBSCRIPTION,
    )
}

/// `prod-eu` in eu-west-3, in a verified AWS account.
pub fn eks_cluster() -> (ClusterSpec, CloudAccount) {
    cluster(CloudProvider::Aws, "eu-west-3", "", AWS_ACCOUNT)
}

fn cluster(
    provider: CloudProvider,
    region: &str,
    tenant_id: &str,
    external_id: &str,
) -> (ClusterSpec, CloudAccount) {
    let account = CloudAccount {
        id: Uuid::parse_str("7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d").unwrap(),
        organization_id: Uuid::parse_str("0b9d6c1e-3f4a-4b5c-8d7e-9f0a1b2c3d4e").unwrap(),
        provider,
        tenant_id: tenant_id.into(),
        external_id: external_id.into(),
        verification: Verification::Verified,
        verified_at: None,
        display_name: "prod".into(),
        created_at: at("2026-11-01T00:00:00Z"),
    };
    let spec = ClusterSpec {
        id: Uuid::parse_str("5f0c6a8e-1d2b-4c3d-9e8f-0a1b2c3d4e5f").unwrap(),
        organization_id: account.organization_id,
        cloud_account_id: account.id,
        provider,
        name: "prod-eu".into(),
        region: region.into(),
        kubernetes_version: "1.33".into(),
        node_pool_version: None,
        network: NetworkSpec::default(),
        node_pools: vec![NodePoolSpec::default_system_pool(provider)],
        maintenance_window: MaintenanceWindow::default(),
        placement: None,
        environment_types: windlass_core::clusters::every_environment_type(),
        created_at: at("2026-11-24T20:00:00Z"),
    };
    (spec, account)
}

/// The blueprint's `terraform.tfvars.json`.
pub fn tfvars(blueprint: &Blueprint) -> serde_json::Value {
    serde_json::from_str(&blueprint.files["terraform/terraform.tfvars.json"]).unwrap()
}

/// `resource "type" "name"` blocks of the rendered terraform, expanded by their `for_each`
/// (always over a variable, whose value is in terraform.tfvars.json) into addresses.
pub fn resource_addresses(blueprint: &Blueprint) -> BTreeSet<String> {
    let vars = tfvars(blueprint);
    let mut addresses = BTreeSet::new();
    for (path, text) in &blueprint.files {
        if !path.ends_with(".tf") {
            continue;
        }
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(rest) = line.strip_prefix("resource \"") else {
                continue;
            };
            let mut parts = rest.trim_end_matches(" {").split("\" \"");
            let ty = parts.next().unwrap();
            let name = parts.next().unwrap().trim_end_matches('"');
            let base = format!("{ty}.{name}");
            assert!(
                !lines[i + 1].trim_start().starts_with("count"),
                "{base}: count is not used"
            );
            match lines[i + 1].trim().strip_prefix("for_each = var.") {
                Some(var) => {
                    let keys = vars[var]
                        .as_object()
                        .unwrap_or_else(|| panic!("{var} is a map"));
                    for key in keys.keys() {
                        addresses.insert(format!("{base}[\"{key}\"]"));
                    }
                }
                None => {
                    assert!(!lines[i + 1].contains("for_each"), "{base}");
                    addresses.insert(base);
                }
            }
        }
    }
    addresses
}

/// What a credential of either cloud looks like in text.
const SECRET_SHAPES: &[&str] = &[
    "PRIVATE KEY-----",
    "AccountKey=",
    "SharedAccessSignature",
    "sig=",
    "client_secret",
    "client_certificate",
    "primary_access_key",
    "secondary_access_key",
    "sas_token",
    "admin_password",
    "eyJ", // a JWT
    "AKIA",
    "ASIA",
    "aws_access_key_id",
    "aws_secret_access_key",
    "secret_key",
    "AWS_SESSION_TOKEN",
];

const SECRET_ATTRIBUTES: &[&str] = &[
    "password",
    "secret",
    "token",
    "sas",
    "access_key",
    "api_key",
];

/// No file of the blueprint holds a secret, and every output that carries one is
/// declared sensitive.
pub fn assert_no_secrets(blueprint: &Blueprint) {
    for (path, text) in &blueprint.files {
        for shape in SECRET_SHAPES {
            assert!(!text.contains(shape), "{path} contains {shape:?}");
        }
        for line in text.lines() {
            let Some((name, value)) = line.split_once(" = ").or_else(|| line.split_once("\": "))
            else {
                continue;
            };
            let name = name.trim().trim_matches('"').to_ascii_lowercase();
            let value = value.trim().trim_end_matches(',');
            let harmless = matches!(value, "true" | "false") || value.starts_with("sha256(");
            if SECRET_ATTRIBUTES.iter().any(|s| name.contains(s)) && !harmless {
                panic!("{path}: {line:?} looks like a secret");
            }
            if name == "key" {
                assert_eq!(value, "\"cluster.tfstate\"", "{path}: {line}");
            }
        }
    }
    let outputs = &blueprint.files["terraform/outputs.tf"];
    let kubeconfig = outputs
        .split("output \"")
        .find(|block| block.starts_with("kube_config_raw\""))
        .expect("kube_config_raw output");
    assert!(kubeconfig.contains("sensitive = true"));
    for block in outputs.split("output \"").skip(1) {
        if block.contains("kube_config") || block.contains("sha256(") {
            assert!(block.contains("sensitive = true"), "{block}");
        }
    }
}
