//! Who may do what: role bindings of people, an organisation's identity connections and
//! the group mappings of each connection.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Connection as _, Row};
use uuid::Uuid;

use super::{Store, is_unique_violation, parse_uuid};
use crate::identity_connections::{
    GroupMapping, IdentityConnection, NewIdentityConnection, RoleBinding,
};
use crate::rbac::{BuiltInRole, Role};
use crate::{Error, Result, clock};

fn encode(role: &Role) -> Result<String> {
    serde_json::to_string(role).map_err(|e| Error::InvalidInput(e.to_string()))
}

fn decode(text: &str) -> Result<Role> {
    serde_json::from_str::<Role>(text)
        .map_err(|e| Error::InvalidInput(format!("corrupt role binding: {e}")))
}

const CONNECTION_COLUMNS: &str =
    "id, organization_id, name, issuer, audience, jwks_uri, created_at";

impl Store {
    /// Binds `role` to `subject`; binding the same role again returns the existing binding.
    pub async fn bind_role(
        &self,
        organization_id: Uuid,
        subject: &str,
        role: &Role,
    ) -> Result<RoleBinding> {
        let mut conn = self.pool().acquire().await?;
        Self::bind_role_on(&mut conn, organization_id, subject, role).await
    }

    /// [`Store::bind_role`] on a given connection (for [`Store::audited`]).
    pub async fn bind_role_on(
        conn: &mut AnyConnection,
        organization_id: Uuid,
        subject: &str,
        role: &Role,
    ) -> Result<RoleBinding> {
        let role_text = encode(role)?;
        sqlx::query(
            "INSERT INTO role_bindings (id, organization_id, subject, role, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (organization_id, subject, role) DO NOTHING",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(organization_id.to_string())
        .bind(subject)
        .bind(&role_text)
        .bind(clock::now_db())
        .execute(&mut *conn)
        .await?;
        let row = sqlx::query(
            "SELECT id, organization_id, subject, role, created_at FROM role_bindings \
             WHERE organization_id = $1 AND subject = $2 AND role = $3",
        )
        .bind(organization_id.to_string())
        .bind(subject)
        .bind(&role_text)
        .fetch_one(&mut *conn)
        .await?;
        binding_from_row(&row)
    }

    pub async fn role_bindings(&self, organization_id: Uuid) -> Result<Vec<RoleBinding>> {
        let rows = sqlx::query(
            "SELECT id, organization_id, subject, role, created_at FROM role_bindings \
             WHERE organization_id = $1 ORDER BY created_at, id",
        )
        .bind(organization_id.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(binding_from_row).collect()
    }

    pub async fn role_binding(&self, organization_id: Uuid, id: Uuid) -> Result<RoleBinding> {
        let row = sqlx::query(
            "SELECT id, organization_id, subject, role, created_at FROM role_bindings \
             WHERE organization_id = $1 AND id = $2",
        )
        .bind(organization_id.to_string())
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| Error::not_found("role binding", id))?;
        binding_from_row(&row)
    }

    /// Removes bindings; refused if it would leave the organisation without an admin, so
    /// nobody locks everyone out (the check and the delete are one transaction).
    pub async fn delete_role_bindings_on(
        conn: &mut AnyConnection,
        organization_id: Uuid,
        ids: &[Uuid],
    ) -> Result<()> {
        let admin = encode(&Role::BuiltIn {
            role: BuiltInRole::Admin,
        })?;
        let mut tx = conn.begin().await?;
        for id in ids {
            sqlx::query("DELETE FROM role_bindings WHERE organization_id = $1 AND id = $2")
                .bind(organization_id.to_string())
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        let admins: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM role_bindings WHERE organization_id = $1 AND role = $2",
        )
        .bind(organization_id.to_string())
        .bind(&admin)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if admins == 0 {
            tx.rollback().await?;
            return Err(Error::Conflict(
                "this would leave the organization without an admin; bind another admin first"
                    .into(),
            ));
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn create_identity_connection(
        &self,
        new: &NewIdentityConnection,
    ) -> Result<IdentityConnection> {
        let mut conn = self.pool().acquire().await?;
        Self::create_identity_connection_on(&mut conn, new).await
    }

    /// [`Store::create_identity_connection`] on a given connection (for [`Store::audited`]).
    pub async fn create_identity_connection_on(
        conn: &mut AnyConnection,
        new: &NewIdentityConnection,
    ) -> Result<IdentityConnection> {
        new.validate()?;
        Self::organization_on(conn, new.organization_id).await?;
        let id = Uuid::new_v4();
        sqlx::query(&format!(
            "INSERT INTO identity_connections ({CONNECTION_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(id.to_string())
        .bind(new.organization_id.to_string())
        .bind(new.name.trim())
        .bind(&new.issuer)
        .bind(&new.audience)
        .bind(&new.jwks_uri)
        .bind(clock::now_db())
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::Conflict(
                    "this organization already has a connection with this name, or with this \
                     issuer and audience"
                        .into(),
                )
            } else {
                e.into()
            }
        })?;
        Self::identity_connection_on(conn, new.organization_id, id).await
    }

    pub async fn identity_connection(
        &self,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<IdentityConnection> {
        let mut conn = self.pool().acquire().await?;
        Self::identity_connection_on(&mut conn, organization_id, id).await
    }

    /// [`Store::identity_connection`] on a given connection (for [`Store::audited`]).
    pub async fn identity_connection_on(
        conn: &mut AnyConnection,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<IdentityConnection> {
        let row = sqlx::query(&format!(
            "SELECT {CONNECTION_COLUMNS} FROM identity_connections \
             WHERE organization_id = $1 AND id = $2"
        ))
        .bind(organization_id.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found("identity connection", id))?;
        connection_from_row(&row)
    }

    pub async fn identity_connections(
        &self,
        organization_id: Uuid,
    ) -> Result<Vec<IdentityConnection>> {
        let rows = sqlx::query(&format!(
            "SELECT {CONNECTION_COLUMNS} FROM identity_connections \
             WHERE organization_id = $1 ORDER BY name"
        ))
        .bind(organization_id.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(connection_from_row).collect()
    }

    /// The organisation's connections for tokens of `issuer`.
    pub async fn identity_connections_for_issuer(
        &self,
        organization_id: Uuid,
        issuer: &str,
    ) -> Result<Vec<IdentityConnection>> {
        let rows = sqlx::query(&format!(
            "SELECT {CONNECTION_COLUMNS} FROM identity_connections \
             WHERE organization_id = $1 AND issuer = $2 ORDER BY id"
        ))
        .bind(organization_id.to_string())
        .bind(issuer)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(connection_from_row).collect()
    }

    /// Deletes a connection and its group mappings: its tokens stop authenticating at once.
    pub async fn delete_identity_connection_on(
        conn: &mut AnyConnection,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<()> {
        Self::identity_connection_on(conn, organization_id, id).await?;
        let mut tx = conn.begin().await?;
        sqlx::query("DELETE FROM group_mappings WHERE organization_id = $1 AND connection_id = $2")
            .bind(organization_id.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM identity_connections WHERE organization_id = $1 AND id = $2")
            .bind(organization_id.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Maps `idp_group` of one of the organisation's connections to `role`.
    pub async fn map_group_to_role(
        &self,
        organization_id: Uuid,
        connection_id: Uuid,
        idp_group: &str,
        role: &Role,
    ) -> Result<GroupMapping> {
        let mut conn = self.pool().acquire().await?;
        Self::map_group_to_role_on(&mut conn, organization_id, connection_id, idp_group, role).await
    }

    /// [`Store::map_group_to_role`] on a given connection (for [`Store::audited`]).
    pub async fn map_group_to_role_on(
        conn: &mut AnyConnection,
        organization_id: Uuid,
        connection_id: Uuid,
        idp_group: &str,
        role: &Role,
    ) -> Result<GroupMapping> {
        Self::identity_connection_on(conn, organization_id, connection_id).await?;
        let role_text = encode(role)?;
        sqlx::query(
            "INSERT INTO group_mappings (id, organization_id, connection_id, idp_group, role, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (connection_id, idp_group, role) DO NOTHING",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(organization_id.to_string())
        .bind(connection_id.to_string())
        .bind(idp_group)
        .bind(&role_text)
        .bind(clock::now_db())
        .execute(&mut *conn)
        .await?;
        let row = sqlx::query(
            "SELECT id, organization_id, connection_id, idp_group, role, created_at \
             FROM group_mappings WHERE connection_id = $1 AND idp_group = $2 AND role = $3",
        )
        .bind(connection_id.to_string())
        .bind(idp_group)
        .bind(&role_text)
        .fetch_one(&mut *conn)
        .await?;
        mapping_from_row(&row)
    }

    pub async fn group_mappings(&self, organization_id: Uuid) -> Result<Vec<GroupMapping>> {
        let rows = sqlx::query(
            "SELECT id, organization_id, connection_id, idp_group, role, created_at \
             FROM group_mappings WHERE organization_id = $1 ORDER BY created_at, id",
        )
        .bind(organization_id.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(mapping_from_row).collect()
    }

    pub async fn group_mapping(&self, organization_id: Uuid, id: Uuid) -> Result<GroupMapping> {
        let mut conn = self.pool().acquire().await?;
        Self::group_mapping_on(&mut conn, organization_id, id).await
    }

    /// [`Store::group_mapping`] on a given connection (for [`Store::audited`]).
    pub async fn group_mapping_on(
        conn: &mut AnyConnection,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<GroupMapping> {
        let row = sqlx::query(
            "SELECT id, organization_id, connection_id, idp_group, role, created_at \
             FROM group_mappings WHERE organization_id = $1 AND id = $2",
        )
        .bind(organization_id.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found("group mapping", id))?;
        mapping_from_row(&row)
    }

    /// Removes a group mapping, on the connection of an audited change ([`Store::audited`]).
    pub async fn delete_group_mapping_on(
        conn: &mut AnyConnection,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<()> {
        Self::group_mapping_on(conn, organization_id, id).await?;
        sqlx::query("DELETE FROM group_mappings WHERE organization_id = $1 AND id = $2")
            .bind(organization_id.to_string())
            .bind(id.to_string())
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// A person's roles in an organisation: their direct bindings, plus the mappings of
    /// the groups their token carries, for the connection that token came through only.
    pub async fn roles_of(
        &self,
        organization_id: Uuid,
        subject: &str,
        connection_id: Option<Uuid>,
        groups: &[String],
    ) -> Result<Vec<Role>> {
        let mut roles = Vec::new();
        let direct = sqlx::query(
            "SELECT role FROM role_bindings WHERE organization_id = $1 AND subject = $2",
        )
        .bind(organization_id.to_string())
        .bind(subject)
        .fetch_all(self.pool())
        .await?;
        for row in direct {
            roles.push(decode(&row.try_get::<String, _>("role")?)?);
        }
        if let Some(connection_id) = connection_id
            && !groups.is_empty()
        {
            let mapped = sqlx::query(
                "SELECT idp_group, role FROM group_mappings \
                 WHERE organization_id = $1 AND connection_id = $2",
            )
            .bind(organization_id.to_string())
            .bind(connection_id.to_string())
            .fetch_all(self.pool())
            .await?;
            for row in mapped {
                let group: String = row.try_get("idp_group")?;
                if groups.contains(&group) {
                    roles.push(decode(&row.try_get::<String, _>("role")?)?);
                }
            }
        }
        Ok(roles)
    }
}

fn binding_from_row(row: &AnyRow) -> Result<RoleBinding> {
    Ok(RoleBinding {
        id: parse_uuid(&row.try_get::<String, _>("id")?, "role_bindings.id")?,
        organization_id: parse_uuid(
            &row.try_get::<String, _>("organization_id")?,
            "role_bindings.organization_id",
        )?,
        subject: row.try_get("subject")?,
        role: decode(&row.try_get::<String, _>("role")?)?,
        created_at: clock::from_db(&row.try_get::<String, _>("created_at")?),
    })
}

fn connection_from_row(row: &AnyRow) -> Result<IdentityConnection> {
    Ok(IdentityConnection {
        id: parse_uuid(&row.try_get::<String, _>("id")?, "identity_connections.id")?,
        organization_id: parse_uuid(
            &row.try_get::<String, _>("organization_id")?,
            "identity_connections.organization_id",
        )?,
        name: row.try_get("name")?,
        issuer: row.try_get("issuer")?,
        audience: row.try_get("audience")?,
        jwks_uri: row.try_get("jwks_uri")?,
        created_at: clock::from_db(&row.try_get::<String, _>("created_at")?),
    })
}

fn mapping_from_row(row: &AnyRow) -> Result<GroupMapping> {
    Ok(GroupMapping {
        id: parse_uuid(&row.try_get::<String, _>("id")?, "group_mappings.id")?,
        organization_id: parse_uuid(
            &row.try_get::<String, _>("organization_id")?,
            "group_mappings.organization_id",
        )?,
        connection_id: parse_uuid(
            &row.try_get::<String, _>("connection_id")?,
            "group_mappings.connection_id",
        )?,
        idp_group: row.try_get("idp_group")?,
        role: decode(&row.try_get::<String, _>("role")?)?,
        created_at: clock::from_db(&row.try_get::<String, _>("created_at")?),
    })
}
