//! A worker process killed with SIGKILL mid-activity: the run still completes on a new
//! worker, and nothing is applied twice in the customer's tenant.

use std::time::Duration;

use windlass_core::runs::{RunStatus, StepStatus};
use windlass_test_support::client::output;
use windlass_workflows::contracts::AZURE_RESOURCE_PROVIDERS;

use crate::support::{Stack, setup_request, step};

#[tokio::test]
async fn a_worker_killed_mid_activity_is_replaced_and_nothing_is_applied_twice() {
    let stack = Stack::without_worker().await;
    // Providers take a while to register, so the first worker dies with them in flight.
    stack
        .azure
        .set_provider_registration_delay(Duration::from_secs(6));
    stack.azure.set_replication_delay(Duration::from_secs(1));
    let (org, account) = stack.organization_with_azure_account().await;
    let mut first = stack.spawn_worker_process();

    let started = stack
        .start_run(org, setup_request(account), None)
        .await
        .unwrap();
    let id = started.id;
    stack
        .wait_for_run(org, id, Duration::from_secs(60), |run| {
            run.current_step
                .as_deref()
                .is_some_and(|s| s.starts_with("register-provider/"))
        })
        .await;
    // Until a registration reached ARM (the first token exchange, with Entra reading the
    // issuer's keys, comes before it).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while register_calls(&stack) == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    first.kill().expect("SIGKILL the worker");
    first.wait().unwrap();
    let registers_before = register_calls(&stack);
    assert!(
        registers_before >= 1,
        "the provider registrations were in flight"
    );

    let mut second = stack.spawn_worker_process();
    let run = stack
        .wait_for_run(org, id, Duration::from_secs(180), |run| {
            run.finished_at.is_some()
        })
        .await;
    second.kill().unwrap();
    second.wait().unwrap();

    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    // At least one step was picked up again by the second worker.
    let retried: Vec<_> = run.steps.iter().filter(|s| s.attempts > 1).collect();
    assert!(!retried.is_empty(), "{run:#?}");
    assert_eq!(step(&run, "verify-access").status, StepStatus::Succeeded);

    // Each resource came into existence exactly once.
    let azure = stack.azure.state();
    for (id, writes) in &azure.writes {
        assert!(
            writes.creations <= 1,
            "{id} created {} times",
            writes.creations
        );
    }
    let role_id = output(&run)["role_definition_id"].as_str().unwrap();
    let assignment_id = output(&run)["role_assignment_id"].as_str().unwrap();
    assert_eq!(stack.azure.creations_of(role_id), 1);
    assert_eq!(stack.azure.creations_of(assignment_id), 1);
    // Besides what the customer set up (the setup identity, its Owner assignment) and
    // Windlass's application in its home tenant: one assignment, one principal.
    assert_eq!(azure.role_assignments.len(), 1 + 1);
    assert_eq!(azure.service_principals.len(), 1 + 2);
    assert_eq!(azure.providers.len(), AZURE_RESOURCE_PROVIDERS.len());
}

fn register_calls(stack: &Stack) -> usize {
    stack
        .azure
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains("/register?"))
        .count()
}
