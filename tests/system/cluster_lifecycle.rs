//! A cluster's life after provisioning: upgraded one minor version at a time (refused when
//! the region does not offer the version), then deleted, including a delete that stopped
//! halfway and is run again.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;
use windlass_api::RunDetail;
use windlass_core::blueprint::AzureNames;
use windlass_core::clusters::ClusterSpec;
use windlass_core::runs::{RunStatus, StepStatus};
use windlass_standins::azure::{FaultsPatch, LroMode};
use windlass_test_support::client::output;

use crate::support::{Stack, id_of, step};

async fn finished(stack: &Stack, org: Uuid, run: &Value) -> RunDetail {
    stack
        .wait_for_run(org, id_of(run), Duration::from_secs(300), |r| {
            r.finished_at.is_some()
        })
        .await
}

async fn cluster_state(stack: &Stack, spec: &ClusterSpec, subscription: &str) -> Value {
    let container = stack.state_container(spec, subscription).await;
    let state = container.get("cluster.tfstate").await.unwrap().unwrap();
    serde_json::from_slice(&state.content).unwrap()
}

fn cluster_resource(state: &Value) -> &Value {
    let resource = state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "azurerm_kubernetes_cluster")
        .expect("the cluster resource");
    &resource["instances"][0]["attributes"]
}

#[tokio::test]
async fn a_cluster_is_upgraded_a_minor_at_a_time_and_deleted_even_after_a_failed_delete() {
    let stack = Stack::with_clusters().await;
    let (org, account) = stack.organization_with_verified_azure_account().await;
    let subscription = stack
        .store
        .cloud_account(org, account)
        .await
        .unwrap()
        .external_id;
    let (status, _, started) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/clusters"),
            json!({"name": "lifecycle", "cloud_account_id": account, "region": "westeurope",
                   "kubernetes_version": "1.32"}),
            &[("idempotency-key", "create-lifecycle")],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let run = finished(&stack, org, &started["run"]).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    let spec: ClusterSpec = serde_json::from_value(started["cluster"].clone()).unwrap();
    let cluster_path = format!("/v1/organizations/{org}/clusters/{}", spec.id);

    // Two minors at once is refused before anything runs.
    let (status, _, refused) = stack
        .api
        .post(
            &format!("{cluster_path}/upgrade"),
            json!({"kubernetes_version": "1.34"}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(
        refused["detail"].as_str().unwrap().contains("1.33"),
        "{refused}"
    );

    // A version the region does not offer fails the run at its first step.
    stack
        .azure
        .set_kubernetes_versions("westeurope", &["1.31", "1.32"]);
    let (status, _, upgrade) = stack
        .api
        .post(
            &format!("{cluster_path}/upgrade"),
            json!({"kubernetes_version": "1.33"}),
            &[("idempotency-key", "up-1")],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{upgrade}");
    let run = finished(&stack, org, &upgrade).await;
    assert_eq!(run.status, RunStatus::Failed, "{run:#?}");
    assert!(
        run.error.as_deref().unwrap().contains("not offered"),
        "{run:#?}"
    );
    let (_, cluster) = stack.api.get(&cluster_path).await;
    assert_eq!(cluster["kubernetes_version"], "1.32");

    // Offered: control plane, then node pools, updated in place.
    stack
        .azure
        .set_kubernetes_versions("westeurope", &["1.31", "1.32", "1.33", "1.34"]);
    let (status, _, upgrade) = stack
        .api
        .post(
            &format!("{cluster_path}/upgrade"),
            json!({"kubernetes_version": "1.33"}),
            &[("idempotency-key", "up-2")],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{upgrade}");
    let run = finished(&stack, org, &upgrade).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    for key in [
        "check-versions",
        "upgrade-control-plane",
        "upgrade-node-pools",
    ] {
        assert_eq!(step(&run, key).status, StepStatus::Succeeded, "{key}");
    }
    for phase in ["control_plane", "node_pools"] {
        let summary = &output(&run)[phase];
        assert!(
            summary["change"].as_u64().unwrap() >= 1,
            "{phase}: {summary}"
        );
        assert_eq!(summary["add"], 0, "{phase} replaced something: {summary}");
        assert_eq!(summary["remove"], 0, "{phase} removed something: {summary}");
    }
    let state = cluster_state(&stack, &spec, &subscription).await;
    let cluster = cluster_resource(&state);
    assert_eq!(cluster["kubernetes_version"], "1.33");
    assert_eq!(
        cluster["default_node_pool"][0]["orchestrator_version"],
        "1.33"
    );
    // And in the cloud: the managed cluster ARM holds runs 1.33.
    let managed: Vec<Value> = stack
        .azure
        .state()
        .resources
        .into_iter()
        .filter(|(id, _)| {
            id.split_once("/managedclusters/")
                .is_some_and(|(_, name)| !name.contains('/'))
        })
        .map(|(_, doc)| doc)
        .collect();
    assert_eq!(managed.len(), 1, "{managed:#?}");
    assert_eq!(managed[0]["properties"]["kubernetesVersion"], "1.33");
    let (_, detail) = stack.api.get(&cluster_path).await;
    assert_eq!(detail["kubernetes_version"], "1.33");
    assert_eq!(detail["last_run"]["id"], upgrade["id"]);

    // A delete whose resource group deletion fails stops after terraform's part...
    stack.azure.set_lro(LroMode::Location, 1, "Failed", Some(0));
    let (status, _, deletion) = stack.api.delete(&cluster_path).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{deletion}");
    let run = finished(&stack, org, &deletion).await;
    assert_eq!(run.status, RunStatus::Failed, "{run:#?}");
    assert_eq!(
        step(&run, "terraform-destroy").status,
        StepStatus::Succeeded
    );
    assert!(
        cluster_state(&stack, &spec, &subscription).await["resources"]
            .as_array()
            .unwrap()
            .is_empty(),
        "terraform destroyed everything it made"
    );

    // ...and running it again finishes the job.
    stack.azure.set_faults(FaultsPatch {
        lro_outcome: Some("Succeeded".into()),
        ..FaultsPatch::default()
    });
    let (status, _, deletion) = stack.api.delete(&cluster_path).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{deletion}");
    let run = finished(&stack, org, &deletion).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(output(&run)["terraform"]["remove"], 0, "{run:#?}");
    assert_eq!(output(&run)["resource_group_deleted"], true);
    let names = AzureNames::new(&spec);
    let azure = stack.azure.state();
    assert!(
        !azure
            .resource_groups
            .keys()
            .any(|k| k.ends_with(&names.resource_group.to_ascii_lowercase())),
        "the resource group is gone"
    );
    let (status, _) = stack.api.get(&format!("{cluster_path}/maintenance")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "no maintenance for a deleted cluster"
    );
}
