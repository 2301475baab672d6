//! EKS blueprint rendering: the inventory, the rendered HCL against the inventory, tags,
//! no secrets in any file, formatting and helm values. (The provider stand-in's
//! `apply_aws` applies this blueprint against moto.)

use std::collections::BTreeSet;

use windlass_core::Error;
use windlass_core::blueprint::{Blueprint, Origin, ResourceKind as K, render, render_values};
use windlass_core::cloud_accounts::{CloudAccount, CloudProvider};
use windlass_core::clusters::{ClusterSpec, NetworkSpec, NodePoolSpec};

use windlass_test_support::clusters::{assert_no_secrets, eks_cluster, resource_addresses, tfvars};

mod real_terraform;
use real_terraform::{tf, write};

fn spec() -> ClusterSpec {
    eks_cluster().0
}

fn account() -> CloudAccount {
    eks_cluster().1
}

const SHORT_ID: &str = "5f0c6a8e1d2b";

/// The spec with a second pool, so every for_each over pools has more than one key.
fn spec_with_batch_pool() -> ClusterSpec {
    let mut spec = spec();
    spec.node_pools.push(NodePoolSpec {
        name: "batch".into(),
        instance_type: "c6i.2xlarge".into(),
        min_count: 0,
        max_count: 10,
    });
    spec
}

fn addresses_of(blueprint: &Blueprint, kind: K) -> BTreeSet<&str> {
    blueprint
        .inventory
        .resources
        .iter()
        .filter(|r| r.kind == kind)
        .map(|r| r.terraform_address.as_str())
        .collect()
}

#[test]
fn the_eks_inventory_has_what_an_eks_cluster_needs() {
    let blueprint = render(&spec(), &account()).unwrap();
    let inv = &blueprint.inventory;
    for (kind, count) in [
        (K::Vpc, 1),
        (K::Subnet, 6),
        (K::InternetGateway, 1),
        (K::NatGateway, 3),
        (K::ElasticIp, 3),
        // One public, one private per zone.
        (K::RouteTable, 4),
        (K::RouteTableAssociation, 6),
        (K::KubernetesCluster, 1),
        (K::NodeGroup, 1),
        (K::OidcProvider, 1),
        // Control plane, nodes, and the three IRSA roles.
        (K::IamRole, 5),
        // Four AWS-managed policies attached, three inline.
        (K::IamRolePolicy, 7),
        (K::S3Bucket, 1),
        (K::StateBucket, 1),
        (K::S3BucketConfiguration, 6),
        (K::EcrRepository, 1),
        (K::LoadBalancer, 1),
    ] {
        assert_eq!(inv.count(kind), count, "{kind:?}");
    }
    // Nothing of Azure's vocabulary.
    for kind in [
        K::ResourceGroup,
        K::VirtualNetwork,
        K::PublicIp,
        K::NodePool,
    ] {
        assert_eq!(inv.count(kind), 0, "{kind:?}");
    }
    let subnets = addresses_of(&blueprint, K::Subnet);
    for zone in ["1", "2", "3"] {
        assert!(subnets.contains(format!(r#"aws_subnet.private["{zone}"]"#).as_str()));
        assert!(subnets.contains(format!(r#"aws_subnet.public["{zone}"]"#).as_str()));
    }
    let irsa: BTreeSet<&str> = addresses_of(&blueprint, K::IamRole)
        .into_iter()
        .filter(|a| a.starts_with("aws_iam_role.workload["))
        .collect();
    assert_eq!(
        irsa,
        [
            r#"aws_iam_role.workload["karpenter"]"#,
            r#"aws_iam_role.workload["metrics"]"#,
            r#"aws_iam_role.workload["storage"]"#,
        ]
        .into_iter()
        .collect()
    );

    let names: BTreeSet<&str> = inv.resources.iter().map(|r| r.name.as_str()).collect();
    for name in [
        "windlass-prod-eu-5f0c6a8e1d2b",
        "windlass-prod-eu-5f0c6a8e1d2b-vpc",
        "windlass-prod-eu-5f0c6a8e1d2b-private-1",
        "windlass-prod-eu-5f0c6a8e1d2b-public-3",
        "windlass-5f0c6a8e1d2b-karpenter",
        "windlass-5f0c6a8e1d2b-cluster",
        "windlass-5f0c6a8e1d2b-node",
        "windlass-telemetry-5f0c6a8e1d2b",
        "windlass-tfstate-5f0c6a8e1d2b",
        "system",
    ] {
        assert!(names.contains(name), "{name} missing from {names:?}");
    }
    let lb = inv
        .resources
        .iter()
        .find(|r| r.kind == K::LoadBalancer)
        .unwrap();
    assert_eq!(lb.origin, Origin::CloudManaged);
    assert_eq!(lb.terraform_address, "aws_eks_cluster.this");

    // The state bucket exists before terraform: made by the bootstrap step, adopted by an
    // import block, and it is the only such resource.
    let bootstrap: Vec<_> = inv
        .resources
        .iter()
        .filter(|r| r.origin == Origin::Bootstrap)
        .collect();
    assert_eq!(bootstrap.len(), 1);
    assert_eq!(bootstrap[0].kind, K::StateBucket);
    assert_eq!(bootstrap[0].terraform_address, "aws_s3_bucket.tfstate");
    let imports = &blueprint.files["terraform/imports.tf"];
    assert!(
        imports.contains("to = aws_s3_bucket.tfstate\n"),
        "{imports}"
    );
    assert!(imports.contains("id = local.state_bucket\n"), "{imports}");
    assert_eq!(imports.matches("import {").count(), 1);
}

#[test]
fn the_rendered_resource_blocks_are_the_inventory() {
    {
        let blueprint = render(&spec_with_batch_pool(), &account()).unwrap();
        let inventory: BTreeSet<String> = blueprint
            .inventory
            .terraform_managed()
            .map(|r| r.terraform_address.clone())
            .collect();
        assert_eq!(resource_addresses(&blueprint), inventory);
        assert_eq!(blueprint.inventory.count(K::NodeGroup), 2);
    }
    // Every kind in the cloud rendering is its aws type.
    let blueprint = render(&spec(), &account()).unwrap();
    let hcl: String = blueprint.files.values().cloned().collect();
    for (ty, blocks) in [
        ("aws_vpc", 1),
        ("aws_subnet", 2),
        ("aws_internet_gateway", 1),
        ("aws_eip", 1),
        ("aws_nat_gateway", 1),
        ("aws_route_table", 2),
        ("aws_route_table_association", 2),
        ("aws_eks_cluster", 1),
        ("aws_eks_node_group", 1),
        ("aws_iam_openid_connect_provider", 1),
        ("aws_iam_role", 3),
        ("aws_iam_role_policy_attachment", 4),
        ("aws_iam_role_policy", 3),
        ("aws_s3_bucket", 2),
        ("aws_s3_bucket_versioning", 2),
        ("aws_s3_bucket_server_side_encryption_configuration", 2),
        ("aws_s3_bucket_public_access_block", 2),
        ("aws_ecr_repository", 1),
    ] {
        assert_eq!(
            hcl.matches(&format!("resource \"{ty}\" ")).count(),
            blocks,
            "{ty}"
        );
    }
}

#[test]
fn the_cloud_rendering_has_the_eks_settings() {
    let blueprint = render(&spec_with_batch_pool(), &account()).unwrap();
    let versions = &blueprint.files["terraform/versions.tf"];
    for setting in [
        r#"source  = "hashicorp/aws""#,
        r#"version = "~> 6.0""#,
        "allowed_account_ids = [var.account_id]",
        "default_tags {",
        "tags = local.tags",
    ] {
        assert!(versions.contains(setting), "versions.tf lacks {setting}");
    }
    let eks = &blueprint.files["terraform/eks.tf"];
    for setting in [
        "version  = var.kubernetes_version",
        r#"authentication_mode                         = "API""#,
        "endpoint_private_access = true",
        "endpoint_public_access  = true",
        "role_arn = aws_iam_role.cluster.arn",
        "node_role_arn   = aws_iam_role.node.arn",
        "instance_types  = each.value.instance_types",
        "subnet_ids      = [for subnet in aws_subnet.private : subnet.id]",
        "min_size     = each.value.min_count",
        "max_size     = each.value.max_count",
    ] {
        assert!(eks.contains(setting), "eks.tf lacks {setting}");
    }
    // Node groups follow node_pool_version, which lags the control plane mid-upgrade.
    let node_group = eks
        .split("resource \"aws_eks_node_group\" \"pool\"")
        .nth(1)
        .unwrap();
    assert!(node_group.contains("version = var.node_pool_version"));
    assert!(!node_group.contains("var.kubernetes_version"));

    let vars = tfvars(&blueprint);
    assert_eq!(
        vars["zones"],
        serde_json::json!({
            "1": {"availability_zone": "eu-west-3a", "private_cidr": "10.0.0.0/20", "public_cidr": "10.0.255.0/24"},
            "2": {"availability_zone": "eu-west-3b", "private_cidr": "10.0.16.0/20", "public_cidr": "10.0.254.0/24"},
            "3": {"availability_zone": "eu-west-3c", "private_cidr": "10.0.32.0/20", "public_cidr": "10.0.253.0/24"},
        })
    );
    assert_eq!(
        vars["node_pools"]["system"],
        serde_json::json!({"instance_types": ["m6i.xlarge"], "min_count": 3, "max_count": 6})
    );
    assert_eq!(vars["node_pools"]["batch"]["min_count"], 0);
    assert_eq!(vars["account_id"], "123456789012");
    assert_eq!(vars["kubernetes_version"], "1.33");
    assert_eq!(vars["node_pool_version"], "1.33");

    let network = &blueprint.files["terraform/network.tf"];
    for setting in [
        "cidr_block = var.network_cidr",
        "nat_gateway_id = aws_nat_gateway.zone[each.key].id",
        "gateway_id = aws_internet_gateway.this.id",
        "subnet_id     = aws_subnet.public[each.key].id",
        r#"domain = "vpc""#,
    ] {
        assert!(network.contains(setting), "network.tf lacks {setting}");
    }

    let backend = &blueprint.files["terraform/backend.tf"];
    for setting in [
        r#"backend "s3" {"#,
        &format!(r#"bucket       = "windlass-tfstate-{SHORT_ID}""#),
        r#"key          = "cluster.tfstate""#,
        r#"region       = "eu-west-3""#,
        "encrypt      = true",
        "use_lockfile = true",
    ] {
        assert!(backend.contains(setting), "backend.tf lacks {setting}");
    }

    let storage = &blueprint.files["terraform/storage.tf"];
    for setting in [
        r#"status = "Enabled""#,
        r#"sse_algorithm = "AES256""#,
        "block_public_acls       = true",
        "restrict_public_buckets = true",
    ] {
        assert_eq!(storage.matches(setting).count(), 2, "{setting}");
    }

    let identity = &blueprint.files["terraform/identity.tf"];
    for policy in [
        "AmazonEKSClusterPolicy",
        "AmazonEKSWorkerNodePolicy",
        "AmazonEKS_CNI_Policy",
        "AmazonEC2ContainerRegistryReadOnly",
    ] {
        assert!(
            identity.contains(&format!("\"arn:aws:iam::aws:policy/{policy}\"")),
            "{policy}"
        );
    }
    for setting in [
        r#"client_id_list = ["sts.amazonaws.com"]"#,
        r#"Action    = "sts:AssumeRoleWithWebIdentity""#,
        r#""${local.oidc_issuer_host}:sub" = "system:serviceaccount:${each.value.namespace}:${each.value.service_account}""#,
        "Federated = aws_iam_openid_connect_provider.this.arn",
    ] {
        assert!(identity.contains(setting), "identity.tf lacks {setting}");
    }
    assert_eq!(
        vars["workload_identities"],
        serde_json::json!({
            "karpenter": {"namespace": "kube-system", "service_account": "karpenter"},
            "storage": {"namespace": "logging", "service_account": "loki"},
            "metrics": {"namespace": "monitoring", "service_account": "thanos"},
        })
    );

    let outputs = &blueprint.files["terraform/outputs.tf"];
    let output_names = |text: &str| -> BTreeSet<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix("output \""))
            .map(|l| l.trim_end_matches("\" {").to_owned())
            .collect()
    };
    let names = output_names(outputs);
    for output in [
        "cluster_name",
        "cluster_endpoint",
        "oidc_issuer_url",
        "kube_config_raw",
        "karpenter_role_arn",
        "storage_role_arn",
        "metrics_role_arn",
        "telemetry_bucket",
        "repository_url",
    ] {
        assert!(names.contains(output), "{output}");
    }
    assert!(outputs.contains(r#"args       = ["eks", "get-token", "--cluster-name""#));

    let readme = &blueprint.files["README.md"];
    assert!(readme.contains("no managed maintenance window"), "{readme}");
    assert!(readme.contains("Windlass's weekly\nschedule does the upgrades"));
    assert!(readme.contains("Tue 21:00 UTC for 120 minutes"), "{readme}");
    assert!(readme.contains("--create-bucket-configuration LocationConstraint=eu-west-3"));
}

#[test]
fn resources_carry_the_clusters_tags() {
    let blueprint = render(&spec(), &account()).unwrap();
    let locals = &blueprint.files["terraform/locals.tf"];
    for tag in [
        r#"cluster_id      = "5f0c6a8e-1d2b-4c3d-9e8f-0a1b2c3d4e5f""#,
        r#"organization_id = "0b9d6c1e-3f4a-4b5c-8d7e-9f0a1b2c3d4e""#,
        r#"region          = "eu-west-3""#,
        r#"creation_date   = "2026-11-24""#,
    ] {
        assert!(locals.contains(tag), "locals.tf lacks {tag}");
    }
    // Every resource of the cloud rendering gets them through the provider's default_tags.
    let versions = &blueprint.files["terraform/versions.tf"];
    let provider = versions.split("provider \"aws\" {").nth(1).unwrap();
    assert!(provider.contains("default_tags {\n    tags = local.tags\n  }"));
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
    assert_eq!(vars["zones"]["2"]["private_cidr"], "172.20.16.0/20");
    assert_eq!(vars["zones"]["2"]["public_cidr"], "172.20.254.0/24");
    assert_eq!(vars["zones"]["2"]["availability_zone"], "eu-west-3b");
    for (kind, count) in [
        (K::Subnet, 4),
        (K::NatGateway, 2),
        (K::ElasticIp, 2),
        (K::RouteTable, 3),
    ] {
        assert_eq!(blueprint.inventory.count(kind), count, "{kind:?}");
    }
    let addresses = resource_addresses(&blueprint);
    assert!(addresses.contains(r#"aws_nat_gateway.zone["2"]"#));
    assert!(!addresses.contains(r#"aws_nat_gateway.zone["3"]"#));

    // Four /20s fill a /18: no room is left for the public subnets.
    spec.network = NetworkSpec {
        cidr: "10.0.0.0/18".into(),
        zones: ["1", "2", "3", "4"].map(String::from).to_vec(),
    };
    let err = render(&spec, &account()).unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)));
    assert!(err.to_string().contains("cannot hold"), "{err}");

    spec.network = NetworkSpec {
        cidr: "10.0.0.0/16".into(),
        zones: vec!["1".into(), "9".into()],
    };
    let err = render(&spec, &account()).unwrap_err();
    assert!(err.to_string().contains("AWS zones"), "{err}");
}

#[test]
fn an_account_without_a_12_digit_id_is_refused() {
    for bad in [
        "12345678901",
        "1234567890123",
        "12345678901a",
        "66666666-7777-8888-9999-000000000000",
        "",
    ] {
        let mut account = account();
        account.external_id = bad.into();
        let err = render(&spec(), &account).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{bad}");
        assert!(err.to_string().contains("12-digit account id"), "{err}");
    }
    // An Azure account is not an AWS one, whatever its ids.
    let mut account = account();
    account.provider = CloudProvider::Azure;
    let err = render(&spec(), &account).unwrap_err();
    assert!(
        err.to_string().contains("belongs to cloud account"),
        "{err}"
    );
}

#[test]
fn rendering_is_deterministic() {
    {
        let a = render(&spec(), &account()).unwrap();
        let b = render(&spec(), &account()).unwrap();
        assert_eq!(a, b);
    }
}

/// Values or shapes that are credentials, wherever they appear (the AKS test's list, with
/// AWS's key shapes added).
/// Attributes whose value would be a secret if set; the backend's `key` is an object name.
#[test]
fn no_file_holds_a_secret() {
    assert_no_secrets(&render(&spec(), &account()).unwrap());
    // The kubeconfig fetches a short-lived token as whoever uses it.
    let cloud = render(&spec(), &account()).unwrap();
    let outputs = &cloud.files["terraform/outputs.tf"];
    assert!(outputs.contains(r#"command    = "aws""#));
    assert!(!outputs.contains("token ="));
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
    let json = |chart: &str| -> serde_json::Value {
        serde_json::from_str(&blueprint.files[&format!("helm/{chart}.values.json")]).unwrap()
    };
    for (chart, output) in [
        ("karpenter", "karpenter_role_arn"),
        ("loki", "storage_role_arn"),
        ("thanos", "metrics_role_arn"),
    ] {
        let values = json(chart);
        assert_eq!(
            values["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"],
            format!("${{{output}}}"),
            "{chart}"
        );
        assert!(outputs.contains(&format!("output \"{output}\"")));
        // Nothing of Azure's workload identity.
        let text = values.to_string();
        assert!(!text.contains("azure"), "{chart}: {text}");
    }
    let loki = json("loki");
    assert_eq!(loki["loki"]["storage"]["type"], "s3");
    assert_eq!(
        loki["loki"]["storage"]["bucketNames"]["chunks"],
        format!("windlass-telemetry-{SHORT_ID}")
    );
    assert_eq!(loki["loki"]["storage"]["s3"]["region"], "eu-west-3");
    let thanos = json("thanos");
    assert_eq!(thanos["objstoreConfig"]["type"], "S3");
    assert_eq!(thanos["objstoreConfig"]["prefix"], "metrics");
    assert_eq!(
        thanos["objstoreConfig"]["config"]["bucket"],
        format!("windlass-telemetry-{SHORT_ID}")
    );
    // The prefix the metrics role is limited to.
    assert!(blueprint.files["terraform/locals.tf"].contains(r#"metrics_prefix = "metrics""#));
    let karpenter = json("karpenter");
    assert_eq!(
        karpenter["settings"],
        serde_json::json!({
            "clusterName": "windlass-prod-eu-5f0c6a8e1d2b",
            "clusterEndpoint": "${cluster_endpoint}",
        })
    );
    assert!(outputs.contains("output \"cluster_endpoint\""));
    assert_eq!(
        json("ingress-nginx")["controller"]["service"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-type"],
        "nlb"
    );
    assert_eq!(json("windlass-agent")["cluster"]["provider"], "aws");
    assert!(blueprint.files["README.md"].contains("envsubst"));

    // render_values alone gives the same files.
    assert_eq!(
        render_values(&spec(), &account()).unwrap().files()["helm/loki.values.json"],
        blueprint.files["helm/loki.values.json"]
    );
}

// ---- the real terraform ----

#[test]
fn the_blueprint_is_formatted_as_terraform_fmt_would() {
    for spec in [spec(), spec_with_batch_pool()] {
        let dir = tempfile::tempdir().unwrap();
        write(&render(&spec, &account()).unwrap(), dir.path());
        tf(dir.path(), &["fmt", "-check", "-diff", "-recursive"]);
    }
}
