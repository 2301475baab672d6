//! Live step logs: every line a step prints, fanned out to whoever follows the run (the
//! API's Server-Sent Events). Best effort by design: the store is the durable record, and
//! a line the fan-out loses is still replayed from there.
//!
//! Two backends, chosen by configuration: in-process broadcast channels (the embedded
//! default, where API and worker share a process) and Redis Streams (production, where
//! they do not).

mod in_process;
mod line;
mod redis_streams;

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{BoxStream, StreamExt};
use uuid::Uuid;

pub use line::{LiveKind, LiveLine};

use crate::Result;
use in_process::InProcess;
use redis_streams::RedisStreams;

/// Where production's fan-out lives, and how much of it Redis keeps.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Each run's stream is `<key_prefix><run id>`.
    pub key_prefix: String,
    /// `MAXLEN ~`: Redis trims a run's stream to about this many lines (the newest).
    pub max_lines_per_run: u64,
    /// A run's stream expires this long after its last line.
    pub retention: Duration,
}

impl RedisConfig {
    pub const DEFAULT_KEY_PREFIX: &str = "windlass:run-log:";
    pub const DEFAULT_MAX_LINES_PER_RUN: u64 = 10_000;
    pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);

    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: Self::DEFAULT_KEY_PREFIX.into(),
            max_lines_per_run: Self::DEFAULT_MAX_LINES_PER_RUN,
            retention: Self::DEFAULT_RETENTION,
        }
    }
}

/// The fan-out. Cheap to clone; clones share the backend (the embedded default must hand
/// the same one to its worker and its API).
#[derive(Clone)]
pub struct LiveLogs {
    backend: Arc<Backend>,
}

enum Backend {
    InProcess(InProcess),
    Redis(Box<RedisStreams>),
}

/// A subscription's lines, in the order they were published.
pub type LiveStream = BoxStream<'static, LiveLine>;

impl Default for LiveLogs {
    fn default() -> Self {
        Self::in_process()
    }
}

impl std::fmt::Debug for LiveLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveLogs")
            .field("backend", &self.backend_name())
            .finish()
    }
}

impl LiveLogs {
    /// Reaches subscribers in this process only.
    pub fn in_process() -> Self {
        Self {
            backend: Arc::new(Backend::InProcess(InProcess::default())),
        }
    }

    /// Redis Streams. Fails only on a malformed URL: the connection is made on first use.
    pub fn redis(config: RedisConfig) -> Result<Self> {
        Ok(Self {
            backend: Arc::new(Backend::Redis(Box::new(RedisStreams::new(config)?))),
        })
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend.as_ref() {
            Backend::InProcess(_) => "in-process",
            Backend::Redis(_) => "redis",
        }
    }

    /// Sends a line to the run's subscribers. Never fails the caller: a line that cannot
    /// be sent is logged (without its content) and dropped.
    pub async fn publish(&self, run_id: Uuid, line: &LiveLine) {
        self.publish_all(run_id, std::slice::from_ref(line)).await;
    }

    /// `publish` for lines that are already waiting: one round trip to Redis.
    pub async fn publish_all(&self, run_id: Uuid, lines: &[LiveLine]) {
        if lines.is_empty() {
            return;
        }
        match self.backend.as_ref() {
            Backend::InProcess(backend) => backend.publish(run_id, lines),
            Backend::Redis(backend) => {
                if let Err(error) = backend.publish(run_id, lines).await {
                    tracing::warn!(%run_id, lines = lines.len(), %error, "live log lines not published");
                }
            }
        }
    }

    /// The run's lines published from the moment this returns on. Earlier lines are the
    /// store's to replay (`Store::run_log`). The stream ends only when dropped.
    pub async fn subscribe(&self, run_id: Uuid) -> LiveStream {
        match self.backend.as_ref() {
            Backend::InProcess(backend) => backend.subscribe(run_id).boxed(),
            Backend::Redis(backend) => backend.subscribe(run_id).await.boxed(),
        }
    }

    /// The Redis key of a run's stream (`None` in process): for operators and tests.
    pub fn redis_key(&self, run_id: Uuid) -> Option<String> {
        match self.backend.as_ref() {
            Backend::InProcess(_) => None,
            Backend::Redis(backend) => Some(backend.key(run_id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn line(seq: u32) -> LiveLine {
        LiveLine {
            step: "terraform-apply".into(),
            attempt: 1,
            seq,
            at: Utc::now(),
            level: "info".into(),
            line: format!("line {seq}"),
            kind: super::LiveKind::Line,
        }
    }

    #[tokio::test]
    async fn in_process_channels_exist_only_while_someone_listens() {
        let logs = LiveLogs::in_process();
        let Backend::InProcess(backend) = logs.backend.as_ref() else {
            unreachable!()
        };
        let run = Uuid::new_v4();
        logs.publish(run, &line(1)).await;
        assert_eq!(
            backend.channels(),
            0,
            "a publish nobody hears creates nothing"
        );
        let mut first = logs.subscribe(run).await;
        let second = logs.subscribe(run).await;
        assert_eq!(backend.channels(), 1);
        logs.publish(run, &line(2)).await;
        assert_eq!(first.next().await.unwrap().seq, 2);
        drop(second);
        assert_eq!(backend.channels(), 1, "one subscriber is left");
        drop(first);
        assert_eq!(backend.channels(), 0);
    }
}
