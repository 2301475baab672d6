//! What of an EKS cluster's blueprint already exists in the account, for the
//! reconciliation before an apply (`crate::terraform::reconcile`): an earlier attempt may
//! have died after AWS made a resource and before terraform recorded it.
//!
//! The network's resources have no unique name, so the aws provider would create a second
//! VPC, subnet or NAT gateway where the first attempt's already stands. They are found by
//! the cluster's tags (every resource carries `cluster_id`, and each its `Name`) through
//! the Resource Groups Tagging API, and imported before the apply. Named resources (IAM
//! roles, the EKS cluster and node groups, the registry, buckets) are refused by AWS when
//! they exist; the apply adopts those from the refusal ([`aws_refused_as_existing`]).

use temporalio_sdk::activities::ActivityError;
use windlass_core::blueprint::{Blueprint, InventoryItem, ResourceKind};
use windlass_core::clusters::ClusterSpec;
use windlass_workflows::cluster_contracts::AwsTarget;

use super::AwsClients;
use crate::error::{FailureCode, retryable};
use crate::terraform::{Diagnostic, ExistingResource};

/// The EC2 resource types (as their ARNs spell them) found by tag, and their kinds.
const TAGGED_KINDS: [(&str, ResourceKind); 6] = [
    ("vpc", ResourceKind::Vpc),
    ("subnet", ResourceKind::Subnet),
    ("internet-gateway", ResourceKind::InternetGateway),
    ("elastic-ip", ResourceKind::ElasticIp),
    ("natgateway", ResourceKind::NatGateway),
    ("route-table", ResourceKind::RouteTable),
];

/// The network's resources of `blueprint` that exist in the cloud, found by the cluster's
/// tags.
pub(super) async fn tagged_existing(
    clients: &AwsClients,
    target: &AwsTarget,
    blueprint: &Blueprint,
    spec: &ClusterSpec,
) -> Result<Vec<ExistingResource>, ActivityError> {
    let tagged = tagged_resources(clients, target, spec).await?;
    Ok(record(blueprint, &tagged))
}

/// A resource the Tagging API found: its ARN and its `Name` tag.
#[derive(Debug, Clone)]
pub(super) struct Tagged {
    pub arn: String,
    pub name: Option<String>,
}

async fn tagged_resources(
    clients: &AwsClients,
    target: &AwsTarget,
    spec: &ClusterSpec,
) -> Result<Vec<Tagged>, ActivityError> {
    let tagging = clients.tagging(target, &spec.region).await?;
    let mut found = Vec::new();
    let mut pages = tagging
        .get_resources()
        .tag_filters(
            aws_sdk_resourcegroupstagging::types::TagFilter::builder()
                .key("cluster_id")
                .values(spec.id.to_string())
                .build(),
        )
        .set_resource_type_filters(Some(
            TAGGED_KINDS
                .iter()
                .map(|(ty, _)| format!("ec2:{ty}"))
                .collect(),
        ))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            retryable(
                std::io::Error::other(
                    aws_sdk_resourcegroupstagging::error::DisplayErrorContext(e).to_string(),
                ),
                FailureCode::AwsUnavailable,
                None,
            )
        })?;
        for mapping in page.resource_tag_mapping_list() {
            let Some(arn) = mapping.resource_arn() else {
                continue;
            };
            let name = mapping
                .tags()
                .iter()
                .find(|t| t.key() == "Name")
                .map(|t| t.value().to_owned());
            found.push(Tagged {
                arn: arn.to_owned(),
                name,
            });
        }
    }
    Ok(found)
}

/// The blueprint's tagged kinds matched with what was found: a resource is the inventory
/// item of its kind whose name is its `Name` tag; its import id is the id in its ARN.
pub(super) fn record(blueprint: &Blueprint, tagged: &[Tagged]) -> Vec<ExistingResource> {
    let covered: Vec<&InventoryItem> = blueprint
        .inventory
        .terraform_managed()
        .filter(|item| TAGGED_KINDS.iter().any(|(_, kind)| *kind == item.kind))
        .collect();
    let mut existing = Vec::new();
    for resource in tagged {
        // arn:aws:ec2:<region>:<account>:<type>/<id>
        let Some((ty, id)) = resource
            .arn
            .rsplit(':')
            .next()
            .and_then(|r| r.split_once('/'))
        else {
            continue;
        };
        let Some((_, kind)) = TAGGED_KINDS.iter().find(|(t, _)| *t == ty) else {
            continue;
        };
        let Some(name) = &resource.name else {
            continue;
        };
        if let Some(item) = covered
            .iter()
            .find(|item| item.kind == *kind && &item.name == name)
        {
            existing.push(ExistingResource {
                address: item.terraform_address.clone(),
                import_id: id.to_owned(),
            });
        }
    }
    existing.sort();
    existing.dedup_by(|a, b| a.address == b.address);
    existing
}

/// The AWS error codes that mean "it already exists", as the aws provider reports them
/// (`..., api error EntityAlreadyExists: Role with name X already exists.`).
const ALREADY_EXISTS: [&str; 5] = [
    "EntityAlreadyExists",
    "ResourceInUseException",
    "RepositoryAlreadyExistsException",
    "BucketAlreadyOwnedByYou",
    "Resource.AlreadyAssociated",
];

/// The named resources an apply was refused because they exist, with their import ids
/// (from the blueprint's inventory: what the refusal names is what the blueprint names;
/// an OIDC provider's is its ARN in `account_id`, from the URL IAM's refusal names).
pub(super) fn aws_refused_as_existing(
    diagnostics: &[Diagnostic],
    blueprint: &Blueprint,
    account_id: &str,
) -> Vec<ExistingResource> {
    let items: Vec<&InventoryItem> = blueprint.inventory.terraform_managed().collect();
    let cluster_name = items
        .iter()
        .find(|i| i.terraform_address == "aws_eks_cluster.this")
        .map(|i| i.name.clone());
    let mut found: Vec<ExistingResource> = diagnostics
        .iter()
        .filter(|d| d.severity == "error")
        .filter(|d| {
            ALREADY_EXISTS
                .iter()
                .any(|code| d.summary.contains(code) || d.detail.contains(code))
        })
        .filter_map(|d| {
            let address = d.address.clone()?;
            let item = items.iter().find(|i| i.terraform_address == address)?;
            let import_id = match item.kind {
                ResourceKind::IamRole
                | ResourceKind::KubernetesCluster
                | ResourceKind::EcrRepository
                | ResourceKind::S3Bucket => item.name.clone(),
                ResourceKind::NodeGroup => format!("{}:{}", cluster_name.as_ref()?, item.name),
                ResourceKind::OidcProvider => {
                    let text = format!("{} {}", d.summary, d.detail);
                    let start = text.find("Provider with url ")? + "Provider with url ".len();
                    let url = text[start..].split_whitespace().next()?;
                    let issuer = url.trim_start_matches("https://");
                    format!("arn:aws:iam::{account_id}:oidc-provider/{issuer}")
                }
                _ => return None,
            };
            Some(ExistingResource { address, import_id })
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use windlass_core::blueprint::Inventory;
    use windlass_core::blueprint::Origin;

    fn blueprint() -> Blueprint {
        let item = |kind, name: &str, address: &str| InventoryItem {
            kind,
            name: name.into(),
            terraform_address: address.into(),
            origin: Origin::Terraform,
        };
        let resources = vec![
            item(ResourceKind::Vpc, "prod-vpc", "aws_vpc.this"),
            item(
                ResourceKind::Subnet,
                "prod-private-1",
                r#"aws_subnet.private["1"]"#,
            ),
            item(
                ResourceKind::ElasticIp,
                "prod-nat-ip-1",
                r#"aws_eip.nat["1"]"#,
            ),
            item(
                ResourceKind::KubernetesCluster,
                "prod",
                "aws_eks_cluster.this",
            ),
            item(
                ResourceKind::NodeGroup,
                "system",
                r#"aws_eks_node_group.pool["system"]"#,
            ),
            item(ResourceKind::IamRole, "prod-node", "aws_iam_role.node"),
            item(
                ResourceKind::OidcProvider,
                "OIDC issuer of prod",
                "aws_iam_openid_connect_provider.this",
            ),
        ];
        Blueprint {
            files: Default::default(),
            inventory: Inventory { resources },
        }
    }

    fn refused(address: &str, detail: &str) -> Diagnostic {
        Diagnostic {
            severity: "error".into(),
            summary: "creating it".into(),
            detail: detail.into(),
            address: Some(address.into()),
        }
    }

    #[test]
    fn tagged_resources_are_the_inventory_items_of_their_kind_and_name() {
        let tagged = [
            Tagged {
                arn: "arn:aws:ec2:eu-west-3:123456789012:vpc/vpc-1".into(),
                name: Some("prod-vpc".into()),
            },
            Tagged {
                arn: "arn:aws:ec2:eu-west-3:123456789012:subnet/subnet-1".into(),
                name: Some("prod-private-1".into()),
            },
            Tagged {
                arn: "arn:aws:ec2:eu-west-3:123456789012:elastic-ip/eipalloc-1".into(),
                name: Some("prod-nat-ip-1".into()),
            },
            // Another resource with the same tag but another name, or another kind.
            Tagged {
                arn: "arn:aws:ec2:eu-west-3:123456789012:subnet/subnet-2".into(),
                name: Some("prod-vpc".into()),
            },
            Tagged {
                arn: "arn:aws:ec2:eu-west-3:123456789012:vpc/vpc-2".into(),
                name: None,
            },
        ];
        let found: Vec<(String, String)> = record(&blueprint(), &tagged)
            .into_iter()
            .map(|r| (r.address, r.import_id))
            .collect();
        assert_eq!(
            found,
            [
                (r#"aws_eip.nat["1"]"#.to_owned(), "eipalloc-1".to_owned()),
                (
                    r#"aws_subnet.private["1"]"#.to_owned(),
                    "subnet-1".to_owned()
                ),
                ("aws_vpc.this".to_owned(), "vpc-1".to_owned()),
            ]
        );
    }

    #[test]
    fn refusals_of_named_resources_are_adopted_by_their_names() {
        let diagnostics = [
            refused(
                "aws_iam_role.node",
                "operation error IAM: CreateRole, https response error StatusCode: 409, api error EntityAlreadyExists: Role with name prod-node already exists.",
            ),
            refused(
                r#"aws_eks_node_group.pool["system"]"#,
                "api error ResourceInUseException: NodeGroup already exists with name system and cluster name prod",
            ),
            refused(
                "aws_iam_openid_connect_provider.this",
                "api error EntityAlreadyExists: Provider with url https://oidc.eks.eu-west-3.amazonaws.com/id/ABC already exists.",
            ),
            // Not an "exists" refusal.
            refused("aws_vpc.this", "api error UnauthorizedOperation: no"),
        ];
        let found: Vec<(String, String)> =
            aws_refused_as_existing(&diagnostics, &blueprint(), "123456789012")
                .into_iter()
                .map(|r| (r.address, r.import_id))
                .collect();
        assert_eq!(
            found,
            [
                (
                    r#"aws_eks_node_group.pool["system"]"#.to_owned(),
                    "prod:system".to_owned()
                ),
                (
                    "aws_iam_openid_connect_provider.this".to_owned(),
                    "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-3.amazonaws.com/id/ABC"
                        .to_owned()
                ),
                ("aws_iam_role.node".to_owned(), "prod-node".to_owned()),
            ]
        );
    }
}
