//! EKS provisioning, upgrade and deletion through the same workflows: the exported aws
//! blueprint applied by the real terraform through the provider stand-in against moto
//! (the AWS emulator, behind the STS trust-policy stand-in, reached with STS AssumeRole
//! credentials scoped by the organisation's ExternalId, once `aws_access_verify` has
//! verified the account), the state in the cluster's own S3 bucket, and helm (real)
//! against the Kubernetes stand-in that moto names as every EKS cluster's API server and
//! that takes EKS tokens as EKS does. What is checked is what the customer would see in
//! their account.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use windlass_activities::aws::s3::{S3Objects, s3_client};
use windlass_activities::object_store::ObjectStore;
use windlass_core::blueprint::AwsNames;
use windlass_core::cluster_charts::ChartGraph;
use windlass_core::clusters::ClusterSpec;
use windlass_core::runs::{RunStatus, StepStatus};
use windlass_standins::eks_versions::EksVersionsStandIn;
use windlass_standins::moto::{ACCOUNT_ID as MOTO_ACCOUNT, Moto, MotoOptions};
use windlass_test_support::client::output;

use crate::support::{AwsBed, KillOnDrop, Stack, id_of, step};

#[tokio::test]
async fn an_eks_cluster_is_provisioned_upgraded_and_deleted_with_its_state_in_s3() {
    let stack = Stack::with_clusters_without_worker().await;
    let kube = &stack.clusters.as_ref().unwrap().kube;
    // moto behind the stand-in that enforces the role's trust policy (ExternalId).
    let aws = AwsBed::start_for_clusters(kube).await;
    let moto = &aws.moto;
    // moto serves STS and S3 but not EKS's version listing: a stand-in answers that one.
    let eks_versions = EksVersionsStandIn::start(&["1.32", "1.33"]).await.unwrap();
    let mut worker = stack.cluster_worker_command("aws");
    aws.configure(&mut worker);
    let _worker = KillOnDrop(
        worker
            .env("WINDLASS_AWS_EKS_ENDPOINT_URL", eks_versions.endpoint())
            .spawn()
            .expect("spawn windlass worker"),
    );
    // The account is verified (AssumeRole with the organisation's ExternalId) first.
    let (org, account) = stack.organization_with_verified_aws_account(&aws).await;
    let account = json!({ "id": account });

    let (status, _, started) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/clusters"),
            json!({"name": "eks-prod", "cloud_account_id": account["id"],
                   "region": "eu-west-3", "kubernetes_version": "1.33"}),
            &[("idempotency-key", "eks-prod")],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let inventory = started["inventory"]["resources"].as_array().unwrap();
    assert!(
        inventory.iter().any(|r| r["kind"] == "node_group"),
        "{started}"
    );
    let run_id = id_of(&started["run"]);
    let run = stack
        .wait_for_run(org, run_id, Duration::from_secs(300), |r| {
            r.finished_at.is_some()
        })
        .await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    for key in ["bootstrap-storage", "terraform-apply", "publish-kubeconfig"] {
        assert_eq!(step(&run, key).status, StepStatus::Succeeded, "{key}");
    }
    for chart in ChartGraph::standard().charts() {
        assert!(
            kube.helm_releases(&chart.namespace)
                .iter()
                .any(|r| r.name == chart.name && r.status == "deployed"),
            "{} not deployed",
            chart.name
        );
    }

    // The state is in the cluster's bucket, where the blueprint's S3 backend reads it.
    let spec: ClusterSpec = serde_json::from_value(started["cluster"].clone()).unwrap();
    let names = AwsNames::new(&spec);
    let bucket = names.state_bucket.clone();
    let s3 = moto_s3(moto).await;
    let objects = S3Objects::new(s3.clone(), bucket.clone(), "");
    let state = objects
        .get("cluster.tfstate")
        .await
        .unwrap()
        .expect("the state object");
    let state: serde_json::Value = serde_json::from_slice(&state.content).unwrap();
    let created = state["resources"].as_array().unwrap().len();
    assert!(
        state["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["type"] == "aws_eks_cluster"),
        "{state:#}"
    );
    // In the account: the cluster and its node groups, one network, nothing twice.
    let eks = moto_eks(moto).await;
    let cluster = eks
        .describe_cluster()
        .name(&names.cluster)
        .send()
        .await
        .expect("the EKS cluster exists in the account");
    let cluster = cluster.cluster().unwrap();
    assert_eq!(cluster.tags().unwrap()["cluster_id"], spec.id.to_string());
    assert_versions(&eks, &spec, "1.33").await;
    assert_eq!(tagged(moto, spec.id, "ec2:vpc").await.len(), 1);
    assert_eq!(
        tagged(moto, spec.id, "ec2:subnet").await.len(),
        2 * spec.network.zones.len()
    );
    // helm reached the cluster as the organisation's role, with tokens the worker signed.
    let callers = kube.eks_token_callers();
    assert!(!callers.is_empty(), "no EKS token was presented");
    assert!(
        callers.iter().all(|arn| arn.starts_with(&format!(
            "arn:aws:sts::{MOTO_ACCOUNT}:assumed-role/windlass-access/windlass-{org}"
        ))),
        "{callers:?}"
    );
    assert!(
        objects.get("cluster.tfstate.lock").await.unwrap().is_none(),
        "no lock left"
    );
    assert!(
        objects
            .get("kubeconfigs/kubeconfig")
            .await
            .unwrap()
            .is_some()
    );
    // Every instance in the state was created by the run, but what the bootstrap made
    // (the state bucket), which the apply adopted.
    let bootstrapped = inventory
        .iter()
        .filter(|r| r["origin"] == "bootstrap")
        .count();
    assert_eq!(
        output(&run)["terraform"]["add"].as_u64().unwrap() as usize,
        created_instances(&state) - bootstrapped,
        "{created} resources"
    );

    // Upgrades follow what EKS offers, control plane then node groups.
    let cluster_path = format!("/v1/organizations/{org}/clusters/{}", spec.id);
    let upgrade = |key: &'static str| {
        let api = &stack.api;
        let path = format!("{cluster_path}/upgrade");
        async move {
            api.post(
                &path,
                json!({"kubernetes_version": "1.34"}),
                &[("idempotency-key", key)],
            )
            .await
        }
    };
    let (status, _, refused) = upgrade("eks-up-1").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{refused}");
    let run = stack
        .wait_for_run(org, id_of(&refused), Duration::from_secs(120), |r| {
            r.finished_at.is_some()
        })
        .await;
    assert_eq!(run.status, RunStatus::Failed, "{run:#?}");
    assert!(
        run.error.as_deref().unwrap().contains("not offered"),
        "{run:#?}"
    );
    eks_versions.set_versions(&["1.32", "1.33", "1.34"]);
    let (status, _, upgrade_run) = upgrade("eks-up-2").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{upgrade_run}");
    let run = stack
        .wait_for_run(org, id_of(&upgrade_run), Duration::from_secs(300), |r| {
            r.finished_at.is_some()
        })
        .await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    // EKS did the upgrade: the control plane, then the node groups.
    assert_versions(&eks, &spec, "1.34").await;
    let (_, detail) = stack.api.get(&cluster_path).await;
    assert_eq!(detail["kubernetes_version"], "1.34");

    // Deleting destroys everything terraform made, then the bucket with its versions.
    let (status, _, deletion) = stack
        .api
        .delete(&format!("/v1/organizations/{org}/clusters/{}", spec.id))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{deletion}");
    let run = stack
        .wait_for_run(org, id_of(&deletion), Duration::from_secs(300), |r| {
            r.finished_at.is_some()
        })
        .await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(output(&run)["resource_group_deleted"], true);
    let gone = s3.head_bucket().bucket(&bucket).send().await;
    assert!(gone.is_err(), "the state bucket is gone");
    let gone = eks.describe_cluster().name(&names.cluster).send().await;
    assert!(gone.is_err(), "the EKS cluster is gone");
    assert!(
        tagged(moto, spec.id, "ec2:vpc").await.is_empty(),
        "the VPC is gone"
    );
}

#[tokio::test]
async fn a_worker_killed_while_eks_creates_the_cluster_leaves_nothing_made_twice() {
    let stack = Stack::with_clusters_without_worker().await;
    let kube = &stack.clusters.as_ref().unwrap().kube;
    // Creation takes seconds, as in AWS (minutes there): NAT gateways are pending and
    // the cluster CREATING while the provider waits, so the kill lands when the account
    // has resources terraform has not recorded.
    let aws = AwsBed::start_for_clusters_with(
        kube,
        MotoOptions {
            create_seconds: Some(6.0),
            ..MotoOptions::default()
        },
    )
    .await;
    let moto = &aws.moto;
    let eks_versions = EksVersionsStandIn::start(&["1.32", "1.33"]).await.unwrap();
    let worker = |name: &str| {
        let mut worker = stack.cluster_worker_command(name);
        aws.configure(&mut worker);
        worker
            .env("WINDLASS_AWS_EKS_ENDPOINT_URL", eks_versions.endpoint())
            .env("WINDLASS_STANDIN_AWS_POLL_SECONDS", "1")
            .spawn()
            .expect("spawn windlass worker")
    };
    let mut first = worker("first");
    let (org, account) = stack.organization_with_verified_aws_account(&aws).await;
    let (status, _, started) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/clusters"),
            json!({"name": "eks-crash", "cloud_account_id": account,
                   "region": "eu-west-3", "kubernetes_version": "1.33"}),
            &[("idempotency-key", "eks-crash")],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let run_id = id_of(&started["run"]);
    let spec: ClusterSpec = serde_json::from_value(started["cluster"].clone()).unwrap();
    let names = AwsNames::new(&spec);

    // Wait until EKS is creating the cluster: it is in the account, not in the state.
    let eks = moto_eks(moto).await;
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let creating = eks
            .describe_cluster()
            .name(&names.cluster)
            .send()
            .await
            .ok()
            .and_then(|c| {
                c.cluster()
                    .and_then(|c| c.status())
                    .map(|s| s.as_str().to_owned())
            });
        if creating.as_deref() == Some("CREATING") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "EKS never began creating the cluster"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    first.kill().expect("SIGKILL the worker");
    first.wait().unwrap();

    // Another worker, with an empty working directory, as on another machine.
    let _second = KillOnDrop(worker("second"));
    let run = stack
        .wait_for_run(org, run_id, Duration::from_secs(420), |r| {
            r.finished_at.is_some()
        })
        .await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    let apply = step(&run, "terraform-apply");
    assert!(apply.attempts >= 2, "{apply:#?}");

    // In the account, nothing twice: one network, as the blueprint has it.
    let zones = spec.network.zones.len();
    for (resource_type, expected) in [
        ("ec2:vpc", 1),
        ("ec2:subnet", 2 * zones),
        ("ec2:internet-gateway", 1),
        ("ec2:elastic-ip", zones),
        ("ec2:natgateway", zones),
        ("ec2:route-table", 1 + zones),
    ] {
        let found = tagged(moto, spec.id, resource_type).await;
        assert_eq!(found.len(), expected, "{resource_type}: {found:#?}");
    }
    let listed = eks.list_clusters().send().await.unwrap();
    assert_eq!(listed.clusters(), std::slice::from_ref(&names.cluster));
    // And terraform knows all of it: a plan has nothing to create.
    let s3 = moto_s3(moto).await;
    let state = S3Objects::new(s3, names.state_bucket.clone(), "")
        .get("cluster.tfstate")
        .await
        .unwrap()
        .expect("the state object");
    let state: serde_json::Value = serde_json::from_slice(&state.content).unwrap();
    let recorded: Vec<String> = state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}.{}",
                r["type"].as_str().unwrap(),
                r["name"].as_str().unwrap()
            )
        })
        .collect();
    for address in [
        "aws_eks_cluster.this",
        "aws_vpc.this",
        "aws_nat_gateway.zone",
    ] {
        assert!(
            recorded.iter().any(|r| r == address),
            "{address}: {recorded:?}"
        );
    }
}

/// The cluster's control plane and every node group run `version`, as EKS reports them.
async fn assert_versions(eks: &aws_sdk_eks::Client, spec: &ClusterSpec, version: &str) {
    let name = AwsNames::new(spec).cluster;
    let cluster = eks.describe_cluster().name(&name).send().await.unwrap();
    assert_eq!(cluster.cluster().unwrap().version(), Some(version));
    for pool in &spec.node_pools {
        let group = eks
            .describe_nodegroup()
            .cluster_name(&name)
            .nodegroup_name(&pool.name)
            .send()
            .await
            .expect("the node group exists");
        assert_eq!(
            group.nodegroup().unwrap().version(),
            Some(version),
            "{}",
            pool.name
        );
    }
}

/// moto's configuration for a user with the account's credentials.
async fn moto_config(moto: &Moto) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-3"))
        .endpoint_url(moto.endpoint())
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await
}

async fn moto_eks(moto: &Moto) -> aws_sdk_eks::Client {
    aws_sdk_eks::Client::new(&moto_config(moto).await)
}

/// The ARNs of the cluster's resources of `resource_type` (`ec2:vpc`), found by its tag
/// as the customer's Tag Editor would.
async fn tagged(moto: &Moto, cluster: uuid::Uuid, resource_type: &str) -> Vec<String> {
    let tagging = aws_sdk_resourcegroupstagging::Client::new(&moto_config(moto).await);
    let page = tagging
        .get_resources()
        .tag_filters(
            aws_sdk_resourcegroupstagging::types::TagFilter::builder()
                .key("cluster_id")
                .values(cluster.to_string())
                .build(),
        )
        .resource_type_filters(resource_type)
        .send()
        .await
        .unwrap();
    page.resource_tag_mapping_list()
        .iter()
        .filter_map(|m| m.resource_arn().map(str::to_owned))
        .collect()
}

/// An S3 client for moto, as a user with the account's credentials would look.
async fn moto_s3(moto: &Moto) -> aws_sdk_s3::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-3"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await;
    s3_client(&config, Some(&moto.endpoint()))
}

fn created_instances(state: &serde_json::Value) -> usize {
    state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["instances"].as_array().map_or(0, Vec::len))
        .sum()
}
