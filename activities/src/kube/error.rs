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
    /// What passes within seconds: throttling, a server-side hiccup, an admission
    /// webhook not serving yet, a namespace still being deleted, a broken connection.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Api { code, message } => {
                matches!(code, 429 | 500 | 502 | 503 | 504)
                    || (*code == 403 && message.contains("because it is being terminated"))
            }
            _ => false,
        }
    }

    pub fn is_retryable(&self) -> bool {
        if self.is_transient() {
            return true;
        }
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

impl crate::error::StepError for KubeError {
    fn verdict(&self) -> crate::error::Verdict {
        if self.is_retryable() {
            crate::error::Verdict::retry_after(std::time::Duration::from_secs(2))
        } else {
            crate::error::Verdict::Terminal
        }
    }

    fn failure_code(&self) -> crate::error::FailureCode {
        if self.is_retryable() {
            crate::error::FailureCode::KubernetesUnavailable
        } else {
            crate::error::FailureCode::RolloutFailed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_server_errors_and_terminating_namespaces_are_transient() {
        let api = |code: u16, message: &str| KubeError::Api {
            code,
            message: message.into(),
        };
        assert!(api(429, "too many requests").is_transient());
        assert!(api(500, "failed calling webhook \"webhook.cert-manager.io\"").is_transient());
        assert!(
            api(
                403,
                "secrets \"s\" is forbidden: unable to create new content in namespace apps because it is being terminated"
            )
            .is_transient()
        );
        assert!(!api(403, "forbidden: RBAC").is_retryable());
        assert!(!api(422, "Service \"2fa\" is invalid").is_retryable());
    }
}
