//! Cloud names of a cluster's Azure resources. Derived from the spec only, so a re-render
//! names the same resources and the bootstrap step, terraform and the inventory agree.

use serde::Serialize;

use crate::clusters::ClusterSpec;

/// The Kubernetes service accounts that get a managed identity through workload identity
/// federation, and why each needs one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WorkloadIdentity {
    /// The identity's role, also the key of its terraform `for_each` instance.
    pub role: &'static str,
    pub namespace: &'static str,
    pub service_account: &'static str,
}

/// Karpenter creates nodes (VMs, NICs); Loki writes logs and Thanos writes metrics to the
/// cluster's storage account. The seed's three identities.
pub const WORKLOAD_IDENTITIES: [WorkloadIdentity; 3] = [
    WorkloadIdentity {
        role: "karpenter",
        namespace: "kube-system",
        service_account: "karpenter",
    },
    WorkloadIdentity {
        role: "storage",
        namespace: "logging",
        service_account: "loki",
    },
    WorkloadIdentity {
        role: "metrics",
        namespace: "monitoring",
        service_account: "thanos",
    },
];

impl WorkloadIdentity {
    /// The `sub` claim of the service account's projected token, which the federated
    /// credential trusts.
    pub fn subject(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.namespace, self.service_account
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AzureNames {
    /// `windlass-{name}-{short_id}`: at most 62 characters (a 40-character cluster name),
    /// which fits every Azure name limit it prefixes.
    pub prefix: String,
    pub resource_group: String,
    pub cluster: String,
    /// AKS limits the DNS prefix to 54 characters, which the prefix may exceed.
    pub dns_prefix: String,
    /// Set explicitly: AKS's default `MC_{rg}_{cluster}_{location}` can pass the 80
    /// character limit with our names.
    pub node_resource_group: String,
    pub virtual_network: String,
    /// 3-24 lowercase letters and digits, unique across Azure: `wl` + 12 hex digits + `sa`.
    pub storage_account: String,
    /// 5-50 letters and digits, unique across Azure.
    pub registry: String,
    pub kubeconfigs_container: String,
    pub logs_container: String,
    pub metrics_container: String,
    pub state_container: String,
}

impl AzureNames {
    pub fn new(spec: &ClusterSpec) -> Self {
        let short = spec.short_id();
        let prefix = format!("windlass-{}-{short}", spec.name);
        Self {
            resource_group: prefix.clone(),
            cluster: prefix.clone(),
            dns_prefix: format!("wl-{short}"),
            node_resource_group: format!("{prefix}-nodes"),
            virtual_network: format!("{prefix}-vnet"),
            storage_account: format!("wl{short}sa"),
            registry: format!("wl{short}acr"),
            kubeconfigs_container: format!("windlass-kubeconfigs-{short}"),
            logs_container: format!("windlass-logs-{short}"),
            metrics_container: format!("windlass-metrics-{short}"),
            // Named per cluster like the others: one storage emulator may hold many clusters.
            state_container: format!("windlass-tfstate-{short}"),
            prefix,
        }
    }

    // The per-zone and per-identity names below are spelt again in the templates as
    // `"${local.name}-…-${each.key}"`; the stand-in plan test compares the two.

    pub(crate) fn subnet(&self, zone: &str) -> String {
        format!("{}-zone-{zone}", self.prefix)
    }

    pub(crate) fn nat_gateway(&self, zone: &str) -> String {
        format!("{}-nat-{zone}", self.prefix)
    }

    pub(crate) fn public_ip(&self, zone: &str) -> String {
        format!("{}-nat-ip-{zone}", self.prefix)
    }

    pub(crate) fn identity(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }
}

/// Cloud names of a cluster's AWS resources. Most AWS resources have no name of their own
/// and are named by their `Name` tag; those are spelt again in the templates as
/// `"${local.name}-…-${each.key}"`, which the stand-in plan test compares with these.
#[derive(Debug, Clone, Serialize)]
pub struct AwsNames {
    /// `windlass-{name}-{short_id}`, at most 62 characters: the cluster (EKS allows 100)
    /// and every `Name` tag start with it.
    pub prefix: String,
    pub cluster: String,
    pub vpc: String,
    pub internet_gateway: String,
    pub public_route_table: String,
    /// IAM role names are limited to 64 characters, which the prefix plus a role could
    /// pass, so roles are named by the short id alone: `windlass-{short_id}-{role}`.
    pub iam_prefix: String,
    pub cluster_role: String,
    pub node_role: String,
    /// Logs (Loki) and metrics (Thanos, under `metrics/`). Bucket names are global: the
    /// short id keeps them unique, as it does the storage account's on Azure.
    pub telemetry_bucket: String,
    /// Terraform's own state, made by the bootstrap step before `terraform init`.
    pub state_bucket: String,
    pub repository: String,
}

impl AwsNames {
    pub fn new(spec: &ClusterSpec) -> Self {
        let short = spec.short_id();
        let prefix = format!("windlass-{}-{short}", spec.name);
        Self {
            cluster: prefix.clone(),
            vpc: format!("{prefix}-vpc"),
            internet_gateway: format!("{prefix}-igw"),
            public_route_table: format!("{prefix}-public"),
            iam_prefix: format!("windlass-{short}"),
            cluster_role: format!("windlass-{short}-cluster"),
            node_role: format!("windlass-{short}-node"),
            telemetry_bucket: format!("windlass-telemetry-{short}"),
            state_bucket: format!("windlass-tfstate-{short}"),
            repository: prefix.clone(),
            prefix,
        }
    }

    pub(crate) fn private_subnet(&self, zone: &str) -> String {
        format!("{}-private-{zone}", self.prefix)
    }

    pub(crate) fn public_subnet(&self, zone: &str) -> String {
        format!("{}-public-{zone}", self.prefix)
    }

    pub(crate) fn nat_gateway(&self, zone: &str) -> String {
        format!("{}-nat-{zone}", self.prefix)
    }

    pub(crate) fn elastic_ip(&self, zone: &str) -> String {
        format!("{}-nat-ip-{zone}", self.prefix)
    }

    pub(crate) fn private_route_table(&self, zone: &str) -> String {
        format!("{}-private-rt-{zone}", self.prefix)
    }

    /// The IRSA role of a workload identity.
    pub(crate) fn identity_role(&self, role: &str) -> String {
        format!("{}-{role}", self.iam_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_azure_limits_for_the_longest_cluster_name() {
        let mut spec = crate::blueprint::tests::aks_spec();
        spec.name = "a".repeat(40);
        let names = AzureNames::new(&spec);
        assert!(names.resource_group.len() <= 90);
        assert!(names.cluster.len() <= 63);
        assert!(names.dns_prefix.len() <= 54);
        assert!(names.node_resource_group.len() <= 80);
        assert!(names.subnet("3").len() <= 80);
        assert!(names.identity("karpenter").len() <= 128);
        let sa = &names.storage_account;
        assert!((3..=24).contains(&sa.len()));
        assert!(
            sa.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
        assert!(names.registry.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(names.kubeconfigs_container.len() <= 63);
    }

    #[test]
    fn names_fit_aws_limits_for_the_longest_cluster_name() {
        let mut spec = crate::blueprint::tests::aks_spec();
        spec.name = "a".repeat(40);
        let names = AwsNames::new(&spec);
        assert!(names.cluster.len() <= 100);
        for role in [&names.cluster_role, &names.node_role] {
            assert!(role.len() <= 64, "{role}");
        }
        assert_eq!(
            names.identity_role("karpenter"),
            "windlass-5f0c6a8e1d2b-karpenter"
        );
        assert!(names.identity_role("karpenter").len() <= 64);
        for bucket in [&names.telemetry_bucket, &names.state_bucket] {
            assert!((3..=63).contains(&bucket.len()), "{bucket}");
        }
        // Name tags are limited to 256 characters.
        assert!(names.private_route_table("3").len() <= 256);
    }
}
