//! A terraform step's result counts every attempt, not only the last.
//!
//! An attempt that dies after creating resources reports nothing; its retry plans only
//! what is left. So the step's first attempt records, as heartbeat details (which Temporal
//! hands to the next attempt), the addresses its state held when it began; the attempt
//! that finishes adds what earlier attempts created (in the state now, not then) and what
//! it imported for them (created, but never recorded) to what it applied itself.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use temporalio_sdk::activities::ActivityContext;

/// The heartbeat details of a terraform step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct TerraformProgress {
    /// The state's resource addresses when the step's first attempt began.
    #[serde(default)]
    pub baseline: BTreeSet<String>,
}

/// What the step did, all attempts together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StepCounts {
    pub add: u32,
    pub change: u32,
    pub remove: u32,
}

impl TerraformProgress {
    /// The progress an earlier attempt left, or a new one from this attempt's state.
    pub fn resume(ctx: &ActivityContext, recorded: &BTreeSet<String>) -> Self {
        match ctx.heartbeat_details().deserialize::<Self>() {
            Ok(Some(earlier)) => earlier,
            Ok(None) => Self::starting_at(recorded),
            Err(e) => {
                tracing::warn!(error = %e, "unreadable heartbeat details of an earlier attempt; counting from this one");
                Self::starting_at(recorded)
            }
        }
    }

    pub fn starting_at(recorded: &BTreeSet<String>) -> Self {
        Self {
            baseline: recorded.clone(),
        }
    }

    /// This attempt's applied counts, with what earlier attempts did: `at_start` is the
    /// state this attempt began from, `imported` what it adopted for them.
    pub fn counts(
        &self,
        applied: StepCounts,
        at_start: &BTreeSet<String>,
        imported: usize,
    ) -> StepCounts {
        let created_before = at_start.difference(&self.baseline).count() + imported;
        let removed_before = self.baseline.difference(at_start).count();
        StepCounts {
            add: applied.add + created_before as u32,
            change: applied.change,
            remove: applied.remove + removed_before as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_first_attempt_counts_what_it_applied() {
        let progress = TerraformProgress::starting_at(&set(&["a"]));
        let applied = StepCounts {
            add: 3,
            change: 1,
            remove: 0,
        };
        assert_eq!(progress.counts(applied, &set(&["a"]), 0), applied);
    }

    #[test]
    fn a_retry_counts_what_the_attempts_before_it_created() {
        // The first attempt began from nothing, recorded two, created a third unrecorded.
        let progress = TerraformProgress::starting_at(&set(&[]));
        let applied = StepCounts {
            add: 33,
            change: 1,
            remove: 0,
        };
        let counts = progress.counts(applied, &set(&["a", "b"]), 1);
        assert_eq!(counts.add, 36);
        assert_eq!(counts.change, 1);
        // A destroy that had removed one before its worker died.
        let progress = TerraformProgress::starting_at(&set(&["a", "b"]));
        let applied = StepCounts {
            add: 0,
            change: 0,
            remove: 1,
        };
        assert_eq!(progress.counts(applied, &set(&["b"]), 0).remove, 2);
    }

    #[test]
    fn details_round_trip_and_tolerate_old_shapes() {
        let progress = TerraformProgress::starting_at(&set(&["x"]));
        let json = serde_json::to_value(&progress).unwrap();
        assert_eq!(
            serde_json::from_value::<TerraformProgress>(json).unwrap(),
            progress
        );
        assert_eq!(
            serde_json::from_str::<TerraformProgress>("{}").unwrap(),
            TerraformProgress::default()
        );
    }
}
