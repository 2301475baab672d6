//! An environment's queue keeps every promise across continue-as-new: with the queue
//! continuing as new after every second deployment, requests superseded and cancelled
//! during the deployment right before the boundary end as such, a cancel the API
//! confirmed never deploys, a late cancel is refused, and order is kept.

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use temporalio_client::WorkflowListOptions;
use uuid::Uuid;
use windlass_api::DeploymentStarted;
use windlass_core::runs::{Run, RunStatus};
use windlass_standins::kube::ImageDelay;
use windlass_workflows::engine::Engine;

use crate::deployments::{deploy, finished, provisioned_cluster};
use crate::support::{QUEUE_DEPLOYMENTS_PER_HISTORY, Stack};

async fn cancel(stack: &Stack, org: Uuid, started: &DeploymentStarted) -> (StatusCode, Value) {
    let run = started.run.id;
    let (status, _, body) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/runs/{run}/cancel"),
            json!({}),
            &[],
        )
        .await;
    (status, body)
}

/// How many runs the queue workflow of `environment` has had (one per continue-as-new).
async fn queue_runs(stack: &Stack, environment: &str) -> usize {
    let engine = Engine::connect(&stack.engine_config).await.unwrap();
    engine
        .client()
        .list_workflows(
            format!("WorkflowId = 'environment-{environment}'"),
            WorkflowListOptions::default(),
        )
        .collect::<Vec<_>>()
        .await
        .len()
}

#[tokio::test]
async fn a_queue_that_continues_as_new_keeps_superseded_cancelled_and_waiting_requests() {
    assert_eq!(QUEUE_DEPLOYMENTS_PER_HISTORY, 2);
    let stack = Stack::with_clusters().await;
    let (org, account) = stack.organization_with_verified_azure_account().await;
    let cluster = provisioned_cluster(&stack, org, account).await;
    let (_, _, project) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/projects"),
            json!({"name": "shop"}),
            &[],
        )
        .await;
    let (status, _, created) = stack
        .api
        .post(
            &format!(
                "/v1/organizations/{org}/projects/{}/environments",
                project["id"].as_str().unwrap()
            ),
            json!({"name": "preview", "type": "preview", "cluster_id": cluster,
                   "deploy_policy": "supersede",
                   "services": [{"kind": "container_app", "name": "app",
                                 "image": "shop/app:1", "port": 80}]}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let env = created["environment"]["id"].as_str().unwrap().to_owned();
    let kube = &stack.clusters.as_ref().unwrap().kube;
    let image = |tag: &str| json!({"images": {"app": format!("shop/app:{tag}")}});

    // The first deployment of this history.
    let first = deploy(&stack, org, &env, image("1")).await;
    assert_eq!(
        finished(&stack, org, &first).await.status,
        RunStatus::Succeeded
    );
    // The second, the last before the boundary, runs slowly while requests pile up.
    kube.set_image_delays(vec![ImageDelay {
        marker: ":slow".into(),
        delay_ms: 4000,
    }]);
    let boundary = deploy(&stack, org, &env, image("slow-2")).await;
    stack
        .wait_for_run(org, boundary.run.id, Duration::from_secs(60), |r| {
            r.steps.iter().any(|s| s.key == "deploy/app")
        })
        .await;
    let superseded = deploy(&stack, org, &env, image("3")).await;
    let cancelled = deploy(&stack, org, &env, image("4")).await;
    let (status, body) = cancel(&stack, org, &cancelled).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body:#}");
    let newest = deploy(&stack, org, &env, image("5")).await;

    assert_eq!(
        finished(&stack, org, &boundary).await.status,
        RunStatus::Succeeded
    );
    let superseded = finished(&stack, org, &superseded).await;
    assert_eq!(superseded.status, RunStatus::Cancelled, "{superseded:#?}");
    assert!(superseded.steps.is_empty());
    let cancelled_run = finished(&stack, org, &cancelled).await;
    assert_eq!(
        cancelled_run.status,
        RunStatus::Cancelled,
        "{cancelled_run:#?}"
    );
    assert!(
        cancelled_run.steps.is_empty(),
        "a confirmed cancel never deploys: {cancelled_run:#?}"
    );
    assert_eq!(
        finished(&stack, org, &newest).await.status,
        RunStatus::Succeeded
    );

    // What the cluster ran, in order: 1, slow-2, 5; never 3 or 4.
    let app = kube.get("Deployment", "shop-preview", "app").unwrap();
    assert_eq!(
        app["spec"]["template"]["spec"]["containers"][0]["image"],
        "shop/app:5"
    );
    let (_, history) = stack
        .api
        .get(&format!(
            "/v1/organizations/{org}/environments/{env}/deployments"
        ))
        .await;
    let states: Vec<(u64, String)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["revision"].as_u64().unwrap(),
                d["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            (5, "deployed".to_owned()),
            (4, "cancelled".to_owned()),
            (3, "superseded".to_owned()),
            (2, "deployed".to_owned()),
            (1, "deployed".to_owned()),
        ]
    );
    // Nothing left running or queued, and the queue did continue as new.
    let runs: Vec<Run> = stack.organization_client(org).get("/runs").await.unwrap();
    assert!(runs.iter().all(|r| r.finished_at.is_some()), "{runs:#?}");
    assert!(
        queue_runs(&stack, &env).await >= 2,
        "the queue crossed a boundary"
    );

    // A cancel of a deployment that already ended is refused and changes nothing.
    let (status, body) = cancel(&stack, org, &boundary).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body:#}");

    // The queue's chain (continued as new) and the boundary's deployment replay, and are
    // kept for replay tests.
    crate::histories::record_histories(
        &stack,
        "environment_queue_across_continue_as_new",
        &[
            format!("environment-{env}"),
            format!("run-{}", boundary.run.id),
        ],
    )
    .await;
}
