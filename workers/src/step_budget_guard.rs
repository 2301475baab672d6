//! Enforces a step's budget on the time it runs, not the time it waits in its task queue
//! (see `windlass_workflows::step_budget`: Temporal's own schedule-to-close is the budget
//! plus a queue allowance, and the budget itself comes in the activity header).
//!
//! An attempt is refused before it runs, and a retryable failure is made final, once the
//! step has been running for its budget, counted from its first attempt's start: a
//! `StepBudgetExceeded` failure, non-retryable, naming the step and its budget. An attempt
//! that is already running is never cut short here (a terraform or helm process must be
//! interrupted through its own cancellation, not dropped); each attempt is bounded by its
//! start-to-close, so a step overruns its budget by at most one attempt.
//!
//! The running time is `windlass_activities::step_time`'s: from the first attempt's start
//! where this process saw it, else what the attempt can prove; never the queue.

use std::time::{Duration, SystemTime};

use temporalio_sdk::activities::ActivityError;
use temporalio_sdk::interceptors::{
    ActivityInboundInterceptor, ExecuteActivityInput, ExecuteActivityOutput, Next,
};
use windlass_activities::error::{FailureCode, StepError, Verdict, failure};
use windlass_activities::step_time::{self, attempt_times, running_time};
use windlass_workflows::step_budget::budget_from_headers;

pub use windlass_workflows::step_budget::STEP_BUDGET_EXCEEDED;

/// The guard, one per worker, shared by every attempt it runs.
#[derive(Default)]
pub struct StepBudgetGuard;

impl StepBudgetGuard {
    pub fn new() -> Self {
        Self
    }
}

/// A step that ran past its budget.
#[derive(Debug, thiserror::Error)]
#[error(
    "step {step} exceeded its budget of {}: it has been running for {} since its first attempt started (time waiting for a worker is not counted){}",
    human(*.budget),
    human(*.running),
    .last_error.as_ref().map(|e| format!("; last error: {e}")).unwrap_or_default()
)]
pub struct BudgetExceeded {
    pub step: String,
    pub budget: Duration,
    pub running: Duration,
    pub last_error: Option<String>,
}

/// Final: the step had its time.
impl StepError for BudgetExceeded {
    fn verdict(&self) -> Verdict {
        Verdict::Terminal
    }

    fn failure_code(&self) -> FailureCode {
        FailureCode::StepBudgetExceeded
    }
}

/// `1h 30m`, `10m`, `2.5s`: budgets as the workflows state them.
fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        let ms = d.as_millis();
        return if ms.is_multiple_of(1000) {
            format!("{secs}s")
        } else {
            format!("{:.1}s", d.as_secs_f64())
        };
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = Vec::new();
    if h > 0 {
        out.push(format!("{h}h"));
    }
    if m > 0 {
        out.push(format!("{m}m"));
    }
    if s > 0 {
        out.push(format!("{s}s"));
    }
    out.join(" ")
}

impl ActivityInboundInterceptor for StepBudgetGuard {
    fn execute_activity<'a>(
        &'a self,
        input: ExecuteActivityInput,
        next: Next<'a, ExecuteActivityInput, ExecuteActivityOutput<'a>>,
    ) -> ExecuteActivityOutput<'a> {
        let info = input.activity_info().clone();
        // Every step's first start is noted, so its retries here count from it (and so do
        // Azure's settle windows), budget or not.
        let first_start = step_time::remember(&info);
        let Some(budget) = budget_from_headers(input.headers()) else {
            // Steps of executions older than the budget header: schedule-to-close is
            // their budget, as it always was.
            return Box::pin(async move {
                let result = next.run(input).await;
                if !retried(&result) {
                    step_time::forget(&info);
                }
                result
            });
        };
        let times = attempt_times(&info, SystemTime::now());
        Box::pin(async move {
            let exceeded = |last_error: Option<String>| {
                let running = running_time(&times, first_start, SystemTime::now());
                (running >= budget).then(|| BudgetExceeded {
                    step: info.activity_id.clone(),
                    budget,
                    running,
                    last_error,
                })
            };
            if let Some(over) = exceeded(None) {
                tracing::warn!(step = %over.step, ?budget, running = ?over.running, "step refused: past its budget");
                step_time::forget(&info);
                return Err(failure(over));
            }
            let result = match next.run(input).await {
                Err(ActivityError::Application(attempt_failure))
                    if !attempt_failure.is_non_retryable() =>
                {
                    match exceeded(Some(attempt_failure.source_error().to_string())) {
                        Some(over) => Err(failure(over)),
                        None => Err(ActivityError::Application(attempt_failure)),
                    }
                }
                other => other,
            };
            if !retried(&result) {
                step_time::forget(&info);
            }
            result
        })
    }
}

/// Whether Temporal may run the step again after this result. A cancelled attempt may be
/// one that timed out (start-to-close, heartbeat) and is retried, so its step's first start
/// is kept (until the bounded memory lets it go).
fn retried<T>(result: &Result<T, ActivityError>) -> bool {
    match result {
        Ok(_) => false,
        Err(ActivityError::Application(failure)) => !failure.is_non_retryable(),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_forgotten_only_when_temporal_will_not_run_it_again() {
        use temporalio_common::error::ApplicationFailure;
        let failed = |non_retryable: bool| -> Result<(), ActivityError> {
            Err(ActivityError::application(
                ApplicationFailure::builder("no")
                    .non_retryable(non_retryable)
                    .build(),
            ))
        };
        assert!(!retried(&Ok(())));
        assert!(!retried(&failed(true)));
        assert!(retried(&failed(false)));
        assert!(retried::<()>(&Err(ActivityError::cancelled())));
    }

    #[test]
    fn the_error_names_the_step_and_its_budget() {
        let error = BudgetExceeded {
            step: "assign-role".into(),
            budget: Duration::from_secs(30 * 60),
            running: Duration::from_secs(30 * 60 + 2),
            last_error: Some("principal not replicated".into()),
        };
        assert_eq!(
            error.to_string(),
            "step assign-role exceeded its budget of 30m: it has been running for 30m 2s since \
             its first attempt started (time waiting for a worker is not counted); last \
             error: principal not replicated"
        );
        assert_eq!(human(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human(Duration::from_secs(2 * 3600)), "2h");
    }
}
