//! What a blueprint creates in the customer's account, resource by resource: the list the
//! API shows before anything is provisioned, and what tests hold the rendered terraform to.

use serde::{Deserialize, Serialize};

/// The kind of a cloud resource, named after what the cloud calls it rather than after a
/// terraform type, so both renderings (and both clouds) share one vocabulary.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    ResourceGroup,
    KubernetesCluster,
    /// A node pool besides the default (system) pool, which is part of the cluster resource.
    NodePool,
    VirtualNetwork,
    Subnet,
    NatGateway,
    PublicIp,
    /// Binds a NAT gateway to its public IP (its own resource in azurerm).
    NatGatewayPublicIpAssociation,
    /// Binds a zone's subnet to that zone's NAT gateway.
    SubnetNatGatewayAssociation,
    StorageAccount,
    /// A workload blob container: kubeconfigs, logs, metrics.
    BlobContainer,
    /// The blob container holding terraform's own state. Kept apart from
    /// [`ResourceKind::BlobContainer`] because it serves the provisioning, not the cluster.
    StateContainer,
    ContainerRegistry,
    ManagedIdentity,
    FederatedCredential,
    RoleAssignment,
    /// A cloud-managed load balancer (AKS's standard one, or the NLB EKS makes for
    /// ingress-nginx's Service).
    LoadBalancer,
    // AWS (EKS). Subnet, NatGateway and KubernetesCluster above are shared with Azure.
    Vpc,
    InternetGateway,
    /// A NAT gateway's static address.
    ElasticIp,
    RouteTable,
    /// Binds a subnet to its route table (its own resource in the aws provider).
    RouteTableAssociation,
    IamRole,
    /// A permission grant to an IAM role: an AWS-managed policy attached, or an inline
    /// policy. AWS's counterpart of [`ResourceKind::RoleAssignment`].
    IamRolePolicy,
    /// The cluster's OIDC issuer registered in IAM, which IRSA roles trust.
    OidcProvider,
    /// An EKS managed node group; on EKS every node pool, the system one included, is one.
    NodeGroup,
    /// A workload bucket: logs and metrics.
    S3Bucket,
    /// Versioning, encryption or public access block of a bucket (each its own resource
    /// in the aws provider).
    S3BucketConfiguration,
    /// The bucket holding terraform's own state, apart from [`ResourceKind::S3Bucket`] for
    /// the reason [`ResourceKind::StateContainer`] is.
    StateBucket,
    EcrRepository,
}

/// Who brings a resource into existence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Created by the blueprint's terraform.
    Terraform,
    /// Created before terraform by the bootstrap step (the state backend must exist before
    /// `terraform init`), then adopted by terraform through an `import` block.
    Bootstrap,
    /// Created by a cloud service on the blueprint's behalf (the AKS-managed load
    /// balancer): listed so the inventory is complete, but not a terraform resource.
    CloudManaged,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InventoryItem {
    pub kind: ResourceKind,
    /// The name in the cloud, or a description where the cloud generates the name
    /// (role assignments are GUIDs).
    pub name: String,
    /// The resource's address in the rendered terraform; for a cloud-managed resource, the
    /// address of the resource that makes the cloud create it.
    pub terraform_address: String,
    pub origin: Origin,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Inventory {
    pub resources: Vec<InventoryItem>,
}

impl Inventory {
    pub fn count(&self, kind: ResourceKind) -> usize {
        self.resources.iter().filter(|r| r.kind == kind).count()
    }

    /// The items terraform holds in its state: what a plan from empty state creates.
    pub fn terraform_managed(&self) -> impl Iterator<Item = &InventoryItem> {
        self.resources
            .iter()
            .filter(|r| r.origin != Origin::CloudManaged)
    }

    pub(crate) fn push(
        &mut self,
        kind: ResourceKind,
        name: impl Into<String>,
        terraform_address: impl Into<String>,
        origin: Origin,
    ) {
        self.resources.push(InventoryItem {
            kind,
            name: name.into(),
            terraform_address: terraform_address.into(),
            origin,
        });
    }
}
