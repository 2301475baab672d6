//! One deployment request of an environment at a time, from reading its services to
//! numbering the deployment and queueing it.
//!
//! Without it two requests at once (two CI pipelines, each setting one service's image)
//! both read the environment, each writes it back with only its own image (the other's is
//! lost for later deployments), and the revision numbers need not follow the order the
//! environment was written in: revision N+1 could hold an image older than revision N's,
//! so a rollback from N+1 to N would change a service N+1 never meant to touch.
//!
//! PostgreSQL: a transaction-scoped advisory lock (released when the guard's transaction
//! ends, whatever happens to the process). SQLite, the single-node embedded default: a
//! lock inside the process, which is the only one that queues deployments there.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use uuid::Uuid;

use super::{Backend, Store};
use crate::Result;

type LocalLocks = Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>;

static LOCAL: LazyLock<LocalLocks> = LazyLock::new(Default::default);

/// Held while one deployment request of the environment is queued; dropping it lets the
/// next one in.
pub struct EnvironmentDeployLock {
    _held: Held,
}

enum Held {
    Postgres(#[allow(dead_code)] sqlx::Transaction<'static, sqlx::Any>),
    Local(#[allow(dead_code)] tokio::sync::OwnedMutexGuard<()>),
}

impl Store {
    /// Waits until no other deployment request of `environment_id` is being queued.
    pub async fn lock_environment_deploys(
        &self,
        environment_id: Uuid,
    ) -> Result<EnvironmentDeployLock> {
        let held = match self.backend {
            Backend::Postgres => {
                let mut tx = self.pool().begin().await?;
                // `pg_advisory_xact_lock` returns void, which the Any driver cannot read.
                sqlx::query(
                    "SELECT 1 FROM (SELECT pg_advisory_xact_lock(hashtextextended($1, 0))) AS locked",
                )
                .bind(format!("environment-deploys:{environment_id}"))
                .execute(&mut *tx)
                .await?;
                Held::Postgres(tx)
            }
            Backend::Sqlite => {
                let lock = {
                    let mut locks = LOCAL.lock().unwrap_or_else(|p| p.into_inner());
                    // Forget locks nobody holds or waits for.
                    locks.retain(|_, l| Arc::strong_count(l) > 1);
                    locks.entry(environment_id).or_default().clone()
                };
                Held::Local(lock.lock_owned().await)
            }
        };
        Ok(EnvironmentDeployLock { _held: held })
    }
}
