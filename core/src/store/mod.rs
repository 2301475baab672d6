//! The store: one code path over SQLite (embedded default) and PostgreSQL (production).
//!
//! Queries go through sqlx's `Any` driver with `$n` placeholders, which both databases
//! accept, so the same SQL runs on both; the two migration folders keep the schemas in step.

mod audit;
mod audit_digests;
mod audited;
mod cloud_accounts;
mod clusters;
mod environment_lock;
mod environments;
mod keys;
mod maintenance_holds;
mod organizations;
mod role_bindings;
mod runs;
mod secrets;
mod step_log_pages;
mod step_logs;
mod steps;
mod wal_checkpoints;
mod webhook_signatures;

use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, Executor, Transaction};

pub use audited::AuditedError;
pub use environment_lock::EnvironmentDeployLock;
/// A store connection, for changes made inside [`Store::audited`].
pub type Connection = sqlx::AnyConnection;
pub use keys::WrappedKeyRow;
pub use maintenance_holds::{MaintenanceHold, cluster_target};
pub use step_log_pages::RunLogCursor;

use crate::{Error, Result};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// Where writes go. SQLite has one writer at a time: its writes queue here, on one
    /// connection, instead of colliding on the database lock, where SQLite's busy handler
    /// sleeps 1, 2, 5, 10... ms between tries (what made concurrent starts wait). Writers
    /// in other processes (a `windlass worker` on the same file) still meet on the lock,
    /// through `busy_timeout`. PostgreSQL: the same pool as reads.
    writer: AnyPool,
    backend: Backend,
    /// SQLite: checkpoints beside the writer, for as long as a clone of the store lives.
    _checkpoints: Option<std::sync::Arc<wal_checkpoints::WalCheckpoints>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Store {
    /// Connects to `sqlite://path` (created if missing) or `postgres://...`.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(Error::InvalidInput(format!(
                "database url must start with sqlite: or postgres:, got {:?}",
                url.split(':').next().unwrap_or_default()
            )));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let pool_of = |connections: u32| {
            AnyPoolOptions::new()
                .max_connections(connections)
                .after_connect(move |conn, _meta| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            // WAL lets readers read while the writer writes; busy_timeout
                            // turns lock contention with other processes into a short wait;
                            // checkpoints run beside the writer (see `wal_checkpoints`).
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
                                 PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; \
                                 PRAGMA wal_autocheckpoint = 0;",
                            )
                            .await?;
                        }
                        Ok(())
                    })
                })
        };
        let (pool, writer) = match backend {
            Backend::Sqlite => {
                // The writer first: it creates the file and switches it to WAL.
                let writer = pool_of(1).connect_with(options.clone()).await?;
                (pool_of(4).connect_with(options).await?, writer)
            }
            Backend::Postgres => {
                let pool = pool_of(16).connect_with(options).await?;
                (pool.clone(), pool)
            }
        };
        let checkpoints = (backend == Backend::Sqlite)
            .then(|| std::sync::Arc::new(wal_checkpoints::WalCheckpoints::start(pool.clone())));
        Ok(Self {
            pool,
            writer,
            backend,
            _checkpoints: checkpoints,
        })
    }

    pub async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool for writes (see [`Store::writer`]'s field).
    pub(crate) fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// A write transaction. On SQLite it holds the database's write lock from its first
    /// statement (`BEGIN IMMEDIATE`): a deferred one that read first could not upgrade
    /// when another process had written meanwhile.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    #[doc(hidden)]
    pub fn pool_for_tests(&self) -> &AnyPool {
        &self.pool
    }

    /// Cheap liveness probe for health endpoints.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

pub(crate) fn parse_uuid(text: &str, column: &str) -> Result<uuid::Uuid> {
    text.parse()
        .map_err(|_| Error::InvalidInput(format!("corrupt {column}: {text:?} is not a uuid")))
}
