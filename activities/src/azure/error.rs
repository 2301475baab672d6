//! One error type for every Azure call, carrying its own retry verdict so
//! the Temporal activity layer never has to guess from strings.

use std::time::Duration;

/// Whether, and when, a failed call may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    After(Duration),
    /// Azure has not caught up with a write yet (replication, propagation): worth trying
    /// again (on the step's backoff, soon at first), but only within the bounded window
    /// for `lag`, after which the error is terminal (see [`SettleWindows`]).
    Settling {
        lag: Lag,
    },
    Never,
}

/// The documented ways Azure lags behind a write that succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lag {
    /// A new custom role definition is unknown to role assignments and reads
    /// (`RoleDefinitionDoesNotExist`) until it has replicated.
    RoleDefinitionReplication,
    /// A new service principal is unknown to ARM (`PrincipalNotFound`) until the
    /// directory has replicated it.
    PrincipalReplication,
    /// A new role assignment does not authorise anything (`403 AuthorizationFailed`)
    /// until ARM's caches have it; Azure documents up to about ten minutes.
    AssignmentPropagation,
}

impl Lag {
    /// What was waited for, for the terminal message once the window has passed.
    pub fn waited_for(self) -> &'static str {
        match self {
            Lag::RoleDefinitionReplication => {
                "the Windlass custom role to replicate to Azure's role assignment service"
            }
            Lag::PrincipalReplication => {
                "Windlass's service principal to replicate from Microsoft Graph to Azure \
                 Resource Manager"
            }
            Lag::AssignmentPropagation => {
                "the Windlass role assignment to take effect in Azure Resource Manager"
            }
        }
    }

    /// What the user should check when the wait was in vain.
    pub fn remedy(self) -> &'static str {
        match self {
            Lag::RoleDefinitionReplication => {
                "check that the custom role exists in the subscription (Access control \
                 (IAM) > Roles), then run the access setup again"
            }
            Lag::PrincipalReplication => {
                "check that the Windlass enterprise application exists in the tenant, then \
                 run the access setup again"
            }
            Lag::AssignmentPropagation => {
                "the Windlass role does not grant this action, or its assignment was \
                 removed: run the access setup again (it restores both)"
            }
        }
    }
}

/// How long each [`Lag`] is waited out, counted from the step's first attempt, before
/// the error is terminal. Real Azure settles within minutes; tests shorten these (or set
/// them to zero to show what fails without the wait).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettleWindows {
    pub role_definition_replication: Duration,
    pub principal_replication: Duration,
    pub assignment_propagation: Duration,
}

impl Default for SettleWindows {
    fn default() -> Self {
        Self {
            role_definition_replication: Duration::from_secs(10 * 60),
            principal_replication: Duration::from_secs(10 * 60),
            // Azure: "can take up to 10 minutes"; a little more for ARM's caches.
            assignment_propagation: Duration::from_secs(15 * 60),
        }
    }
}

impl SettleWindows {
    pub fn none() -> Self {
        Self {
            role_definition_replication: Duration::ZERO,
            principal_replication: Duration::ZERO,
            assignment_propagation: Duration::ZERO,
        }
    }

    pub fn of(&self, lag: Lag) -> Duration {
        match lag {
            Lag::RoleDefinitionReplication => self.role_definition_replication,
            Lag::PrincipalReplication => self.principal_replication,
            Lag::AssignmentPropagation => self.assignment_propagation,
        }
    }
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
         (PrincipalNotFound, directory replication delay): {message}"
    )]
    PrincipalNotFound {
        principal_id: String,
        message: String,
    },

    #[error("role definition does not exist (RoleDefinitionDoesNotExist): {message}")]
    RoleDefinitionDoesNotExist { message: String },

    /// `403 RequestDisallowedByPolicy`: an Azure Policy assignment of the customer's
    /// denies the request. Retrying cannot help; the customer must exempt Windlass's
    /// resources or change the policy.
    #[error(
        "Azure Policy assignment '{policy}' denied {method} {path} \
         (RequestDisallowedByPolicy): ask the subscription's administrators to exempt it \
         or change the policy. {message}"
    )]
    DisallowedByPolicy {
        policy: String,
        method: String,
        path: String,
        message: String,
    },

    /// `409 ScopeLocked`: a management lock forbids the change.
    #[error(
        "a management lock forbids {method} {path} (ScopeLocked): remove the lock {locks} \
         or ask the subscription's administrators to. {message}"
    )]
    ScopeLocked {
        locks: String,
        method: String,
        path: String,
        message: String,
    },

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

impl AzureError {
    pub fn retry(&self) -> Retry {
        match self {
            AzureError::Throttled { retry_after, .. } => Retry::After(*retry_after),
            AzureError::PrincipalNotFound { .. } => Retry::Settling {
                lag: Lag::PrincipalReplication,
            },
            AzureError::RoleDefinitionDoesNotExist { .. } => Retry::Settling {
                lag: Lag::RoleDefinitionReplication,
            },
            // Only ARM's RBAC refusal can be a fresh assignment still propagating; other
            // 401/403s (a bad token, Graph's missing permission) are what they say. An
            // action the Windlass role does not grant will not propagate either: that is
            // a missing permission, terminal at once.
            AzureError::Unauthorized {
                status: 403,
                code,
                message,
            } if code == "AuthorizationFailed" => match refused_action(message) {
                Some(action) if !super::role::grants(action) => Retry::Never,
                _ => Retry::Settling {
                    lag: Lag::AssignmentPropagation,
                },
            },
            // Another operation on the resource is running: come back when ARM says.
            AzureError::Api {
                code, retry_after, ..
            } if code == "AnotherOperationInProgress" => {
                Retry::After(retry_after.unwrap_or(DEFAULT_TRANSIENT_DELAY))
            }
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
            AzureError::Unauthorized { .. }
            | AzureError::DisallowedByPolicy { .. }
            | AzureError::ScopeLocked { .. }
            | AzureError::Api { .. }
            | AzureError::Operation { .. }
            | AzureError::Credential { .. }
            | AzureError::InvalidResponse { .. }
            | AzureError::Config(_) => Retry::Never,
        }
    }

    pub fn is_retryable(&self) -> bool {
        !matches!(self.retry(), Retry::Never)
    }

    /// Throttling and operations in progress say when to come back.
    fn says_when(&self) -> bool {
        matches!(self, AzureError::Throttled { .. })
            || self.code() == Some("AnotherOperationInProgress")
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
            AzureError::DisallowedByPolicy { .. } => Some("RequestDisallowedByPolicy"),
            AzureError::ScopeLocked { .. } => Some("ScopeLocked"),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            AzureError::Throttled { .. } => Some(429),
            AzureError::DisallowedByPolicy { .. } => Some(403),
            AzureError::ScopeLocked { .. } => Some(409),
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

/// The action ARM names in an `AuthorizationFailed` message ("... does not have
/// authorization to perform action 'X' over scope ...").
pub fn refused_action(message: &str) -> Option<&str> {
    let start = message.find("perform action '")? + "perform action '".len();
    let end = message[start..].find('\'')? + start;
    Some(&message[start..end])
}

/// A lag still within its window is retried here; `azure_access::azure_failure_in` makes it
/// terminal once the step has waited its window out.
impl crate::error::StepError for AzureError {
    fn verdict(&self) -> crate::error::Verdict {
        use crate::error::Verdict;
        match self.retry() {
            Retry::After(delay) if self.says_when() => Verdict::retry_after(delay),
            Retry::After(_) | Retry::Settling { .. } => Verdict::RETRY,
            Retry::Never => Verdict::Terminal,
        }
    }

    fn failure_code(&self) -> crate::error::FailureCode {
        use crate::error::FailureCode;
        match self.retry() {
            Retry::After(_) if matches!(self, AzureError::Throttled { .. }) => {
                FailureCode::AzureThrottled
            }
            Retry::After(_) if self.says_when() => FailureCode::AzureBusy,
            Retry::After(_) => FailureCode::AzureUnavailable,
            Retry::Settling { .. } => FailureCode::AzureSettling,
            Retry::Never => FailureCode::AzureRefused,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(action: &str) -> AzureError {
        AzureError::Unauthorized {
            status: 403,
            code: "AuthorizationFailed".to_owned(),
            message: format!(
                "The client 'c' with object id 'c' does not have authorization to perform \
                 action '{action}' over scope '/subscriptions/s' or the scope is invalid. If \
                 access was recently granted, please refresh your credentials."
            ),
        }
    }

    #[test]
    fn a_refusal_is_propagation_only_for_actions_the_windlass_role_grants() {
        let propagating = Retry::Settling {
            lag: Lag::AssignmentPropagation,
        };
        assert_eq!(
            refusal("Microsoft.Resources/subscriptions/resourceGroups/write").retry(),
            propagating
        );
        assert_eq!(
            refusal("Microsoft.Storage/storageAccounts/listAccountSas/action").retry(),
            propagating
        );
        // Not in the role: waiting would not help.
        assert_eq!(refusal("Microsoft.Sql/servers/write").retry(), Retry::Never);
        assert_eq!(
            refusal("Microsoft.Authorization/roleDefinitions/write").retry(),
            Retry::Never
        );
    }
}
