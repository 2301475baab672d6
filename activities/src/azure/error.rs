//! One error type for every Azure call, carrying its own retry verdict so
//! the Temporal activity layer never has to guess from strings.

use std::time::Duration;

/// Whether, and when, a failed call may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    After(Duration),
    Never,
}

/// Terminal state of a long-running operation that did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LroOutcome {
    Failed,
    Canceled,
}

/// Messages carry ARM/Graph error codes and texts, request method and path,
/// never headers, tokens or client assertions.
#[derive(Debug, thiserror::Error)]
pub enum AzureError {
    #[error("Azure throttled the request (429 {code}); retry after {retry_after:?}")]
    Throttled { retry_after: Duration, code: String },

    #[error(
        "principal {principal_id} is not visible to Azure Resource Manager yet \
         (directory replication delay): {message}"
    )]
    PrincipalNotFound {
        principal_id: String,
        message: String,
    },

    #[error("role definition does not exist: {message}")]
    RoleDefinitionDoesNotExist { message: String },

    #[error("Azure refused the caller's credentials or permissions ({status} {code}): {message}")]
    Unauthorized {
        status: u16,
        code: String,
        message: String,
    },

    #[error("{method} {path} returned {status} {code}: {message}")]
    Api {
        method: String,
        path: String,
        status: u16,
        code: String,
        message: String,
        retry_after: Option<Duration>,
    },

    #[error("long-running operation {outcome:?}: {code}: {message}")]
    Operation {
        outcome: LroOutcome,
        code: String,
        message: String,
    },

    #[error("gave up waiting for {what} after {waited:?}")]
    Timeout { what: String, waited: Duration },

    #[error("could not obtain an Entra ID token: {message}")]
    Credential { message: String, transient: bool },

    #[error("could not reach Azure: {message}")]
    Transport { message: String },

    #[error("unexpected response from Azure: {message}")]
    InvalidResponse { message: String },

    #[error("invalid Azure client configuration: {0}")]
    Config(String),
}

/// Used when a retryable error comes without a server-provided delay.
const DEFAULT_TRANSIENT_DELAY: Duration = Duration::from_secs(5);
/// Directory replication usually settles within seconds to a minute.
const REPLICATION_DELAY: Duration = Duration::from_secs(10);

impl AzureError {
    pub fn retry(&self) -> Retry {
        match self {
            AzureError::Throttled { retry_after, .. } => Retry::After(*retry_after),
            AzureError::PrincipalNotFound { .. } => Retry::After(REPLICATION_DELAY),
            AzureError::Api {
                status,
                retry_after,
                ..
            } if *status >= 500 || *status == 408 => {
                Retry::After(retry_after.unwrap_or(DEFAULT_TRANSIENT_DELAY))
            }
            AzureError::Transport { .. } => Retry::After(DEFAULT_TRANSIENT_DELAY),
            AzureError::Credential {
                transient: true, ..
            } => Retry::After(DEFAULT_TRANSIENT_DELAY),
            // Still converging (e.g. provider registration): checking again is safe.
            AzureError::Timeout { .. } => Retry::After(DEFAULT_TRANSIENT_DELAY),
            AzureError::RoleDefinitionDoesNotExist { .. }
            | AzureError::Unauthorized { .. }
            | AzureError::Api { .. }
            | AzureError::Operation { .. }
            | AzureError::Credential { .. }
            | AzureError::InvalidResponse { .. }
            | AzureError::Config(_) => Retry::Never,
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self.retry(), Retry::After(_))
    }

    /// ARM/Graph error code, when the service sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            AzureError::Throttled { code, .. }
            | AzureError::Unauthorized { code, .. }
            | AzureError::Api { code, .. }
            | AzureError::Operation { code, .. } => Some(code),
            AzureError::PrincipalNotFound { .. } => Some("PrincipalNotFound"),
            AzureError::RoleDefinitionDoesNotExist { .. } => Some("RoleDefinitionDoesNotExist"),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            AzureError::Throttled { .. } => Some(429),
            AzureError::Unauthorized { status, .. } | AzureError::Api { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}
