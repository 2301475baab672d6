//! Heartbeats while an activity works, so Temporal notices a dead worker within the
//! heartbeat timeout and can hand the work to another.

use std::future::Future;
use std::time::Duration;

use temporalio_sdk::activities::{ActivityContext, ActivityError};

const BEAT: Duration = Duration::from_secs(2);

/// Runs `work` while heartbeating; cancellation drops `work` at its next await point.
/// For work that can simply stop (HTTP calls).
pub(crate) async fn heartbeating<F: Future>(
    ctx: &ActivityContext,
    work: F,
) -> Result<F::Output, ActivityError> {
    let mut beat = tokio::time::interval(BEAT);
    tokio::pin!(work);
    loop {
        tokio::select! {
            output = &mut work => return Ok(output),
            _ = ctx.cancelled() => return Err(ActivityError::cancelled()),
            _ = beat.tick() => ctx.record_heartbeat(()).await.map_err(ActivityError::from)?,
        }
    }
}

/// Runs `work` to its end while heartbeating. `work` receives the cancellation itself
/// (a child process must be interrupted, not dropped), so it is never cut short here.
pub(crate) async fn supervised<F: Future>(ctx: &ActivityContext, work: F) -> F::Output {
    supervised_with(ctx, (), work).await
}

/// [`supervised`], every heartbeat carrying `details`, which Temporal hands to the next
/// attempt if this one fails or dies. The first heartbeat goes at once, so the details
/// survive even a worker that dies straight after.
pub(crate) async fn supervised_with<D, F>(ctx: &ActivityContext, details: D, work: F) -> F::Output
where
    D: serde::Serialize + Clone + Send + Sync + 'static,
    F: Future,
{
    let mut beat = tokio::time::interval(BEAT);
    tokio::pin!(work);
    loop {
        tokio::select! {
            output = &mut work => return output,
            _ = beat.tick() => {
                // A refused heartbeat means the attempt is over; the SDK then cancels the
                // context, which `work` is watching.
                if let Err(e) = ctx.record_heartbeat(details.clone()).await {
                    tracing::debug!(error = %e, "heartbeat not recorded");
                }
            }
        }
    }
}
