//! How activity errors reach Temporal: retryable or not is decided here, from the typed
//! errors of each client, and carried as an `ApplicationFailure`.

use std::time::Duration;

use temporalio_common::error::ApplicationFailure;
use temporalio_sdk::activities::ActivityError;

/// A failure Temporal retries (with its backoff, or after `delay` if given).
pub fn retryable(
    error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    type_name: &str,
    delay: Option<Duration>,
) -> ActivityError {
    ActivityError::application(
        ApplicationFailure::builder(error)
            .type_name(type_name.to_owned())
            .maybe_next_retry_delay(delay)
            .build(),
    )
}

/// A failure that retrying cannot fix: the run fails with it.
pub fn terminal(
    error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    type_name: &str,
) -> ActivityError {
    ActivityError::application(
        ApplicationFailure::builder(error)
            .type_name(type_name.to_owned())
            .non_retryable(true)
            .build(),
    )
}

pub(crate) fn retryable_unless(
    is_terminal: bool,
    error: impl std::error::Error + Send + Sync + 'static,
) -> ActivityError {
    if is_terminal {
        terminal(error, "Terminal")
    } else {
        retryable(error, "Transient", None)
    }
}
