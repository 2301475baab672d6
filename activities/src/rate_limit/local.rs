//! Token buckets in this process: the embedded default, and enough for a single worker.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::{RateLimit, RateLimitError, TokenBuckets, reserve_token};

#[derive(Debug, Default)]
pub struct LocalBuckets {
    // (tokens left, when they were counted). Grows with the accounts this worker talks to.
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

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
        Ok(wait)
    }
}
