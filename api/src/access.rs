//! Managing who may do what in an organisation: role bindings for people, IdP group
//! mappings, and API tokens for machines. All need the members_manage permission.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use windlass_core::api_tokens::ApiToken;
use windlass_core::rbac::{Permission, Role};

use crate::AppState;
use crate::authz::Authenticated;
use crate::extract::{Json, Path};
use crate::problem::Problem;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(bind_role))
        .routes(routes!(map_group))
        .routes(routes!(issue_api_token))
        .routes(routes!(revoke_api_token))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindRole {
    /// The person's pseudonymous id (`user:…`), as the audit log shows it.
    subject: String,
    role: Role,
}

/// Give a person a role in the organisation.
#[utoipa::path(post, path = "/v1/organizations/{organization_id}/role-bindings", tag = "access",
    params(("organization_id" = Uuid, Path)), request_body = BindRole,
    responses((status = NO_CONTENT), (status = FORBIDDEN, body = Problem),
        (status = UNPROCESSABLE_ENTITY, body = Problem)))]
async fn bind_role(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    authn: Authenticated,
    Json(body): Json<BindRole>,
) -> Result<StatusCode, Problem> {
    let caller = authn
        .authorize(&state, organization_id, Permission::MembersManage)
        .await?;
    let bound = if body.subject.starts_with("user:") && body.subject.len() <= 64 {
        state
            .store
            .bind_role(organization_id, &body.subject, &body.role)
            .await
            .map_err(Problem::from)
    } else {
        Err(Problem::unprocessable(
            "subject: a pseudonymous id `user:<hash>`",
        ))
    };
    caller
        .record(
            &state,
            Some(organization_id),
            "access.bind_role",
            body.subject.clone(),
            &bound,
            serde_json::json!({"role": body.role}),
        )
        .await;
    bound.map(|_| StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MapGroup {
    /// The group name as the identity provider puts it in the `groups` claim.
    idp_group: String,
    role: Role,
}

/// Give every member of an IdP group a role in the organisation.
#[utoipa::path(post, path = "/v1/organizations/{organization_id}/group-mappings", tag = "access",
    params(("organization_id" = Uuid, Path)), request_body = MapGroup,
    responses((status = NO_CONTENT), (status = FORBIDDEN, body = Problem)))]
async fn map_group(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    authn: Authenticated,
    Json(body): Json<MapGroup>,
) -> Result<StatusCode, Problem> {
    let caller = authn
        .authorize(&state, organization_id, Permission::MembersManage)
        .await?;
    let mapped = if (1..=256).contains(&body.idp_group.len()) {
        state
            .store
            .map_group_to_role(organization_id, &body.idp_group, &body.role)
            .await
            .map_err(Problem::from)
    } else {
        Err(Problem::unprocessable("idp_group: 1 to 256 characters"))
    };
    caller
        .record(
            &state,
            Some(organization_id),
            "access.map_group",
            format!("group:{}", body.idp_group),
            &mapped,
            serde_json::json!({"role": body.role}),
        )
        .await;
    mapped.map(|_| StatusCode::NO_CONTENT)
}

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

/// Issue an API token for a machine client.
#[utoipa::path(post, path = "/v1/organizations/{organization_id}/api-tokens", tag = "access",
    params(("organization_id" = Uuid, Path)), request_body = IssueApiToken,
    responses((status = CREATED, body = IssuedApiToken), (status = FORBIDDEN, body = Problem),
        (status = CONFLICT, body = Problem), (status = UNPROCESSABLE_ENTITY, body = Problem)))]
async fn issue_api_token(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    authn: Authenticated,
    Json(body): Json<IssueApiToken>,
) -> Result<(StatusCode, axum::Json<IssuedApiToken>), Problem> {
    let caller = authn
        .authorize(&state, organization_id, Permission::MembersManage)
        .await?;
    let issued = state
        .store
        .issue_api_token(
            organization_id,
            &body.name,
            &body.role,
            chrono::Duration::days(i64::from(body.expires_in_days)),
        )
        .await
        .map_err(Problem::from);
    let resource = match &issued {
        Ok((token, _)) => format!("api_token:{}", token.id),
        Err(_) => "api_token".to_owned(),
    };
    caller
        .record(
            &state,
            Some(organization_id),
            "access.issue_api_token",
            resource,
            &issued,
            serde_json::json!({"name": body.name, "role": body.role}),
        )
        .await;
    let (token, secret) = issued?;
    Ok((
        StatusCode::CREATED,
        axum::Json(IssuedApiToken {
            token,
            secret: secret.to_string(),
        }),
    ))
}

/// Revoke an API token; it stops working at once.
#[utoipa::path(post, path = "/v1/organizations/{organization_id}/api-tokens/{token_id}/revoke",
    tag = "access", params(("organization_id" = Uuid, Path), ("token_id" = Uuid, Path)),
    responses((status = NO_CONTENT), (status = NOT_FOUND, body = Problem),
        (status = FORBIDDEN, body = Problem)))]
async fn revoke_api_token(
    State(state): State<AppState>,
    Path((organization_id, token_id)): Path<(Uuid, Uuid)>,
    authn: Authenticated,
) -> Result<StatusCode, Problem> {
    let caller = authn
        .authorize(&state, organization_id, Permission::MembersManage)
        .await?;
    let revoked = state
        .store
        .revoke_api_token(organization_id, token_id)
        .await
        .map_err(Problem::from);
    caller
        .record(
            &state,
            Some(organization_id),
            "access.revoke_api_token",
            format!("api_token:{token_id}"),
            &revoked,
            serde_json::json!({}),
        )
        .await;
    revoked.map(|_| StatusCode::NO_CONTENT)
}
