use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{Store, is_unique_violation, parse_uuid};
use crate::clock;
use crate::cloud_accounts::{CloudAccount, CloudProvider, NewCloudAccount};
use crate::{Error, Result};

const COLUMNS: &str =
    "id, organization_id, provider, tenant_id, external_id, display_name, created_at";

impl Store {
    pub async fn create_cloud_account(&self, new: NewCloudAccount) -> Result<CloudAccount> {
        self.organization(new.organization_id).await?;
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
        .execute(self.pool())
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
        self.cloud_account(new.organization_id, id).await
    }

    /// A cloud account of one organisation: another organisation's id reads as not found.
    pub async fn cloud_account(&self, organization_id: Uuid, id: Uuid) -> Result<CloudAccount> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM cloud_accounts WHERE id = $1 AND organization_id = $2"
        ))
        .bind(id.to_string())
        .bind(organization_id.to_string())
        .fetch_optional(self.pool())
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
        created_at: clock::from_db(&row.try_get::<String, _>("created_at")?),
    })
}
