//! A shared request budget per cloud account, so a fleet of workers does not trip ARM's or
//! AWS's throttling. Each account (Azure subscription, AWS account) has a token bucket;
//! every request to it takes one token and waits (asynchronously) when the bucket is
//! empty. The buckets live in this process ([`LocalBuckets`], the embedded default) or in
//! Redis ([`RedisBuckets`], production: one budget for every worker of the fleet).
//!
//! Taking a token is a *reservation*: the bucket may go below zero, and the caller is told
//! how long to wait for its token. One round trip per request, and callers are served in
//! the order they asked.

mod aws_http;
mod local;
mod redis_buckets;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use aws_http::RateLimitedHttpClient;
pub use local::LocalBuckets;
pub use redis_buckets::RedisBuckets;
pub use windlass_core::cloud_accounts::CloudProvider;

/// Requests per second per account, and how many may go at once after a quiet spell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl RateLimit {
    pub fn new(per_second: f64, burst: u32) -> Result<Self, RateLimitError> {
        if !(per_second.is_finite() && per_second > 0.0) || burst == 0 {
            return Err(RateLimitError::Config(format!(
                "a cloud rate limit needs a positive rate and burst (got {per_second}/s, burst {burst})"
            )));
        }
        Ok(Self { per_second, burst })
    }
}

/// The account a request spends the budget of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudAccount {
    pub provider: CloudProvider,
    /// Subscription id or 12-digit account id: identifiers, never credentials.
    pub id: String,
}

impl CloudAccount {
    pub fn azure(subscription_id: impl Into<String>) -> Self {
        Self {
            provider: CloudProvider::Azure,
            id: subscription_id.into().to_ascii_lowercase(),
        }
    }

    pub fn aws(account_id: impl Into<String>) -> Self {
        Self {
            provider: CloudProvider::Aws,
            id: account_id.into(),
        }
    }

    /// The bucket's key: one per provider and account.
    pub fn bucket_key(&self) -> String {
        format!("{}:{}", self.provider.as_str(), self.id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    #[error("rate limit configuration: {0}")]
    Config(String),
    /// The shared backend did not answer; worth trying again.
    #[error("rate limit backend unavailable: {0}")]
    Unavailable(String),
}

impl RateLimitError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Where the buckets live.
#[async_trait::async_trait]
pub trait TokenBuckets: Send + Sync + fmt::Debug {
    /// Takes one token from `key`'s bucket; returns how long to wait before using it.
    async fn reserve(&self, key: &str, limit: RateLimit) -> Result<Duration, RateLimitError>;
}

/// Told about every request that had to wait, and every time the backend failed (metrics).
pub trait WaitObserver: Send + Sync {
    fn waited(&self, provider: CloudProvider, wait: Duration);
    fn backend_failed(&self, provider: CloudProvider);
}

/// The limiter the cloud clients hold. Cheap to clone; clones share the buckets.
#[derive(Clone)]
pub struct RateLimiter {
    buckets: Arc<dyn TokenBuckets>,
    limit: RateLimit,
    observer: Option<Arc<dyn WaitObserver>>,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("buckets", &self.buckets)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    pub fn new(buckets: Arc<dyn TokenBuckets>, limit: RateLimit) -> Self {
        Self {
            buckets,
            limit,
            observer: None,
        }
    }

    pub fn with_observer(mut self, observer: Arc<dyn WaitObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Waits until `account` may send one more request. If the shared backend cannot be
    /// reached the request goes ahead: the clouds' own throttling (429 with Retry-After,
    /// retried as typed errors) still protects the account, while a Redis outage stalling
    /// every cloud call of the fleet would not be better.
    pub async fn acquire(&self, account: &CloudAccount) {
        match self
            .buckets
            .reserve(&account.bucket_key(), self.limit)
            .await
        {
            Ok(wait) if wait.is_zero() => {}
            Ok(wait) => {
                tracing::debug!(provider = account.provider.as_str(), account = %account.id,
                    wait_ms = wait.as_millis() as u64, "waiting for the account's request budget");
                if let Some(observer) = &self.observer {
                    observer.waited(account.provider, wait);
                }
                tokio::time::sleep(wait).await;
            }
            Err(error) => {
                tracing::warn!(provider = account.provider.as_str(), %error,
                    "rate limit backend failed; sending without waiting");
                if let Some(observer) = &self.observer {
                    observer.backend_failed(account.provider);
                }
            }
        }
    }
}

/// Reservation arithmetic shared by both backends (the Lua script mirrors it): refill
/// since the last reservation, capped at the burst, then take one token.
pub(crate) fn reserve_token(tokens: f64, elapsed: Duration, limit: RateLimit) -> (f64, Duration) {
    let refilled = (tokens + elapsed.as_secs_f64() * limit.per_second).min(f64::from(limit.burst));
    let left = refilled - 1.0;
    let wait = if left < 0.0 {
        Duration::from_secs_f64(-left / limit.per_second)
    } else {
        Duration::ZERO
    };
    (left, wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_grants_its_burst_then_spaces_requests_by_the_rate() {
        let limit = RateLimit::new(2.0, 3).unwrap();
        let mut tokens = 3.0;
        let mut waits = Vec::new();
        for _ in 0..5 {
            let (left, wait) = reserve_token(tokens, Duration::ZERO, limit);
            tokens = left;
            waits.push(wait);
        }
        assert_eq!(
            waits,
            [0.0, 0.0, 0.0, 0.5, 1.0]
                .map(Duration::from_secs_f64)
                .to_vec()
        );
    }

    #[test]
    fn refill_is_capped_at_the_burst() {
        let limit = RateLimit::new(1.0, 2).unwrap();
        let (left, wait) = reserve_token(0.0, Duration::from_secs(3600), limit);
        assert_eq!((left, wait), (1.0, Duration::ZERO));
    }

    #[test]
    fn nonsense_limits_are_refused() {
        assert!(RateLimit::new(0.0, 1).is_err());
        assert!(RateLimit::new(f64::NAN, 1).is_err());
        assert!(RateLimit::new(1.0, 0).is_err());
    }

    #[test]
    fn accounts_have_one_bucket_per_provider() {
        assert_eq!(CloudAccount::azure("ABC-1").bucket_key(), "azure:abc-1");
        assert_eq!(
            CloudAccount::aws("123456789012").bucket_key(),
            "aws:123456789012"
        );
    }
}
