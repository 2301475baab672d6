//! A worker SIGKILLed after helm upgraded a service's release but before the step
//! finished (it was watching the rollout): the retry on another worker finds the release
//! already holding that chart and those values, and makes no second revision.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use windlass_core::runs::{RunStatus, StepStatus};
use windlass_standins::kube::ImageDelay;

use crate::deployments::{deploy, finished, provisioned_cluster};
use crate::support::{Stack, step};

#[tokio::test]
async fn a_deploy_step_retried_after_helm_finished_adds_no_revision() {
    let mut stack = Stack::with_clusters().await;
    let (org, account) = stack.organization_with_verified_azure_account().await;
    let cluster = provisioned_cluster(&stack, org, account).await;
    let (status, _, project) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/projects"),
            json!({"name": "shop"}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    let (status, _, created) = stack
        .api
        .post(
            &format!(
                "/v1/organizations/{org}/projects/{}/environments",
                project["id"].as_str().unwrap()
            ),
            json!({"name": "prod", "type": "production", "cluster_id": cluster,
                   "services": [{"kind": "container_app", "name": "slow", "image": "shop/slow:1",
                                 "port": 8080, "rollout_timeout_seconds": 120}]}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let env = created["environment"]["id"].as_str().unwrap().to_owned();
    stack.stop_in_process_worker().await;
    let kube = &stack.clusters.as_ref().unwrap().kube;
    // Long enough a rollout to kill the worker while it watches.
    kube.set_image_delays(vec![ImageDelay {
        marker: "shop/slow:1".into(),
        delay_ms: 8000,
    }]);

    let mut first = stack
        .cluster_worker_command("first")
        .spawn()
        .expect("spawn windlass worker");
    let started = deploy(&stack, org, &env, json!({})).await;
    let run_id = started.run.id;
    // Helm has finished (the release is deployed) and the step is still running.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let deployed = kube
            .helm_releases("shop-prod")
            .iter()
            .any(|r| r.name == "slow" && r.status == "deployed");
        let run = stack.run(org, run_id).await;
        let running = run
            .steps
            .iter()
            .any(|s| s.key == "deploy/slow" && s.status == StepStatus::Running);
        if deployed && running {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{run:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.kill().expect("SIGKILL the worker");
    first.wait().unwrap();

    let mut second = stack
        .cluster_worker_command("second")
        .spawn()
        .expect("spawn windlass worker");
    let run = finished(&stack, org, &started).await;
    let _ = second.kill();
    let _ = second.wait();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    let deploy_step = step(&run, "deploy/slow");
    assert!(
        deploy_step.attempts >= 2,
        "the step was retried: {deploy_step:#?}"
    );

    // Helm's own records in the cluster: one revision, deployed.
    let revisions: Vec<(u32, String)> = kube
        .helm_releases("shop-prod")
        .into_iter()
        .filter(|r| r.name == "slow")
        .map(|r| (r.revision, r.status))
        .collect();
    assert_eq!(revisions, [(1, "deployed".to_string())]);
    let (status, log) = stack
        .api
        .get(&format!(
            "/v1/organizations/{org}/runs/{run_id}/log?step=deploy/slow"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    assert!(
        log.as_array().unwrap().iter().any(|l| l["line"]
            .as_str()
            .is_some_and(|t| t.contains("nothing to upgrade"))),
        "{log:#}"
    );
}
