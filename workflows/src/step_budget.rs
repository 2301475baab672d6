//! A step's budget counts the time it runs, not the time it waits in its task queue.
//!
//! Temporal's schedule-to-close timeout starts when the step is scheduled: under a burst
//! (hundreds of runs started in a minute) steps wait in the queue for longer than their
//! budget and fail without having run, and a deploy rolls back healthy services. So a
//! step (behind [`crate::patches::STEP_BUDGETS_COUNT_RUNNING_TIME`]) is scheduled with:
//!
//! - schedule-to-start = the queue allowance (generous, hours): how long each attempt may
//!   wait for a worker;
//! - schedule-to-close = budget + queue allowance: Temporal's hard stop, never reached by
//!   a step that waited less than the allowance and ran within its budget;
//! - the budget itself in the [`BUDGET_HEADER`] activity header, which the worker's guard
//!   (`windlass_workers::StepBudgetGuard`) enforces on time counted from the step's first
//!   attempt *starting*, with a non-retryable `StepBudgetExceeded` naming step and budget.
//!
//! The options say the budget themselves (schedule-to-close minus schedule-to-start; only
//! step options set a schedule-to-start), so [`StepTimingInterceptor`] can put it in the
//! header without the workflow code passing it twice, and the header is deterministic: it
//! is a function of the command.

use std::collections::HashMap;
use std::time::Duration;

use temporalio_common::protos::temporal::api::common::v1::Payload;
use temporalio_sdk::workflow_interceptors::{
    CancellableWorkflowOutboundFuture, ScheduleActivityInput, ScheduleActivityResult,
    WorkflowInterceptor, WorkflowInterceptorConstructor, WorkflowInterceptorContext, WorkflowNext,
};
use temporalio_sdk::{ActivityCloseTimeouts, ActivityOptions};

/// Failure type of a step that ran past its budget (raised by the worker's guard).
pub const STEP_BUDGET_EXCEEDED: &str = "StepBudgetExceeded";

/// The activity header carrying a step's budget, in milliseconds (JSON).
pub const BUDGET_HEADER: &str = "windlass-step-budget";

/// How long a step may wait for a worker on top of its budget, unless configured: long
/// enough for any burst a fleet can work off, short enough that a queue nobody polls
/// still ends its runs the same day.
pub const DEFAULT_QUEUE_ALLOWANCE: Duration = Duration::from_secs(12 * 3600);

/// How a worker times the steps its workflows schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepTiming {
    /// Each attempt's time in the queue, and the slack on Temporal's schedule-to-close.
    pub queue_allowance: Duration,
    /// Caps every step's budget. For tests that show budget behaviour in seconds; `None`
    /// in production (the workflows' own budgets apply).
    pub budget_cap: Option<Duration>,
}

impl Default for StepTiming {
    fn default() -> Self {
        Self {
            queue_allowance: DEFAULT_QUEUE_ALLOWANCE,
            budget_cap: None,
        }
    }
}

/// Options for a step that runs for at most `budget` (attempts and the backoff between
/// them), however long it waits in the queue; `start_to_close` bounds each attempt.
pub(crate) fn timed(
    options: ActivityOptions,
    budget: Duration,
    start_to_close: Duration,
) -> ActivityOptions {
    let mut options = options;
    options.close_timeouts = ActivityCloseTimeouts::ScheduleAndStartToClose {
        schedule_to_close: budget + DEFAULT_QUEUE_ALLOWANCE,
        start_to_close,
    };
    options.schedule_to_start_timeout = Some(DEFAULT_QUEUE_ALLOWANCE);
    options
}

/// The budget of a step scheduled with `options`: schedule-to-close minus the queue
/// allowance (schedule-to-start). None for options not made by [`timed`] (older
/// executions' steps, bookkeeping), whose schedule-to-close is their only bound.
pub fn budget_of(options: &ActivityOptions) -> Option<Duration> {
    let allowance = options.schedule_to_start_timeout?;
    options
        .close_timeouts
        .schedule_to_close()?
        .checked_sub(allowance)
        .filter(|budget| !budget.is_zero())
}

/// `options` as `timing` wants them: the budget capped, the configured allowance. The
/// budget is still what [`budget_of`] reads.
pub fn apply(timing: &StepTiming, options: &mut ActivityOptions) -> Option<Duration> {
    let budget = budget_of(options)?;
    let budget = timing.budget_cap.map_or(budget, |cap| budget.min(cap));
    let start_to_close = match options.close_timeouts {
        ActivityCloseTimeouts::ScheduleAndStartToClose { start_to_close, .. }
        | ActivityCloseTimeouts::StartToClose(start_to_close) => start_to_close.min(
            // A capped budget caps the attempts too (a long step's one attempt is its
            // whole budget).
            timing.budget_cap.map_or(start_to_close, |_| budget),
        ),
        // Schedule-to-close only: the budget bounds each attempt too.
        _ => budget,
    };
    options.close_timeouts = ActivityCloseTimeouts::ScheduleAndStartToClose {
        schedule_to_close: budget + timing.queue_allowance,
        start_to_close,
    };
    options.schedule_to_start_timeout = Some(timing.queue_allowance);
    Some(budget)
}

/// The header value for `budget`.
pub fn budget_header(budget: Duration) -> Payload {
    Payload {
        metadata: HashMap::from([("encoding".to_owned(), b"json/plain".to_vec())]),
        data: budget.as_millis().to_string().into_bytes(),
        ..Default::default()
    }
}

/// The budget an activity's headers carry; None for steps scheduled without one.
pub fn budget_from_headers(headers: &HashMap<String, Payload>) -> Option<Duration> {
    let payload = headers.get(BUDGET_HEADER)?;
    let millis: u64 = serde_json::from_slice(&payload.data).ok()?;
    Some(Duration::from_millis(millis))
}

/// Puts each step's budget in its header, with the worker's [`StepTiming`] applied.
pub struct StepTimingInterceptor {
    timing: StepTiming,
}

impl StepTimingInterceptor {
    /// One interceptor per workflow instance, all with `timing`.
    pub fn constructor(timing: StepTiming) -> WorkflowInterceptorConstructor {
        WorkflowInterceptorConstructor::new(move |_| StepTimingInterceptor {
            timing: timing.clone(),
        })
    }
}

impl WorkflowInterceptor for StepTimingInterceptor {
    fn schedule_activity(
        &self,
        _ctx: WorkflowInterceptorContext,
        mut input: ScheduleActivityInput,
        next: WorkflowNext<
            'static,
            ScheduleActivityInput,
            CancellableWorkflowOutboundFuture<ScheduleActivityResult>,
        >,
    ) -> CancellableWorkflowOutboundFuture<ScheduleActivityResult> {
        if let Some(budget) = apply(&self.timing, input.options_mut()) {
            input
                .headers_mut()
                .insert(BUDGET_HEADER.to_owned(), budget_header(budget));
        }
        next.run(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step_options(budget: Duration, start_to_close: Duration) -> ActivityOptions {
        timed(
            ActivityOptions::with_start_to_close_timeout(start_to_close).build(),
            budget,
            start_to_close,
        )
    }

    #[test]
    fn a_steps_options_say_its_budget_and_leave_the_queue_an_allowance() {
        let options = step_options(Duration::from_secs(600), Duration::from_secs(300));
        assert_eq!(budget_of(&options), Some(Duration::from_secs(600)));
        assert_eq!(
            options.close_timeouts.schedule_to_close(),
            Some(Duration::from_secs(600) + DEFAULT_QUEUE_ALLOWANCE)
        );
        assert_eq!(
            options.schedule_to_start_timeout,
            Some(DEFAULT_QUEUE_ALLOWANCE)
        );
    }

    #[test]
    fn options_without_an_allowance_have_no_budget_to_guard() {
        let options =
            ActivityOptions::with_close_timeouts(ActivityCloseTimeouts::ScheduleAndStartToClose {
                schedule_to_close: Duration::from_secs(600),
                start_to_close: Duration::from_secs(300),
            })
            .build();
        assert_eq!(budget_of(&options), None);
        let mut same = options.clone();
        assert_eq!(apply(&StepTiming::default(), &mut same), None);
        assert_eq!(same.close_timeouts, options.close_timeouts);
    }

    #[test]
    fn the_workers_allowance_and_cap_apply_and_the_budget_still_reads_back() {
        let timing = StepTiming {
            queue_allowance: Duration::from_secs(3600),
            budget_cap: Some(Duration::from_secs(2)),
        };
        let mut options = step_options(Duration::from_secs(1800), Duration::from_secs(1800));
        assert_eq!(apply(&timing, &mut options), Some(Duration::from_secs(2)));
        assert_eq!(budget_of(&options), Some(Duration::from_secs(2)));
        assert_eq!(
            options.close_timeouts,
            ActivityCloseTimeouts::ScheduleAndStartToClose {
                schedule_to_close: Duration::from_secs(3602),
                start_to_close: Duration::from_secs(2),
            }
        );
        // Uncapped, attempts keep their own bound.
        let mut options = step_options(Duration::from_secs(600), Duration::from_secs(300));
        apply(&StepTiming::default(), &mut options);
        assert_eq!(
            options.close_timeouts,
            ActivityCloseTimeouts::ScheduleAndStartToClose {
                schedule_to_close: Duration::from_secs(600) + DEFAULT_QUEUE_ALLOWANCE,
                start_to_close: Duration::from_secs(300),
            }
        );
    }

    #[test]
    fn the_header_round_trips() {
        let headers = HashMap::from([(
            BUDGET_HEADER.to_owned(),
            budget_header(Duration::from_millis(1500)),
        )]);
        assert_eq!(
            budget_from_headers(&headers),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(budget_from_headers(&HashMap::new()), None);
    }
}
