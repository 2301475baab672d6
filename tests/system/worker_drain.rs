//! SIGTERM drains a `windlass worker`: it reports not ready at once, stops polling, lets
//! the activities it is running finish (once), exits 0, and the run completes on the next
//! worker.

use std::time::{Duration, Instant};
use windlass_test_support::free_port;

use reqwest::StatusCode;

use windlass_core::runs::{RunStatus, StepStatus};
use windlass_workflows::engine::dev_server::{DevServer, DevServerOptions};

use crate::support::{Stack, setup_request};

async fn readiness(http: &reqwest::Client, probes: &str) -> Option<StatusCode> {
    http.get(format!("{probes}/readyz"))
        .send()
        .await
        .ok()
        .map(|r| r.status())
}

#[tokio::test]
async fn sigterm_stops_polling_and_lets_in_flight_activities_finish_once() {
    let stack = Stack::without_worker().await;
    // Long enough that the registrations are still running when the signal arrives.
    stack
        .azure
        .set_provider_registration_delay(Duration::from_secs(4));
    let (org, account) = stack.organization_with_azure_account().await;
    let probes = format!("http://127.0.0.1:{}", free_port());
    let mut worker = stack
        .worker_process_command()
        .env(
            "WINDLASS_METRICS_LISTEN",
            probes.trim_start_matches("http://"),
        )
        .env("WINDLASS_GRACEFUL_SHUTDOWN_SECONDS", "60")
        .spawn()
        .expect("spawn windlass worker");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while readiness(&http, &probes).await != Some(StatusCode::OK) {
        assert!(Instant::now() < deadline, "the worker never became ready");
        assert!(worker.try_wait().unwrap().is_none(), "the worker exited");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let health = http.get(format!("{probes}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    let started = stack
        .start_run(org, setup_request(account), None)
        .await
        .unwrap();
    let id = started.id;
    let run = stack
        .wait_for_run(org, id, Duration::from_secs(60), |run| {
            run.steps
                .iter()
                .any(|s| s.status == StepStatus::Running && s.key.starts_with("register-provider/"))
        })
        .await;
    let in_flight: Vec<String> = run
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Running)
        .map(|s| s.key.as_str().to_owned())
        .collect();
    let metrics = http
        .get(format!("{probes}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Both kinds polled, each with its own slots; the running registrations counted.
    for line in [
        r#"windlass_worker_polling{task_queue="windlass-infrastructure"} 1"#,
        r#"windlass_worker_polling{task_queue="windlass-environment"} 1"#,
        r#"windlass_worker_activity_slots{task_queue="windlass-environment"} 20"#,
        "windlass_worker_draining 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    let registering =
        r#"{activity_type="azure.register_provider",task_queue="windlass-infrastructure"}"#;
    let value = |family: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{family}{registering} ")))
            .unwrap_or_else(|| panic!("no {family} in\n{metrics}"))
            .parse()
            .unwrap()
    };
    assert!(value("windlass_activities_in_flight") >= 1);
    assert!(value("windlass_activities_started_total") >= value("windlass_activities_in_flight"));

    let signalled = std::process::Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    // Not ready while the registrations are still running: the worker is still there, and
    // says 503 (rather than not answering).
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match readiness(&http, &probes).await {
            Some(StatusCode::OK) => {}
            Some(status) => {
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
                break;
            }
            None => panic!("the worker stopped answering before it reported draining"),
        }
        assert!(Instant::now() < deadline, "still ready after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        worker.try_wait().unwrap().is_none(),
        "draining takes as long as the registrations"
    );
    let metrics = http
        .get(format!("{probes}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|l| l == "windlass_worker_draining 1"),
        "{metrics}"
    );

    let exit = tokio::task::spawn_blocking(move || worker.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "the drained worker exits 0: {exit}");
    // The operator's drain is on the record as an operator (support) action.
    let drains: Vec<(String, String)> =
        sqlx::query_as("SELECT actor_kind, details FROM audit_log WHERE action = 'workers.drain'")
            .fetch_all(stack.store.pool_for_tests())
            .await
            .unwrap();
    assert_eq!(drains.len(), 1, "{drains:?}");
    assert_eq!(drains[0].0, "support");
    assert!(drains[0].1.contains("task_queues"), "{drains:?}");
    let drained = stack.run(org, id).await;
    assert!(
        drained.finished_at.is_none(),
        "no worker polls: the run waits"
    );
    for key in &in_flight {
        let step = crate::support::step(&drained, key);
        assert_eq!(
            step.status,
            StepStatus::Succeeded,
            "{key} finished during the drain: {step:?}"
        );
        assert_eq!(step.attempts, 1, "{key} ran once: {step:?}");
    }

    // The next worker picks the run up where the drained one left it.
    let mut next = stack.spawn_worker_process();
    let run = stack.wait_until_finished(org, id).await;
    next.kill().unwrap();
    next.wait().unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    for key in &in_flight {
        let step = crate::support::step(&run, key);
        assert_eq!(step.attempts, 1, "{key} was not run again: {step:?}");
    }
    let registers = stack
        .azure
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains("/register?"))
        .count();
    assert_eq!(
        registers,
        windlass_workflows::contracts::AZURE_RESOURCE_PROVIDERS.len(),
        "each provider registered once"
    );
}

#[tokio::test]
async fn a_worker_that_cannot_reach_temporal_is_not_ready() {
    let stack = Stack::without_worker().await;
    // A Temporal of its own, so stopping it leaves the stack's alone.
    let cli =
        windlass_workflows::engine::dev_server::find_temporal_cli(&crate::support::repo_root())
            .unwrap();
    let temporal = DevServer::start(&cli, DevServerOptions::default())
        .await
        .expect("Temporal dev server");
    let probes = format!("http://127.0.0.1:{}", free_port());
    let mut worker = stack
        .worker_process_command()
        .env("WINDLASS_TEMPORAL_ADDRESS", &temporal.address)
        .env(
            "WINDLASS_METRICS_LISTEN",
            probes.trim_start_matches("http://"),
        )
        .spawn()
        .expect("spawn windlass worker");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while readiness(&http, &probes).await != Some(StatusCode::OK) {
        assert!(Instant::now() < deadline, "the worker never became ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    temporal.stop().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = http.get(format!("{probes}/readyz")).send().await.unwrap();
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            let why = response.text().await.unwrap();
            assert!(why.contains("Temporal"), "{why}");
            break;
        }
        assert!(Instant::now() < deadline, "still ready without Temporal");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Alive all the same: restarting it would not bring Temporal back.
    let health = http.get(format!("{probes}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    worker.kill().unwrap();
    worker.wait().unwrap();
}
