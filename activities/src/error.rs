//! How activity errors reach Temporal: one verdict per error, one conversion.
//!
//! Every client error a step can end with implements [`StepError`]: its [`Verdict`] (retry,
//! maybe after a delay the service named; terminal; cancelled) and its [`FailureCode`],
//! the failure's type in Temporal's history. [`failure`] is the only conversion. Codes
//! are a closed list, each with a page under `docs/errors/` (a test checks both ways), so
//! an operator reading a failure in Temporal's UI can look it up.

use std::time::Duration;

use temporalio_common::error::ApplicationFailure;
use temporalio_sdk::activities::ActivityError;

/// What retrying can do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try again: after `after` when the service said when (throttling, a lock that clears
    /// soon), otherwise with the step's backoff.
    Retry { after: Option<Duration> },
    /// Retrying cannot fix it: the run fails with it.
    Terminal,
    /// The attempt was interrupted because the run is being cancelled.
    Cancelled,
}

impl Verdict {
    pub const RETRY: Verdict = Verdict::Retry { after: None };

    pub fn retry_after(delay: Duration) -> Verdict {
        Verdict::Retry { after: Some(delay) }
    }

    /// Retry with backoff when `retryable`, else terminal.
    pub fn retry_if(retryable: bool) -> Verdict {
        if retryable {
            Verdict::RETRY
        } else {
            Verdict::Terminal
        }
    }
}

/// An error a step can end with.
pub trait StepError: std::error::Error + Send + Sync + 'static {
    fn verdict(&self) -> Verdict;
    fn failure_code(&self) -> FailureCode;
}

/// The one conversion of a step's error into what Temporal records and acts on.
pub fn failure(error: impl StepError) -> ActivityError {
    let code = error.failure_code();
    match error.verdict() {
        Verdict::Cancelled => ActivityError::cancelled(),
        Verdict::Retry { after } => retryable(error, code, after),
        Verdict::Terminal => terminal(error, code),
    }
}

/// A failure Temporal retries (with its backoff, or after `delay` if given).
pub fn retryable(
    error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    code: FailureCode,
    delay: Option<Duration>,
) -> ActivityError {
    ActivityError::application(
        ApplicationFailure::builder(error)
            .type_name(code.as_str().to_owned())
            .maybe_next_retry_delay(delay)
            .build(),
    )
}

/// A failure that retrying cannot fix: the run fails with it.
pub fn terminal(
    error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    code: FailureCode,
) -> ActivityError {
    ActivityError::application(
        ApplicationFailure::builder(error)
            .type_name(code.as_str().to_owned())
            .non_retryable(true)
            .build(),
    )
}

macro_rules! failure_codes {
    ($($(#[doc = $doc:literal])* $code:ident,)*) => {
        /// Every failure type a step can end with. Each has a page, `docs/errors/<code>.md`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum FailureCode {
            $($(#[doc = $doc])* $code,)*
        }

        impl FailureCode {
            pub const ALL: &'static [FailureCode] = &[$(FailureCode::$code,)*];

            /// The failure's type in Temporal's history.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(FailureCode::$code => stringify!($code),)*
                }
            }
        }
    };
}

failure_codes! {
    /// A cluster's admission webhook is not serving yet (cert-manager's, typically).
    AdmissionWebhookNotReady,
    /// The AWS account refused a call (permissions, a missing or invalid resource).
    AwsRefused,
    /// The organisation's role refused Windlass's AssumeRole (trust policy, ExternalId).
    AwsRoleRefused,
    /// An AWS API did not answer or throttled.
    AwsUnavailable,
    /// The role belongs to another AWS account than the one registered.
    AwsWrongAccount,
    /// ARM is running another operation on the resource; it said when to come back.
    AzureBusy,
    /// Azure refused the request (permissions, policy, a lock, invalid input).
    AzureRefused,
    /// Azure has not replicated or propagated a change yet; retried within its window.
    AzureSettling,
    /// A replication or propagation lag outlasted the window Windlass waits for it.
    AzureNotSettled,
    /// Azure throttled the request and said when to come back.
    AzureThrottled,
    /// Azure did not answer, or answered with a server error.
    AzureUnavailable,
    /// A chart could not be fetched from its repository or registry.
    ChartFetchFailed,
    /// A chart's host is not one a shared worker may reach (loopback, private ranges).
    ChartHostRefused,
    /// Another operation holds the cluster; this one waits for it.
    ClusterBusy,
    /// The workload-identity token terraform authenticates with could not be minted.
    FederatedTokenUnavailable,
    /// A field Windlass sets is owned by another field manager in the cluster.
    FieldManagerConflict,
    /// helm failed (a render error, a refused manifest, an unreachable cluster).
    HelmFailed,
    /// The request cannot be carried out as given.
    InvalidInput,
    /// The Kubernetes API did not answer, or throttled.
    KubernetesUnavailable,
    /// This worker has no AWS access configured.
    NoAwsConfiguration,
    /// The cluster's kubeconfig is not published, or its state has none.
    NoKubeconfig,
    /// The cluster has no terraform state yet.
    NoState,
    /// A placed worker was asked for work only shared workers do.
    PlacedWorkerScope,
    /// terraform's plan would destroy or replace what the step may not touch.
    PlanRefused,
    /// A role definition still has assignments Azure has not removed yet.
    RoleDefinitionHasAssignments,
    /// A workload did not become ready (a rollout, a job) or the cluster refused it.
    RolloutFailed,
    /// A secret the deployment needs could not be read.
    SecretUnavailable,
    /// Another attempt took the terraform state lock over: this one stopped.
    StateLockLost,
    /// The terraform state is locked by a run still going.
    StateLocked,
    /// The terraform state could not be read or parsed.
    StateUnreadable,
    /// A step ran past its budget (running time, not time queued).
    StepBudgetExceeded,
    /// Windlass's own records refused the change (a missing row, an invalid value).
    StoreRefused,
    /// Windlass's own records (database or, for a placed worker, the API) did not answer.
    StoreUnavailable,
    /// The cloud storage holding a cluster's state refused a request.
    StorageRefused,
    /// The cloud storage holding a cluster's state did not answer.
    StorageUnavailable,
    /// terraform failed.
    TerraformFailed,
    /// The access check found the customer's access not as the setup left it.
    VerificationFailed,
    /// The worker could not prepare terraform's working directory.
    Workspace,
}

/// Windlass's own records: the store, or the API for a placed worker.
impl StepError for windlass_core::Error {
    fn verdict(&self) -> Verdict {
        Verdict::retry_if(self.is_retryable())
    }

    fn failure_code(&self) -> FailureCode {
        if self.is_retryable() {
            FailureCode::StoreUnavailable
        } else {
            FailureCode::StoreRefused
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn pages() -> BTreeSet<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/errors");
        std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|entry| {
                let name = entry.unwrap().file_name().into_string().unwrap();
                name.strip_suffix(".md").map(str::to_owned)
            })
            .filter(|name| name != "README")
            .collect()
    }

    #[test]
    fn every_failure_code_has_a_page_and_every_page_a_code() {
        let codes: BTreeSet<String> = FailureCode::ALL
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect();
        let pages = pages();
        let without_page: Vec<_> = codes.difference(&pages).collect();
        let without_code: Vec<_> = pages.difference(&codes).collect();
        assert!(
            without_page.is_empty() && without_code.is_empty(),
            "codes without a page: {without_page:?}; pages without a code: {without_code:?}"
        );
    }

    #[test]
    fn the_budget_code_is_the_one_the_workflows_match() {
        assert_eq!(
            FailureCode::StepBudgetExceeded.as_str(),
            windlass_workflows::step_budget::STEP_BUDGET_EXCEEDED
        );
    }

    #[derive(Debug, thiserror::Error)]
    #[error("throttled")]
    struct Throttled;

    impl StepError for Throttled {
        fn verdict(&self) -> Verdict {
            Verdict::retry_after(Duration::from_secs(7))
        }
        fn failure_code(&self) -> FailureCode {
            FailureCode::AzureThrottled
        }
    }

    #[test]
    fn a_verdict_becomes_the_failure_temporal_acts_on() {
        let ActivityError::Application(failure) = failure(Throttled) else {
            panic!("an application failure");
        };
        assert!(!failure.is_non_retryable());
        assert_eq!(failure.type_name(), Some("AzureThrottled"));
    }
}
