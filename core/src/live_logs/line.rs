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
}

impl LiveLine {
    /// `step:attempt:seq`: unique within a run, the SSE event id.
    pub fn event_id(&self) -> String {
        format!("{}:{}:{}", self.step, self.attempt, self.seq)
    }
}
