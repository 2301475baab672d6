//! Recording a run's end into the read model, through the run backplane.

use std::sync::Arc;

use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use windlass_core::Store;
use windlass_workflows::run_contracts::{RunOutcome, run_activity_names};

use crate::backplane::{SharedBackplane, StoreBackplane};
use crate::error::failure;

pub struct RunActivities {
    backplane: SharedBackplane,
}

impl RunActivities {
    pub fn new(store: Store) -> Self {
        Self::with_backplane(Arc::new(StoreBackplane::new(store, None)))
    }

    pub fn with_backplane(backplane: SharedBackplane) -> Self {
        Self { backplane }
    }
}

#[activities]
impl RunActivities {
    /// Idempotent: the first recorded end of a run wins, a repeat changes nothing.
    #[activity(name = run_activity_names::RECORD_OUTCOME)]
    pub async fn record_outcome(
        self: Arc<Self>,
        _ctx: ActivityContext,
        outcome: RunOutcome,
    ) -> Result<(), ActivityError> {
        self.backplane
            .record_outcome(&outcome)
            .await
            .map_err(failure)
    }
}
