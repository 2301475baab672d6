use super::messages::{Diagnostic, LockInfo};
use super::plan::ResourceChange;

/// What went wrong running terraform. Whether a retry can help is part of the type.
#[derive(Debug, thiserror::Error)]
pub enum TerraformError {
    /// Another run holds the state lock: wait for it, or recover it if its holder is dead.
    #[error("terraform state is locked by {} since {} (lock {})", .0.who, .0.created, .0.id)]
    Locked(Box<LockInfo>),
    /// The plan would replace or destroy something the request did not allow to go.
    #[error("refusing a plan that would {}", describe_refusal(.0))]
    Refused(Vec<ResourceChange>),
    /// terraform itself reported errors (configuration, provider, API).
    #[error("terraform {command} failed (exit {code}): {}", summarise(.diagnostics))]
    Failed {
        command: String,
        code: i32,
        diagnostics: Vec<Diagnostic>,
    },
    #[error("terraform {0} was cancelled")]
    Cancelled(String),
    /// This run's state lock was broken (its holder taken for dead) and is held by
    /// another; what this run would write is discarded.
    #[error("terraform state lock {0} was lost to another run")]
    LockLost(String),
    #[error("terraform could not be started: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("terraform output could not be read: {0}")]
    Output(String),
    #[error("terraform working directory: {0}")]
    Workspace(#[source] std::io::Error),
}

impl TerraformError {
    /// Locks clear and provider or API errors are often transient; a refused plan, a
    /// cancellation or a configuration error will not get better by running again.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Locked(_) => true,
            Self::Failed { diagnostics, .. } => !diagnostics.iter().any(is_configuration_error),
            Self::Spawn(_) | Self::Output(_) | Self::Workspace(_) => true,
            Self::Refused(_) | Self::Cancelled(_) | Self::LockLost(_) => false,
        }
    }
}

/// Errors in the configuration itself: the same files fail the same way every time.
fn is_configuration_error(diagnostic: &Diagnostic) -> bool {
    const PERMANENT: &[&str] = &[
        "Unsupported argument",
        "Missing required argument",
        "Reference to undeclared",
        "Invalid reference",
        "Unsupported block type",
        "Argument or block definition required",
        "Invalid expression",
        "Duplicate resource",
        "Invalid value for input variable",
        "No value for required variable",
        "Unsupported attribute",
    ];
    PERMANENT.iter().any(|p| diagnostic.summary.contains(p))
}

fn summarise(diagnostics: &[Diagnostic]) -> String {
    let errors: Vec<&str> = diagnostics
        .iter()
        .filter(|d| d.severity == "error")
        .map(|d| d.summary.as_str())
        .collect();
    if errors.is_empty() {
        "no diagnostics".into()
    } else {
        errors.join("; ")
    }
}

fn describe_refusal(changes: &[ResourceChange]) -> String {
    changes
        .iter()
        .map(|c| format!("{} {}", c.action(), c.address))
        .collect::<Vec<_>>()
        .join(", ")
}

impl crate::error::StepError for TerraformError {
    fn verdict(&self) -> crate::error::Verdict {
        use crate::error::Verdict;
        match self {
            Self::Cancelled(_) => Verdict::Cancelled,
            // Locks clear when their holder ends; come back soon rather than with backoff.
            Self::Locked(_) => Verdict::retry_after(std::time::Duration::from_secs(5)),
            other => Verdict::retry_if(other.is_retryable()),
        }
    }

    fn failure_code(&self) -> crate::error::FailureCode {
        use crate::error::FailureCode;
        match self {
            Self::Locked(_) => FailureCode::StateLocked,
            Self::Refused(_) => FailureCode::PlanRefused,
            // This attempt was taken for dead and another holds the state: it must stop.
            Self::LockLost(_) => FailureCode::StateLockLost,
            _ => FailureCode::TerraformFailed,
        }
    }
}
