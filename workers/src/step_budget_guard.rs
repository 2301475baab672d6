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
//! Temporal tells an attempt when the *first* attempt was scheduled, and when this one was
//! scheduled and started, but not when the first one started; heartbeat details, the only
//! thing carried across attempts, are not visible to an interceptor. So the first start is
//! remembered by the process that saw it; an attempt whose process did not (a retry landing
//! on another worker) counts what it can prove: its own time since it was scheduled plus
//! the backoff that preceded it. Both never count time spent waiting for a first worker.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use temporalio_sdk::activities::{ActivityError, ActivityInfo};
use temporalio_sdk::interceptors::{
    ActivityInboundInterceptor, ExecuteActivityInput, ExecuteActivityOutput, Next,
};
use windlass_activities::error::terminal;
use windlass_workflows::step_budget::budget_from_headers;

pub use windlass_workflows::step_budget::STEP_BUDGET_EXCEEDED;

/// Steps remembered at most; the oldest are forgotten first (and then counted by proof).
const REMEMBERED_STEPS: usize = 50_000;

/// The guard, one per worker, shared by every attempt it runs.
#[derive(Default)]
pub struct StepBudgetGuard {
    first_starts: Mutex<FirstStarts>,
}

impl StepBudgetGuard {
    pub fn new() -> Self {
        Self::default()
    }
}

/// When each step this process ran began: workflow, run and activity id → first start.
#[derive(Default)]
struct FirstStarts {
    by_step: HashMap<String, SystemTime>,
}

impl FirstStarts {
    fn remember(&mut self, step: &str, started: SystemTime) -> SystemTime {
        if self.by_step.len() >= REMEMBERED_STEPS
            && !self.by_step.contains_key(step)
            && let Some(oldest) = self
                .by_step
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| k.clone())
        {
            self.by_step.remove(&oldest);
        }
        *self.by_step.entry(step.to_owned()).or_insert(started)
    }

    fn forget(&mut self, step: &str) {
        self.by_step.remove(step);
    }
}

/// What an attempt knows of its step's timeline (from Temporal's activity info).
#[derive(Clone, Debug)]
pub(crate) struct AttemptTimes {
    pub attempt: u32,
    /// When this attempt was scheduled (after the backoff that followed the last one).
    pub current_attempt_scheduled: SystemTime,
    /// When this attempt started.
    pub started: SystemTime,
    /// The step's retry backoff: initial interval, coefficient, maximum interval.
    pub backoff: Backoff,
}

#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    pub initial: Duration,
    pub coefficient: f64,
    pub maximum: Option<Duration>,
}

impl Backoff {
    /// Temporal's wait after failed attempt `n` (1-based).
    fn after(&self, n: u32) -> Duration {
        let factor = self.coefficient.max(1.0).powi(n.saturating_sub(1) as i32);
        let wait = self.initial.mul_f64(factor.min(1e9));
        self.maximum.map_or(wait, |max| wait.min(max))
    }

    /// The backoffs before attempt `attempt`.
    fn before(&self, attempt: u32) -> Duration {
        (1..attempt).map(|n| self.after(n)).sum()
    }
}

/// How long the step has been running at `now`: since its first attempt started, if that
/// is known (attempt 1 knows it; later attempts if this process remembered it), else the
/// part that can be proven: this attempt since it was scheduled plus the backoffs before
/// it. Never counts the first attempt's wait for a worker.
pub(crate) fn running_time(
    times: &AttemptTimes,
    first_start: Option<SystemTime>,
    now: SystemTime,
) -> Duration {
    let since = |t: SystemTime| now.duration_since(t).unwrap_or_default();
    match (times.attempt, first_start) {
        (1, _) => since(times.started),
        (_, Some(first)) => since(first),
        (attempt, None) => since(times.current_attempt_scheduled) + times.backoff.before(attempt),
    }
}

fn attempt_times(info: &ActivityInfo, now: SystemTime) -> AttemptTimes {
    let policy = info.retry_policy.as_ref();
    let started = info.started_time.unwrap_or(now);
    AttemptTimes {
        attempt: info.attempt.max(1),
        current_attempt_scheduled: info.current_attempt_scheduled_time.unwrap_or(started),
        started,
        backoff: Backoff {
            initial: policy.map_or(Duration::from_secs(1), |p| p.initial_interval()),
            coefficient: policy.map_or(2.0, |p| p.backoff_coefficient()),
            maximum: policy.and_then(|p| p.maximum_interval()),
        },
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
        let Some(budget) = budget_from_headers(input.headers()) else {
            // Steps of executions older than the budget header: schedule-to-close is
            // their budget, as it always was.
            return next.run(input);
        };
        let info = input.activity_info();
        let step_name = info.activity_id.clone();
        let step = format!(
            "{}/{}/{}",
            info.workflow_id.as_deref().unwrap_or("-"),
            info.workflow_run_id.as_deref().unwrap_or("-"),
            info.activity_id
        );
        let times = attempt_times(info, SystemTime::now());
        let first_start = {
            let mut starts = self.first_starts.lock().unwrap_or_else(|e| e.into_inner());
            if times.attempt == 1 {
                Some(starts.remember(&step, times.started))
            } else {
                starts.by_step.get(&step).copied()
            }
        };
        let exceeded = move |last_error: Option<String>| {
            let running = running_time(&times, first_start, SystemTime::now());
            (running >= budget).then(|| BudgetExceeded {
                step: step_name.clone(),
                budget,
                running,
                last_error,
            })
        };
        Box::pin(async move {
            if let Some(over) = exceeded(None) {
                tracing::warn!(step = %over.step, budget = ?budget, running = ?over.running, "step refused: past its budget");
                self.forget(&step);
                return Err(terminal(over, STEP_BUDGET_EXCEEDED));
            }
            let result = next.run(input).await;
            let result = match result {
                Err(ActivityError::Application(failure)) if !failure.is_non_retryable() => {
                    match exceeded(Some(failure.source_error().to_string())) {
                        Some(over) => Err(terminal(over, STEP_BUDGET_EXCEEDED)),
                        None => Err(ActivityError::Application(failure)),
                    }
                }
                other => other,
            };
            // The step is over unless Temporal retries it.
            let retried = match &result {
                Err(ActivityError::Application(failure)) => !failure.is_non_retryable(),
                Err(ActivityError::Cancelled { .. }) | Ok(_) => false,
                Err(_) => true,
            };
            if !retried {
                self.forget(&step);
            }
            result
        })
    }
}

impl StepBudgetGuard {
    fn forget(&self, step: &str) {
        self.first_starts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .forget(step);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000;

    fn at(secs: f64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(T0) + Duration::from_secs_f64(secs)
    }

    fn backoff() -> Backoff {
        // The steps' policy (workflows/src/outcome.rs).
        Backoff {
            initial: Duration::from_millis(500),
            coefficient: 2.0,
            maximum: Some(Duration::from_secs(30)),
        }
    }

    fn attempt(n: u32, scheduled: f64, started: f64) -> AttemptTimes {
        AttemptTimes {
            attempt: n,
            current_attempt_scheduled: at(scheduled),
            started: at(started),
            backoff: backoff(),
        }
    }

    #[test]
    fn a_first_attempt_counts_from_its_start_not_its_time_in_the_queue() {
        // Scheduled at 0, waited 720 s for a worker, has run 30 s.
        let times = attempt(1, 0.0, 720.0);
        assert_eq!(
            running_time(&times, None, at(750.0)),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn a_retry_counts_from_the_remembered_first_start_with_its_backoff_and_runs() {
        // First attempt started at 720 after the queue; this, the third, at 800.
        let times = attempt(3, 799.0, 800.0);
        assert_eq!(
            running_time(&times, Some(at(720.0)), at(810.0)),
            Duration::from_secs(90)
        );
    }

    #[test]
    fn a_retry_elsewhere_counts_what_it_can_prove_and_never_the_first_wait() {
        // Attempt 4 scheduled at 900 (first scheduled at 0, queued until 720): it counts
        // its own 10 s and the backoffs after attempts 1 to 3 (0.5 + 1 + 2 s).
        let times = attempt(4, 900.0, 905.0);
        assert_eq!(
            running_time(&times, None, at(910.0)),
            Duration::from_millis(13_500)
        );
    }

    #[test]
    fn backoff_grows_to_its_maximum() {
        let b = backoff();
        assert_eq!(b.after(1), Duration::from_millis(500));
        assert_eq!(b.after(2), Duration::from_secs(1));
        assert_eq!(b.after(7), Duration::from_secs(30));
        assert_eq!(b.after(40), Duration::from_secs(30));
        assert_eq!(b.before(1), Duration::ZERO);
        // 0.5 + 1 + 2 + 4 + 8 + 16 + 30 × 3
        assert_eq!(b.before(10), Duration::from_millis(121_500));
    }

    #[test]
    fn a_clock_behind_the_servers_counts_nothing_rather_than_failing() {
        let times = attempt(1, 0.0, 720.0);
        assert_eq!(running_time(&times, None, at(700.0)), Duration::ZERO);
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

    #[test]
    fn remembered_steps_are_bounded_and_the_oldest_go_first() {
        let mut starts = FirstStarts::default();
        for i in 0..REMEMBERED_STEPS {
            starts.remember(&format!("s{i}"), at(i as f64));
        }
        starts.remember("new", at(1e6));
        assert_eq!(starts.by_step.len(), REMEMBERED_STEPS);
        assert!(!starts.by_step.contains_key("s0"));
        // A step already remembered keeps its first start.
        assert_eq!(starts.remember("s1", at(5e6)), at(1.0));
    }
}
