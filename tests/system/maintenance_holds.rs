//! One operation per cluster, whatever starts it: a maintenance fired by the schedule
//! while the cluster is being provisioned waits for the provisioning, works only while it
//! holds the cluster, lets go while it waits for the next window, and is cancelled by the
//! cluster's delete; a maintenance of a deleted cluster touches nothing.

use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, Timelike, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};
use windlass_core::clusters::ClusterSpec;
use windlass_core::runs::RunStatus;
use windlass_workflows::ClusterMaintenance;
use windlass_workflows::cluster_contracts::{MaintenanceInput, MaintenanceTask};
use windlass_workflows::engine::Engine;

use crate::cluster_provisioning::create_cluster;
use crate::histories::record_histories;
use crate::support::{KillOnDrop, Stack, id_of};

fn at(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

async fn maintenance_runs(stack: &Stack, org: uuid::Uuid) -> Vec<Value> {
    let (status, runs) = stack
        .api
        .get(&format!(
            "/v1/organizations/{org}/runs?workflow=cluster_maintenance"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{runs}");
    runs.as_array().unwrap().clone()
}

async fn wait_for_workflow(engine: &Engine, workflow_id: &str, limit: Duration) -> RunStatus {
    let deadline = Instant::now() + limit;
    loop {
        let state = engine.describe(workflow_id).await.unwrap();
        if state.status != RunStatus::Running {
            return state.status;
        }
        assert!(Instant::now() < deadline, "{workflow_id} still running");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Calls the stand-in ARM received for the cluster's resource group since `since`.
fn resource_group_calls(stack: &Stack, cluster: &ClusterSpec, since: DateTime<Utc>) -> Vec<String> {
    let id = cluster.id.simple().to_string();
    stack
        .azure
        .requests()
        .into_iter()
        .filter(|r| r.at > since && r.path.to_ascii_lowercase().contains("resourcegroups"))
        .filter(|r| r.path.contains(&cluster.name) || r.path.contains(&id[..8]))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[tokio::test]
async fn maintenance_waits_for_the_provisioning_lets_go_between_windows_and_ends_with_the_cluster()
{
    let stack = Stack::with_clusters_without_worker().await;
    // The Azure stand-in's long-running operations take their time, so the provisioning
    // is still applying when the maintenance fires.
    let _worker = KillOnDrop(
        stack
            .cluster_worker_command("holds")
            .spawn()
            .expect("spawn windlass worker"),
    );
    let (org, account) = stack.organization_with_verified_azure_account().await;

    // A window with 30 minutes left: the upgrade check and drift detection fit, the chart
    // updates (45 minutes) wait for next week's.
    let opened = (Utc::now() - chrono::Duration::minutes(150))
        .with_second(0)
        .unwrap()
        .with_nanosecond(0)
        .unwrap();
    let window = json!({
        "weekday": opened.weekday().to_string(),
        "start": opened.format("%H:%M:%S").to_string(),
        "duration_minutes": 180,
    });
    let (status, started) = create_cluster(
        &stack,
        org,
        json!({
            "name": "held",
            "cloud_account_id": account,
            "region": "westeurope",
            "kubernetes_version": "1.33",
            "maintenance_window": window,
        }),
        "create-held",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let cluster: ClusterSpec = serde_json::from_value(started["cluster"].clone()).unwrap();
    let provision = id_of(&started["run"]);
    stack
        .wait_for_run(org, provision, Duration::from_secs(120), |r| {
            r.current_step.as_deref() == Some("terraform-apply")
        })
        .await;

    // The schedule fires (an operator's trigger) in the middle of the provisioning.
    let path = format!(
        "/v1/organizations/{org}/clusters/{}/maintenance",
        cluster.id
    );
    let (status, _, _) = stack
        .api
        .post(&format!("{path}/trigger"), json!({}), &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(60);
    let maintenance = loop {
        let (_, schedule) = stack.api.get(&path).await;
        if let Some(id) = schedule["recent_runs"][0]["workflow_id"].as_str() {
            break id.to_owned();
        }
        assert!(Instant::now() < deadline, "the trigger started nothing");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // It waits: nothing of it runs while the provisioning holds the cluster.
    let deadline = Instant::now() + Duration::from_secs(600);
    let provisioned = loop {
        let holds = maintenance_runs(&stack, org).await;
        let run = stack.run(org, provision).await;
        if run.finished_at.is_some() {
            break run;
        }
        assert_eq!(holds, Vec::<Value>::new(), "held during the provisioning");
        assert!(Instant::now() < deadline, "still provisioning: {run:#?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(provisioned.status, RunStatus::Succeeded, "{provisioned:#?}");
    let provisioned_at = provisioned.finished_at.unwrap();
    let versions_asked = |since: DateTime<Utc>| {
        stack
            .azure
            .requests()
            .into_iter()
            .filter(|r| r.at > since)
            .filter(|r| {
                r.path
                    .to_ascii_lowercase()
                    .contains("/locations/westeurope/kubernetesversions")
            })
            .map(|r| r.at)
            .collect::<Vec<_>>()
    };
    let asked_before = versions_asked(opened);

    // Then it takes the cluster, works, and lets go when the chart updates do not fit.
    let deadline = Instant::now() + Duration::from_secs(300);
    let hold = loop {
        let holds = maintenance_runs(&stack, org).await;
        if let Some(hold) = holds.first().filter(|h| h["finished_at"].is_string()) {
            break hold.clone();
        }
        assert!(Instant::now() < deadline, "no finished hold: {holds:#?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(hold["status"], "succeeded", "{hold:#}");
    assert_eq!(hold["target"], format!("cluster:{}", cluster.id));
    assert!(
        at(&hold["created_at"]) >= provisioned_at,
        "held at {} before the provisioning ended at {provisioned_at}",
        hold["created_at"]
    );
    let asked = versions_asked(opened);
    assert_eq!(
        asked.len(),
        asked_before.len() + 1,
        "the upgrade check asked AKS once"
    );
    assert!(
        asked
            .iter()
            .all(|t| *t > provisioned_at || asked_before.contains(t))
    );
    assert_eq!(maintenance_runs(&stack, org).await.len(), 1);
    let engine = Engine::connect(&stack.engine_config).await.unwrap();
    assert_eq!(
        engine.describe(&maintenance).await.unwrap().status,
        RunStatus::Running,
        "waiting for next week's window"
    );

    // While it waits for the window it holds nothing, so the cluster can be deleted; the
    // delete cancels it.
    let (status, _, deleting) = stack
        .api
        .delete(&format!("/v1/organizations/{org}/clusters/{}", cluster.id))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{deleting}");
    assert_eq!(
        wait_for_workflow(&engine, &maintenance, Duration::from_secs(60)).await,
        RunStatus::Cancelled
    );
    let deleted = stack.wait_until_finished(org, id_of(&deleting)).await;
    assert_eq!(deleted.status, RunStatus::Succeeded, "{deleted:#?}");
    let deleted_at = deleted.finished_at.unwrap();
    let (status, gone) = stack
        .api
        .get(&format!("/v1/organizations/{org}/clusters/{}", cluster.id))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{gone}");

    // A firing that raced the delete (the schedule is gone, so started by hand, in an open
    // window) finds no cluster and touches nothing in the customer's cloud.
    let mut late = MaintenanceInput {
        cluster: cluster.clone(),
        target: serde_json::from_value(deleting["input"]["target"].clone()).unwrap(),
        tasks: MaintenanceTask::all(),
    };
    // Weekday and time of one instant: "today, five minutes ago" is yesterday just
    // after midnight.
    let opened = Utc::now() - chrono::Duration::minutes(5);
    late.cluster.maintenance_window.weekday = opened.weekday();
    late.cluster.maintenance_window.start = opened.time();
    let late_id = format!("cluster-maintenance-{}-late", cluster.id);
    let handle = engine
        .client()
        .start_workflow(
            ClusterMaintenance::run,
            late,
            WorkflowStartOptions::new(stack.engine_config.task_queue.clone(), late_id.clone())
                .build(),
        )
        .await
        .unwrap();
    let report = handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .unwrap();
    assert!(report.cluster_deleted, "{report:?}");
    assert!(report.holds.is_empty(), "{report:?}");
    assert_eq!(
        resource_group_calls(&stack, &cluster, deleted_at),
        Vec::<String>::new()
    );
    assert_eq!(maintenance_runs(&stack, org).await.len(), 1);

    record_histories(
        &stack,
        "maintenance_holds_its_cluster",
        &[
            format!("run-{provision}"),
            maintenance,
            format!("run-{}", id_of(&deleting)),
            late_id,
        ],
    )
    .await;
}
