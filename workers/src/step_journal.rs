//! Writes every activity attempt into the read model: the API's step list (attempts,
//! timings, last error) comes from here, without each activity having to report itself.

use chrono::Utc;
use temporalio_sdk::activities::ActivityError;
use temporalio_sdk::interceptors::{
    ActivityInboundInterceptor, ExecuteActivityInput, ExecuteActivityOutput, Next,
};
use windlass_activities::backplane::{PROJECTION_RETRY_LIMIT, SharedBackplane, retrying};
use windlass_activities::step_time;
use windlass_core::live_logs::{LiveLine, LiveLogs};
use windlass_core::placement_wire::{StepFinished, StepStarted};
use windlass_core::runs::{Run, StepOutcome};
use windlass_workflows::run_contracts::run_activity_names;

/// Journals through the run backplane: the store, or for a placed worker the API.
pub struct StepJournal {
    backplane: SharedBackplane,
    /// Followers of the run are told of each change journalled (see `announce`).
    announce_to: Option<LiveLogs>,
}

impl StepJournal {
    pub fn new(backplane: SharedBackplane) -> Self {
        Self {
            backplane,
            announce_to: None,
        }
    }

    /// Announces each journalled change on `live`, once it is in the journal: a follower
    /// reading the step on the notice finds it changed.
    pub fn announcing(mut self, live: Option<LiveLogs>) -> Self {
        self.announce_to = live;
        self
    }

    async fn announce(&self, run_id: uuid::Uuid, step: &str, attempt: u32) {
        if let Some(live) = &self.announce_to {
            live.publish(run_id, &LiveLine::step_changed(step, attempt))
                .await;
        }
    }
}

impl ActivityInboundInterceptor for StepJournal {
    fn execute_activity<'a>(
        &'a self,
        input: ExecuteActivityInput,
        next: Next<'a, ExecuteActivityInput, ExecuteActivityOutput<'a>>,
    ) -> ExecuteActivityOutput<'a> {
        let info = input.activity_info();
        let run_id = info
            .workflow_id
            .as_deref()
            .and_then(Run::id_from_workflow_id)
            // Recording the outcome is bookkeeping, not a step of the user's run.
            .filter(|_| info.activity_type != run_activity_names::RECORD_OUTCOME);
        let step_key = info.activity_id.clone();
        // Only a retry may learn its step's first start from the journal.
        let retry_info = (info.attempt > 1).then(|| info.clone());
        let activity_type = info.activity_type.clone();
        let attempt = info.attempt;
        // From this attempt's scheduling to its start: time spent waiting for a worker with
        // a free slot (and for a retry's backoff to pass, which is before scheduling).
        let waited_ms = info
            .current_attempt_scheduled_time
            .zip(info.started_time)
            .and_then(|(scheduled, started)| started.duration_since(scheduled).ok())
            .map(|waited| u64::try_from(waited.as_millis()).unwrap_or(u64::MAX));
        let max_attempts = info
            .retry_policy
            .as_ref()
            .map(|p| p.maximum_attempts())
            .unwrap_or(0);
        Box::pin(async move {
            let Some(run_id) = run_id else {
                return next.run(input).await;
            };
            let started = StepStarted {
                step_key: step_key.clone(),
                activity_type,
                attempt,
                at: Utc::now(),
                waited_ms,
            };
            // Tried again through a database restart: a lost start or end would show the
            // step with too few attempts, or running forever.
            let journalled = retrying(PROJECTION_RETRY_LIMIT, || {
                self.backplane.step_started(run_id, started.clone())
            })
            .await;
            match journalled {
                Ok(first_start) => {
                    // A retry that lands here after another worker ran the step's first
                    // attempt learns when that began, so the step's budget (the guard, an
                    // inner interceptor) counts from it.
                    if let (Some(info), Some(first_start)) = (&retry_info, first_start) {
                        step_time::learn_first_start(info, first_start.into());
                    }
                    self.announce(run_id, &step_key, attempt).await
                }
                // The journal is a projection: losing a line must not fail the cloud work.
                Err(error) => {
                    tracing::warn!(%run_id, step = %step_key, %error, "could not journal step start");
                }
            }
            let result = next.run(input).await;
            let outcome = match &result {
                Ok(_) => Some(StepOutcome::Succeeded),
                Err(ActivityError::Cancelled { .. }) => Some(StepOutcome::Cancelled),
                Err(ActivityError::Application(failure)) => Some(StepOutcome::Failed {
                    error: failure.source_error().to_string(),
                    will_retry: !failure.is_non_retryable()
                        && (max_attempts == 0 || attempt < max_attempts),
                }),
                Err(_) => None,
            };
            if let Some(outcome) = outcome {
                let finished = StepFinished {
                    step_key: step_key.clone(),
                    attempt,
                    end: (&outcome).into(),
                    at: Utc::now(),
                };
                let journalled = retrying(PROJECTION_RETRY_LIMIT, || {
                    self.backplane.step_finished(run_id, finished.clone())
                })
                .await;
                match journalled {
                    Ok(()) => self.announce(run_id, &step_key, attempt).await,
                    Err(error) => {
                        tracing::warn!(%run_id, step = %step_key, %error, "could not journal step end");
                    }
                }
            }
            result
        })
    }
}
