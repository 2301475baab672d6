//! Placements: pools of workers an organisation runs itself (in its own network), polling
//! `windlass-<kind>@<name>`. An organisation registers its placement and only its clusters
//! may route work there. Registering returns the placement credential, shown once and
//! stored as a hash: placed workers present it to the API to reach the store-backed
//! services their activities need (they hold no database URL and no KEK).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;
use sqlx::Row;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::crypto::{DataKey, to_hex};
use crate::runs::{Run, WorkflowKind};
use crate::store::{is_unique_violation, parse_uuid};
use crate::{Error, Result, Store, clock};

/// Placement credentials start with this, so the API can tell them from API tokens.
pub const CREDENTIAL_PREFIX: &str = "wlp_";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Placement {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

fn hash(credential: &str) -> String {
    format!("{:x}", Sha256::digest(credential.as_bytes()))
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<Placement> {
    Ok(Placement {
        id: parse_uuid(&row.try_get::<String, _>("id")?, "placements.id")?,
        organization_id: parse_uuid(
            &row.try_get::<String, _>("organization_id")?,
            "placements.organization_id",
        )?,
        name: row.try_get("name")?,
        created_at: clock::from_db(&row.try_get::<String, _>("created_at")?),
    })
}

const COLUMNS: &str = "id, organization_id, name, created_at";

impl Store {
    /// Registers `name` for the organisation, on the connection of an audited change; the
    /// returned credential is the only copy.
    /// A name taken by anyone (this organisation or another) is a conflict that does not
    /// say by whom.
    pub async fn register_placement_on(
        conn: &mut AnyConnection,
        organization_id: Uuid,
        name: &str,
    ) -> Result<(Placement, Zeroizing<String>)> {
        crate::clusters::validate_placement(name)?;
        Self::organization_on(conn, organization_id).await?;
        let id = Uuid::new_v4();
        let random = DataKey::generate()?;
        let credential = Zeroizing::new(format!(
            "{CREDENTIAL_PREFIX}{}_{}",
            id.simple(),
            to_hex(random.expose_bytes())
        ));
        sqlx::query(
            "INSERT INTO placements (id, organization_id, name, credential_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id.to_string())
        .bind(organization_id.to_string())
        .bind(name)
        .bind(hash(&credential))
        .bind(clock::now_db())
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::Conflict(format!("placement name {name:?} is taken"))
            } else {
                e.into()
            }
        })?;
        Ok((
            Self::placement_on(conn, organization_id, name).await?,
            credential,
        ))
    }

    /// The organisation's placement of that name (404 for another organisation's).
    pub async fn placement(&self, organization_id: Uuid, name: &str) -> Result<Placement> {
        let mut conn = self.pool().acquire().await?;
        Self::placement_on(&mut conn, organization_id, name).await
    }

    /// [`Store::placement`] on a given connection (for [`Store::audited`]).
    pub async fn placement_on(
        conn: &mut AnyConnection,
        organization_id: Uuid,
        name: &str,
    ) -> Result<Placement> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM placements WHERE name = $1 AND organization_id = $2"
        ))
        .bind(name)
        .bind(organization_id.to_string())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found("placement", name))?;
        from_row(&row)
    }

    pub async fn placements(&self, organization_id: Uuid) -> Result<Vec<Placement>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM placements WHERE organization_id = $1 ORDER BY name"
        ))
        .bind(organization_id.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// How many of the organisation's clusters route to the placement `name`.
    pub async fn clusters_routed_to(&self, organization_id: Uuid, name: &str) -> Result<usize> {
        Ok(self
            .clusters(organization_id)
            .await?
            .into_iter()
            .filter(|c| c.placement.as_deref() == Some(name))
            .count())
    }

    /// Removes the placement (its credential stops working at once) on the connection of an
    /// audited change, refused when `routed` (from [`Store::clusters_routed_to`]) clusters
    /// still route there.
    pub async fn delete_placement_on(
        conn: &mut sqlx::AnyConnection,
        organization_id: Uuid,
        name: &str,
        routed: usize,
    ) -> Result<()> {
        let placement = Self::placement_on(conn, organization_id, name).await?;
        if routed > 0 {
            return Err(Error::Conflict(format!(
                "{routed} cluster(s) still route to placement {name:?}"
            )));
        }
        sqlx::query("DELETE FROM placements WHERE id = $1")
            .bind(placement.id.to_string())
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// The placement a credential belongs to. Every refusal is the same error.
    pub async fn authenticate_placement(&self, presented: &str) -> Result<Placement> {
        let refused = || Error::Forbidden("invalid placement credential".into());
        if !presented.starts_with(CREDENTIAL_PREFIX) || presented.len() > 200 {
            return Err(refused());
        }
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM placements WHERE credential_hash = $1"
        ))
        .bind(hash(presented))
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(refused)?;
        from_row(&row)
    }

    /// The run, if a placed worker of `placement` may act for it: a deployment run of the
    /// placement's organisation whose environment's cluster routes to this placement (and,
    /// with `unfinished`, that has not ended). Every refusal is the same Forbidden, so a
    /// placed worker learns nothing about runs that are not its own.
    pub async fn placed_run(
        &self,
        placement: &Placement,
        run_id: Uuid,
        unfinished: bool,
    ) -> Result<Run> {
        let refused = || Error::Forbidden(format!("run {run_id} is not this placement's"));
        let run = self.run_by_id(run_id).await?.ok_or_else(refused)?;
        if run.organization_id != placement.organization_id
            || run.kind != WorkflowKind::DeployEnvironment
            || (unfinished && run.status.is_finished())
        {
            return Err(refused());
        }
        let deployment = self.deployment(run_id).await.map_err(|_| refused())?;
        let environment = self
            .environment(run.organization_id, deployment.environment_id)
            .await
            .map_err(|_| refused())?;
        let cluster = self
            .cluster(run.organization_id, environment.cluster_id)
            .await
            .map_err(|_| refused())?;
        if cluster.placement.as_deref() != Some(placement.name.as_str()) {
            return Err(refused());
        }
        Ok(run)
    }
}
