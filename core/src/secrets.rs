//! Scoped secrets, as the rest of Windlass names them: a reference safe for workflow
//! history, where a secret may be used, how it is listed (never its value) and how the
//! store holds it (sealed). Sealing and opening need the key ring and the store:
//! [`crate::secret_vault`], above the store.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::audit::Environment;
use crate::{Error, Result};

/// A reference to a secret: safe to put in workflow history.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub organization_id: Uuid,
    pub name: String,
}

pub fn validate_name(name: &str) -> Result<()> {
    let ok = (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(
            "a secret name is 1 to 128 characters of letters, digits, - _ . /".into(),
        ))
    }
}

/// Names under this prefix are Windlass's own (webhook signing keys): the secrets API
/// refuses them and runs are never granted them.
pub const RESERVED_PREFIX: &str = "windlass.";

/// The signing key of an environment's deployment webhook.
pub fn webhook_secret_name(environment_id: Uuid) -> String {
    format!("{RESERVED_PREFIX}webhook/{environment_id}")
}

/// A sealed secret as stored: the value never leaves the store in clear.
#[derive(Debug, Clone)]
pub struct SealedSecret {
    pub organization_id: Uuid,
    pub name: String,
    pub key_version: u32,
    pub ciphertext: String,
}

/// Where a secret may be used: a service can name it only if its environment is inside
/// this scope. Secrets written before scopes existed are organisation-wide.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SecretScope {
    #[default]
    Organization,
    Project {
        id: Uuid,
    },
    EnvironmentType {
        project_id: Uuid,
        environment: Environment,
    },
    Environment {
        id: Uuid,
    },
}

impl SecretScope {
    /// The project or environment this scope names, for checking it is the organisation's.
    pub fn project(&self) -> Option<Uuid> {
        match self {
            Self::Project { id } => Some(*id),
            Self::EnvironmentType { project_id, .. } => Some(*project_id),
            _ => None,
        }
    }

    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"kind":"organization"}"#.into())
    }

    pub(crate) fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text)
            .map_err(|e| Error::InvalidInput(format!("corrupt secrets.scope: {e}")))
    }
}

/// A secret as listed: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SecretListing {
    pub name: String,
    pub scope: SecretScope,
    pub updated_at: DateTime<Utc>,
}
