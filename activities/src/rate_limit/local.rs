//! Token buckets in this process: the embedded default, and enough for a single worker.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::{RateLimit, RateLimitError, TokenBuckets, reserve_token};

#[derive(Debug, Default)]
pub struct LocalBuckets {
    // (tokens left, when they were counted), per account this worker talks to.
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Buckets kept before full ones are let go: a bucket that has refilled is the same as no
/// bucket, so only the accounts spoken to within a refill's time take room.
const KEPT_BUCKETS: usize = 1024;

impl LocalBuckets {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait::async_trait]
impl TokenBuckets for LocalBuckets {
    async fn reserve(&self, key: &str, limit: RateLimit) -> Result<Duration, RateLimitError> {
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (tokens, at) = buckets
            .entry(key.to_owned())
            .or_insert((f64::from(limit.burst), now));
        let (left, wait) = reserve_token(*tokens, now.saturating_duration_since(*at), limit);
        *tokens = left;
        *at = now;
        if buckets.len() > KEPT_BUCKETS {
            buckets.retain(|_, (tokens, at)| {
                let refilled =
                    *tokens + now.saturating_duration_since(*at).as_secs_f64() * limit.per_second;
                refilled < f64::from(limit.burst)
            });
        }
        Ok(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn buckets_of_accounts_gone_quiet_are_let_go() {
        let buckets = LocalBuckets::new();
        let limit = RateLimit::new(10.0, 5).unwrap();
        for account in 0..10_000 {
            buckets
                .reserve(&format!("account-{account}"), limit)
                .await
                .unwrap();
            // One request per account, spread over 100 s: each bucket refills in 0.1 s.
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        let kept = buckets.buckets.lock().unwrap().len();
        assert!(kept <= KEPT_BUCKETS + 1, "{kept} buckets kept");
        // A busy account keeps its bucket, and its debt.
        for _ in 0..6 {
            buckets.reserve("busy", limit).await.unwrap();
        }
        assert!(buckets.reserve("busy", limit).await.unwrap() > Duration::ZERO);
    }
}
