use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use windlass_core::organizations::Organization;

use crate::AppState;
use windlass_core::rbac::{BuiltInRole, Permission, Role};

use crate::authz::Authenticated;
use crate::extract::{Json, Path};
use crate::problem::Problem;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_organization))
        .routes(routes!(get_organization))
        .routes(routes!(set_chart_policy))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChartPolicyRequest {
    /// Let services name charts from plain `http://` repositories (charts then travel
    /// unauthenticated and unencrypted; meant for repositories inside a placed worker's
    /// own network).
    allow_plain_http: bool,
}

/// Set the organisation's chart policy. An organisation-wide security setting, so it is
/// its administrators' (members_manage); audited.
#[utoipa::path(put, path = "/v1/organizations/{organization_id}/chart-policy", tag = "organizations",
    params(("organization_id" = Uuid, Path)),
    request_body = ChartPolicyRequest,
    responses((status = OK, body = Organization), (status = NOT_FOUND, body = Problem),
        (status = FORBIDDEN, body = Problem), (status = UNPROCESSABLE_ENTITY, body = Problem)))]
async fn set_chart_policy(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    request: Authenticated,
    Json(body): Json<ChartPolicyRequest>,
) -> Result<axum::Json<Organization>, Problem> {
    let caller = request
        .authorize(&state, organization_id, Permission::MembersManage)
        .await?;
    let updated = state
        .store
        .set_allow_plain_http_charts(organization_id, body.allow_plain_http)
        .await
        .map_err(Problem::from);
    caller
        .record(
            &state,
            Some(organization_id),
            "organizations.chart_policy",
            format!("organization:{organization_id}"),
            &updated,
            serde_json::json!({"allow_plain_http_charts": body.allow_plain_http}),
        )
        .await;
    Ok(axum::Json(updated?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrganization {
    /// 1 to 100 characters, unique.
    name: String,
}

#[utoipa::path(post, path = "/v1/organizations", tag = "organizations",
    request_body = CreateOrganization,
    responses((status = CREATED, body = Organization), (status = CONFLICT, body = Problem),
        (status = UNPROCESSABLE_ENTITY, body = Problem)))]
async fn create_organization(
    State(state): State<AppState>,
    request: Authenticated,
    Json(body): Json<CreateOrganization>,
) -> Result<(StatusCode, axum::Json<Organization>), Problem> {
    let (caller, identity) = request.user()?;
    let created = create_as_admin(&state, &body.name, &identity.subject).await;
    let (org_id, resource) = match &created {
        Ok(org) => (Some(org.id), format!("organization:{}", org.id)),
        Err(_) => (None, "organization".to_owned()),
    };
    caller
        .record(
            &state,
            org_id,
            "organizations.create",
            resource,
            &created,
            serde_json::json!({}),
        )
        .await;
    Ok((StatusCode::CREATED, axum::Json(created?)))
}

#[utoipa::path(get, path = "/v1/organizations/{organization_id}", tag = "organizations",
    params(("organization_id" = Uuid, Path)),
    responses((status = OK, body = Organization), (status = NOT_FOUND, body = Problem)))]
async fn get_organization(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    request: Authenticated,
) -> Result<axum::Json<Organization>, Problem> {
    request
        .authorize(&state, organization_id, Permission::OrganizationRead)
        .await?;
    Ok(axum::Json(state.store.organization(organization_id).await?))
}

/// Whoever creates an organisation administers it.
async fn create_as_admin(
    state: &AppState,
    name: &str,
    subject: &str,
) -> Result<Organization, Problem> {
    let organization = state.store.create_organization(name).await?;
    state
        .store
        .bind_role(
            organization.id,
            subject,
            &Role::BuiltIn {
                role: BuiltInRole::Admin,
            },
        )
        .await?;
    Ok(organization)
}
