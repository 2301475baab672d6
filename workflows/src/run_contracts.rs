//! How a run ends: the outcome every workflow's last activity records into the read model.

use serde::{Deserialize, Serialize};
use temporalio_macros::activity_definitions;
use temporalio_sdk::activities::ActivityError;

/// How a run ended, recorded into the read model by the last activity of every workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOutcome {
    pub workflow_id: String,
    pub status: OutcomeStatus,
    pub output: Option<serde_json::Value>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeStatus {
    Succeeded,
    Failed,
    Cancelled,
}

pub mod run_activity_names {
    pub const RECORD_OUTCOME: &str = "runs.record_outcome";
}

/// Activities on Windlass's own read model.
pub struct RunActivities;

#[activity_definitions]
impl RunActivities {
    #[activity(name = run_activity_names::RECORD_OUTCOME)]
    pub fn record_outcome(_: RunOutcome) -> Result<(), ActivityError> {
        unimplemented!()
    }
}
