//! SQLite's WAL checkpoints, run beside the writer instead of inside its commits.
//!
//! By default the connection whose commit takes the WAL past 1,000 pages copies them back
//! into the database file and syncs it, inside that commit: every few hundred writes one
//! request (an audit append, a run's start) paid milliseconds for everyone's pages. Here no
//! connection checkpoints on commit (`wal_autocheckpoint = 0`, set with the other pragmas)
//! and a task checkpoints every [`EVERY`] on a reader connection, `PASSIVE`: it copies what
//! no reader still needs and never waits for, or blocks, the writer.

use std::time::Duration;

use sqlx::AnyPool;

/// How often the WAL is copied back. A second of writes is a few hundred pages at most.
const EVERY: Duration = Duration::from_secs(1);

/// Runs checkpoints until dropped (with the last clone of the store holding it).
pub(super) struct WalCheckpoints(tokio::task::JoinHandle<()>);

impl WalCheckpoints {
    pub(super) fn start(pool: AnyPool) -> Self {
        Self(tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // Busy (another process checkpointing): the next tick tries again.
                if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&pool)
                    .await
                {
                    if pool.is_closed() {
                        break;
                    }
                    tracing::debug!(%error, "WAL checkpoint");
                }
            }
        }))
    }
}

impl Drop for WalCheckpoints {
    fn drop(&mut self) {
        self.0.abort();
    }
}
