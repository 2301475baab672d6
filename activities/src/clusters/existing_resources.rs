//! What of a cluster's blueprint already exists in its cloud, for the reconciliation before
//! an apply (`crate::terraform::reconcile`): an earlier attempt may have died after the
//! cloud made a resource and before terraform recorded it.
//!
//! - Azure: nothing to look up ahead. azurerm reads before it creates and refuses what
//!   exists, naming its ARM id; the apply then imports it (`crate::terraform::already_existing`).
//! - AWS: the network's resources have no unique name, so the aws provider would create a
//!   second VPC, subnet or NAT gateway where the first attempt's already stands. They are
//!   found by the cluster's tags (every resource carries `cluster_id`, and each its `Name`)
//!   through the Resource Groups Tagging API, and imported before the apply. Named
//!   resources (IAM roles, the EKS cluster and node groups, the registry, buckets) are
//!   refused by AWS when they exist; the apply adopts those from the refusal
//!   ([`aws_refused_as_existing`]).

use temporalio_sdk::activities::ActivityError;
use windlass_core::blueprint::{Blueprint, InventoryItem, ResourceKind};
use windlass_core::clusters::ClusterSpec;
use windlass_workflows::cluster_contracts::{AwsTarget, CloudTarget};

use super::ClusterWork;
use crate::error::retryable;
use crate::terraform::{Diagnostic, ExistingResource};

/// What of the blueprint the cloud has.
pub(super) struct ExistenceRecord {
    pub existing: Vec<ExistingResource>,
}

/// The EC2 resource types (as their ARNs spell them) found by tag, and their kinds.
const TAGGED_KINDS: [(&str, ResourceKind); 6] = [
    ("vpc", ResourceKind::Vpc),
    ("subnet", ResourceKind::Subnet),
    ("internet-gateway", ResourceKind::InternetGateway),
    ("elastic-ip", ResourceKind::ElasticIp),
    ("natgateway", ResourceKind::NatGateway),
    ("route-table", ResourceKind::RouteTable),
];

/// What of the blueprint exists in the cloud; `None` where nothing is looked up ahead.
pub(super) async fn existing_resources(
    work: &ClusterWork,
    target: &CloudTarget,
    blueprint: &Blueprint,
    spec: &ClusterSpec,
) -> Result<Option<ExistenceRecord>, ActivityError> {
    let CloudTarget::Aws(target) = target else {
        return Ok(None);
    };
    let Some(clients) = &work.aws else {
        return Ok(None);
    };
    let tagged = tagged_resources(clients, target, spec).await?;
    Ok(Some(record(blueprint, &tagged)))
}

/// A resource the Tagging API found: its ARN and its `Name` tag.
#[derive(Debug, Clone)]
pub(super) struct Tagged {
    pub arn: String,
    pub name: Option<String>,
}

async fn tagged_resources(
    clients: &super::AwsClients,
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
                "AwsUnavailable",
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
pub(super) fn record(blueprint: &Blueprint, tagged: &[Tagged]) -> ExistenceRecord {
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
    ExistenceRecord { existing }
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
/// (from the blueprint's inventory: what the refusal names is what the blueprint names).
pub(super) fn aws_refused_as_existing(
    diagnostics: &[Diagnostic],
    blueprint: &Blueprint,
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
                _ => return None,
            };
            Some(ExistingResource { address, import_id })
        })
        .collect();
    found.sort();
    found.dedup();
    found
}
