use temporalio_client::errors::{WorkflowInteractionError, WorkflowStartError};

/// Errors from the engine layer. Whether a call may be retried is part of the variant.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Temporal is unreachable or overloaded: retry later.
    #[error("workflow engine unavailable: {0}")]
    Unavailable(String),
    #[error("workflow engine misconfigured: {0}")]
    Configuration(String),
    #[error("invalid workflow input for {0}")]
    InvalidInput(String),
    #[error("workflow {0} not found")]
    NotFound(String),
    #[error("workflow engine error: {0}")]
    Other(String),
}

impl EngineError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

pub(crate) fn from_status(status: &temporalio_client::tonic::Status) -> EngineError {
    use temporalio_client::tonic::Code;
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Aborted => {
            EngineError::Unavailable(status.message().to_owned())
        }
        Code::NotFound => EngineError::NotFound(status.message().to_owned()),
        Code::InvalidArgument => EngineError::InvalidInput(status.message().to_owned()),
        _ => EngineError::Other(format!("{:?}: {}", status.code(), status.message())),
    }
}

impl From<WorkflowStartError> for EngineError {
    fn from(error: WorkflowStartError) -> Self {
        match error {
            WorkflowStartError::Rpc(status) => from_status(&status),
            other => Self::Other(other.to_string()),
        }
    }
}

impl From<WorkflowInteractionError> for EngineError {
    fn from(error: WorkflowInteractionError) -> Self {
        match error {
            WorkflowInteractionError::NotFound(status) => Self::NotFound(status.message().into()),
            WorkflowInteractionError::Rpc(status) => from_status(&status),
            other => Self::Other(other.to_string()),
        }
    }
}
