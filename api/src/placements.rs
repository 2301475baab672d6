//! `/v1/organizations/{org}/placements`: an organisation registers the placements (pools of
//! workers it runs itself) its clusters may route to. Names are global, like the task
//! queues they become; a taken name is a conflict that does not say whose.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use windlass_core::placements::Placement;
use windlass_core::rbac::Permission;
use windlass_core::store::Store;

use crate::AppState;
use crate::authz::Authenticated;
use crate::extract::{Json, Path, Query};
use crate::pagination::{Page, PageQuery};
use crate::problem::Problem;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register, list))
        .routes(routes!(delete))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterPlacement {
    /// 1 to 63 lowercase letters, digits and dashes; unique across Windlass.
    name: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RegisteredPlacement {
    placement: Placement,
    /// The placed workers' credential (`WINDLASS_PLACEMENT_CREDENTIAL`). Shown once: only
    /// its hash is stored.
    credential: String,
}

#[utoipa::path(post, path = "/v1/organizations/{organization_id}/placements",
    tag = "placements", params(("organization_id" = Uuid, Path)),
    request_body = RegisterPlacement,
    responses((status = CREATED, body = RegisteredPlacement), (status = CONFLICT, body = Problem),
        (status = UNPROCESSABLE_ENTITY, body = Problem)))]
async fn register(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    authn: Authenticated,
    Json(request): Json<RegisterPlacement>,
) -> Result<(StatusCode, axum::Json<RegisteredPlacement>), Problem> {
    let caller = authn
        .authorize(&state, organization_id, Permission::ClustersWrite)
        .await?;
    let name = request.name.clone();
    let (placement, credential) = caller
        .audited(
            &state,
            Some(organization_id),
            "placements.register",
            |_| format!("placement:{}", request.name),
            serde_json::json!({}),
            move |conn| {
                Box::pin(
                    async move { Store::register_placement_on(conn, organization_id, &name).await },
                )
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(RegisteredPlacement {
            placement,
            credential: credential.to_string(),
        }),
    ))
}

#[utoipa::path(get, path = "/v1/organizations/{organization_id}/placements",
    tag = "placements", params(PageQuery, ("organization_id" = Uuid, Path)),
    responses((status = OK, body = Vec<Placement>, headers(("Windlass-Next-Cursor" = String, description = "`after` of the next page, when there may be one")))))]
async fn list(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    authn: Authenticated,
    Query(page): Query<PageQuery>,
) -> Result<Page<Placement>, Problem> {
    authn
        .authorize(&state, organization_id, Permission::ClustersRead)
        .await?;
    Page::cut(state.store.placements(organization_id).await?, &page, |x| {
        x.name.clone()
    })
}

/// Removes a placement; its credential stops working at once. Refused (409) while a
/// cluster of the organisation still routes to it.
#[utoipa::path(delete, path = "/v1/organizations/{organization_id}/placements/{name}",
    tag = "placements", params(("organization_id" = Uuid, Path), ("name" = String, Path)),
    responses((status = NO_CONTENT, description = "removed"), (status = NOT_FOUND, body = Problem),
        (status = CONFLICT, body = Problem)))]
async fn delete(
    State(state): State<AppState>,
    Path((organization_id, name)): Path<(Uuid, String)>,
    authn: Authenticated,
) -> Result<StatusCode, Problem> {
    let caller = authn
        .authorize(&state, organization_id, Permission::ClustersWrite)
        .await?;
    let resource = format!("placement:{name}");
    let routed = match state.store.clusters_routed_to(organization_id, &name).await {
        Ok(routed) => routed,
        Err(error) => {
            return caller
                .refused(
                    &state,
                    Some(organization_id),
                    "placements.delete",
                    resource,
                    serde_json::json!({}),
                    error.into(),
                )
                .await;
        }
    };
    caller
        .audited(
            &state,
            Some(organization_id),
            "placements.delete",
            |_| resource.clone(),
            serde_json::json!({}),
            move |conn| {
                Box::pin(async move {
                    Store::delete_placement_on(conn, organization_id, &name, routed).await
                })
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether a cluster of `organization_id` may route to `placement`: only to one the
/// organisation registered. The refusal reads the same whether the name is another
/// organisation's or nobody's.
pub(crate) async fn check_owned(
    state: &AppState,
    organization_id: Uuid,
    placement: &str,
) -> Result<(), Problem> {
    match state.store.placement(organization_id, placement).await {
        Ok(_) => Ok(()),
        Err(windlass_core::Error::NotFound { .. }) => Err(Problem::unprocessable(format!(
            "placement {placement:?} is not registered by this organisation \
             (POST /v1/organizations/{organization_id}/placements)"
        ))),
        Err(e) => Err(e.into()),
    }
}
