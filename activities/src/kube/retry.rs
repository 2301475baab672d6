//! A short, bounded retry of one Kubernetes call through what API servers answer now
//! and then: throttling (429, API Priority and Fairness), transient 5xx (an etcd
//! hiccup, an admission webhook whose pods are not serving yet: "failed calling
//! webhook"), a namespace still terminating, a dropped connection. Past the bound the
//! error goes to the activity, whose verdict (`KubeError::is_retryable`) decides.

use std::future::Future;
use std::time::Duration;

use super::KubeError;

/// Tries, and the pause before each retry.
const PAUSES: [Duration; 4] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];

pub(crate) async fn bounded<T, F, Fut>(what: &str, mut call: F) -> Result<T, KubeError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, KubeError>>,
{
    let mut pauses = PAUSES.iter();
    loop {
        match call().await {
            Err(error) if error.is_transient() => match pauses.next() {
                Some(pause) => {
                    tracing::info!(%what, %error, retry_in = ?pause, "Kubernetes call failed transiently; retrying");
                    tokio::time::sleep(*pause).await;
                }
                None => return Err(error),
            },
            other => return other,
        }
    }
}
