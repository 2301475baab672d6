use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use super::{Store, is_unique_violation, parse_uuid};
use crate::clock;
use crate::cloud_accounts::{CloudAccount, CloudProvider, NewCloudAccount, Verification};
use crate::{Error, Result};

const COLUMNS: &str = "id, organization_id, provider, tenant_id, external_id, display_name, \
     verification, verified_at, created_at";

impl Store {
    pub async fn create_cloud_account(&self, new: NewCloudAccount) -> Result<CloudAccount> {
        let mut conn = self.pool().acquire().await?;
        Self::create_cloud_account_on(&mut conn, new).await
    }

    /// [`Store::create_cloud_account`] on a given connection (for [`Store::audited`]).
    pub async fn create_cloud_account_on(
        conn: &mut AnyConnection,
        new: NewCloudAccount,
    ) -> Result<CloudAccount> {
        Self::organization_on(conn, new.organization_id).await?;
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO cloud_accounts (id, organization_id, provider, tenant_id, external_id, \
             display_name, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id.to_string())
        .bind(new.organization_id.to_string())
        .bind(new.provider.as_str())
        .bind(&new.tenant_id)
        .bind(&new.external_id)
        .bind(&new.display_name)
        .bind(clock::now_db())
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::Conflict(format!(
                    "{} account {} is already registered in this organization",
                    new.provider.as_str(),
                    new.external_id
                ))
            } else {
                e.into()
            }
        })?;
        Self::cloud_account_on(conn, new.organization_id, id).await
    }

    /// A cloud account of one organisation: another organisation's id reads as not found.
    pub async fn cloud_account(&self, organization_id: Uuid, id: Uuid) -> Result<CloudAccount> {
        let mut conn = self.pool().acquire().await?;
        Self::cloud_account_on(&mut conn, organization_id, id).await
    }

    /// [`Store::cloud_account`] on a given connection (for [`Store::audited`]).
    pub async fn cloud_account_on(
        conn: &mut AnyConnection,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<CloudAccount> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM cloud_accounts WHERE id = $1 AND organization_id = $2"
        ))
        .bind(id.to_string())
        .bind(organization_id.to_string())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found("cloud account", id))?;
        cloud_account_from_row(&row)
    }

    pub async fn cloud_accounts(&self, organization_id: Uuid) -> Result<Vec<CloudAccount>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM cloud_accounts WHERE organization_id = $1 ORDER BY created_at, id"
        ))
        .bind(organization_id.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(cloud_account_from_row).collect()
    }

    /// Whether an organisation other than `organization_id` holds a verified claim on the
    /// account. Says nothing about which one.
    pub async fn cloud_account_claimed_elsewhere(
        &self,
        organization_id: Uuid,
        provider: CloudProvider,
        tenant_id: &str,
        external_id: &str,
    ) -> Result<bool> {
        let row = sqlx::query(
            "SELECT id FROM cloud_accounts WHERE provider = $1 AND tenant_id = $2 \
             AND external_id = $3 AND verification = 'verified' AND organization_id <> $4",
        )
        .bind(provider.as_str())
        .bind(tenant_id)
        .bind(external_id)
        .bind(organization_id.to_string())
        .fetch_optional(self.pool())
        .await?;
        Ok(row.is_some())
    }

    /// Marks the account verified (idempotent). Fails with [`Error::Conflict`] when another
    /// organisation verified the same account first: the store's unique index on verified
    /// claims decides, so two verifications racing cannot both win.
    pub async fn mark_cloud_account_verified(
        &self,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<CloudAccount> {
        let account = self.cloud_account(organization_id, id).await?;
        if account.is_verified() {
            return Ok(account);
        }
        sqlx::query(
            "UPDATE cloud_accounts SET verification = 'verified', verified_at = $1 \
             WHERE id = $2 AND organization_id = $3 AND verification = 'unverified'",
        )
        .bind(clock::now_db())
        .bind(id.to_string())
        .bind(organization_id.to_string())
        .execute(self.writer())
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::Conflict(format!(
                    "{} account {} is verified by another organization",
                    account.provider.as_str(),
                    account.external_id
                ))
            } else {
                e.into()
            }
        })?;
        self.cloud_account(organization_id, id).await
    }
}

fn cloud_account_from_row(row: &AnyRow) -> Result<CloudAccount> {
    let provider: String = row.try_get("provider")?;
    Ok(CloudAccount {
        id: parse_uuid(&row.try_get::<String, _>("id")?, "cloud_accounts.id")?,
        organization_id: parse_uuid(
            &row.try_get::<String, _>("organization_id")?,
            "cloud_accounts.organization_id",
        )?,
        provider: CloudProvider::parse(&provider).ok_or_else(|| {
            Error::InvalidInput(format!("corrupt cloud_accounts.provider {provider:?}"))
        })?,
        tenant_id: row.try_get("tenant_id")?,
        external_id: row.try_get("external_id")?,
        display_name: row.try_get("display_name")?,
        verification: {
            let text: String = row.try_get("verification")?;
            Verification::parse(&text).ok_or_else(|| {
                Error::InvalidInput(format!("corrupt cloud_accounts.verification {text:?}"))
            })?
        },
        verified_at: row
            .try_get::<Option<String>, _>("verified_at")?
            .map(|t| clock::from_db(&t)),
        created_at: clock::from_db(&row.try_get::<String, _>("created_at")?),
    })
}
