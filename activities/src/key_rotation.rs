//! Rotating an organisation's data key during maintenance, when it has grown old.

use std::sync::Arc;

use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use windlass_core::keys::KeyRing;

use crate::error::failure;
use windlass_workflows::key_rotation_contracts::{
    KeyRotated, KeyRotationRequest, key_activity_names,
};

#[derive(Clone)]
pub struct KeyRotationActivities {
    keys: Arc<KeyRing>,
}

impl KeyRotationActivities {
    pub fn new(keys: Arc<KeyRing>) -> Self {
        Self { keys }
    }
}

#[activities]
impl KeyRotationActivities {
    #[activity(name = key_activity_names::ROTATE_ORGANIZATION_KEY)]
    pub async fn rotate_organization_key(
        self: Arc<Self>,
        _ctx: ActivityContext,
        request: KeyRotationRequest,
    ) -> Result<KeyRotated, ActivityError> {
        let (version, rotated) = self
            .keys
            .rotate_organization_key_if_older_than(
                request.organization_id,
                chrono::Duration::days(i64::from(request.max_age_days)),
                chrono::Utc::now(),
            )
            .await
            .map_err(failure)?;
        if rotated {
            tracing::info!(organization = %request.organization_id, version, "organization key rotated");
        }
        Ok(KeyRotated { version, rotated })
    }
}
