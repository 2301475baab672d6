//! API tokens for machine clients: issued with at most the issuer's own permissions,
//! listed without their secrets, revoked at once.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use windlass_core::Store;
use windlass_core::api_tokens::ApiToken;
use windlass_core::rbac::{Permission, Role};
use zeroize::Zeroizing;

use crate::AppState;
use crate::authz::Authenticated;
use crate::extract::{Json, Path, Query};
use crate::pagination::{Page, PageQuery};
use crate::problem::Problem;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueApiToken {
    name: String,
    role: Role,
    /// 1 to 366.
    expires_in_days: u32,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct IssuedApiToken {
    #[serde(flatten)]
    token: ApiToken,
    /// Shown once: only its hash is kept.
    secret: String,
}

/// Issue an API token for a machine client (at most what the caller holds).
#[utoipa::path(post, path = "/v1/organizations/{organization_id}/api-tokens", tag = "access",
    params(("organization_id" = Uuid, Path)), request_body = IssueApiToken,
    responses((status = CREATED, body = IssuedApiToken), (status = FORBIDDEN, body = Problem),
        (status = CONFLICT, body = Problem), (status = UNPROCESSABLE_ENTITY, body = Problem)))]
pub(super) async fn issue_api_token(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    authn: Authenticated,
    Json(body): Json<IssueApiToken>,
) -> Result<(StatusCode, axum::Json<IssuedApiToken>), Problem> {
    let caller = authn
        .authorize_grant(
            &state,
            organization_id,
            "access.issue_api_token",
            std::slice::from_ref(&body.role),
        )
        .await?;
    let lifetime = chrono::Duration::days(i64::from(body.expires_in_days));
    let details = serde_json::json!({"name": body.name, "role": body.role});
    let issued = match state
        .store
        .prepare_api_token(organization_id, &body.name, lifetime)
        .await
    {
        Ok((id, secret)) => {
            let (name, role) = (body.name.clone(), body.role.clone());
            caller
                .audited(
                    &state,
                    Some(organization_id),
                    "access.issue_api_token",
                    |issued: Option<&(ApiToken, Zeroizing<String>)>| match issued {
                        Some((token, _)) => format!("api_token:{}", token.id),
                        None => format!("organization:{organization_id}"),
                    },
                    details,
                    move |conn| {
                        Box::pin(async move {
                            let token = Store::insert_api_token_on(
                                conn,
                                organization_id,
                                id,
                                &name,
                                &role,
                                &secret,
                                lifetime,
                            )
                            .await?;
                            Ok((token, secret))
                        })
                    },
                )
                .await
        }
        Err(error) => {
            let failed = Err(Problem::from(error));
            caller
                .record(
                    &state,
                    Some(organization_id),
                    "access.issue_api_token",
                    format!("organization:{organization_id}"),
                    &failed,
                    details,
                )
                .await;
            failed
        }
    };
    let (token, secret) = issued?;
    Ok((
        StatusCode::CREATED,
        axum::Json(IssuedApiToken {
            token,
            secret: secret.to_string(),
        }),
    ))
}

/// The organisation's API tokens: names, roles, expiry and revocation, never a secret.
#[utoipa::path(get, path = "/v1/organizations/{organization_id}/api-tokens", tag = "access",
    params(PageQuery, ("organization_id" = Uuid, Path)),
    responses((status = OK, body = Vec<ApiToken>, headers(("Windlass-Next-Cursor" = String, description = "`after` of the next page, when there may be one"))), (status = FORBIDDEN, body = Problem)))]
pub(super) async fn list_api_tokens(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    authn: Authenticated,
    Query(page): Query<PageQuery>,
) -> Result<Page<ApiToken>, Problem> {
    authn
        .authorize(&state, organization_id, Permission::MembersManage)
        .await?;
    Page::cut_newest_first(state.store.api_tokens(organization_id).await?, &page, |x| {
        format!("{}|{}", windlass_core::clock::to_db(x.created_at), x.id)
    })
}

/// Revoke an API token; it stops working at once.
#[utoipa::path(post, path = "/v1/organizations/{organization_id}/api-tokens/{token_id}/revoke",
    tag = "access", params(("organization_id" = Uuid, Path), ("token_id" = Uuid, Path)),
    responses((status = NO_CONTENT), (status = NOT_FOUND, body = Problem),
        (status = FORBIDDEN, body = Problem)))]
pub(super) async fn revoke_api_token(
    State(state): State<AppState>,
    Path((organization_id, token_id)): Path<(Uuid, Uuid)>,
    authn: Authenticated,
) -> Result<StatusCode, Problem> {
    // Any member manager may revoke: taking a credential out of circulation never widens
    // anyone's access, and a leaked token must be stoppable by whoever notices.
    let caller = authn
        .authorize(&state, organization_id, Permission::MembersManage)
        .await?;
    caller
        .audited(
            &state,
            Some(organization_id),
            "access.revoke_api_token",
            |_| format!("api_token:{token_id}"),
            serde_json::json!({}),
            move |conn| Box::pin(Store::revoke_api_token_on(conn, organization_id, token_id)),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
