use sqlx::Row;
use uuid::Uuid;

use super::Store;
use crate::rbac::Role;
use crate::{Error, Result, clock};

fn encode(role: &Role) -> Result<String> {
    serde_json::to_string(role).map_err(|e| Error::InvalidInput(e.to_string()))
}

impl Store {
    pub async fn bind_role(&self, organization_id: Uuid, subject: &str, role: &Role) -> Result<()> {
        sqlx::query(
            "INSERT INTO role_bindings (organization_id, subject, role, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (organization_id, subject, role) DO NOTHING",
        )
        .bind(organization_id.to_string())
        .bind(subject)
        .bind(encode(role)?)
        .bind(clock::now_db())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn map_group_to_role(
        &self,
        organization_id: Uuid,
        idp_group: &str,
        role: &Role,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO group_role_mappings (organization_id, idp_group, role, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (organization_id, idp_group, role) DO NOTHING",
        )
        .bind(organization_id.to_string())
        .bind(idp_group)
        .bind(encode(role)?)
        .bind(clock::now_db())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A person's roles in an organisation: direct bindings and their groups' mappings.
    pub async fn roles_of(
        &self,
        organization_id: Uuid,
        subject: &str,
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
        let mapped = sqlx::query(
            "SELECT idp_group, role FROM group_role_mappings WHERE organization_id = $1",
        )
        .bind(organization_id.to_string())
        .fetch_all(self.pool())
        .await?;
        let decode = |text: String| {
            serde_json::from_str::<Role>(&text)
                .map_err(|e| Error::InvalidInput(format!("corrupt role binding: {e}")))
        };
        for row in direct {
            roles.push(decode(row.try_get("role")?)?);
        }
        for row in mapped {
            let group: String = row.try_get("idp_group")?;
            if groups.contains(&group) {
                roles.push(decode(row.try_get("role")?)?);
            }
        }
        Ok(roles)
    }
}
