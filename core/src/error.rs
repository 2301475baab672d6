use std::fmt;

/// The one error type of `windlass-core`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{entity} {id} not found")]
    NotFound { entity: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The caller is known but not allowed this: a run reading a secret it was not granted.
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("{0}")]
    Crypto(#[from] crate::crypto::CryptoError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The live log fan-out (Redis); never fatal to a run.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("live logs: {0}")]
    LiveLogs(String),
    /// A placed worker could not reach the API's placement routes (or got a 5xx): try again.
    #[error("placement backplane unavailable: {0}")]
    BackplaneUnavailable(String),
    /// A service a change needs besides the store (the workflow engine) did not answer;
    /// the change was rolled back: try again.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The organisation already has as many unfinished runs as it may: try again once
    /// some have ended.
    #[error("{0}")]
    InFlightLimit(String),
}

impl Error {
    pub fn not_found(entity: &'static str, id: impl fmt::Display) -> Self {
        Self::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    /// Whether trying the same call again later can succeed (a dropped connection, a busy
    /// database), as opposed to a request that is wrong and will stay wrong.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Database(e) => {
                matches!(
                    e,
                    sqlx::Error::Io(_)
                        | sqlx::Error::PoolTimedOut
                        | sqlx::Error::PoolClosed
                        | sqlx::Error::WorkerCrashed
                ) || e.as_database_error().is_some_and(|d| {
                    d.message().contains("database is locked")
                        || d.code()
                            .is_some_and(|c| TRANSIENT_SQLSTATES.contains(&c.as_ref()))
                })
            }
            Self::BackplaneUnavailable(_) | Self::Unavailable(_) => true,
            _ => false,
        }
    }
}

/// PostgreSQL errors that a retry can get past: serialization failure and deadlock (the
/// transaction lost a race), admin or crash shutdown and "cannot connect now" (a restart
/// or failover), a read-only transaction (writing to a standby just demoted), and
/// connection failures reported by the server.
pub const TRANSIENT_SQLSTATES: [&str; 9] = [
    "40001", "40P01", "57P01", "57P02", "57P03", "25006", "08000", "08003", "08006",
];

pub type Result<T, E = Error> = std::result::Result<T, E>;
