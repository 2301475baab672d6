use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Connection as _, Row};
use uuid::Uuid;

use super::{Store, is_unique_violation};
use crate::clusters::ClusterSpec;
use crate::{Error, Result};

impl Store {
    /// Records a cluster's spec. Names are unique within an organisation.
    pub async fn create_cluster(&self, spec: &ClusterSpec) -> Result<ClusterSpec> {
        let mut conn = self.pool().acquire().await?;
        Self::create_cluster_on(&mut conn, spec).await
    }

    /// [`Store::create_cluster`] on a given connection (for [`Store::audited`]).
    pub async fn create_cluster_on(
        conn: &mut AnyConnection,
        spec: &ClusterSpec,
    ) -> Result<ClusterSpec> {
        spec.validate()?;
        // Same organisation: another organisation's account reads as not found.
        Self::cloud_account_on(conn, spec.organization_id, spec.cloud_account_id).await?;
        let json = serde_json::to_string(spec)
            .map_err(|e| Error::InvalidInput(format!("cluster spec: {e}")))?;
        // In a savepoint: a taken name must not abort the transaction around it.
        let mut savepoint = conn.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO clusters (id, organization_id, cloud_account_id, name, spec, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(spec.id.to_string())
        .bind(spec.organization_id.to_string())
        .bind(spec.cloud_account_id.to_string())
        .bind(&spec.name)
        .bind(json)
        .bind(crate::clock::to_db(spec.created_at))
        .execute(&mut *savepoint)
        .await
        .map(|_| ())
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::Conflict(format!(
                    "a cluster named {} already exists in this organization",
                    spec.name
                ))
            } else {
                e.into()
            }
        });
        match &inserted {
            Ok(()) => savepoint.commit().await?,
            Err(_) => savepoint.rollback().await?,
        }
        if let Err(conflict) = inserted {
            if Self::cluster_was_deleted_on(conn, spec.organization_id, spec.id).await? {
                return Err(Error::Conflict(format!(
                    "cluster {} (the one this Idempotency-Key made) was deleted; \
                     use a new key to make a new cluster",
                    spec.id
                )));
            }
            return Err(conflict);
        }
        Self::cluster_on(conn, spec.organization_id, spec.id).await
    }

    /// [`Store::cluster_was_deleted`] on a given connection (for [`Store::audited`]).
    async fn cluster_was_deleted_on(
        conn: &mut AnyConnection,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<bool> {
        let row = sqlx::query(
            "SELECT id FROM clusters WHERE id = $1 AND organization_id = $2 \
             AND deleted_at IS NOT NULL",
        )
        .bind(id.to_string())
        .bind(organization_id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
        Ok(row.is_some())
    }

    /// A delete run succeeded: the cluster is gone for reads, upgrades, deploys and
    /// maintenance, and its name is free again. Repeating it changes nothing.
    pub async fn mark_cluster_deleted(&self, organization_id: Uuid, id: Uuid) -> Result<()> {
        sqlx::query(
            "UPDATE clusters SET deleted_at = $3, name = name || '#deleted-' || id \
             WHERE id = $1 AND organization_id = $2 AND deleted_at IS NULL",
        )
        .bind(id.to_string())
        .bind(organization_id.to_string())
        .bind(crate::clock::now_db())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// An upgrade run brought the cluster to `version` (control plane and node pools).
    /// Repeating it changes nothing; a deleted cluster is left as it is.
    pub async fn record_cluster_version(
        &self,
        organization_id: Uuid,
        id: Uuid,
        version: &str,
    ) -> Result<()> {
        let mut spec = match self.cluster(organization_id, id).await {
            Ok(spec) => spec,
            Err(Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        version.clone_into(&mut spec.kubernetes_version);
        spec.node_pool_version = None;
        self.update_cluster_spec(&spec).await?;
        Ok(())
    }

    /// Replaces a cluster's desired spec (its id, organisation, account and name stay).
    pub async fn update_cluster_spec(&self, spec: &ClusterSpec) -> Result<ClusterSpec> {
        spec.validate()?;
        let json = serde_json::to_string(spec)
            .map_err(|e| Error::InvalidInput(format!("cluster spec: {e}")))?;
        let updated = sqlx::query(
            "UPDATE clusters SET spec = $1 \
             WHERE id = $2 AND organization_id = $3 AND name = $4 AND deleted_at IS NULL",
        )
        .bind(json)
        .bind(spec.id.to_string())
        .bind(spec.organization_id.to_string())
        .bind(&spec.name)
        .execute(self.writer())
        .await?;
        if updated.rows_affected() == 0 {
            return Err(Error::not_found("cluster", spec.id));
        }
        self.cluster(spec.organization_id, spec.id).await
    }

    pub async fn cluster(&self, organization_id: Uuid, id: Uuid) -> Result<ClusterSpec> {
        let mut conn = self.pool().acquire().await?;
        Self::cluster_on(&mut conn, organization_id, id).await
    }

    /// [`Store::cluster`] on a given connection (for [`Store::audited`]).
    pub async fn cluster_on(
        conn: &mut AnyConnection,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<ClusterSpec> {
        let row = sqlx::query("SELECT spec FROM clusters WHERE id = $1 AND organization_id = $2 AND deleted_at IS NULL")
            .bind(id.to_string())
            .bind(organization_id.to_string())
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| Error::not_found("cluster", id))?;
        spec_from_row(&row)
    }

    pub async fn clusters(&self, organization_id: Uuid) -> Result<Vec<ClusterSpec>> {
        let rows = sqlx::query(
            "SELECT spec FROM clusters WHERE organization_id = $1 AND deleted_at IS NULL \
             ORDER BY created_at, id",
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
