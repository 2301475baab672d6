//! What every workflow does around its steps: the options its activities run with, how a
//! failed or cancelled step ends the run, and recording that end into the read model.

use std::time::Duration;

use serde::Serialize;
use temporalio_common::error::{ApplicationFailure, IncomingError};
use temporalio_sdk::{
    ActivityCancellationType, ActivityCloseTimeouts, ActivityExecutionError, ActivityOptions,
    WorkflowCancellationToken, WorkflowContext, WorkflowResult, WorkflowTermination,
};
use temporalio_workflow::RetryPolicy;

use crate::run_contracts::{OutcomeStatus, RunActivities, RunOutcome};
use crate::step_budget::STEP_BUDGET_EXCEEDED;

/// Options for one step of a run. `key` becomes the activity id, which names the step in
/// the read model. `budget` bounds the step including all its retries; since
/// [`crate::patches::STEP_BUDGETS_COUNT_RUNNING_TIME`] it counts the time the step runs,
/// not the time it waits for a worker (see [`crate::step_budget`]).
pub(crate) fn step<W>(
    ctx: &WorkflowContext<W>,
    key: impl Into<String>,
    budget: Duration,
) -> ActivityOptions {
    let options = step_with_budget(key, budget);
    if ctx.patched(crate::patches::STEP_BUDGETS_COUNT_RUNNING_TIME) {
        crate::step_budget::timed(options, budget, STEP_ATTEMPT)
    } else {
        options
    }
}

/// A step's attempts: a call that hangs is tried again after this.
const STEP_ATTEMPT: Duration = Duration::from_secs(300);

/// The options of steps before [`crate::patches::STEP_BUDGETS_COUNT_RUNNING_TIME`]:
/// schedule-to-close is the budget, queue time included.
fn step_with_budget(key: impl Into<String>, budget: Duration) -> ActivityOptions {
    ActivityOptions::with_close_timeouts(ActivityCloseTimeouts::ScheduleAndStartToClose {
        schedule_to_close: budget,
        start_to_close: STEP_ATTEMPT,
    })
    .activity_id(key.into())
    // Long cloud waits heartbeat; a worker that dies is noticed within this.
    .heartbeat_timeout(Duration::from_secs(10))
    // A cancelled run is reported cancelled only once its activities have stopped, so
    // nothing is still writing to the cloud when the user sees "cancelled".
    .cancellation_type(ActivityCancellationType::WaitCancellationCompleted)
    .retry_policy(retry_policy())
    .build()
}

/// Retries of every step: soon at first, then at most every 30 s, until its budget ends.
fn retry_policy() -> RetryPolicy {
    RetryPolicy::builder()
        .initial_interval(Duration::from_millis(500))
        .backoff_coefficient(2.0)
        .maximum_interval(Duration::from_secs(30))
        .build()
}

/// Options for a step that runs one long command (terraform, helm): its single attempt may
/// take as long as the whole budget, and it heartbeats while it runs.
pub(crate) fn long_step<W>(
    ctx: &WorkflowContext<W>,
    key: impl Into<String>,
    budget: Duration,
) -> ActivityOptions {
    let options = step_with_budget(key, budget);
    if ctx.patched(crate::patches::STEP_BUDGETS_COUNT_RUNNING_TIME) {
        crate::step_budget::timed(options, budget, budget)
    } else {
        let mut options = options;
        options.close_timeouts = ActivityCloseTimeouts::ScheduleAndStartToClose {
            schedule_to_close: budget,
            start_to_close: budget,
        };
        options
    }
}

/// Turns a failed step into the run's end: cancelled if the run was asked to stop,
/// failed otherwise.
pub(crate) fn ended<W, T>(
    ctx: &WorkflowContext<W>,
    result: Result<T, ActivityExecutionError>,
) -> WorkflowResult<T> {
    match result {
        Ok(value) => Ok(value),
        Err(_) if ctx.cancellation_token().is_cancelled() => Err(WorkflowTermination::cancelled()),
        Err(ActivityExecutionError::Cancelled(_)) => Err(WorkflowTermination::cancelled()),
        Err(error) => match over_budget(&error) {
            // The run says which step ran out of budget, not "Activity task failed". Only
            // steps scheduled since STEP_BUDGETS_COUNT_RUNNING_TIME carry a budget the
            // worker enforces, so older histories never reach this arm.
            Some(message) => Err(WorkflowTermination::failed_application(
                ApplicationFailure::builder(message)
                    .type_name(STEP_BUDGET_EXCEEDED.to_owned())
                    .non_retryable(true)
                    .build(),
            )),
            None => Err(error.into()),
        },
    }
}

/// The message of a step that failed for running past its budget.
fn over_budget(error: &ActivityExecutionError) -> Option<String> {
    match error.cause()? {
        IncomingError::Application(failure)
            if failure.type_name() == Some(STEP_BUDGET_EXCEEDED) =>
        {
            Some(error.cause()?.failure().message.clone())
        }
        _ => None,
    }
}

/// As [`ended`], but a failed step ends the run with the step's own message (the
/// activity's error) rather than Temporal's "Activity task failed", for runs whose one
/// step's error is what the user must read.
pub(crate) fn ended_with_cause<W, T>(
    ctx: &WorkflowContext<W>,
    result: Result<T, ActivityExecutionError>,
) -> WorkflowResult<T> {
    match result {
        Err(ActivityExecutionError::Failed(failure))
            if !ctx.cancellation_token().is_cancelled() =>
        {
            let error = ActivityExecutionError::Failed(failure);
            match error.cause().map(|cause| cause.failure().message.clone()) {
                Some(message) if !message.is_empty() => {
                    Err(WorkflowTermination::failed_application(
                        ApplicationFailure::builder(message)
                            .type_name("StepFailed".to_owned())
                            .non_retryable(true)
                            .build(),
                    ))
                }
                _ => ended(ctx, Err(error)),
            }
        }
        other => ended(ctx, other),
    }
}

/// Records how the run ended, even when it was cancelled, then returns the result as is.
pub(crate) async fn record<W, T: Serialize>(
    ctx: &WorkflowContext<W>,
    result: WorkflowResult<T>,
) -> WorkflowResult<T> {
    let (status, output, error) = match &result {
        Ok(value) => (
            OutcomeStatus::Succeeded,
            serde_json::to_value(value).ok(),
            None,
        ),
        Err(WorkflowTermination::Cancelled { .. }) => (
            OutcomeStatus::Cancelled,
            None,
            Some("cancelled on request".to_owned()),
        ),
        Err(WorkflowTermination::Failed(error)) => {
            (OutcomeStatus::Failed, None, Some(error.to_string()))
        }
        // Eviction and continue-as-new are not ends of the run.
        Err(_) => return result,
    };
    // Recording a cancellation must not be cancelled.
    let options = detached(bookkeeping("record-outcome"));
    let outcome = RunOutcome {
        workflow_id: ctx.workflow_id().to_owned(),
        status,
        output,
        error,
    };
    let recorded = ctx
        .execute_activity(RunActivities::record_outcome, outcome, options)
        .await;
    if ctx.patched(crate::patches::BOOKKEEPING_NEVER_SPOILS_THE_RESULT) {
        // The run's own result stands; the API repairs an unrecorded end from Temporal.
        if let Err(error) = recorded {
            tracing::warn!(%error, "the run's end could not be recorded");
        }
    } else {
        recorded?;
    }
    result
}

/// Options for a step that writes Windlass's own records (a run's end, a deployment's
/// state): attempts of 30 s, retried with backoff for up to an hour, so a database call
/// that hangs is tried again in seconds instead of held for the whole budget.
pub(crate) fn bookkeeping(key: impl Into<String>) -> ActivityOptions {
    ActivityOptions::with_close_timeouts(ActivityCloseTimeouts::ScheduleAndStartToClose {
        schedule_to_close: Duration::from_secs(3600),
        start_to_close: Duration::from_secs(30),
    })
    .activity_id(key.into())
    .retry_policy(retry_policy())
    .build()
}

/// Options that ignore the run's cancellation: for the steps that record a run's end or
/// undo what it did, which must happen however it ended.
pub(crate) fn detached(mut options: ActivityOptions) -> ActivityOptions {
    options.cancellation_token = Some(WorkflowCancellationToken::new());
    options
}
