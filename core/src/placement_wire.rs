//! What a placed worker and the API's placement routes (`/v1/placement/...`) exchange: the
//! store-backed services a placed worker's activities need, each scoped to one run of the
//! placement's organisation whose cluster routes to the placement.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::runs::StepOutcome;
use crate::step_logs::LogLine;

/// One version of the organisation's payload key (hex), for the placed worker's codec.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PayloadKeyVersion {
    pub version: u32,
    pub key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PayloadKeysResponse {
    pub organization_id: uuid::Uuid,
    pub versions: Vec<PayloadKeyVersion>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSecretRequest {
    pub name: String,
}

/// A secret the run was granted: its value and an opaque tag of the sealed version (the
/// key version and ciphertext), which changes on every write and so rolls pods that read it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrantedSecret {
    pub name: String,
    pub value: String,
    pub sealed_tag: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepStarted {
    pub step_key: String,
    pub activity_type: String,
    pub attempt: u32,
    pub at: DateTime<Utc>,
    /// How long the attempt waited for a worker since it was scheduled, in milliseconds
    /// (absent from workers older than this field).
    #[serde(default)]
    pub waited_ms: Option<u64>,
}

/// What the journal holds of a step once an attempt's start is in it: when the step's
/// first attempt started, whichever worker ran it. A retry that lands on another worker
/// counts its step's budget from this (`windlass_activities::step_time`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepJournalled {
    pub first_started_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum StepEnd {
    Succeeded,
    Failed { error: String, will_retry: bool },
    Cancelled,
}

impl From<&StepOutcome> for StepEnd {
    fn from(outcome: &StepOutcome) -> Self {
        match outcome {
            StepOutcome::Succeeded => StepEnd::Succeeded,
            StepOutcome::Failed { error, will_retry } => StepEnd::Failed {
                error: error.clone(),
                will_retry: *will_retry,
            },
            StepOutcome::Cancelled => StepEnd::Cancelled,
        }
    }
}

impl From<StepEnd> for StepOutcome {
    fn from(end: StepEnd) -> Self {
        match end {
            StepEnd::Succeeded => StepOutcome::Succeeded,
            StepEnd::Failed { error, will_retry } => StepOutcome::Failed { error, will_retry },
            StepEnd::Cancelled => StepOutcome::Cancelled,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepFinished {
    pub step_key: String,
    /// Only the newest attempt's end is recorded: a zombie attempt changes nothing.
    pub attempt: u32,
    pub end: StepEnd,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepLogAppend {
    pub step_key: String,
    pub lines: Vec<LogLine>,
}
