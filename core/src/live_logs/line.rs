//! One line of a run's live log, as the fan-out carries it and the SSE endpoint sends it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A line a step printed, already masked by the step's writer. The same shape whether it
/// comes from the fan-out or from the store's copy of the run's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LiveLine {
    /// The step's key, e.g. `terraform-apply` or `install-chart/cert-manager`.
    pub step: String,
    pub attempt: u32,
    /// Order within the attempt.
    pub seq: u32,
    pub at: DateTime<Utc>,
    /// `info`, `warn` or `error`.
    pub level: String,
    pub line: String,
    /// What this is: a line (always, in the store and on the SSE stream), or a notice
    /// that the step's journal changed, which the fan-out carries so followers read the
    /// step at once instead of at their next poll.
    #[serde(default, skip_serializing_if = "LiveKind::is_line")]
    #[schema(ignore)]
    pub kind: LiveKind,
}

/// See [`LiveLine::kind`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveKind {
    #[default]
    Line,
    StepChanged,
}

impl LiveKind {
    pub fn is_line(&self) -> bool {
        *self == Self::Line
    }
}

impl LiveLine {
    /// The notice that a step's journal changed (it started, or an attempt ended).
    pub fn step_changed(step: impl Into<String>, attempt: u32) -> Self {
        Self {
            step: step.into(),
            attempt,
            seq: 0,
            at: Utc::now(),
            level: String::new(),
            line: String::new(),
            kind: LiveKind::StepChanged,
        }
    }

    /// `step:attempt:seq`: unique within a run, the SSE event id.
    pub fn event_id(&self) -> String {
        format!("{}:{}:{}", self.step, self.attempt, self.seq)
    }
}
