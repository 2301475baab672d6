//! API tokens for machine clients (CI pipelines, scripts): scoped to one organisation and
//! one role, expiring, revocable, and stored only as a hash. The token is shown once.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::crypto::{DataKey, to_hex};
use crate::rbac::Role;
use crate::store::is_unique_violation;
use crate::{Error, Result, Store, clock};

const PREFIX: &str = "wlt_";
/// Tokens outlive no one: a year at most, renewed by issuing another.
const MAX_LIFETIME_DAYS: i64 = 366;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiToken {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

fn validate_token_request(name: &str, lifetime: Duration) -> Result<()> {
    if lifetime <= Duration::zero() || lifetime > Duration::days(MAX_LIFETIME_DAYS) {
        return Err(Error::InvalidInput(format!(
            "an API token lives between 1 second and {MAX_LIFETIME_DAYS} days"
        )));
    }
    if name.trim().is_empty() || name.len() > 100 {
        return Err(Error::InvalidInput(
            "token name: 1 to 100 characters".into(),
        ));
    }
    Ok(())
}

fn new_secret(id: Uuid) -> Result<Zeroizing<String>> {
    // 256 random bits; a data key is exactly that.
    let random = DataKey::generate()?;
    Ok(Zeroizing::new(format!(
        "{PREFIX}{}_{}",
        id.simple(),
        to_hex(random.expose_bytes())
    )))
}

fn hash(token: &str) -> String {
    format!("{:x}", Sha256::digest(token.as_bytes()))
}

impl Store {
    /// Issues a token; the returned secret is the only copy.
    pub async fn issue_api_token(
        &self,
        organization_id: Uuid,
        name: &str,
        role: &Role,
        lifetime: Duration,
    ) -> Result<(ApiToken, Zeroizing<String>)> {
        let (id, secret) = self
            .prepare_api_token(organization_id, name, lifetime)
            .await?;
        let mut conn = self.pool().acquire().await?;
        let token = Self::insert_api_token_on(
            &mut conn,
            organization_id,
            id,
            name,
            role,
            &secret,
            lifetime,
        )
        .await?;
        Ok((token, secret))
    }

    /// Validates a token request and makes its secret, without storing anything: the
    /// caller stores it with [`Store::insert_api_token_on`] (inside [`Store::audited`]).
    pub async fn prepare_api_token(
        &self,
        organization_id: Uuid,
        name: &str,
        lifetime: Duration,
    ) -> Result<(Uuid, Zeroizing<String>)> {
        validate_token_request(name, lifetime)?;
        self.organization(organization_id).await?;
        let id = Uuid::new_v4();
        Ok((id, new_secret(id)?))
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn insert_api_token_on(
        conn: &mut AnyConnection,
        organization_id: Uuid,
        id: Uuid,
        name: &str,
        role: &Role,
        secret: &Zeroizing<String>,
        lifetime: Duration,
    ) -> Result<ApiToken> {
        let now = Utc::now();
        sqlx::query(
            "INSERT INTO api_tokens (id, organization_id, name, token_hash, role, created_at, \
             expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
        )
        .bind(id.to_string())
        .bind(organization_id.to_string())
        .bind(name.trim())
        .bind(hash(secret))
        .bind(serde_json::to_string(role).map_err(|e| Error::InvalidInput(e.to_string()))?)
        .bind(clock::to_db(now))
        .bind(clock::to_db(now + lifetime))
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::Conflict(format!("a token named {name:?} already exists"))
            } else {
                e.into()
            }
        })?;
        let row = sqlx::query(
            "SELECT id, organization_id, name, role, created_at, expires_at, revoked_at \
             FROM api_tokens WHERE id = $1 AND organization_id = $2",
        )
        .bind(id.to_string())
        .bind(organization_id.to_string())
        .fetch_one(&mut *conn)
        .await?;
        token_from_row(&row)
    }

    pub async fn api_token(&self, organization_id: Uuid, id: Uuid) -> Result<ApiToken> {
        let row = sqlx::query(
            "SELECT id, organization_id, name, role, created_at, expires_at, revoked_at \
             FROM api_tokens WHERE id = $1 AND organization_id = $2",
        )
        .bind(id.to_string())
        .bind(organization_id.to_string())
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| Error::not_found("API token", id))?;
        token_from_row(&row)
    }

    /// The organisation's tokens, newest first: names, roles and dates, never a secret.
    pub async fn api_tokens(&self, organization_id: Uuid) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query(
            "SELECT id, organization_id, name, role, created_at, expires_at, revoked_at \
             FROM api_tokens WHERE organization_id = $1 ORDER BY created_at DESC, id",
        )
        .bind(organization_id.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    pub async fn revoke_api_token(&self, organization_id: Uuid, id: Uuid) -> Result<()> {
        let mut conn = self.pool().acquire().await?;
        Self::revoke_api_token_on(&mut conn, organization_id, id).await
    }

    /// [`Store::revoke_api_token`] on a given connection (for [`Store::audited`]).
    pub async fn revoke_api_token_on(
        conn: &mut sqlx::AnyConnection,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<()> {
        sqlx::query("SELECT id FROM api_tokens WHERE id = $1 AND organization_id = $2")
            .bind(id.to_string())
            .bind(organization_id.to_string())
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| Error::not_found("API token", id))?;
        sqlx::query(
            "UPDATE api_tokens SET revoked_at = $3 WHERE id = $1 AND organization_id = $2 \
             AND revoked_at IS NULL",
        )
        .bind(id.to_string())
        .bind(organization_id.to_string())
        .bind(clock::now_db())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// The token a request presents, if it is one of ours, unexpired and not revoked. Every
    /// refusal is the same error, so a prober cannot tell a revoked token from a made-up one.
    pub async fn authenticate_api_token(&self, presented: &str) -> Result<ApiToken> {
        let refused = || Error::Forbidden("invalid API token".into());
        if !presented.starts_with(PREFIX) || presented.len() > 200 {
            return Err(refused());
        }
        let row = sqlx::query(
            "SELECT id, organization_id, name, role, created_at, expires_at, revoked_at \
             FROM api_tokens WHERE token_hash = $1",
        )
        .bind(hash(presented))
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(refused)?;
        let token = token_from_row(&row)?;
        if token.revoked_at.is_some() || token.expires_at <= Utc::now() {
            return Err(refused());
        }
        Ok(token)
    }
}

fn token_from_row(row: &sqlx::any::AnyRow) -> Result<ApiToken> {
    let role: String = row.try_get("role")?;
    Ok(ApiToken {
        id: crate::store::parse_uuid(&row.try_get::<String, _>("id")?, "api_tokens.id")?,
        organization_id: crate::store::parse_uuid(
            &row.try_get::<String, _>("organization_id")?,
            "api_tokens.organization_id",
        )?,
        name: row.try_get("name")?,
        role: serde_json::from_str(&role)
            .map_err(|e| Error::InvalidInput(format!("corrupt api_tokens.role: {e}")))?,
        created_at: clock::from_db(&row.try_get::<String, _>("created_at")?),
        expires_at: clock::from_db(&row.try_get::<String, _>("expires_at")?),
        revoked_at: row
            .try_get::<Option<String>, _>("revoked_at")?
            .map(|t| clock::from_db(&t)),
    })
}
