//! The whole exported EKS blueprint applied by the real terraform through the provider
//! stand-in against moto, the AWS emulator: the state bucket the bootstrap step made is
//! imported (its import block), everything else created once, a second plan finds
//! nothing to do; a retried apply after losing the state is refused where the real
//! provider refuses it (the names already exist) instead of adopting what exists, and the
//! lost state is recovered by importing every resource by the real provider's import ids;
//! a configuration for another account, or without moto's endpoint, is refused; a node
//! group's bounds and tags are updated in place; destroy removes what apply made. What is
//! checked is moto's own record, read through the AWS APIs (the S3 and EKS SDKs, EC2's
//! and IAM's Query protocol), not what terraform reports.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use windlass_test_support::clusters::eks_cluster;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use windlass_core::blueprint::{AwsNames, Blueprint, render};
use windlass_core::cloud_accounts::CloudAccount;
use windlass_core::clusters::ClusterSpec;
use windlass_provider_standin::mirror::{self, MirroredProvider};
use windlass_standins::moto::{ACCOUNT_ID, Moto};

const REGION: &str = "eu-west-3";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cluster() -> (ClusterSpec, CloudAccount) {
    eks_cluster()
}

struct Bed {
    moto: Moto,
    dir: tempfile::TempDir,
    cli_config: PathBuf,
    names: AwsNames,
    blueprint: Blueprint,
    s3: aws_sdk_s3::Client,
    eks: aws_sdk_eks::Client,
    http: reqwest::Client,
}

impl Bed {
    async fn start() -> Self {
        // The blueprint attaches AWS's managed policies to its roles.
        let moto = Moto::start_with_aws_managed_policies().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cli_config = mirror::install(
            dir.path(),
            Path::new(env!("CARGO_BIN_EXE_windlass-provider-standin")),
            &mirror::schema_dir(&repo_root()),
            &[MirroredProvider::new("aws", mirror::AWS_NEWEST)],
        )
        .unwrap();
        let (spec, account) = cluster();
        let blueprint = render(&spec, &account).unwrap();
        let credentials = Credentials::new("testing", "testing", None, None, "test");
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(REGION))
                .endpoint_url(moto.endpoint())
                .force_path_style(true)
                .credentials_provider(credentials.clone())
                .build(),
        );
        let eks = aws_sdk_eks::Client::from_conf(
            aws_sdk_eks::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(REGION))
                .endpoint_url(moto.endpoint())
                .credentials_provider(credentials)
                .build(),
        );
        Self {
            moto,
            dir,
            cli_config,
            names: AwsNames::new(&spec),
            blueprint,
            s3,
            eks,
            http: reqwest::Client::new(),
        }
    }

    /// A fresh working directory with the exported terraform files, its state kept
    /// locally (as the worker's backend override does).
    fn workdir(&self, name: &str) -> PathBuf {
        let dir = self.dir.path().join(name);
        for (path, text) in &self.blueprint.files {
            if let Some(file) = path.strip_prefix("terraform/") {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join(file), text).unwrap();
            }
        }
        std::fs::write(
            dir.join("windlass_backend_override.tf"),
            "terraform {\n  backend \"local\" {}\n}\n",
        )
        .unwrap();
        dir
    }

    fn terraform(&self, dir: &Path, args: &[&str]) -> (bool, String) {
        self.terraform_with(dir, args, |command| command)
    }

    /// Terraform in `dir` with the test's environment, adjusted by `adjust`.
    fn terraform_with(
        &self,
        dir: &Path,
        args: &[&str],
        adjust: impl FnOnce(&mut Command) -> &mut Command,
    ) -> (bool, String) {
        let mut command = Command::new(repo_root().join(".tools/bin/terraform"));
        command
            .args(args)
            .current_dir(dir)
            // The machine's own CLI configuration would install the registry's provider.
            .env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .env("AWS_ENDPOINT_URL", self.moto.endpoint())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env("WINDLASS_STANDIN_AWS_POLL_SECONDS", "0");
        let out = adjust(&mut command).output().unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    fn tf(&self, dir: &Path, args: &[&str]) -> String {
        let (ok, output) = self.terraform(dir, args);
        assert!(ok, "terraform {args:?}:\n{output}");
        output
    }

    /// What the bootstrap step makes before terraform runs (the state bucket, versioned,
    /// encrypted and closed to the public), made here through S3.
    async fn bootstrap(&self) {
        use aws_sdk_s3::types::{
            BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration,
            PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
            ServerSideEncryptionConfiguration, ServerSideEncryptionRule, VersioningConfiguration,
        };
        let bucket = &self.names.state_bucket;
        self.s3
            .create_bucket()
            .bucket(bucket)
            .create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(REGION))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        self.s3
            .put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        self.s3
            .put_bucket_encryption()
            .bucket(bucket)
            .server_side_encryption_configuration(
                ServerSideEncryptionConfiguration::builder()
                    .rules(
                        ServerSideEncryptionRule::builder()
                            .apply_server_side_encryption_by_default(
                                ServerSideEncryptionByDefault::builder()
                                    .sse_algorithm(ServerSideEncryption::Aes256)
                                    .build()
                                    .unwrap(),
                            )
                            .build(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        self.s3
            .put_public_access_block()
            .bucket(bucket)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }

    /// One Query protocol call to moto (EC2 or IAM); the answer's status and XML text.
    /// moto reads the service and region from the credential scope and checks no
    /// signature.
    async fn query(&self, service: &str, params: &[(&str, &str)]) -> (u16, String) {
        let (version, region) = match service {
            "iam" => ("2010-05-08", "us-east-1"),
            _ => ("2016-11-15", REGION),
        };
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("Version", version)
            .extend_pairs(params.iter().copied())
            .finish();
        let response = self
            .http
            .post(format!("{}/", self.moto.endpoint()))
            .header("content-type", "application/x-www-form-urlencoded")
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/{service}/aws4_request, SignedHeaders=host, Signature=0"
                ),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// How many `<element>` the answer of an EC2 Describe call holds.
    async fn ec2_count(&self, params: &[(&str, &str)], element: &str) -> usize {
        let (status, text) = self.query("ec2", params).await;
        assert_eq!(status, 200, "{params:?}: {text}");
        text.matches(&format!("<{element}>")).count()
    }

    async fn role_exists(&self, name: &str) -> bool {
        let (status, text) = self
            .query("iam", &[("Action", "GetRole"), ("RoleName", name)])
            .await;
        match status {
            200 => true,
            404 => false,
            _ => panic!("GetRole {name}: {status} {text}"),
        }
    }

    async fn vpc_id(&self) -> Option<String> {
        let (status, text) = self
            .query(
                "ec2",
                &[
                    ("Action", "DescribeVpcs"),
                    ("Filter.1.Name", "tag:Name"),
                    ("Filter.1.Value.1", &self.names.vpc),
                ],
            )
            .await;
        assert_eq!(status, 200, "{text}");
        let ids: Vec<_> = text
            .split("<vpcId>")
            .skip(1)
            .filter_map(|t| t.split("</vpcId>").next())
            .collect();
        assert!(
            ids.len() <= 1,
            "more than one VPC is named {}: {text}",
            self.names.vpc
        );
        ids.first().map(|id| (*id).to_owned())
    }

    async fn bucket_exists(&self, bucket: &str) -> bool {
        self.s3.head_bucket().bucket(bucket).send().await.is_ok()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_exported_eks_blueprint_applies_imports_refuses_and_destroys_against_moto() {
    let started = Instant::now();
    let bed = Bed::start().await;
    bed.bootstrap().await;
    let dir = bed.workdir("first");
    bed.tf(&dir, &["init", "-input=false", "-no-color"]);
    let output = bed.tf(
        &dir,
        &["apply", "-auto-approve", "-input=false", "-no-color"],
    );
    assert!(output.contains("1 imported"), "{output}");
    eprintln!("apply done after {:?}", started.elapsed());

    // The network, once: one VPC of that name, its six subnets, a NAT gateway per zone,
    // and the private route tables through them.
    let vpc = bed.vpc_id().await.expect("the VPC is not in moto");
    let in_vpc = |action: &'static str| {
        [
            ("Action", action),
            ("Filter.1.Name", "vpc-id"),
            ("Filter.1.Value.1", vpc.as_str()),
        ]
    };
    assert_eq!(
        bed.ec2_count(&in_vpc("DescribeSubnets"), "subnetId").await,
        6
    );
    let nat_gateways = bed.query("ec2", &in_vpc("DescribeNatGateways")).await.1;
    assert_eq!(
        nat_gateways.matches("<state>available</state>").count(),
        3,
        "{nat_gateways}"
    );
    let tables = bed.query("ec2", &in_vpc("DescribeRouteTables")).await.1;
    assert_eq!(tables.matches("<natGatewayId>nat-").count(), 3, "{tables}");
    let gateways = bed
        .ec2_count(
            &[
                ("Action", "DescribeInternetGateways"),
                ("Filter.1.Name", "attachment.vpc-id"),
                ("Filter.1.Value.1", vpc.as_str()),
            ],
            "internetGatewayId",
        )
        .await;
    assert_eq!(gateways, 1);

    // The five roles, and the OIDC provider of the cluster's issuer.
    let names = &bed.names;
    for role in [
        names.cluster_role.clone(),
        names.node_role.clone(),
        format!("{}-karpenter", names.iam_prefix),
        format!("{}-storage", names.iam_prefix),
        format!("{}-metrics", names.iam_prefix),
    ] {
        assert!(bed.role_exists(&role).await, "{role} is not in moto");
    }
    let (_, attached) = bed
        .query(
            "iam",
            &[
                ("Action", "ListAttachedRolePolicies"),
                ("RoleName", &names.node_role),
            ],
        )
        .await;
    assert_eq!(attached.matches("<PolicyArn>").count(), 3, "{attached}");

    // The cluster and its node group, once; terraform's outputs are moto's answers.
    let cluster = bed
        .eks
        .describe_cluster()
        .name(&names.cluster)
        .send()
        .await
        .unwrap()
        .cluster
        .unwrap();
    assert_eq!(cluster.version(), Some("1.33"));
    let groups = bed
        .eks
        .list_nodegroups()
        .cluster_name(&names.cluster)
        .send()
        .await
        .unwrap();
    assert_eq!(groups.nodegroups(), ["system"]);
    let endpoint = bed.tf(&dir, &["output", "-raw", "cluster_endpoint"]);
    assert_eq!(Some(endpoint.as_str()), cluster.endpoint());
    let issuer = bed.tf(&dir, &["output", "-raw", "oidc_issuer_url"]);
    assert_eq!(
        Some(issuer.as_str()),
        cluster
            .identity()
            .and_then(|i| i.oidc())
            .and_then(|o| o.issuer())
    );
    let (_, providers) = bed
        .query("iam", &[("Action", "ListOpenIDConnectProviders")])
        .await;
    assert_eq!(providers.matches("<Arn>").count(), 1, "{providers}");
    let kubeconfig = bed.tf(&dir, &["output", "-raw", "kube_config_raw"]);
    let authority = cluster
        .certificate_authority()
        .and_then(|c| c.data())
        .unwrap();
    assert!(kubeconfig.contains(authority), "{kubeconfig}");

    // The buckets: the telemetry bucket made, the state bucket adopted and tagged.
    assert!(bed.bucket_exists(&names.telemetry_bucket).await);
    let tags = bed
        .s3
        .get_bucket_tagging()
        .bucket(&names.state_bucket)
        .send()
        .await
        .unwrap();
    assert!(
        tags.tag_set()
            .iter()
            .any(|t| t.key() == "managed_by" && t.value() == "windlass"),
        "{tags:?}"
    );

    // Nothing left to do.
    let (ok, output) = bed.terraform(
        &dir,
        &["plan", "-detailed-exitcode", "-input=false", "-no-color"],
    );
    assert!(ok, "a second plan wants changes:\n{output}");
    eprintln!("second plan done after {:?}", started.elapsed());

    // A retry that lost the state: what has a name is refused as the real provider
    // refuses it, and nothing is adopted or made twice.
    let lost = bed.workdir("lost-state");
    bed.tf(&lost, &["init", "-input=false", "-no-color"]);
    let (ok, output) = bed.terraform(
        &lost,
        &[
            "apply",
            "-auto-approve",
            "-input=false",
            "-no-color",
            "-target=aws_iam_role.cluster",
            "-target=aws_ecr_repository.this",
            "-target=aws_s3_bucket.telemetry",
        ],
    );
    assert!(!ok, "{output}");
    // Terraform wraps the messages' lines.
    let refusals = output.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(refusals.matches("already exists").count(), 2, "{output}");
    for refusal in [
        "EntityAlreadyExists",
        "RepositoryAlreadyExistsException",
        "BucketAlreadyOwnedByYou",
    ] {
        assert!(output.contains(refusal), "no {refusal}:\n{output}");
    }
    assert_eq!(bed.vpc_id().await.as_deref(), Some(vpc.as_str()));

    // The configuration's account is checked against the credentials' (STS).
    let (ok, output) = bed.terraform(
        &lost,
        &[
            "plan",
            "-input=false",
            "-no-color",
            "-var=account_id=000000000000",
        ],
    );
    assert!(!ok);
    assert!(
        output.contains(&format!("AWS account ID not allowed: {ACCOUNT_ID}")),
        "{output}"
    );

    // Without moto's endpoint the stand-in refuses to reach for any AWS (the state
    // bucket's import needs it).
    let (ok, output) = bed.terraform_with(&lost, &["plan", "-input=false", "-no-color"], |c| {
        c.env_remove("AWS_ENDPOINT_URL")
    });
    assert!(!ok);
    assert!(output.contains("AWS_ENDPOINT_URL is not set"), "{output}");

    // The lost state recovered by importing everything by the real provider's import
    // ids (the state bucket by the blueprint's own import block): nothing to create or
    // destroy, and once imported nothing left to do. What is changed in place is what
    // the import cannot read back: `force_destroy` / `force_delete` (settings of the
    // provider, not of AWS), and what moto does not answer (the cluster's access config
    // and upgrade policy, the node group's update config).
    let imports = import_blocks(&bed.tf(&dir, &["state", "pull"]));
    std::fs::write(lost.join("lost_state_imports.tf"), &imports.text).unwrap();
    let output = bed.tf(&lost, &["plan", "-input=false", "-no-color"]);
    assert!(
        output.contains(&format!(
            "Plan: {} to import, 0 to add, 4 to change, 0 to destroy.",
            imports.count + 1
        )),
        "{output}"
    );
    bed.tf(
        &lost,
        &["apply", "-auto-approve", "-input=false", "-no-color"],
    );
    let (ok, output) = bed.terraform(
        &lost,
        &["plan", "-detailed-exitcode", "-input=false", "-no-color"],
    );
    assert!(ok, "a plan after the imports wants changes:\n{output}");
    assert_eq!(bed.vpc_id().await.as_deref(), Some(vpc.as_str()));
    eprintln!("lost state recovered after {:?}", started.elapsed());

    // Updates in place: the node group's bounds (changed where a person would), and
    // tags added or changed on a resource of each service. (Not a default tag: moto's
    // EKS tags clusters only, not node groups.)
    let tfvars = dir.join("terraform.tfvars.json");
    let mut vars: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&tfvars).unwrap()).unwrap();
    vars["node_pools"]["system"]["max_count"] = serde_json::json!(8);
    std::fs::write(&tfvars, vars.to_string()).unwrap();
    let edit = |file: &str, from: &str, to: &str| {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no {from:?}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    };
    let team = "  tags = { team = \"platform\" }\n";
    edit(
        "network.tf",
        &format!("Name = \"{}\"", names.vpc),
        &format!("Name = \"{}-renamed\"", names.vpc),
    );
    for (file, resource) in [
        ("eks.tf", "resource \"aws_eks_cluster\" \"this\" {\n"),
        ("identity.tf", "resource \"aws_iam_role\" \"node\" {\n"),
        (
            "registry.tf",
            "resource \"aws_ecr_repository\" \"this\" {\n",
        ),
        ("storage.tf", "resource \"aws_s3_bucket\" \"telemetry\" {\n"),
    ] {
        edit(file, resource, &format!("{resource}{team}"));
    }
    let output = bed.tf(
        &dir,
        &["apply", "-auto-approve", "-input=false", "-no-color"],
    );
    assert!(
        output.contains("0 added, 6 changed, 0 destroyed"),
        "{output}"
    );
    let (_, vpc_tags) = bed
        .query(
            "ec2",
            &[
                ("Action", "DescribeTags"),
                ("Filter.1.Name", "resource-id"),
                ("Filter.1.Value.1", &vpc),
            ],
        )
        .await;
    assert!(
        vpc_tags.contains(&format!("<value>{}-renamed</value>", names.vpc)),
        "{vpc_tags}"
    );
    let (_, role_tags) = bed
        .query(
            "iam",
            &[("Action", "ListRoleTags"), ("RoleName", &names.node_role)],
        )
        .await;
    assert!(role_tags.contains("<Value>platform</Value>"), "{role_tags}");
    let cluster_tags = bed
        .eks
        .describe_cluster()
        .name(&names.cluster)
        .send()
        .await
        .unwrap()
        .cluster
        .unwrap()
        .tags
        .unwrap_or_default();
    assert_eq!(cluster_tags["team"], "platform");
    assert_eq!(cluster_tags["managed_by"], "windlass");
    let bucket_tags = bed
        .s3
        .get_bucket_tagging()
        .bucket(&names.telemetry_bucket)
        .send()
        .await
        .unwrap();
    for (key, value) in [("team", "platform"), ("managed_by", "windlass")] {
        assert!(
            bucket_tags
                .tag_set()
                .iter()
                .any(|t| t.key() == key && t.value() == value),
            "{bucket_tags:?}"
        );
    }
    let (ok, output) = bed.terraform(
        &dir,
        &["plan", "-detailed-exitcode", "-input=false", "-no-color"],
    );
    assert!(ok, "a plan after the updates wants changes:\n{output}");
    let group = bed
        .eks
        .describe_nodegroup()
        .cluster_name(&names.cluster)
        .nodegroup_name("system")
        .send()
        .await
        .unwrap()
        .nodegroup
        .unwrap();
    assert_eq!(group.scaling_config().and_then(|s| s.max_size()), Some(8));

    // Destroy removes what apply made (the adopted state bucket too).
    bed.tf(
        &dir,
        &["destroy", "-auto-approve", "-input=false", "-no-color"],
    );
    assert_eq!(bed.vpc_id().await, None);
    assert!(!bed.role_exists(&names.cluster_role).await);
    assert!(
        bed.eks
            .describe_cluster()
            .name(&names.cluster)
            .send()
            .await
            .is_err()
    );
    for bucket in [&names.telemetry_bucket, &names.state_bucket] {
        assert!(
            !bed.bucket_exists(bucket).await,
            "{bucket} survived destroy"
        );
    }
    let (_, providers) = bed
        .query("iam", &[("Action", "ListOpenIDConnectProviders")])
        .await;
    assert_eq!(providers.matches("<Arn>").count(), 0, "{providers}");
    eprintln!("destroy done after {:?}", started.elapsed());
}

/// Import blocks for every resource of a state (but the state bucket, which the
/// blueprint's own imports.tf adopts), each by the id the real provider imports it by.
struct Imports {
    text: String,
    count: usize,
}

fn import_blocks(state: &str) -> Imports {
    let state: serde_json::Value = serde_json::from_str(state).unwrap();
    let mut text = String::new();
    let mut count = 0;
    for resource in state["resources"].as_array().unwrap() {
        if resource["mode"] != "managed" {
            continue;
        }
        let kind = resource["type"].as_str().unwrap();
        let name = resource["name"].as_str().unwrap();
        for instance in resource["instances"].as_array().unwrap() {
            let address = match &instance["index_key"] {
                serde_json::Value::String(key) => format!("{kind}.{name}[\"{key}\"]"),
                serde_json::Value::Null => format!("{kind}.{name}"),
                other => format!("{kind}.{name}[{other}]"),
            };
            if address == "aws_s3_bucket.tfstate" {
                continue;
            }
            let attrs = &instance["attributes"];
            let text_of = |name: &str| attrs[name].as_str().unwrap().to_owned();
            let id = match kind {
                "aws_route_table_association" => {
                    format!("{}/{}", text_of("subnet_id"), text_of("route_table_id"))
                }
                "aws_iam_role_policy_attachment" => {
                    format!("{}/{}", text_of("role"), text_of("policy_arn"))
                }
                "aws_iam_role_policy" => format!("{}:{}", text_of("role"), text_of("name")),
                "aws_eks_node_group" => {
                    format!("{}:{}", text_of("cluster_name"), text_of("node_group_name"))
                }
                "aws_eks_cluster" | "aws_iam_role" | "aws_ecr_repository" => text_of("name"),
                kind if kind.starts_with("aws_s3_bucket") => text_of("bucket"),
                _ => text_of("id"),
            };
            text.push_str(&format!(
                "import {{\n  to = {address}\n  id = {}\n}}\n",
                serde_json::Value::String(id)
            ));
            count += 1;
        }
    }
    Imports { text, count }
}
