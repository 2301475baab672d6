use std::time::Duration;

/// Whether a retry may help is part of each variant.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The kubeconfig cannot be used: a retry reads the same one.
    #[error("the cluster's kubeconfig is unusable: {0}")]
    Kubeconfig(String),
    /// The API server answered with an error status.
    #[error("Kubernetes API: {message} ({code})")]
    Api { code: u16, message: String },
    /// The API server could not be reached or the connection broke.
    #[error("Kubernetes API unreachable: {0}")]
    Transport(String),
    /// The workload will not become ready (the controller gave up on it, or a job failed).
    #[error("{0}")]
    RolloutFailed(String),
    #[error("{workload} not ready after {waited:?}: {last_status}")]
    RolloutTimeout {
        workload: String,
        waited: Duration,
        last_status: String,
    },
}

impl KubeError {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            // Conflicts, throttling and server-side trouble pass; the rest is our request.
            Self::Api { code, .. } => matches!(code, 409 | 429 | 500..=599),
            Self::Kubeconfig(_) | Self::RolloutFailed(_) | Self::RolloutTimeout { .. } => false,
        }
    }
}

impl From<kube::Error> for KubeError {
    fn from(error: kube::Error) -> Self {
        match error {
            kube::Error::Api(status) => Self::Api {
                code: status.code,
                message: status.message.clone(),
            },
            other => Self::Transport(other.to_string()),
        }
    }
}
