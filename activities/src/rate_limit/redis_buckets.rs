//! Token buckets in Redis, shared by every worker of a fleet. One Lua script refills and
//! takes a token atomically, on Redis's own clock, so workers' clocks do not matter.

use std::time::Duration;

use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{RateLimit, RateLimitError, TokenBuckets};

/// Mirrors `reserve_token`: refill since `at` (capped at the burst), take one token, and
/// answer how many milliseconds the caller waits for it. The key expires once a full
/// bucket would have refilled anyway, so idle accounts leave nothing behind.
const RESERVE: &str = r#"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
if now > at then
  tokens = math.min(burst, tokens + (now - at) * rate / 1000)
  at = now
end
tokens = tokens - 1
local wait = 0
if tokens < 0 then
  wait = math.ceil(-tokens * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + wait + 1000)
return wait
"#;

#[derive(Clone)]
pub struct RedisBuckets {
    connection: ConnectionManager,
    script: Script,
    prefix: String,
}

impl std::fmt::Debug for RedisBuckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: only the key prefix is shown.
        f.debug_struct("RedisBuckets")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisBuckets {
    /// Connects lazily (and reconnects on its own after a failure): a worker started
    /// during a Redis outage runs, its requests going ahead unlimited until Redis answers,
    /// instead of exiting. Only a malformed URL is an error. Keys are `<prefix>:<bucket>`.
    pub async fn connect(url: &str, prefix: impl Into<String>) -> Result<Self, RateLimitError> {
        let client = redis::Client::open(url)
            .map_err(|e| RateLimitError::Config(format!("Redis URL: {}", e.category())))?;
        // Short timeouts: a request waits for Redis before it goes ahead unlimited, and a
        // stalled Redis must not stall every cloud call of the fleet.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| RateLimitError::Config(redis_error(&e)))?;
        Ok(Self {
            connection,
            script: Script::new(RESERVE),
            prefix: prefix.into(),
        })
    }
}

#[async_trait::async_trait]
impl TokenBuckets for RedisBuckets {
    async fn reserve(&self, key: &str, limit: RateLimit) -> Result<Duration, RateLimitError> {
        let mut connection = self.connection.clone();
        // EVALSHA, falling back to EVAL (which loads the script) when Redis lacks it.
        let wait_ms: u64 = self
            .script
            .key(format!("{}:{key}", self.prefix))
            .arg(limit.per_second)
            .arg(limit.burst)
            .invoke_async(&mut connection)
            .await
            .map_err(|e| RateLimitError::Unavailable(redis_error(&e)))?;
        Ok(Duration::from_millis(wait_ms))
    }
}

/// The error without its detail, which may echo the connection URL.
fn redis_error(error: &redis::RedisError) -> String {
    format!("{} ({:?})", error.category(), error.kind())
}
