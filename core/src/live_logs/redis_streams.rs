//! The production fan-out: one Redis stream per run (`XADD ... MAXLEN ~ N`, with an
//! expiry), read by each subscriber with `XREAD BLOCK` from its own cursor. Any API replica
//! can serve any run's events, whichever worker runs its steps.

use std::time::Duration;

use futures::Stream;
use futures::stream::{self, StreamExt};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::streams::{StreamRangeReply, StreamReadReply};
use redis::{AsyncConnectionConfig, Client};
use uuid::Uuid;

use super::{LiveLine, RedisConfig};
use crate::{Error, Result};

/// A publish that takes longer is abandoned: the step must not wait on its audience.
const PUBLISH_TIMEOUT: Duration = Duration::from_millis(500);
/// How long one `XREAD` waits for new entries before asking again.
const BLOCK: Duration = Duration::from_secs(5);
/// The stream entry's field holding the line's JSON.
const FIELD: &str = "l";

pub(super) struct RedisStreams {
    client: Client,
    publisher: ConnectionManager,
    config: RedisConfig,
}

impl RedisStreams {
    /// Connects lazily: a worker or API starts while Redis is still coming up, and a
    /// missing Redis costs live lines, never a run.
    pub(super) fn new(config: RedisConfig) -> Result<Self> {
        let client = Client::open(config.url.as_str())?;
        let publisher = ConnectionManager::new_lazy_with_config(
            client.clone(),
            ConnectionManagerConfig::new()
                .set_response_timeout(Some(PUBLISH_TIMEOUT))
                .set_connection_timeout(Some(Duration::from_secs(1)))
                .set_number_of_retries(1),
        )?;
        Ok(Self {
            client,
            publisher,
            config,
        })
    }

    pub(super) fn key(&self, run_id: Uuid) -> String {
        format!("{}{run_id}", self.config.key_prefix)
    }

    /// Appends the lines (one round trip) and pushes the key's expiry forward.
    pub(super) async fn publish(&self, run_id: Uuid, lines: &[LiveLine]) -> Result<()> {
        let key = self.key(run_id);
        let mut pipe = redis::pipe();
        for line in lines {
            let json = serde_json::to_string(line)
                .map_err(|e| Error::LiveLogs(format!("encoding a line: {e}")))?;
            pipe.cmd("XADD")
                .arg(&key)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.config.max_lines_per_run)
                .arg("*")
                .arg(FIELD)
                .arg(json)
                .ignore();
        }
        pipe.cmd("EXPIRE")
            .arg(&key)
            .arg(self.config.retention.as_secs().max(1))
            .ignore();
        let mut connection = self.publisher.clone();
        pipe.query_async::<()>(&mut connection).await?;
        Ok(())
    }

    /// Lines appended from now on. The cursor is the stream's last id at the time of the
    /// call, so a line published after this returns is never missed.
    pub(super) async fn subscribe(
        &self,
        run_id: Uuid,
    ) -> impl Stream<Item = LiveLine> + Send + use<> {
        let mut reader = Reader {
            client: self.client.clone(),
            key: self.key(run_id),
            connection: None,
            cursor: None,
        };
        if let Err(error) = reader.start().await {
            tracing::warn!(%run_id, %error, "live log subscription not started; retrying");
        }
        stream::unfold(reader, |mut reader| async move {
            loop {
                match reader.next_batch().await {
                    Ok(lines) if lines.is_empty() => continue,
                    Ok(lines) => return Some((stream::iter(lines), reader)),
                    Err(error) => {
                        tracing::warn!(key = %reader.key, %error, "reading live log lines; retrying");
                        reader.connection = None;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        })
        .flatten()
        .boxed()
    }
}

/// One subscriber's connection and position. Each has its own connection: a blocked
/// `XREAD` would hold up every other command multiplexed on a shared one.
struct Reader {
    client: Client,
    key: String,
    connection: Option<MultiplexedConnection>,
    /// Last id delivered; `None` until the stream's position at subscription is known.
    cursor: Option<String>,
}

impl Reader {
    async fn connection(&mut self) -> Result<&mut MultiplexedConnection> {
        if self.connection.is_none() {
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(1)))
                .set_response_timeout(Some(BLOCK + Duration::from_secs(2)));
            self.connection = Some(
                self.client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?,
            );
        }
        Ok(self.connection.as_mut().expect("just connected"))
    }

    /// Places the cursor at the stream's end (or its start, if it does not exist yet).
    async fn start(&mut self) -> Result<()> {
        let key = self.key.clone();
        let last: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(&key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(self.connection().await?)
            .await?;
        self.cursor = Some(
            last.ids
                .into_iter()
                .next()
                .map(|entry| entry.id)
                .unwrap_or_else(|| "0-0".into()),
        );
        Ok(())
    }

    async fn next_batch(&mut self) -> Result<Vec<LiveLine>> {
        if self.cursor.is_none() {
            self.start().await?;
        }
        let cursor = self.cursor.clone().expect("started");
        let key = self.key.clone();
        let reply: Option<StreamReadReply> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(512)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(&key)
            .arg(&cursor)
            .query_async(self.connection().await?)
            .await?;
        let mut lines = Vec::new();
        for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
            match entry
                .get::<String>(FIELD)
                .and_then(|json| serde_json::from_str::<LiveLine>(&json).ok())
            {
                Some(line) => lines.push(line),
                None => {
                    tracing::warn!(key = %self.key, id = %entry.id, "unreadable live log entry skipped")
                }
            }
            self.cursor = Some(entry.id);
        }
        Ok(lines)
    }
}
