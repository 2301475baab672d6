//! EKS provisioning, upgrade and deletion through the same workflows: the cluster's terraform state
//! in its own S3 bucket (moto, the AWS emulator, behind the STS trust-policy stand-in,
//! reached with STS AssumeRole credentials scoped by the organisation's ExternalId, once
//! `aws_access_verify` has verified the account), terraform (real, stand-in rendering) and helm
//! (real, against the Kubernetes stand-in).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use windlass_activities::aws::s3::{S3Objects, s3_client};
use windlass_activities::object_store::ObjectStore;
use windlass_core::blueprint::AwsNames;
use windlass_core::cluster_charts::ChartGraph;
use windlass_core::clusters::ClusterSpec;
use windlass_standins::eks_versions::EksVersionsStandIn;
use windlass_standins::moto::Moto;

use crate::support::{AwsBed, KillOnDrop, Stack, step};

#[tokio::test]
async fn an_eks_cluster_is_provisioned_upgraded_and_deleted_with_its_state_in_s3() {
    let stack = Stack::with_clusters_without_worker().await;
    // moto behind the stand-in that enforces the role's trust policy (ExternalId).
    let aws = AwsBed::start().await;
    let moto = &aws.moto;
    // moto serves STS and S3 but not EKS's version listing: a stand-in answers that one.
    let eks_versions = EksVersionsStandIn::start(&["1.32", "1.33"]).await.unwrap();
    let mut worker = stack.cluster_worker_command("aws", 0);
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
    let run_id = started["run"]["id"].as_str().unwrap().to_owned();
    let run = stack
        .wait_for_run(org, &run_id, Duration::from_secs(300), |r| {
            r["finished_at"].is_string()
        })
        .await;
    assert_eq!(run["status"], "succeeded", "{run:#}");
    for key in ["bootstrap-storage", "terraform-apply", "publish-kubeconfig"] {
        assert_eq!(step(&run, key)["status"], "succeeded", "{key}");
    }
    let kube = &stack.clusters.as_ref().unwrap().kube;
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
    let bucket = AwsNames::new(&spec).state_bucket;
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
            .any(|r| r["name"] == "eks_cluster" || r["name"] == "kubernetes_cluster"),
        "{state:#}"
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
    assert_eq!(
        run["output"]["terraform"]["add"].as_u64().unwrap() as usize,
        created_instances(&state),
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
        .wait_for_run(
            org,
            refused["id"].as_str().unwrap(),
            Duration::from_secs(120),
            |r| r["finished_at"].is_string(),
        )
        .await;
    assert_eq!(run["status"], "failed", "{run:#}");
    assert!(
        run["error"].as_str().unwrap().contains("not offered"),
        "{run:#}"
    );
    eks_versions.set_versions(&["1.32", "1.33", "1.34"]);
    let (status, _, upgrade_run) = upgrade("eks-up-2").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{upgrade_run}");
    let run = stack
        .wait_for_run(
            org,
            upgrade_run["id"].as_str().unwrap(),
            Duration::from_secs(300),
            |r| r["finished_at"].is_string(),
        )
        .await;
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let state = objects.get("cluster.tfstate").await.unwrap().unwrap();
    let state: serde_json::Value = serde_json::from_slice(&state.content).unwrap();
    let input_of = |name: &str| {
        state["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .map(|r| r["instances"][0]["attributes"]["input"]["value"].clone())
            .unwrap_or_default()
    };
    assert_eq!(input_of("eks_cluster")["version"], "1.34", "{state:#}");
    assert_eq!(input_of("eks_node_group_pool")["version"], "1.34");
    let (_, detail) = stack.api.get(&cluster_path).await;
    assert_eq!(detail["kubernetes_version"], "1.34");

    // Deleting destroys everything terraform made, then the bucket with its versions.
    let (status, _, deletion) = stack
        .api
        .delete(&format!("/v1/organizations/{org}/clusters/{}", spec.id))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{deletion}");
    let run = stack
        .wait_for_run(
            org,
            deletion["id"].as_str().unwrap(),
            Duration::from_secs(300),
            |r| r["finished_at"].is_string(),
        )
        .await;
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(run["output"]["resource_group_deleted"], true);
    let gone = s3.head_bucket().bucket(&bucket).send().await;
    assert!(gone.is_err(), "the state bucket is gone");
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
