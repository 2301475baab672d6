use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, is_unique_violation};
use crate::Result;
use crate::clock;

/// A wrapped data key as stored.
#[derive(Debug, Clone)]
pub struct WrappedKeyRow {
    pub purpose: String,
    pub organization_id: String,
    pub version: u32,
    pub kek_id: String,
    pub wrapped_key: String,
}

impl Store {
    pub async fn data_key(
        &self,
        purpose: &str,
        organization_id: &str,
        version: Option<u32>,
    ) -> Result<Option<WrappedKeyRow>> {
        let row = sqlx::query(
            "SELECT purpose, organization_id, version, kek_id, wrapped_key FROM data_keys \
             WHERE purpose = $1 AND organization_id = $2 AND ($3 < 0 OR version = $3) \
             ORDER BY version DESC LIMIT 1",
        )
        .bind(purpose)
        .bind(organization_id)
        .bind(version.map(i64::from).unwrap_or(-1))
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    /// The newest version of a key line and when it was made.
    pub async fn newest_data_key_age(
        &self,
        purpose: &str,
        organization_id: &str,
    ) -> Result<Option<(u32, chrono::DateTime<chrono::Utc>)>> {
        let row = sqlx::query(
            "SELECT version, created_at FROM data_keys WHERE purpose = $1 AND organization_id = $2 \
             ORDER BY version DESC LIMIT 1",
        )
        .bind(purpose)
        .bind(organization_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            use sqlx::Row;
            Ok((
                row.try_get::<i64, _>("version")? as u32,
                clock::from_db(&row.try_get::<String, _>("created_at")?),
            ))
        })
        .transpose()
    }

    /// Inserts a new key version; `false` if that version already exists (another process
    /// created it first, and that one is the key to use).
    pub async fn insert_data_key(&self, key: &WrappedKeyRow) -> Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO data_keys (purpose, organization_id, version, kek_id, wrapped_key, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.purpose)
        .bind(&key.organization_id)
        .bind(i64::from(key.version))
        .bind(&key.kek_id)
        .bind(&key.wrapped_key)
        .bind(clock::now_db())
        .execute(self.writer())
        .await;
        match inserted {
            Ok(_) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn all_data_keys(&self) -> Result<Vec<WrappedKeyRow>> {
        let rows = sqlx::query(
            "SELECT purpose, organization_id, version, kek_id, wrapped_key FROM data_keys \
             ORDER BY purpose, organization_id, version",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    /// Replaces a key's wrapping (KEK rotation). Only the wrapping changes: the data key,
    /// and so every value sealed with it, stays as it is.
    pub async fn rewrap_data_key(
        &self,
        key: &WrappedKeyRow,
        new_kek_id: &str,
        new_wrapped: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE data_keys SET kek_id = $4, wrapped_key = $5 \
             WHERE purpose = $1 AND organization_id = $2 AND version = $3",
        )
        .bind(&key.purpose)
        .bind(&key.organization_id)
        .bind(i64::from(key.version))
        .bind(new_kek_id)
        .bind(new_wrapped)
        .execute(self.writer())
        .await?;
        Ok(())
    }
}

fn key_from_row(row: &AnyRow) -> Result<WrappedKeyRow> {
    Ok(WrappedKeyRow {
        purpose: row.try_get("purpose")?,
        organization_id: row.try_get("organization_id")?,
        version: u32::try_from(row.try_get::<i64, _>("version")?).unwrap_or(0),
        kek_id: row.try_get("kek_id")?,
        wrapped_key: row.try_get("wrapped_key")?,
    })
}
