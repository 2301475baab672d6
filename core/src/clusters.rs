//! Kubernetes clusters Windlass provisions in a customer's cloud account.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::audit::Environment;
use crate::cloud_accounts::CloudProvider;
use crate::maintenance::MaintenanceWindow;
use crate::{Error, Result};

/// What a cluster should look like. Everything the blueprint renders comes from here and
/// from the cloud account it lives in; nothing in it is secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClusterSpec {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub cloud_account_id: Uuid,
    pub provider: CloudProvider,
    /// A DNS-label name, unique within the organisation.
    pub name: String,
    /// Azure location (`westeurope`) or AWS region (`eu-west-3`).
    pub region: String,
    /// `major.minor` (`1.33`): the cloud picks the patch release.
    pub kubernetes_version: String,
    /// The node pools' `major.minor` while an upgrade has moved the control plane and not
    /// yet the pools; none means the cluster's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_pool_version: Option<String>,
    pub network: NetworkSpec,
    pub node_pools: Vec<NodePoolSpec>,
    pub maintenance_window: MaintenanceWindow,
    /// Where the cluster's work runs: a region or a customer's own worker pool (workers
    /// started with `--placement <it>`); none: the shared queues. Deployments to the
    /// cluster go to `windlass-environment@<placement>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<String>,
    /// The environment types the cluster hosts: an environment of another type is refused
    /// (a production cluster need not take previews). Default: every type.
    #[serde(default = "every_environment_type")]
    pub environment_types: Vec<Environment>,
    pub created_at: DateTime<Utc>,
}

pub fn every_environment_type() -> Vec<Environment> {
    Environment::ALL.to_vec()
}

/// A placement is 1 to 63 lowercase letters, digits and dashes, so the queue names made
/// from it stay readable and cannot collide with another kind's.
pub fn validate_placement(placement: &str) -> Result<()> {
    let ok = (1..=63).contains(&placement.len())
        && placement
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !placement.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "placement {placement:?} must be 1 to 63 lowercase letters, digits and dashes"
        )))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NetworkSpec {
    /// The VNet (Azure) or VPC (AWS) range; one /20 subnet per zone is carved from it.
    pub cidr: String,
    /// Availability zones, one subnet, NAT gateway and public IP each.
    pub zones: Vec<String>,
}

impl Default for NetworkSpec {
    fn default() -> Self {
        Self {
            cidr: "10.0.0.0/16".into(),
            zones: vec!["1".into(), "2".into(), "3".into()],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodePoolSpec {
    pub name: String,
    /// Azure VM size (`Standard_D4s_v5`) or EC2 instance type (`m6i.xlarge`).
    pub instance_type: String,
    pub min_count: u32,
    pub max_count: u32,
}

impl NodePoolSpec {
    pub fn default_system_pool(provider: CloudProvider) -> Self {
        Self {
            name: "system".into(),
            instance_type: provider.default_instance_type().into(),
            min_count: 3,
            max_count: 6,
        }
    }
}

impl ClusterSpec {
    /// Checks what the cloud would otherwise reject halfway through a provisioning run.
    pub fn validate(&self) -> Result<()> {
        if let Some(placement) = &self.placement {
            validate_placement(placement)?;
        }
        let invalid = |m: String| Err(Error::InvalidInput(m));
        let types = &self.environment_types;
        if types.is_empty() || (1..types.len()).any(|i| types[..i].contains(&types[i])) {
            return invalid(
                "environment_types: one or more distinct environment types the cluster hosts"
                    .into(),
            );
        }
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 40
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !self.name.starts_with('-')
            && !self.name.ends_with('-');
        if !name_ok {
            return invalid(format!(
                "cluster name {:?} must be 1-40 lowercase letters, digits or inner hyphens",
                self.name
            ));
        }
        if self.region.is_empty()
            || !self
                .region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return invalid(format!("region {:?} is not a region name", self.region));
        }
        let Some(control_plane) = parse_minor_version(&self.kubernetes_version) else {
            return invalid(format!(
                "kubernetes_version {:?} must be major.minor, like 1.33",
                self.kubernetes_version
            ));
        };
        if let Some(pools) = &self.node_pool_version {
            match parse_minor_version(pools) {
                Some(v) if v <= control_plane => {}
                _ => {
                    return invalid(format!(
                        "node_pool_version {pools:?} must be major.minor, at most kubernetes_version"
                    ));
                }
            }
        }
        let prefix = cidr_prefix(&self.network.cidr).ok_or_else(|| {
            Error::InvalidInput(format!(
                "network.cidr {:?} is not an IPv4 CIDR",
                self.network.cidr
            ))
        })?;
        if !(8..=18).contains(&prefix) {
            return invalid(format!(
                "network.cidr {} must be between /8 and /18 to hold one /20 per zone",
                self.network.cidr
            ));
        }
        let zones = self.network.zones.len();
        if zones == 0 || zones > 16 || (1usize << (20 - prefix)) < zones {
            return invalid(format!(
                "network.cidr {} cannot hold {zones} /20 subnets",
                self.network.cidr
            ));
        }
        if self.node_pools.is_empty() {
            return invalid("at least one node pool is needed".into());
        }
        for pool in &self.node_pools {
            if pool.name.is_empty()
                || pool.name.len() > 12
                || !pool
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            {
                return invalid(format!(
                    "node pool name {:?} must be 1-12 lowercase letters or digits",
                    pool.name
                ));
            }
            if pool.min_count > pool.max_count || pool.max_count == 0 {
                return invalid(format!(
                    "node pool {}: min_count {} and max_count {} are not a range",
                    pool.name, pool.min_count, pool.max_count
                ));
            }
        }
        self.maintenance_window.validate()
    }

    pub fn node_pool_version(&self) -> &str {
        self.node_pool_version
            .as_deref()
            .unwrap_or(&self.kubernetes_version)
    }

    /// The day the cluster was created, as its resources' `creation_date` tag carries it.
    pub fn creation_date(&self) -> String {
        self.created_at.format("%Y-%m-%d").to_string()
    }

    /// The seed's tags, on every resource Windlass makes for the cluster (the bootstrap's
    /// through the cloud API, the rest through the blueprint).
    pub fn resource_tags(&self) -> std::collections::BTreeMap<String, String> {
        std::collections::BTreeMap::from([
            ("cluster_id".to_owned(), self.id.to_string()),
            (
                "organization_id".to_owned(),
                self.organization_id.to_string(),
            ),
            ("region".to_owned(), self.region.clone()),
            ("creation_date".to_owned(), self.creation_date()),
        ])
    }

    /// The first 12 hex digits of the id: short enough for Azure's name limits, unique
    /// enough within a subscription.
    pub fn short_id(&self) -> String {
        self.id.simple().to_string()[..12].to_owned()
    }

    /// The zone subnets: consecutive /20s from the start of the network range.
    pub fn zone_subnets(&self) -> Vec<String> {
        let (base, _) = parse_cidr(&self.network.cidr).expect("validated");
        (0..self.network.zones.len() as u32)
            .map(|i| {
                let address = base + (i << 12);
                format!("{}/20", std::net::Ipv4Addr::from(address))
            })
            .collect()
    }
}

/// `1.33` -> (1, 33).
pub fn parse_minor_version(version: &str) -> Option<(u32, u32)> {
    let (major, minor) = version.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn parse_cidr(cidr: &str) -> Option<(u32, u32)> {
    let (address, prefix) = cidr.split_once('/')?;
    let address: std::net::Ipv4Addr = address.parse().ok()?;
    let prefix: u32 = prefix.parse().ok()?;
    (prefix <= 32).then_some((u32::from(address), prefix))
}

fn cidr_prefix(cidr: &str) -> Option<u32> {
    parse_cidr(cidr).map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn aks() -> ClusterSpec {
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

    #[test]
    fn the_default_network_holds_three_zonal_slash_20s() {
        let spec = aks();
        spec.validate().unwrap();
        assert_eq!(
            spec.zone_subnets(),
            ["10.0.0.0/20", "10.0.16.0/20", "10.0.32.0/20"]
        );
    }

    #[test]
    fn bad_specs_are_refused_with_the_field_named() {
        let mut spec = aks();
        spec.network.cidr = "10.0.0.0/24".into();
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("network.cidr")
        );
        let mut spec = aks();
        spec.kubernetes_version = "latest".into();
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("kubernetes_version")
        );
        let mut spec = aks();
        spec.node_pools[0].min_count = 9;
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("not a range")
        );
        let mut spec = aks();
        spec.name = "Prod_EU".into();
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("cluster name")
        );
    }
}
