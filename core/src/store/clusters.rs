use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{Store, is_unique_violation};
use crate::clusters::ClusterSpec;
use crate::{Error, Result};

impl Store {
    /// Records a cluster's spec. Names are unique within an organisation.
    pub async fn create_cluster(&self, spec: &ClusterSpec) -> Result<ClusterSpec> {
        spec.validate()?;
        // Same organisation: another organisation's account reads as not found.
        self.cloud_account(spec.organization_id, spec.cloud_account_id)
            .await?;
        let json = serde_json::to_string(spec)
            .map_err(|e| Error::InvalidInput(format!("cluster spec: {e}")))?;
        sqlx::query(
            "INSERT INTO clusters (id, organization_id, cloud_account_id, name, spec, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(spec.id.to_string())
        .bind(spec.organization_id.to_string())
        .bind(spec.cloud_account_id.to_string())
        .bind(&spec.name)
        .bind(json)
        .bind(crate::clock::to_db(spec.created_at))
        .execute(self.pool())
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::Conflict(format!(
                    "a cluster named {} already exists in this organization",
                    spec.name
                ))
            } else {
                e.into()
            }
        })?;
        self.cluster(spec.organization_id, spec.id).await
    }

    /// Replaces a cluster's desired spec (its id, organisation, account and name stay).
    pub async fn update_cluster_spec(&self, spec: &ClusterSpec) -> Result<ClusterSpec> {
        spec.validate()?;
        let json = serde_json::to_string(spec)
            .map_err(|e| Error::InvalidInput(format!("cluster spec: {e}")))?;
        let updated = sqlx::query(
            "UPDATE clusters SET spec = $1 WHERE id = $2 AND organization_id = $3 AND name = $4",
        )
        .bind(json)
        .bind(spec.id.to_string())
        .bind(spec.organization_id.to_string())
        .bind(&spec.name)
        .execute(self.pool())
        .await?;
        if updated.rows_affected() == 0 {
            return Err(Error::not_found("cluster", spec.id));
        }
        self.cluster(spec.organization_id, spec.id).await
    }

    pub async fn cluster(&self, organization_id: Uuid, id: Uuid) -> Result<ClusterSpec> {
        let row = sqlx::query("SELECT spec FROM clusters WHERE id = $1 AND organization_id = $2")
            .bind(id.to_string())
            .bind(organization_id.to_string())
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| Error::not_found("cluster", id))?;
        spec_from_row(&row)
    }

    pub async fn clusters(&self, organization_id: Uuid) -> Result<Vec<ClusterSpec>> {
        let rows = sqlx::query(
            "SELECT spec FROM clusters WHERE organization_id = $1 ORDER BY created_at, id",
        )
        .bind(organization_id.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(spec_from_row).collect()
    }
}

fn spec_from_row(row: &AnyRow) -> Result<ClusterSpec> {
    let json: String = row.try_get("spec")?;
    serde_json::from_str(&json)
        .map_err(|e| Error::InvalidInput(format!("corrupt clusters.spec: {e}")))
}
