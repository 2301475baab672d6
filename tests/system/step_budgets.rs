//! A step's budget counts the time it runs, not the time it waits for a worker: runs whose
//! steps wait in the queue for longer than their budget (a burst on a busy fleet) all
//! succeed, and a step that really runs past its budget still fails, saying which step
//! and what budget.
//!
//! Budgets here are capped to seconds through the worker's step timing (the knob a test
//! has; production budgets are the workflows' own, in minutes).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use windlass_core::runs::{RunStatus, StepStatus};
use windlass_workflows::step_budget::StepTiming;

use crate::support::{Stack, setup_request, step};

/// Azure's lags off: these tests are about time in the queue and time running, not about
/// waiting Azure out.
fn without_lags(stack: &Stack) {
    stack.azure.set_replication_delay(Duration::ZERO);
    stack.azure.set_role_replication_delay(Duration::ZERO);
    stack.azure.set_assignment_propagation_delay(Duration::ZERO);
    stack.azure.set_graph_lag(Duration::ZERO);
}

#[tokio::test]
async fn runs_whose_steps_wait_for_a_worker_longer_than_their_budget_all_succeed() {
    // Seconds, yet well above what a step here takes on a machine busy with the rest of the
    // suite (each first attempt must finish within it).
    const BUDGET: Duration = Duration::from_secs(8);
    const RUNS: usize = 6;
    let began = Instant::now();
    let mut stack = Stack::without_worker().await;
    without_lags(&stack);
    stack.step_timing = StepTiming {
        queue_allowance: Duration::from_secs(600),
        budget_cap: Some(BUDGET),
    };
    // A worker whose activity slots are all taken: it runs the workflows, which schedule
    // their steps, but no worker polls the steps' queue.
    stack.activity_slots = 0;
    stack.start_in_process_worker().await;

    let org = stack.organization().await;
    let mut runs = Vec::new();
    for i in 0..RUNS {
        let tenant = stack.customer_tenant_trusting(org);
        let (status, account) = stack.register_azure_account(org, &tenant).await;
        assert_eq!(status, StatusCode::CREATED, "{account}");
        let account = account["id"].as_str().unwrap().parse().unwrap();
        let started = stack
            .start_run(org, setup_request(account), Some(&format!("burst-{i}")))
            .await
            .unwrap();
        runs.push(started.id);
    }
    // Queued for well over the budget: nothing has started, nothing has failed.
    tokio::time::sleep(BUDGET * 3 / 2).await;
    for id in runs.iter().copied() {
        let run = stack.run(org, id).await;
        assert!(run.finished_at.is_none(), "{run:#?}");
        assert!(run.steps.is_empty(), "{run:#?}");
    }

    // The fleet frees up.
    stack.activity_slots = 64;
    stack.start_in_process_worker().await;
    for id in runs.iter().copied() {
        let run = stack.wait_until_finished(org, id).await;
        assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
        assert!(run.error.is_none(), "{run:#?}");
        // The first steps started after waiting for longer than their budget.
        let first = step(&run, "register-provider/Microsoft.Compute");
        let waited = (first.first_started_at - run.created_at).to_std().unwrap();
        assert!(waited > BUDGET, "waited only {waited:?}: {run:#?}");
        for s in &run.steps {
            assert_eq!(s.status, StepStatus::Succeeded, "{run:#?}");
        }
    }
    // The patched path (budget headers, queue allowance) replays from now on.
    crate::histories::record_histories(
        &stack,
        "steps_queued_past_their_budget",
        &[format!("run-{}", runs[0])],
    )
    .await;
    eprintln!("burst of {RUNS} queued runs: {:?}", began.elapsed());
}

#[tokio::test]
async fn a_step_running_past_its_budget_fails_naming_the_step_and_its_budget() {
    // Above what the steps before assign-role take on a busy machine.
    const BUDGET: Duration = Duration::from_secs(5);
    let began = Instant::now();
    let mut stack = Stack::without_worker().await;
    without_lags(&stack);
    // ARM does not know the new service principal for two minutes: assign-role retries
    // (a lag the step may wait out for a minute here) until its budget ends.
    stack.azure.set_replication_delay(Duration::from_secs(120));
    stack.step_timing = StepTiming {
        queue_allowance: Duration::from_secs(600),
        budget_cap: Some(BUDGET),
    };
    stack.start_in_process_worker().await;
    let (org, account) = stack.organization_with_azure_account().await;
    let started = stack
        .start_run(org, setup_request(account), None)
        .await
        .unwrap();
    let run = stack.wait_until_finished(org, started.id).await;

    assert_eq!(run.status, RunStatus::Failed, "{run:#?}");
    let assign = step(&run, "assign-role");
    assert_eq!(assign.status, StepStatus::Failed, "{run:#?}");
    let error = assign.last_error.as_deref().unwrap();
    assert!(
        error.starts_with("step assign-role exceeded its budget of 5s"),
        "{run:#?}"
    );
    // It ran for its budget, retrying, and was not retried after it.
    assert!(assign.attempts > 1, "{run:#?}");
    let ran = (assign.finished_at.unwrap() - assign.first_started_at)
        .to_std()
        .unwrap();
    assert!(ran >= BUDGET && ran < BUDGET * 10, "ran {ran:?}: {run:#?}");
    // The steps after it never ran.
    assert!(
        run.steps.iter().all(|s| s.key != "verify-access"),
        "{run:#?}"
    );
    // The run's own error says so too.
    assert!(
        run.error
            .as_deref()
            .unwrap()
            .contains("step assign-role exceeded its budget of 5s"),
        "{run:#?}"
    );
    crate::histories::record_histories(
        &stack,
        "step_past_its_budget",
        &[format!("run-{}", run.id)],
    )
    .await;
    eprintln!("over-budget step: {:?}", began.elapsed());
}
