//! Blueprints: the terraform and helm values that provision a cluster, rendered from its
//! spec. "We deploy, you run": a blueprint is self-contained, so a customer can export it
//! and run it without Windlass (its README says how).
//!
//! Rendering is a pure function of the spec and the cloud account: no I/O, no clock, no
//! randomness, so the same spec renders the same files, which is what lets a workflow
//! activity re-render a blueprint on retry and find nothing changed. Templates are files
//! under `core/templates/`, embedded at build time.

mod aks;
mod context;
mod eks;
pub mod helm;
mod inventory;
mod maintenance;
mod names;
mod templates;

use std::collections::BTreeMap;

use serde::Serialize;

pub use helm::{ClusterChartValues, output_reference, render_values};
pub use inventory::{Inventory, InventoryItem, Origin, ResourceKind};
pub use names::{AwsNames, AzureNames, WORKLOAD_IDENTITIES, WorkloadIdentity};

use crate::cloud_accounts::{CloudAccount, CloudProvider};
use crate::clusters::ClusterSpec;
use crate::{Error, Result};

/// A rendered blueprint: file path (relative to the blueprint's root) to content, and the
/// resources it creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Blueprint {
    /// `terraform/*.tf`, `terraform/terraform.tfvars.json`, `helm/<chart>.values.json`,
    /// `README.md`.
    pub files: BTreeMap<String, String>,
    pub inventory: Inventory,
}

/// Renders the blueprint of `spec` in `account`.
pub fn render(spec: &ClusterSpec, account: &CloudAccount) -> Result<Blueprint> {
    spec.validate()?;
    if spec.cloud_account_id != account.id || spec.provider != account.provider {
        return Err(Error::InvalidInput(format!(
            "cluster {} belongs to cloud account {} ({}), not {} ({})",
            spec.id,
            spec.cloud_account_id,
            spec.provider.as_str(),
            account.id,
            account.provider.as_str()
        )));
    }
    let templates = templates::Templates::new();
    let mut blueprint = match spec.provider {
        CloudProvider::Azure => aks::render(spec, account, &templates)?,
        CloudProvider::Aws => eks::render(spec, account, &templates)?,
    };
    blueprint
        .files
        .extend(render_values(spec, account)?.files());
    Ok(blueprint)
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    use crate::clusters::{NetworkSpec, NodePoolSpec};
    use crate::maintenance::MaintenanceWindow;

    use super::*;

    pub(crate) fn aks_spec() -> ClusterSpec {
        ClusterSpec {
            id: Uuid::parse_str("5f0c6a8e-1d2b-4c3d-9e8f-0a1b2c3d4e5f").unwrap(),
            organization_id: Uuid::nil(),
            cloud_account_id: Uuid::nil(),
            provider: CloudProvider::Azure,
            name: "prod-eu".into(),
            region: "westeurope".into(),
            kubernetes_version: "1.33".into(),
            node_pool_version: None,
            network: NetworkSpec::default(),
            node_pools: vec![NodePoolSpec::default_system_pool(CloudProvider::Azure)],
            maintenance_window: MaintenanceWindow::default(),
            placement: None,
            environment_types: crate::clusters::every_environment_type(),
            created_at: DateTime::parse_from_rfc3339("2026-11-24T20:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    pub(crate) fn azure_account() -> CloudAccount {
        CloudAccount {
            id: Uuid::nil(),
            organization_id: Uuid::nil(),
            provider: CloudProvider::Azure,
            tenant_id: "11111111-2222-3333-4444-555555555555".into(),
            external_id: "66666666-7777-8888-9999-000000000000".into(),
            verification: crate::cloud_accounts::Verification::Verified,
            verified_at: None,
            display_name: "prod".into(),
            created_at: DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    #[test]
    fn rendering_is_deterministic() {
        let a = render(&aks_spec(), &azure_account()).unwrap();
        let b = render(&aks_spec(), &azure_account()).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn a_spec_of_another_account_is_refused() {
        let mut account = azure_account();
        account.id = Uuid::from_u128(7);
        let err = render(&aks_spec(), &account).unwrap_err();
        assert!(
            err.to_string().contains("belongs to cloud account"),
            "{err}"
        );
    }
}
