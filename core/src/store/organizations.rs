use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use super::{Store, is_unique_violation, parse_uuid};
use crate::clock;
use crate::organizations::Organization;
use crate::{Error, Result};

impl Store {
    pub async fn create_organization(&self, name: &str) -> Result<Organization> {
        let mut conn = self.pool().acquire().await?;
        Self::create_organization_on(&mut conn, Uuid::new_v4(), name).await
    }

    /// [`Store::create_organization`] with its id chosen by the caller, on a given
    /// connection (for [`Store::audited`], whose entry goes in the new organisation's chain).
    pub async fn create_organization_on(
        conn: &mut AnyConnection,
        id: Uuid,
        name: &str,
    ) -> Result<Organization> {
        let name = name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(Error::InvalidInput(
                "organization name must be 1 to 100 characters".into(),
            ));
        }
        let now = clock::now_db();
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(id.to_string())
            .bind(name)
            .bind(&now)
            .execute(&mut *conn)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    Error::Conflict(format!("an organization named {name:?} already exists"))
                } else {
                    e.into()
                }
            })?;
        Self::organization_on(conn, id).await
    }

    pub async fn organization(&self, id: Uuid) -> Result<Organization> {
        let mut conn = self.pool().acquire().await?;
        Self::organization_on(&mut conn, id).await
    }

    pub(crate) async fn organization_on(
        conn: &mut AnyConnection,
        id: Uuid,
    ) -> Result<Organization> {
        let row = sqlx::query(
            "SELECT id, name, created_at, allow_plain_http_charts FROM organizations WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found("organization", id))?;
        organization_from_row(&row)
    }
}

fn organization_from_row(row: &AnyRow) -> Result<Organization> {
    Ok(Organization {
        id: parse_uuid(&row.try_get::<String, _>("id")?, "organizations.id")?,
        name: row.try_get("name")?,
        created_at: clock::from_db(&row.try_get::<String, _>("created_at")?),
        allow_plain_http_charts: row.try_get::<i64, _>("allow_plain_http_charts")? != 0,
    })
}

impl Store {
    /// Lets (or stops) the organisation's services name plain-HTTP chart repositories.
    pub async fn set_allow_plain_http_charts_on(
        conn: &mut AnyConnection,
        id: Uuid,
        allow: bool,
    ) -> Result<Organization> {
        let updated =
            sqlx::query("UPDATE organizations SET allow_plain_http_charts = $1 WHERE id = $2")
                .bind(i64::from(allow))
                .bind(id.to_string())
                .execute(&mut *conn)
                .await?;
        if updated.rows_affected() == 0 {
            return Err(Error::not_found("organization", id));
        }
        Self::organization_on(conn, id).await
    }
}

impl Store {
    pub async fn organization_by_name(&self, name: &str) -> Result<Option<Organization>> {
        let row = sqlx::query("SELECT id, name, created_at, allow_plain_http_charts FROM organizations WHERE name = $1")
            .bind(name.trim())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(organization_from_row).transpose()
    }
}
