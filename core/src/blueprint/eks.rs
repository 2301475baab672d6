//! The EKS blueprint: terraform for a cluster's AWS inventory, in the cloud rendering (the
//! aws provider) or the stand-in one (`terraform_data` with the same attributes). Built
//! like the AKS blueprint, so the runner, the inventory and the README treat both alike.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::Serialize;
use serde_json::json;

use super::Blueprint;
use super::context::{CloudTemplates, ClusterContext, tfvars_json};
use super::inventory::{Inventory, Origin, ResourceKind};
use super::names::{AwsNames, WORKLOAD_IDENTITIES};
use super::templates::Templates;
use crate::cloud_accounts::CloudAccount;
use crate::clusters::ClusterSpec;
use crate::{Error, Result};

/// The terraform files, in the order a reader would open them (the AKS set, with eks.tf).
const TERRAFORM_FILES: [&str; 10] = [
    "versions.tf",
    "backend.tf",
    "locals.tf",
    "variables.tf",
    "network.tf",
    "storage.tf",
    "registry.tf",
    "identity.tf",
    "eks.tf",
    "outputs.tf",
];

/// Public subnets hold only the NAT gateways and internet-facing load balancers, so a /24
/// per zone is plenty; they are carved from the top of the network range, downwards, which
/// leaves the /20s at its bottom (`ClusterSpec::zone_subnets`) as they are on Azure.
const PUBLIC_SUBNET_PREFIX: u32 = 24;

/// The AWS-managed policies of the EKS control plane and of the nodes.
pub(crate) const CLUSTER_POLICIES: [(&str, &str); 1] = [(
    "cluster_policy",
    "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
)];
pub(crate) const NODE_POLICIES: [(&str, &str); 3] = [
    (
        "node_worker",
        "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    ),
    ("node_cni", "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"),
    (
        "node_ecr_read",
        "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
    ),
];

#[derive(Serialize)]
struct Context<'a> {
    names: &'a AwsNames,
    #[serde(flatten)]
    cluster: ClusterContext<'a>,
    account_id: &'a str,
    identities: Vec<IdentityContext>,
    cluster_policies: BTreeMap<&'static str, &'static str>,
    node_policies: BTreeMap<&'static str, &'static str>,
    /// S3 refuses a `LocationConstraint` of us-east-1, its default region (README).
    location_constraint: bool,
    maintenance: String,
}

#[derive(Serialize)]
struct IdentityContext {
    role: &'static str,
    subject: String,
    role_name: String,
}

/// One availability zone's share of the network, keyed by the spec's zone in tfvars.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Zone {
    availability_zone: String,
    private_cidr: String,
    public_cidr: String,
}

pub(crate) fn render(
    spec: &ClusterSpec,
    account: &CloudAccount,
    templates: &Templates,
) -> Result<Blueprint> {
    check_account(account)?;
    let zones = zones(spec)?;
    let names = AwsNames::new(spec);
    let inventory = inventory(spec, &names);
    let window = &spec.maintenance_window;
    let context = Context {
        names: &names,
        cluster: ClusterContext::of(spec, &inventory),
        account_id: &account.external_id,
        identities: WORKLOAD_IDENTITIES
            .iter()
            .map(|w| IdentityContext {
                role: w.role,
                subject: w.subject(),
                role_name: names.identity_role(w.role),
            })
            .collect(),
        cluster_policies: CLUSTER_POLICIES.into_iter().collect(),
        node_policies: NODE_POLICIES.into_iter().collect(),
        location_constraint: spec.region != "us-east-1",
        maintenance: format!(
            "{} {} UTC for {} minutes",
            window.weekday,
            window.start.format("%H:%M"),
            window.duration_minutes
        ),
    };

    let files = CloudTemplates {
        templates,
        dir: "eks",
        terraform_files: &TERRAFORM_FILES,
        readme: "eks/README.md",
    }
    .files(&context, tfvars(spec, account, &zones))?;
    Ok(Blueprint { files, inventory })
}

/// The account id goes into the provider's `allowed_account_ids` and every ARN; anything
/// but twelve digits would only fail at apply time, or name another account's resources.
fn check_account(account: &CloudAccount) -> Result<()> {
    let id = &account.external_id;
    if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::InvalidInput(format!(
            "cloud account {}: an AWS account needs its 12-digit account id, not {id:?}",
            account.id
        )));
    }
    Ok(())
}

/// The spec's zones `1`, `2`, `3`… are the region's availability zones `a`, `b`, `c`…
/// (no region has more than six), each with its private /20 and public /24.
fn zones(spec: &ClusterSpec) -> Result<BTreeMap<String, Zone>> {
    // EKS refuses a control plane whose subnets are not in at least two zones.
    if spec.network.zones.len() < 2 {
        return Err(Error::InvalidInput(
            "an EKS cluster needs at least two zones".into(),
        ));
    }
    let network = ipv4_range(&spec.network.cidr).expect("validated by ClusterSpec::validate");
    let private = spec.zone_subnets();
    let mut zones = BTreeMap::new();
    for (i, (zone, private_cidr)) in spec.network.zones.iter().zip(private).enumerate() {
        let letter = match zone.parse::<u8>() {
            Ok(n @ 1..=6) => char::from(b'a' + n - 1),
            _ => {
                return Err(Error::InvalidInput(format!(
                    "zone {zone:?}: AWS zones are given as 1 to 6, for the region's a to f"
                )));
            }
        };
        let size = 1u32 << (32 - PUBLIC_SUBNET_PREFIX);
        // `i + 1` blocks down from the end of the range; validate() bounds zones to 16.
        let public_first = network.1.wrapping_sub((i as u32 + 1) * size - 1);
        if public_first < network.0 {
            return Err(too_small(spec));
        }
        let zone_network = Zone {
            availability_zone: format!("{}{letter}", spec.region),
            private_cidr,
            public_cidr: format!("{}/{PUBLIC_SUBNET_PREFIX}", Ipv4Addr::from(public_first)),
        };
        // Keys of the zones' for_each: a repeated zone would silently lose its subnets.
        if zones.insert(zone.clone(), zone_network).is_some() {
            return Err(Error::InvalidInput(format!(
                "zone {zone:?} is listed twice"
            )));
        }
    }
    // The public /24s grow down from the top, the private /20s up from the bottom: with
    // too many zones for the range they meet.
    for public in zones.values() {
        for private in zones.values() {
            let public = ipv4_range(&public.public_cidr).expect("rendered CIDR");
            let private = ipv4_range(&private.private_cidr).expect("rendered CIDR");
            if overlaps(public, private) {
                return Err(too_small(spec));
            }
        }
    }
    Ok(zones)
}

fn too_small(spec: &ClusterSpec) -> Error {
    Error::InvalidInput(format!(
        "network.cidr {} cannot hold a /20 and a /{PUBLIC_SUBNET_PREFIX} per zone for {} zones",
        spec.network.cidr,
        spec.network.zones.len()
    ))
}

/// First and last address of a CIDR.
fn ipv4_range(cidr: &str) -> Option<(u32, u32)> {
    let (address, prefix) = cidr.split_once('/')?;
    let address = u32::from(address.parse::<Ipv4Addr>().ok()?);
    let prefix: u32 = prefix.parse().ok()?;
    let size = 1u64 << (32 - prefix.min(32));
    let first = address & !((size - 1) as u32);
    Some((first, first + (size - 1) as u32))
}

fn overlaps(a: (u32, u32), b: (u32, u32)) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}

/// The inputs a person may tune when running the blueprint themselves; names and tags
/// stay in locals.tf because changing them would replace resources.
fn tfvars(spec: &ClusterSpec, account: &CloudAccount, zones: &BTreeMap<String, Zone>) -> String {
    // On EKS every pool is a managed node group: there is no default pool inside the
    // cluster resource as on AKS.
    let node_pools: BTreeMap<&str, serde_json::Value> = spec
        .node_pools
        .iter()
        .map(|p| {
            let pool = json!({
                "instance_types": [p.instance_type],
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
        "account_id": account.external_id,
        "region": spec.region,
        "kubernetes_version": spec.kubernetes_version,
        "node_pool_version": spec.node_pool_version(),
        "network_cidr": spec.network.cidr,
        "zones": zones,
        "node_pools": node_pools,
        "workload_identities": identities,
    });
    tfvars_json(&vars)
}

/// The resource list, with each item's terraform address.
fn inventory(spec: &ClusterSpec, names: &AwsNames) -> Inventory {
    let address = |ty: &str, name: &str, key: Option<&str>| {
        let base = format!("{ty}.{name}");
        match key {
            Some(k) => format!("{base}[\"{k}\"]"),
            None => base,
        }
    };
    // What the bootstrap step makes before terraform exists.
    let adopted = Origin::Bootstrap;
    use Origin::Terraform as Tf;
    use ResourceKind as K;

    let mut inv = Inventory::default();
    inv.push(K::Vpc, &names.vpc, address("aws_vpc", "this", None), Tf);
    inv.push(
        K::InternetGateway,
        &names.internet_gateway,
        address("aws_internet_gateway", "this", None),
        Tf,
    );
    inv.push(
        K::RouteTable,
        &names.public_route_table,
        address("aws_route_table", "public", None),
        Tf,
    );
    for zone in &spec.network.zones {
        let z = Some(zone.as_str());
        inv.push(
            K::Subnet,
            names.private_subnet(zone),
            address("aws_subnet", "private", z),
            Tf,
        );
        inv.push(
            K::Subnet,
            names.public_subnet(zone),
            address("aws_subnet", "public", z),
            Tf,
        );
        inv.push(
            K::ElasticIp,
            names.elastic_ip(zone),
            address("aws_eip", "nat", z),
            Tf,
        );
        inv.push(
            K::NatGateway,
            names.nat_gateway(zone),
            address("aws_nat_gateway", "zone", z),
            Tf,
        );
        inv.push(
            K::RouteTable,
            names.private_route_table(zone),
            address("aws_route_table", "private", z),
            Tf,
        );
        inv.push(
            K::RouteTableAssociation,
            format!(
                "{} ↔ {}",
                names.public_subnet(zone),
                names.public_route_table
            ),
            address("aws_route_table_association", "public", z),
            Tf,
        );
        inv.push(
            K::RouteTableAssociation,
            format!(
                "{} ↔ {}",
                names.private_subnet(zone),
                names.private_route_table(zone)
            ),
            address("aws_route_table_association", "private", z),
            Tf,
        );
    }
    for (bucket, name, kind, origin) in [
        (&names.telemetry_bucket, "telemetry", K::S3Bucket, Tf),
        (&names.state_bucket, "tfstate", K::StateBucket, adopted),
    ] {
        inv.push(kind, bucket, address("aws_s3_bucket", name, None), origin);
        // Set by terraform on the adopted bucket too: the calls are idempotent.
        for (ty, what) in [
            ("aws_s3_bucket_versioning", "versioning"),
            (
                "aws_s3_bucket_server_side_encryption_configuration",
                "encryption",
            ),
            ("aws_s3_bucket_public_access_block", "public access block"),
        ] {
            inv.push(
                K::S3BucketConfiguration,
                format!("{bucket}: {what}"),
                address(ty, name, None),
                Tf,
            );
        }
    }
    inv.push(
        K::EcrRepository,
        &names.repository,
        address("aws_ecr_repository", "this", None),
        Tf,
    );
    inv.push(
        K::IamRole,
        &names.cluster_role,
        address("aws_iam_role", "cluster", None),
        Tf,
    );
    inv.push(
        K::IamRole,
        &names.node_role,
        address("aws_iam_role", "node", None),
        Tf,
    );
    for (role, policies) in [
        (&names.cluster_role, &CLUSTER_POLICIES[..]),
        (&names.node_role, &NODE_POLICIES[..]),
    ] {
        for (name, arn) in policies {
            let policy = arn.rsplit('/').next().expect("an ARN");
            inv.push(
                K::IamRolePolicy,
                format!("{role}: {policy}"),
                address("aws_iam_role_policy_attachment", name, None),
                Tf,
            );
        }
    }
    for w in &WORKLOAD_IDENTITIES {
        // It trusts `w.subject()` through the OIDC provider (the README lists them).
        inv.push(
            K::IamRole,
            names.identity_role(w.role),
            address("aws_iam_role", "workload", Some(w.role)),
            Tf,
        );
        inv.push(
            K::IamRolePolicy,
            names.identity_role(w.role),
            address("aws_iam_role_policy", w.role, None),
            Tf,
        );
    }
    let cluster = address("aws_eks_cluster", "this", None);
    inv.push(K::KubernetesCluster, &names.cluster, &cluster, Tf);
    inv.push(
        K::OidcProvider,
        format!("OIDC issuer of {}", names.cluster),
        address("aws_iam_openid_connect_provider", "this", None),
        Tf,
    );
    for pool in &spec.node_pools {
        inv.push(
            K::NodeGroup,
            &pool.name,
            address("aws_eks_node_group", "pool", Some(&pool.name)),
            Tf,
        );
    }
    // EKS makes a network load balancer in the public subnets when ingress-nginx's Service
    // of type LoadBalancer appears (the chart's values ask for an NLB).
    inv.push(
        K::LoadBalancer,
        format!("{}: ingress-nginx NLB", names.cluster),
        cluster,
        Origin::CloudManaged,
    );
    inv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud_accounts::CloudProvider;
    use crate::clusters::NetworkSpec;

    fn spec(cidr: &str, zones: &[&str]) -> ClusterSpec {
        let mut spec = crate::blueprint::tests::aks_spec();
        spec.provider = CloudProvider::Aws;
        spec.region = "eu-west-3".into();
        spec.network = NetworkSpec {
            cidr: cidr.into(),
            zones: zones.iter().map(|z| z.to_string()).collect(),
        };
        spec
    }

    #[test]
    fn public_subnets_come_from_the_top_of_the_range() {
        let zones = zones(&spec("10.0.0.0/16", &["1", "2", "3"])).unwrap();
        let got: Vec<_> = zones
            .values()
            .map(|z| {
                (
                    z.availability_zone.as_str(),
                    z.private_cidr.as_str(),
                    z.public_cidr.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("eu-west-3a", "10.0.0.0/20", "10.0.255.0/24"),
                ("eu-west-3b", "10.0.16.0/20", "10.0.254.0/24"),
                ("eu-west-3c", "10.0.32.0/20", "10.0.253.0/24"),
            ]
        );
    }

    #[test]
    fn a_range_without_room_for_public_subnets_is_refused() {
        // A /18 holds four /20s and nothing else.
        let err = zones(&spec("10.0.0.0/18", &["1", "2", "3", "4"])).unwrap_err();
        assert!(err.to_string().contains("cannot hold"), "{err}");
        zones(&spec("10.0.0.0/18", &["1", "2", "3"])).unwrap();
        let err = zones(&spec("10.0.0.0/16", &["1", "7"])).unwrap_err();
        assert!(err.to_string().contains("1 to 6"), "{err}");
        let err = zones(&spec("10.0.0.0/16", &["1", "1"])).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
        let err = zones(&spec("10.0.0.0/16", &["1"])).unwrap_err();
        assert!(err.to_string().contains("two zones"), "{err}");
    }
}
