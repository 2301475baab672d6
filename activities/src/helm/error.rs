/// What went wrong running helm. Whether a retry can help is part of the type.
///
/// helm has no machine-readable error output, so the variant is decided once,
/// here, from the `Error:` text helm prints ([`HelmError::from_failure`]); the
/// rest of Windlass only looks at the variant.
#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    /// The release's latest revision is `pending-install`/`-upgrade`/`-rollback`:
    /// another helm is at work, or one died mid-operation. A retry either finds it
    /// finished or recovers it (see `Helm::upgrade_install`).
    #[error("helm release {release} has an operation in progress ({status})")]
    PendingOperation { release: String, status: String },
    /// Resources did not become ready within the timeout. With
    /// `--rollback-on-failure` helm has already rolled the release back.
    #[error("helm {command} timed out waiting for resources{}: {message}",
        if *.rolled_back { " (rolled back)" } else { "" })]
    Timeout {
        command: String,
        rolled_back: bool,
        message: String,
    },
    /// The Kubernetes API could not be reached.
    #[error("helm {command} could not reach the cluster: {message}")]
    Unreachable { command: String, message: String },
    /// The chart, its values or what they render to are wrong (template errors,
    /// schema violations, objects the API rejects as invalid, unknown kinds).
    /// The same input fails the same way every time.
    #[error("helm {command} rejected the chart or its values: {message}")]
    InvalidChart { command: String, message: String },
    /// `helm lint` found errors.
    #[error("helm lint failed: {}", .0.join("; "))]
    Lint(Vec<String>),
    #[error("helm release {0} not found")]
    ReleaseNotFound(String),
    /// Anything else helm reported (API conflicts, admission webhooks, throttling).
    #[error("helm {command} failed (exit {code}): {message}")]
    Failed {
        command: String,
        code: i32,
        message: String,
    },
    /// Server-side apply refused to change fields another field manager owns (409).
    /// The same apply conflicts the same way until someone decides whose the fields are.
    #[error("helm {command} conflicts with fields managed by {}: {message}",
        if .managers.is_empty() { "another field manager".to_string() } else { .managers.join(", ") })]
    Conflict {
        command: String,
        managers: Vec<String>,
        message: String,
    },
    /// An admission webhook did not answer (its pods are not serving yet, as right after
    /// cert-manager installs): it soon will.
    #[error("helm {command}: an admission webhook is not ready yet: {message}")]
    WebhookNotReady { command: String, message: String },
    /// The chart could not be fetched from its repository or registry (no such host,
    /// refused, 404, unauthorised): the same reference fails the same way, so after a
    /// short bounded retry (by the caller) it is final.
    #[error("chart {chart} could not be fetched from {registry}: {message}")]
    ChartFetch {
        chart: String,
        registry: String,
        message: String,
    },
    #[error("helm {0} was cancelled")]
    Cancelled(String),
    #[error("helm could not be started: {0}")]
    Spawn(#[source] std::io::Error),
    /// Writing the kubeconfig or values file failed.
    #[error("helm's working files could not be written: {0}")]
    Files(#[source] std::io::Error),
    #[error("helm output could not be read: {0}")]
    Output(String),
}

impl HelmError {
    /// Rollouts finish, clusters come back, operations in progress end; a bad
    /// chart, a failed lint, a missing release or a cancellation stay as they are.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::PendingOperation { .. }
            | Self::Timeout { .. }
            | Self::Unreachable { .. }
            | Self::Failed { .. }
            | Self::WebhookNotReady { .. }
            | Self::Spawn(_)
            | Self::Files(_)
            | Self::Output(_) => true,
            Self::Conflict { .. } | Self::ChartFetch { .. } => false,
            Self::InvalidChart { .. }
            | Self::Lint(_)
            | Self::ReleaseNotFound(_)
            | Self::Cancelled(_) => false,
        }
    }

    /// Classifies a failed helm command from its exit code and stderr.
    pub fn from_failure(command: &str, release: &str, code: i32, stderr: &str) -> Self {
        let message = error_message(stderr);
        let lower = message.to_ascii_lowercase();
        let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
        let command = command.to_owned();
        if has(&["another operation (install/upgrade/rollback) is in progress"]) {
            return Self::PendingOperation {
                release: release.to_owned(),
                status: "pending".into(),
            };
        }
        if has(&["apply failed with"]) && has(&["conflict"]) {
            return Self::Conflict {
                command,
                managers: conflicting_managers(&message),
                message,
            };
        }
        if has(&["failed calling webhook"]) {
            return Self::WebhookNotReady { command, message };
        }
        if has(&[
            "context deadline exceeded",
            "timed out waiting for the condition",
        ]) {
            return Self::Timeout {
                command,
                rolled_back: has(&["has been rolled back"]),
                message,
            };
        }
        if has(&[
            "kubernetes cluster unreachable",
            "connection refused",
            "no such host",
            "i/o timeout",
            "tls handshake timeout",
            "connection reset by peer",
            "server is currently unable to handle the request",
            "http2: client connection lost",
        ]) {
            return Self::Unreachable { command, message };
        }
        if has(&["release: not found", "has no deployed releases"]) {
            return Self::ReleaseNotFound(release.to_owned());
        }
        if has(&[
            "parse error",
            "yaml parse error",
            "error converting yaml to json",
            "execution error at",
            "template: ",
            "values don't meet the specifications of the schema",
            "chart requires kubeversion",
            "unable to build kubernetes objects",
            "resource mapping not found",
            "no matches for kind",
            "is invalid:",
            "strict decoding error",
            "chart.yaml file is missing",
            "not found in helm repository",
            "validation: chart.metadata",
            "rendered manifests contain a resource that already exists",
            "release has no",
        ]) || (lower.starts_with("path ") && lower.ends_with("not found"))
        {
            return Self::InvalidChart { command, message };
        }
        Self::Failed {
            command,
            code,
            message,
        }
    }
}

/// The managers a server-side apply conflict names (`conflict with "kubectl-edit"`).
fn conflicting_managers(message: &str) -> Vec<String> {
    let mut managers: Vec<String> = Vec::new();
    for part in message.split("with \"").skip(1) {
        if let Some(name) = part.split('"').next()
            && !managers.iter().any(|m| m == name)
        {
            managers.push(name.to_owned());
        }
    }
    managers
}

/// The `Error: ...` part of helm's stderr (warnings and progress lines dropped),
/// or its last non-empty line.
fn error_message(stderr: &str) -> String {
    let mut lines = stderr.lines().map(str::trim_end);
    let from_error: Vec<&str> = lines
        .by_ref()
        .skip_while(|l| !l.starts_with("Error:"))
        .collect();
    if let Some(first) = from_error.first() {
        let mut text = first.trim_start_matches("Error:").trim().to_string();
        for more in from_error[1..].iter().filter(|l| !l.trim().is_empty()) {
            if more.starts_with("Use --debug") {
                continue;
            }
            text.push('\n');
            text.push_str(more);
        }
        return text;
    }
    stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

impl crate::error::StepError for HelmError {
    fn verdict(&self) -> crate::error::Verdict {
        use crate::error::Verdict;
        match self {
            Self::Cancelled(_) => Verdict::Cancelled,
            other if other.is_retryable() => {
                Verdict::retry_after(std::time::Duration::from_secs(5))
            }
            _ => Verdict::Terminal,
        }
    }

    fn failure_code(&self) -> crate::error::FailureCode {
        use crate::error::FailureCode;
        match self {
            Self::WebhookNotReady { .. } => FailureCode::AdmissionWebhookNotReady,
            Self::Conflict { .. } => FailureCode::FieldManagerConflict,
            Self::ChartFetch { .. } => FailureCode::ChartFetchFailed,
            _ => FailureCode::HelmFailed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(stderr: &str) -> HelmError {
        HelmError::from_failure("upgrade", "agent", 1, stderr)
    }

    // The messages below are what helm v4.1 prints for each situation.

    #[test]
    fn an_operation_in_progress_is_the_pending_release_case() {
        let e = classify(
            "Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress\n",
        );
        assert!(matches!(&e, HelmError::PendingOperation { release, .. } if release == "agent"));
        assert!(e.is_retryable());
    }

    #[test]
    fn a_rollout_timeout_is_retryable_and_says_whether_it_rolled_back() {
        let e = classify(
            "level=WARN msg=\"upgrade failed\" name=agent error=\"...\"\n\
             Error: UPGRADE FAILED: release agent failed, and has been rolled back due to rollback-on-failure being set: \
             resource Deployment/windlass/agent not ready. status: InProgress, message: Available: 0/1\n\
             context deadline exceeded\n",
        );
        match &e {
            HelmError::Timeout {
                rolled_back,
                message,
                ..
            } => {
                assert!(rolled_back);
                assert!(message.starts_with("UPGRADE FAILED: release agent failed"));
                assert!(message.ends_with("context deadline exceeded"));
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(e.is_retryable());
    }

    #[test]
    fn an_unreachable_cluster_is_retryable() {
        let e = classify(
            "Error: kubernetes cluster unreachable: Get \"https://127.0.0.1:1/version\": dial tcp 127.0.0.1:1: connect: connection refused\n",
        );
        assert!(matches!(e, HelmError::Unreachable { .. }));
        assert!(e.is_retryable());
    }

    #[test]
    fn template_and_path_errors_are_terminal() {
        for stderr in [
            "Error: parse error at (bad/templates/a.yaml:1): unexpected \"}\" in operand\n\nUse --debug flag to render out invalid YAML\n",
            "Error: path \"/tmp/nochart\" not found\n",
            "Error: INSTALLATION FAILED: execution error at (x/templates/d.yaml:3:4): image.tag is required\n",
            "Error: values don't meet the specifications of the schema(s) in the following chart(s):\nx:\n- replicas: Invalid type\n",
        ] {
            let e = classify(stderr);
            assert!(
                matches!(e, HelmError::InvalidChart { .. }),
                "{stderr}: {e:?}"
            );
            assert!(!e.is_retryable());
        }
        let e = classify(
            "Error: parse error at (bad/templates/a.yaml:1): unexpected \"}\" in operand\n\nUse --debug flag to render out invalid YAML\n",
        );
        assert_eq!(
            e.to_string(),
            "helm upgrade rejected the chart or its values: parse error at (bad/templates/a.yaml:1): unexpected \"}\" in operand"
        );
    }

    #[test]
    fn an_apply_conflict_is_terminal_and_names_the_other_manager() {
        let e = classify(
            "Error: UPGRADE FAILED: conflict occurred while applying object shop/web apps/v1, Kind=Deployment: \
             Apply failed with 1 conflict: conflict with \"kubectl-edit\" using apps/v1: .spec.replicas\n",
        );
        match &e {
            HelmError::Conflict { managers, .. } => assert_eq!(managers, &["kubectl-edit"]),
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("managed by kubectl-edit"), "{e}");
    }

    #[test]
    fn a_webhook_not_serving_yet_is_retryable() {
        let e = classify(
            "Error: INSTALLATION FAILED: Internal error occurred: failed calling webhook \"webhook.cert-manager.io\": \
             failed to call webhook: Post \"https://cert-manager-webhook.cert-manager.svc:443/validate?timeout=10s\": \
             dial tcp 10.96.0.15:443: connect: connection refused\n",
        );
        assert!(matches!(e, HelmError::WebhookNotReady { .. }), "{e:?}");
        assert!(e.is_retryable());
    }

    #[test]
    fn a_missing_release_is_terminal_and_unknown_failures_retry() {
        assert!(
            matches!(classify("Error: release: not found\n"), HelmError::ReleaseNotFound(r) if r == "agent")
        );
        let other = classify(
            "Error: UPGRADE FAILED: Operation cannot be fulfilled: the object has been modified\n",
        );
        assert!(matches!(other, HelmError::Failed { code: 1, .. }));
        assert!(other.is_retryable());
    }
}
