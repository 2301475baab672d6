//! Shared by the store suites: a fresh database per test, on SQLite and on PostgreSQL.

use sqlx::Connection;
use windlass_core::Store;

/// What an attacker with owner rights on the database does first: remove the triggers that
/// keep `audit_log` append-only. (Only the audit suites call it.)
#[allow(dead_code)]
pub async fn disable_audit_protection(store: &Store) {
    let statements: &[&str] = match store.backend() {
        windlass_core::store::Backend::Sqlite => &[
            "DROP TRIGGER audit_log_no_update",
            "DROP TRIGGER audit_log_no_delete",
        ],
        windlass_core::store::Backend::Postgres => &["ALTER TABLE audit_log DISABLE TRIGGER USER"],
    };
    for statement in statements {
        sqlx::query(statement)
            .execute(store.pool_for_tests())
            .await
            .unwrap();
    }
}

pub struct TestStore {
    pub store: Store,
    _dir: Option<tempfile::TempDir>,
    drop_database: Option<(String, String)>,
}

impl TestStore {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("windlass.db").display());
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        Self {
            store,
            _dir: Some(dir),
            drop_database: None,
        }
    }

    pub async fn postgres() -> Self {
        let server = std::env::var("WINDLASS_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let name = format!("windlass_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
            .await
            .expect("PostgreSQL must be reachable for the store suite");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let store = Store::connect(&format!("{server}/{name}")).await.unwrap();
        store.migrate().await.unwrap();
        Self {
            store,
            _dir: None,
            drop_database: Some((server, name)),
        }
    }

    pub async fn close(self) {
        if let Some((server, name)) = &self.drop_database {
            drop(self.store);
            let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
                .await
                .unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin)
                .await
                .unwrap();
        }
    }
}

/// Runs each named `async fn(&Store)` once on SQLite and once on a fresh PostgreSQL database.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = $crate::support::TestStore::sqlite().await;
                    super::$name(&db.store).await;
                    db.close().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = $crate::support::TestStore::postgres().await;
                    super::$name(&db.store).await;
                    db.close().await;
                }
            )*
        }
    };
}
