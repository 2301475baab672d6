//! Deploy time of an environment of 1, 10 and 50 services, end to end: the API, the
//! environment's queue and deploy workflows on Temporal's dev server, real helm, and the
//! Kubernetes stand-in, where each service's rollout takes a simulated time between 0.3 and
//! 3 s. Services deploy in parallel (max_parallel = the number of services), so the time
//! should follow the slowest service, not the sum. `cargo bench --bench deploy_environment`.
//!
//! The bed is the system tests' (`tests/system/support.rs`): a provisioned cluster first.

#[path = "../tests/system/support.rs"]
#[allow(dead_code)]
mod support;

#[path = "../tests/system/deployments.rs"]
#[allow(dead_code, unused_imports)]
mod deployments;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use windlass_standins::kube::ImageDelay;

/// The slowest service takes 3 s; the others between 0.3 and 2.7 s.
fn rollout_ms(index: usize) -> u64 {
    if index == 0 {
        3000
    } else {
        300 + (index as u64 * 337) % 2400
    }
}

#[tokio::main]
async fn main() {
    let stack = support::Stack::with_clusters().await;
    let kube = &stack.clusters.as_ref().unwrap().kube;
    let (org, account) = stack.organization_with_verified_azure_account().await;
    let cluster = deployments::provisioned_cluster(&stack, org, account).await;
    let (_, _, project) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/projects"),
            json!({"name": "bench"}),
            &[],
        )
        .await;
    let project = project["id"].as_str().unwrap().to_owned();
    kube.set_image_delays(
        (0..50)
            .map(|i| ImageDelay {
                marker: format!(":r-{}ms", rollout_ms(i)),
                delay_ms: rollout_ms(i),
            })
            .collect(),
    );

    println!(
        "\nenvironment deploy time (API -> queue -> deploy workflow -> helm -> rollout watch), simulated rollouts 0.3-3 s"
    );
    println!(
        "{:>9} {:>13} {:>13} {:>11} {:>14}",
        "services", "slowest (s)", "sum (s)", "deploy (s)", "deploy/slowest"
    );
    for services in [1usize, 10, 50] {
        let specs: Vec<_> = (0..services)
            .map(|i| {
                json!({"kind": "container_app", "name": format!("svc-{i}"),
                       "image": format!("bench/app:r-{}ms", rollout_ms(i)), "port": 8080})
            })
            .collect();
        let (_, _, created) = stack
            .api
            .post(
                &format!("/v1/organizations/{org}/projects/{project}/environments"),
                json!({"name": format!("n{services}"), "type": "development",
                       "cluster_id": cluster, "max_parallel": services, "services": specs}),
                &[],
            )
            .await;
        let env = created["environment"]["id"].as_str().unwrap().to_owned();
        let started = deployments::deploy(&stack, org, &env, json!({})).await;
        let run = stack
            .wait_for_run(
                org,
                started["run"]["id"].as_str().unwrap(),
                Duration::from_secs(900),
                |r| r["finished_at"].is_string(),
            )
            .await;
        assert_eq!(run["status"], "succeeded", "{run:#}");
        let at = |key: &str| run[key].as_str().unwrap().parse::<DateTime<Utc>>().unwrap();
        let wall = (at("finished_at") - at("created_at")).as_seconds_f64();
        let slowest = (0..services).map(rollout_ms).max().unwrap() as f64 / 1000.0;
        let sum = (0..services).map(rollout_ms).sum::<u64>() as f64 / 1000.0;
        println!(
            "{services:>9} {slowest:>13.1} {sum:>13.1} {wall:>11.1} {:>14.2}",
            wall / slowest
        );
    }
}
