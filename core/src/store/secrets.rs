use sqlx::{AnyConnection, Connection as _, Row};
use uuid::Uuid;

use super::Store;
use crate::clock;
use crate::secrets::{SealedSecret, SecretListing, SecretScope};
use crate::{Error, Result};

impl Store {
    /// Writes a secret and where it may be used (a rewrite may change both).
    pub async fn upsert_sealed_secret(
        &self,
        secret: &SealedSecret,
        scope: &SecretScope,
    ) -> Result<()> {
        self.organization(secret.organization_id).await?;
        let mut conn = self.pool().acquire().await?;
        Self::upsert_sealed_secret_on(&mut conn, secret, scope).await
    }

    /// [`Store::upsert_sealed_secret`] on a given connection (for [`Store::audited`]); the
    /// organisation is the caller's, already checked.
    pub async fn upsert_sealed_secret_on(
        conn: &mut AnyConnection,
        secret: &SealedSecret,
        scope: &SecretScope,
    ) -> Result<()> {
        let now = clock::now_db();
        sqlx::query(
            "INSERT INTO secrets (organization_id, name, key_version, ciphertext, created_at, \
             updated_at, scope) VALUES ($1, $2, $3, $4, $5, $5, $6) \
             ON CONFLICT (organization_id, name) DO UPDATE SET key_version = excluded.key_version, \
             ciphertext = excluded.ciphertext, updated_at = excluded.updated_at, \
             scope = excluded.scope",
        )
        .bind(secret.organization_id.to_string())
        .bind(&secret.name)
        .bind(i64::from(secret.key_version))
        .bind(&secret.ciphertext)
        .bind(&now)
        .bind(scope.to_json())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    pub async fn sealed_secret(&self, organization_id: Uuid, name: &str) -> Result<SealedSecret> {
        let row = sqlx::query(
            "SELECT key_version, ciphertext FROM secrets WHERE organization_id = $1 AND name = $2",
        )
        .bind(organization_id.to_string())
        .bind(name)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| Error::not_found("secret", name))?;
        Ok(SealedSecret {
            organization_id,
            name: name.to_owned(),
            key_version: u32::try_from(row.try_get::<i64, _>("key_version")?).unwrap_or(0),
            ciphertext: row.try_get("ciphertext")?,
        })
    }

    /// One secret's name and scope, if the organisation has it.
    pub async fn secret_listing(
        &self,
        organization_id: Uuid,
        name: &str,
    ) -> Result<Option<SecretListing>> {
        let row = sqlx::query(
            "SELECT name, scope, updated_at FROM secrets WHERE organization_id = $1 AND name = $2",
        )
        .bind(organization_id.to_string())
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(listing_from_row).transpose()
    }

    /// Names and scopes, never values.
    pub async fn secret_listings(&self, organization_id: Uuid) -> Result<Vec<SecretListing>> {
        let rows = sqlx::query(
            "SELECT name, scope, updated_at FROM secrets WHERE organization_id = $1 ORDER BY name",
        )
        .bind(organization_id.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(listing_from_row).collect()
    }

    pub async fn grant_secrets(&self, run_id: Uuid, names: &[String]) -> Result<()> {
        let mut conn = self.pool().acquire().await?;
        Self::grant_secrets_on(&mut conn, run_id, names).await
    }

    /// [`Store::grant_secrets`] on a given connection (for [`Store::audited`]).
    pub async fn grant_secrets_on(
        conn: &mut AnyConnection,
        run_id: Uuid,
        names: &[String],
    ) -> Result<()> {
        let mut tx = conn.begin().await?;
        for name in names {
            sqlx::query(
                "INSERT INTO run_secret_grants (run_id, secret_name) VALUES ($1, $2) \
                 ON CONFLICT (run_id, secret_name) DO NOTHING",
            )
            .bind(run_id.to_string())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Whether `run_id` was granted `name` and belongs to `organization_id`.
    pub async fn run_may_read_secret(
        &self,
        run_id: Uuid,
        organization_id: Uuid,
        name: &str,
    ) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 AS granted FROM run_secret_grants g JOIN workflow_runs r ON r.id = g.run_id \
             WHERE g.run_id = $1 AND r.organization_id = $2 AND g.secret_name = $3",
        )
        .bind(run_id.to_string())
        .bind(organization_id.to_string())
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.is_some())
    }
}

fn listing_from_row(row: &sqlx::any::AnyRow) -> Result<SecretListing> {
    Ok(SecretListing {
        name: row.try_get("name")?,
        scope: SecretScope::from_json(&row.try_get::<String, _>("scope")?)?,
        updated_at: clock::from_db(&row.try_get::<String, _>("updated_at")?),
    })
}
