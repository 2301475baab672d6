//! Unauthenticated webhook failures: counted, rate-limited per environment, and audited
//! once per window instead of once per request.
//!
//! Anyone can call the webhook route, so a failure must cost the API little: each refusal
//! bumps a metric (`windlass_api_webhook_refusals_total{reason}`), and an environment's
//! refusals are gathered in a window of [`WINDOW`]. The first refusal of a window starts a
//! timer; when it fires, one audit entry says how many calls were refused and why. After
//! [`MAX_REFUSALS_PER_WINDOW`] refusals, calls for that environment are answered `429`
//! without being verified until the window ends (a pipeline with the right secret is
//! refused too while someone floods its environment; it retries after `Retry-After`).
//! Calls naming no known environment share one budget (the nil id), so random ids cannot
//! grow the table; the table holds an entry only while its window is open.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::metrics::ApiMetrics;
use crate::webhook_signature::Refusal;

pub(crate) const WINDOW: Duration = Duration::from_secs(60);
pub(crate) const MAX_REFUSALS_PER_WINDOW: u32 = 20;

/// What one window of refusals for one environment amounted to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefusalSummary {
    pub environment_id: Uuid,
    pub refused: u32,
    pub reasons: BTreeMap<&'static str, u32>,
    pub window_seconds: u64,
}

#[derive(Clone)]
pub(crate) struct WebhookRefusals {
    windows: Arc<Mutex<HashMap<Uuid, OpenWindow>>>,
    metrics: ApiMetrics,
    window: Duration,
    limit: u32,
}

struct OpenWindow {
    opened: Instant,
    refused: u32,
    reasons: BTreeMap<&'static str, u32>,
}

impl WebhookRefusals {
    pub(crate) fn new(metrics: ApiMetrics) -> Self {
        Self::with_limits(metrics, WINDOW, MAX_REFUSALS_PER_WINDOW)
    }

    pub(crate) fn with_limits(metrics: ApiMetrics, window: Duration, limit: u32) -> Self {
        Self {
            windows: Arc::default(),
            metrics,
            window,
            limit,
        }
    }

    /// `Err(seconds until the window ends)` when the environment used up its refusals.
    pub(crate) fn check(&self, environment_id: Uuid) -> Result<(), u64> {
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        match windows.get(&environment_id) {
            Some(open) if open.refused >= self.limit => {
                self.metrics.count_webhook_rate_limited();
                let left = self.window.saturating_sub(open.opened.elapsed());
                Err(left.as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    /// Counts a refusal. The first one of a window starts its timer, which hands the
    /// window's summary to `on_close` when it ends.
    pub(crate) fn refuse(
        &self,
        environment_id: Uuid,
        reason: Refusal,
        on_close: impl FnOnce(RefusalSummary) + Send + 'static,
    ) {
        self.metrics.count_webhook_refusal(reason.as_label());
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(open) = windows.get_mut(&environment_id) {
            open.refused += 1;
            *open.reasons.entry(reason.as_label()).or_default() += 1;
            return;
        }
        let opened = Instant::now();
        windows.insert(
            environment_id,
            OpenWindow {
                opened,
                refused: 1,
                reasons: BTreeMap::from([(reason.as_label(), 1)]),
            },
        );
        drop(windows);
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(this.window).await;
            let closed = {
                let mut windows = this.windows.lock().unwrap_or_else(|p| p.into_inner());
                match windows.get(&environment_id) {
                    Some(open) if open.opened == opened => windows.remove(&environment_id),
                    _ => None,
                }
            };
            if let Some(closed) = closed {
                on_close(RefusalSummary {
                    environment_id,
                    refused: closed.refused,
                    reasons: closed.reasons,
                    window_seconds: this.window.as_secs(),
                });
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_flood_is_limited_and_summarised_once_per_window() {
        let metrics = ApiMetrics::new();
        let refusals = WebhookRefusals::with_limits(metrics.clone(), Duration::from_millis(200), 3);
        let environment = Uuid::new_v4();
        let (sender, mut summaries) = tokio::sync::mpsc::unbounded_channel();
        for reason in [
            Refusal::SignatureMismatch,
            Refusal::SignatureMismatch,
            Refusal::OutsideWindow,
        ] {
            assert_eq!(refusals.check(environment), Ok(()));
            let sender = sender.clone();
            refusals.refuse(environment, reason, move |summary| {
                sender.send(summary).unwrap();
            });
        }
        assert!(
            refusals.check(environment).is_err(),
            "the fourth call is limited"
        );
        assert_eq!(
            refusals.check(Uuid::new_v4()),
            Ok(()),
            "other environments are not"
        );

        let summary = tokio::time::timeout(Duration::from_secs(5), summaries.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(summary.refused, 3);
        assert_eq!(summary.reasons["signature_mismatch"], 2);
        assert_eq!(summary.reasons["outside_window"], 1);
        assert_eq!(
            refusals.check(environment),
            Ok(()),
            "a new window, a new budget"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(summaries.try_recv().is_err(), "one summary per window");
        assert!(refusals.windows.lock().unwrap().is_empty());

        let text = metrics.encode();
        assert!(
            text.contains("windlass_api_webhook_refusals_total{reason=\"signature_mismatch\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("windlass_api_webhook_rate_limited_total 1"),
            "{text}"
        );
    }
}
