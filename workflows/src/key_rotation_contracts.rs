//! The key rotation activity's contract: weekly maintenance rotates an organisation's
//! data key when its newest version is old.

use serde::{Deserialize, Serialize};
use temporalio_macros::activity_definitions;
use temporalio_sdk::activities::ActivityError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRotationRequest {
    pub organization_id: uuid::Uuid,
    /// Rotate when the newest key version is older than this.
    pub max_age_days: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyRotated {
    /// The organisation key version new secrets are sealed with.
    pub version: u32,
    pub rotated: bool,
}

pub mod key_activity_names {
    pub const ROTATE_ORGANIZATION_KEY: &str = "keys.rotate_organization_key";
}

pub struct KeyRotationActivities;

#[activity_definitions]
impl KeyRotationActivities {
    /// Rotates the organisation's data key when it is old; older versions stay readable.
    #[activity(name = key_activity_names::ROTATE_ORGANIZATION_KEY)]
    pub fn rotate_organization_key(_: KeyRotationRequest) -> Result<KeyRotated, ActivityError> {
        unimplemented!()
    }
}
