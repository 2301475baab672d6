use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use windlass_core::audit::AuditResult;
use windlass_core::organizations::Organization;
use windlass_core::rbac::{BuiltInRole, Permission, Role};
use windlass_core::store::{AuditedError, Store};

use crate::AppState;

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
    let allow = body.allow_plain_http;
    let updated = caller
        .audited(
            &state,
            Some(organization_id),
            "organizations.chart_policy",
            |_| format!("organization:{organization_id}"),
            serde_json::json!({"allow_plain_http_charts": allow}),
            move |conn| {
                Box::pin(Store::set_allow_plain_http_charts_on(
                    conn,
                    organization_id,
                    allow,
                ))
            },
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
    // The entry opens the new organisation's own chain, so its id is chosen first.
    let id = Uuid::new_v4();
    let name = body.name.clone();
    let subject = identity.subject.clone();
    let created = state
        .store
        .audited(
            move |conn| {
                Box::pin(async move {
                    let organization = Store::create_organization_on(conn, id, &name).await?;
                    // Whoever creates an organisation administers it.
                    let admin = Role::BuiltIn {
                        role: BuiltInRole::Admin,
                    };
                    Store::bind_role_on(conn, id, &subject, &admin).await?;
                    Ok(organization)
                })
            },
            |organization| {
                Some(caller.entry(
                    Some(organization.id),
                    "organizations.create",
                    format!("organization:{}", organization.id),
                    AuditResult::Success,
                    serde_json::json!({}),
                ))
            },
        )
        .await;
    match created {
        Ok((organization, _)) => Ok((StatusCode::CREATED, axum::Json(organization))),
        Err(AuditedError::Change(error)) => {
            caller
                .refused(
                    &state,
                    None,
                    "organizations.create",
                    "organization".to_owned(),
                    serde_json::json!({}),
                    error.into(),
                )
                .await
        }
        Err(AuditedError::Audit(error)) => {
            Err(crate::caller::unwritable(error, "organizations.create"))
        }
    }
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
