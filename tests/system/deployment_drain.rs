//! SIGTERM to a `windlass worker` in the middle of a deployment: the services it is rolling
//! out finish during the drain, the ones not started are left for the next worker, and
//! no service is deployed twice.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use windlass_core::runs::{RunStatus, StepStatus};
use windlass_standins::kube::ImageDelay;

use crate::deployments::{deploy, finished, shop_environment};
use crate::support::Stack;

#[tokio::test]
async fn sigterm_during_a_deployment_loses_no_service_and_deploys_none_twice() {
    let mut stack = Stack::with_clusters().await;
    // Five services at a time, so some have not started when the signal comes.
    let (org, env, _) = shop_environment(&stack, 5).await;
    stack.stop_in_process_worker().await;
    let kube = &stack.clusters.as_ref().unwrap().kube;
    kube.set_image_delays(vec![ImageDelay {
        marker: "shop/web:1".into(),
        delay_ms: 3000,
    }]);

    let mut first = stack
        .cluster_worker_command("first")
        .env("WINDLASS_GRACEFUL_SHUTDOWN_SECONDS", "60")
        .spawn()
        .expect("spawn windlass worker");
    let started = deploy(&stack, org, &env, json!({})).await;
    let run_id = started.run.id;
    let run = stack
        .wait_for_run(org, run_id, Duration::from_secs(120), |r| {
            r.steps
                .iter()
                .any(|s| s.status == StepStatus::Running && s.key.starts_with("deploy/"))
        })
        .await;
    let in_flight: Vec<String> = run
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Running)
        .map(|s| s.key.as_str().to_owned())
        .collect();

    let signalled = std::process::Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    let exit = tokio::task::spawn_blocking(move || first.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "the drained worker exits 0: {exit}");
    let drained = stack.run(org, run_id).await;
    for key in &in_flight {
        let step = crate::support::step(&drained, key);
        assert_eq!(
            step.status,
            StepStatus::Succeeded,
            "{key} finished in the drain: {step:?}"
        );
    }
    assert!(
        drained.finished_at.is_none(),
        "twenty-one services at five at a time outlast one drain: {drained:#?}"
    );

    let mut second = stack
        .cluster_worker_command("second")
        .spawn()
        .expect("spawn windlass worker");
    let run = finished(&stack, org, &started).await;
    let _ = second.kill();
    let _ = second.wait();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    for step in &run.steps {
        assert_eq!(step.attempts, 1, "run once: {step:?}");
    }
    // Twenty-one services, each installed exactly once: one release revision each.
    let mut revisions: BTreeMap<String, u32> = BTreeMap::new();
    for release in kube.helm_releases("shop-prod") {
        *revisions.entry(release.name).or_default() += 1;
    }
    assert_eq!(revisions.len(), 21, "{revisions:?}");
    assert!(revisions.values().all(|n| *n == 1), "{revisions:?}");
}
