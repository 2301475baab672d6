//! The aws resources Windlass's EKS blueprint uses: which service manages each, how the
//! real provider names it in its messages, and whether it carries tags.

/// One resource type of the blueprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Vpc,
    Subnet,
    InternetGateway,
    Eip,
    NatGateway,
    RouteTable,
    RouteTableAssociation,
    IamRole,
    IamRolePolicy,
    IamRolePolicyAttachment,
    OidcProvider,
    EksCluster,
    EksNodeGroup,
    EcrRepository,
    S3Bucket,
    S3BucketVersioning,
    S3BucketEncryption,
    S3BucketPublicAccessBlock,
}

/// The API behind a kind (each a module of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Ec2,
    Iam,
    Eks,
    Ecr,
    S3,
}

pub fn kind(type_name: &str) -> Option<Kind> {
    Some(match type_name {
        "aws_vpc" => Kind::Vpc,
        "aws_subnet" => Kind::Subnet,
        "aws_internet_gateway" => Kind::InternetGateway,
        "aws_eip" => Kind::Eip,
        "aws_nat_gateway" => Kind::NatGateway,
        "aws_route_table" => Kind::RouteTable,
        "aws_route_table_association" => Kind::RouteTableAssociation,
        "aws_iam_role" => Kind::IamRole,
        "aws_iam_role_policy" => Kind::IamRolePolicy,
        "aws_iam_role_policy_attachment" => Kind::IamRolePolicyAttachment,
        "aws_iam_openid_connect_provider" => Kind::OidcProvider,
        "aws_eks_cluster" => Kind::EksCluster,
        "aws_eks_node_group" => Kind::EksNodeGroup,
        "aws_ecr_repository" => Kind::EcrRepository,
        "aws_s3_bucket" => Kind::S3Bucket,
        "aws_s3_bucket_versioning" => Kind::S3BucketVersioning,
        "aws_s3_bucket_server_side_encryption_configuration" => Kind::S3BucketEncryption,
        "aws_s3_bucket_public_access_block" => Kind::S3BucketPublicAccessBlock,
        _ => return None,
    })
}

impl Kind {
    pub fn service(self) -> Service {
        match self {
            Kind::Vpc
            | Kind::Subnet
            | Kind::InternetGateway
            | Kind::Eip
            | Kind::NatGateway
            | Kind::RouteTable
            | Kind::RouteTableAssociation => Service::Ec2,
            Kind::IamRole
            | Kind::IamRolePolicy
            | Kind::IamRolePolicyAttachment
            | Kind::OidcProvider => Service::Iam,
            Kind::EksCluster | Kind::EksNodeGroup => Service::Eks,
            Kind::EcrRepository => Service::Ecr,
            Kind::S3Bucket
            | Kind::S3BucketVersioning
            | Kind::S3BucketEncryption
            | Kind::S3BucketPublicAccessBlock => Service::S3,
        }
    }

    /// How the real provider names the resource in its errors ("creating EC2 VPC: ...").
    pub fn label(self) -> &'static str {
        match self {
            Kind::Vpc => "EC2 VPC",
            Kind::Subnet => "EC2 Subnet",
            Kind::InternetGateway => "EC2 Internet Gateway",
            Kind::Eip => "EC2 EIP",
            Kind::NatGateway => "EC2 NAT Gateway",
            Kind::RouteTable => "Route Table",
            Kind::RouteTableAssociation => "Route Table Association",
            Kind::IamRole => "IAM Role",
            Kind::IamRolePolicy => "IAM Role Policy",
            Kind::IamRolePolicyAttachment => "IAM Role Policy Attachment",
            Kind::OidcProvider => "IAM OIDC Provider",
            Kind::EksCluster => "EKS Cluster",
            Kind::EksNodeGroup => "EKS Node Group",
            Kind::EcrRepository => "ECR Repository",
            Kind::S3Bucket => "S3 Bucket",
            Kind::S3BucketVersioning => "S3 Bucket Versioning",
            Kind::S3BucketEncryption => "S3 Bucket Server-side Encryption Configuration",
            Kind::S3BucketPublicAccessBlock => "S3 Bucket Public Access Block",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_the_blueprint_is_known() {
        for name in [
            "aws_vpc",
            "aws_subnet",
            "aws_internet_gateway",
            "aws_eip",
            "aws_nat_gateway",
            "aws_route_table",
            "aws_route_table_association",
            "aws_iam_role",
            "aws_iam_role_policy",
            "aws_iam_role_policy_attachment",
            "aws_iam_openid_connect_provider",
            "aws_eks_cluster",
            "aws_eks_node_group",
            "aws_ecr_repository",
            "aws_s3_bucket",
            "aws_s3_bucket_versioning",
            "aws_s3_bucket_server_side_encryption_configuration",
            "aws_s3_bucket_public_access_block",
        ] {
            assert!(kind(name).is_some(), "{name}");
        }
        assert_eq!(kind("aws_instance"), None);
    }
}
