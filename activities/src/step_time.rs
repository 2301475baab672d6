//! How long a step has been running: since its first attempt *started*, never counting the
//! time it waited in its task queue for a worker. Step budgets
//! (`windlass_workers::StepBudgetGuard`) and Azure's settle windows
//! ([`crate::azure_access`]) are both measured so: a burst that queues steps must not spend
//! their time.
//!
//! Temporal tells an attempt when the *first* attempt was scheduled, and when this one was
//! scheduled and started, but not when the first one started; heartbeat details, the only
//! thing carried across attempts, are not visible to an activity interceptor. So the first
//! start is remembered by the process that saw it (the guard remembers every step's, see
//! [`remember`]), and the step journal, which every worker writes each attempt's start to,
//! tells a retry landing on another worker when the first attempt began
//! ([`learn_first_start`]). Only an attempt that knows neither (the journal unreachable)
//! counts what it can prove: its own time since it was scheduled plus the backoff that
//! preceded it.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use temporalio_sdk::activities::ActivityInfo;

/// Steps remembered at most; the oldest are forgotten first (and then counted by proof).
const REMEMBERED_STEPS: usize = 50_000;

/// When each step this process ran began: workflow, run and activity id → first start.
#[derive(Default)]
pub(crate) struct FirstStarts {
    by_step: HashMap<String, SystemTime>,
}

impl FirstStarts {
    pub(crate) fn remember(&mut self, step: &str, started: SystemTime) -> SystemTime {
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

    pub(crate) fn forget(&mut self, step: &str) {
        self.by_step.remove(step);
    }
}

/// What an attempt knows of its step's timeline (from Temporal's activity info).
#[derive(Clone, Debug)]
pub struct AttemptTimes {
    pub attempt: u32,
    /// When this attempt was scheduled (after the backoff that followed the last one).
    pub current_attempt_scheduled: SystemTime,
    /// When this attempt started.
    pub started: SystemTime,
    /// The step's retry backoff: initial interval, coefficient, maximum interval.
    pub backoff: Backoff,
}

#[derive(Clone, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub coefficient: f64,
    pub maximum: Option<Duration>,
}

impl Backoff {
    /// Temporal's wait after failed attempt `n` (1-based).
    pub fn after(&self, n: u32) -> Duration {
        let factor = self.coefficient.max(1.0).powi(n.saturating_sub(1) as i32);
        let wait = self.initial.mul_f64(factor.min(1e9));
        self.maximum.map_or(wait, |max| wait.min(max))
    }

    /// The backoffs before attempt `attempt`.
    pub fn before(&self, attempt: u32) -> Duration {
        (1..attempt).map(|n| self.after(n)).sum()
    }
}

/// How long the step has been running at `now`: since its first attempt started, if that
/// is known (attempt 1 knows it; later attempts if this process remembered it), else the
/// part that can be proven: this attempt since it was scheduled plus the backoffs before
/// it. Never counts the first attempt's wait for a worker.
pub fn running_time(
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

pub fn attempt_times(info: &ActivityInfo, now: SystemTime) -> AttemptTimes {
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

/// The step an attempt belongs to: workflow, workflow run and activity id.
pub fn step_of(info: &ActivityInfo) -> String {
    format!(
        "{}/{}/{}",
        info.workflow_id.as_deref().unwrap_or("-"),
        info.workflow_run_id.as_deref().unwrap_or("-"),
        info.activity_id
    )
}

fn first_starts() -> std::sync::MutexGuard<'static, FirstStarts> {
    static FIRST_STARTS: OnceLock<Mutex<FirstStarts>> = OnceLock::new();
    FIRST_STARTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Notes the start of the attempt `info` describes, and returns the step's first start if
/// this process knows it (it does for a first attempt, and for a retry of a step it ran).
pub fn remember(info: &ActivityInfo) -> Option<SystemTime> {
    let step = step_of(info);
    let mut starts = first_starts();
    match (info.attempt, info.started_time) {
        (0 | 1, Some(started)) => Some(starts.remember(&step, started)),
        _ => starts.by_step.get(&step).copied(),
    }
}

/// Takes the step's first start from the journal for a retry (`info`) whose process did not
/// see it. A time before the step was first scheduled belongs to an earlier step of the
/// same key (a journal row is per run and key) and one after this attempt's start is no
/// first start: neither is taken, and the attempt counts what it can prove instead.
pub fn learn_first_start(info: &ActivityInfo, first_start: SystemTime) {
    if first_start_plausible(
        info.attempt,
        info.scheduled_time,
        info.started_time,
        first_start,
    ) {
        first_starts().remember(&step_of(info), first_start);
    }
}

fn first_start_plausible(
    attempt: u32,
    step_scheduled: Option<SystemTime>,
    attempt_started: Option<SystemTime>,
    first_start: SystemTime,
) -> bool {
    attempt > 1
        && step_scheduled.is_some_and(|scheduled| first_start >= scheduled)
        && attempt_started.is_none_or(|started| first_start <= started)
}

/// Forgets a step that is over (succeeded, failed for good, cancelled).
pub fn forget(info: &ActivityInfo) {
    first_starts().forget(&step_of(info));
}

/// How long the step of the attempt `info` describes has been running now.
pub fn running_time_of(info: &ActivityInfo) -> Duration {
    let now = SystemTime::now();
    let first_start = first_starts().by_step.get(&step_of(info)).copied();
    running_time(&attempt_times(info, now), first_start, now)
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

    #[test]
    fn a_journalled_first_start_counts_only_if_it_is_this_steps() {
        // The step was first scheduled at 100; this, its third attempt, started at 400.
        let plausible =
            |first: f64| first_start_plausible(3, Some(at(100.0)), Some(at(400.0)), at(first));
        assert!(plausible(130.0), "its first attempt, after the queue");
        assert!(
            !plausible(50.0),
            "before the step was scheduled: an earlier step with the same key"
        );
        assert!(
            !plausible(450.0),
            "after this attempt started: not a first start"
        );
        assert!(
            !first_start_plausible(1, Some(at(100.0)), Some(at(130.0)), at(130.0)),
            "a first attempt knows its own start"
        );
        assert!(
            !first_start_plausible(2, None, Some(at(400.0)), at(130.0)),
            "nothing to check it against"
        );
    }
}
