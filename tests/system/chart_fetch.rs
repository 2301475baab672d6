//! A user's chart that cannot be fetched, and service names a real cluster refuses: both
//! stopped early with an error that says what to fix, instead of a quarter of an hour of
//! "could not reach the cluster".

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use windlass_core::runs::{RunStatus, StepStatus};

use crate::deployments::{allow_plain_http_charts, deploy, finished, provisioned_cluster};
use crate::support::{Stack, step};

/// Where the chart is said to be: nothing listens on port 1.
const UNREACHABLE_REPOSITORY: &str = "http://127.0.0.1:1/charts";

fn web() -> Value {
    json!({"kind": "container_app", "name": "web", "image": "shop/web:1", "port": 8080,
           "rollout_timeout_seconds": 10})
}

#[tokio::test]
async fn a_chart_from_an_unreachable_registry_fails_within_a_minute_naming_it_and_rolls_back() {
    let stack = Stack::with_clusters().await;
    let (org, account) = stack.organization_with_verified_azure_account().await;
    let cluster = provisioned_cluster(&stack, org, account).await;
    let kube = &stack.clusters.as_ref().unwrap().kube;
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
                   "services": [web()]}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let env = created["environment"]["id"].as_str().unwrap().to_owned();
    let first = deploy(&stack, org, &env, json!({})).await;
    assert_eq!(
        finished(&stack, org, &first).await.status,
        RunStatus::Succeeded
    );

    // The README's example: a user chart next to the app, from a repository that is down.
    allow_plain_http_charts(&stack, org).await;
    let services = json!([web(), {"kind": "helm_chart", "name": "cache", "timeout_seconds": 60,
        "chart": {"from": "repository", "url": UNREACHABLE_REPOSITORY, "name": "redis", "version": "19.0.0"}}]);
    let (status, _, replaced) = stack
        .api
        .raw(
            reqwest::Method::PUT,
            &format!("/v1/organizations/{org}/environments/{env}/services"),
            Some("application/json"),
            services.to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{replaced:#}");

    let started = Instant::now();
    let second = deploy(&stack, org, &env, json!({})).await;
    let run = finished(&stack, org, &second).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(75), "took {took:?}");
    assert_eq!(run.status, RunStatus::Failed, "{run:#?}");
    let named = format!("chart redis 19.0.0 could not be fetched from {UNREACHABLE_REPOSITORY}");
    // The cause reaches the run's error and the deployment's record.
    let error = run.error.as_deref().unwrap();
    assert!(error.contains(&named), "{error}");
    assert!(error.contains("connection refused"), "{error}");
    assert!(error.contains("rolled back to revision 1"), "{error}");
    let (_, history) = stack
        .api
        .get(&format!(
            "/v1/organizations/{org}/environments/{env}/deployments"
        ))
        .await;
    assert_eq!(history[0]["revision"], 2);
    assert_eq!(history[0]["state"], "rolled_back", "{:#}", history[0]);
    assert!(
        history[0]["detail"].as_str().unwrap().contains(&named),
        "{:#}",
        history[0]
    );
    // One attempt of the step: terminal, not retried as an unreachable cluster.
    let cache = step(&run, "deploy/cache");
    assert_eq!(cache.status, StepStatus::Failed, "{cache:#?}");
    assert!(
        cache.last_error.as_deref().unwrap().contains(&named),
        "{cache:#?}"
    );
    assert_eq!(cache.attempts, 1, "{cache:#?}");
    // helm's own `Error:` lines are errors in the step log.
    let run_id = second.run.id;
    let (status, log) = stack
        .api
        .get(&format!(
            "/v1/organizations/{org}/runs/{run_id}/log?step=deploy/cache"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let errors: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["level"] == "error")
        .collect();
    assert!(
        errors
            .iter()
            .any(|l| l["line"].as_str().unwrap_or_default().starts_with("Error:")),
        "{log:#}"
    );
    // What the cluster holds: no cache release, web still on revision 1 and ready.
    assert!(
        kube.helm_releases("shop-prod")
            .iter()
            .all(|r| r.name != "cache"),
        "{:?}",
        kube.helm_releases("shop-prod")
    );
    let web = kube.get("Deployment", "shop-prod", "web").unwrap();
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"],
        "shop/web:1"
    );
}

#[tokio::test]
async fn names_a_real_cluster_refuses_are_refused_before_any_run() {
    let stack = Stack::without_worker().await;
    let (org, account) = stack.organization_with_azure_account().await;
    let shop = crate::tenancy::project_of(&stack, org, "shop").await;
    let cluster = crate::tenancy::cluster_hosting(
        &stack,
        org,
        account,
        "prod-eu",
        &[windlass_core::audit::Environment::Production],
    )
    .await;
    let environments = format!("/v1/organizations/{org}/projects/{shop}/environments");
    for (service, expected) in [
        (
            json!({"kind": "container_app", "name": "2fa", "image": "auth:1", "port": 80}),
            "must start with a lowercase letter",
        ),
        (
            json!({"kind": "cron_job", "name": "n".repeat(53), "image": "tools:1", "schedule": "0 3 * * *"}),
            "a cron job's name is at most 52",
        ),
    ] {
        let body = crate::tenancy::new_environment("prod", "production", cluster, json!([service]));
        let (status, _, problem) = stack.api.post(&environments, body, &[]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem:#}");
        assert!(
            problem["detail"].as_str().unwrap().contains(expected),
            "{problem:#}"
        );
    }
    // A job or cron job may start with a digit: only Services need a letter first.
    let body = crate::tenancy::new_environment(
        "prod",
        "production",
        cluster,
        json!([{"kind": "cron_job", "name": "2fa-cleanup", "image": "tools:1", "schedule": "0 3 * * *"}]),
    );
    let (status, _, created) = stack.api.post(&environments, body, &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{created:#}");
}
