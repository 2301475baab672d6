//! Weekly maintenance: each cluster gets a Temporal schedule on its maintenance window,
//! which operators can read, pause, trigger and backfill through the API; a triggered
//! maintenance inside the window checks upgrades, detects drift, updates the charts and
//! re-issues the kubeconfig.

use std::time::{Duration, Instant};

use chrono::{Datelike, Timelike, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use windlass_core::cluster_charts::ChartGraph;
use windlass_core::runs::RunStatus;
use windlass_workflows::engine::Engine;

use crate::support::{Stack, id_of};

#[tokio::test]
async fn a_clusters_maintenance_schedule_is_operated_through_the_api() {
    let stack = Stack::with_clusters().await;
    let (org, account) = stack.organization_with_verified_azure_account().await;

    // A window that is open now, so a triggered maintenance runs at once.
    let opened = (Utc::now() - chrono::Duration::minutes(5))
        .with_second(0)
        .unwrap()
        .with_nanosecond(0)
        .unwrap();
    let window = json!({
        "weekday": opened.weekday().to_string(),
        "start": opened.format("%H:%M:%S").to_string(),
        "duration_minutes": 180,
    });
    let (status, _, started) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/clusters"),
            json!({
                "name": "ops",
                "cloud_account_id": account,
                "region": "westeurope",
                "kubernetes_version": "1.32",
                "maintenance_window": window,
            }),
            &[("idempotency-key", "create-ops")],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let cluster = started["cluster"]["id"].as_str().unwrap().to_owned();
    let run = stack
        .wait_for_run(org, id_of(&started["run"]), Duration::from_secs(300), |r| {
            r.finished_at.is_some()
        })
        .await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");

    let path = format!("/v1/organizations/{org}/clusters/{cluster}/maintenance");
    let (status, schedule) = stack.api.get(&path).await;
    assert_eq!(status, StatusCode::OK, "{schedule}");
    assert_eq!(schedule["paused"], false);
    let next: chrono::DateTime<Utc> = schedule["next_runs"][0].as_str().unwrap().parse().unwrap();
    assert_eq!(next.weekday(), opened.weekday(), "{schedule}");
    assert_eq!(
        (next.hour(), next.minute()),
        (opened.hour(), opened.minute())
    );
    assert!(
        next > Utc::now(),
        "this week's opening has passed: next week's is next"
    );

    let (status, _, paused) = stack
        .api
        .post(
            &format!("{path}/pause"),
            json!({"note": "change freeze"}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["paused"], true);
    assert_eq!(paused["note"], "change freeze");
    let (_, _, resumed) = stack
        .api
        .post(&format!("{path}/unpause"), json!({}), &[])
        .await;
    assert_eq!(resumed["paused"], false);

    // Backfill refuses the future and nonsense, accepts the past.
    let now = Utc::now();
    let (status, _, refused) = stack
        .api
        .post(
            &format!("{path}/backfill"),
            json!({"start": now - chrono::Duration::days(1), "end": now + chrono::Duration::days(1)}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let (status, _, refused) = stack
        .api
        .post(
            &format!("{path}/backfill"),
            json!({"start": now, "end": now - chrono::Duration::days(1)}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");

    // Run it now: inside the window every task runs.
    let (status, _, _) = stack
        .api
        .post(&format!("{path}/trigger"), json!({}), &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(60);
    let workflow_id = loop {
        let (_, schedule) = stack.api.get(&path).await;
        if let Some(id) = schedule["recent_runs"][0]["workflow_id"].as_str() {
            break id.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the trigger started nothing: {schedule}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let engine = Engine::connect(&stack.engine_config).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let state = engine.describe(&workflow_id).await.unwrap();
        if state.status != RunStatus::Running {
            assert_eq!(
                state.status,
                RunStatus::Succeeded,
                "maintenance {workflow_id}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "maintenance still running");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // What it did, seen where it did it: AKS versions asked for the cluster's region,
    // every chart upgraded once more, no state lock left behind.
    let asked: Vec<_> = stack
        .azure
        .requests()
        .into_iter()
        .filter(|r| {
            r.path
                .to_ascii_lowercase()
                .contains("/locations/westeurope/kubernetesversions")
        })
        .collect();
    assert_eq!(asked.len(), 1, "{asked:?}");
    let kube = &stack.clusters.as_ref().unwrap().kube;
    for chart in ChartGraph::standard().charts() {
        let releases = kube.helm_releases(&chart.namespace);
        let newest = releases
            .iter()
            .filter(|r| r.name == chart.name)
            .map(|r| r.revision)
            .max();
        assert_eq!(newest, Some(2), "{}: {releases:?}", chart.name);
    }
    let (_, schedule): (StatusCode, Value) = stack.api.get(&path).await;
    assert_eq!(schedule["recent_runs"].as_array().unwrap().len(), 1);

    // The organisation's schedules, all in one list.
    let (status, all) = stack
        .api
        .get(&format!("/v1/organizations/{org}/maintenance-schedules"))
        .await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["cluster_name"], "ops");
    assert_eq!(all[0]["schedule"]["paused"], false);
}
