//! Group mappings: members of an IdP group, signed in through one of the organisation's
//! connections, get a role. A group of the same name from any other IdP gets nothing.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;
use windlass_core::identity_connections::GroupMapping;
use windlass_core::rbac::{Permission, Role};
use windlass_core::store::Store;

use crate::AppState;
use crate::authz::Authenticated;
use crate::extract::{Json, Path, Query};
use crate::pagination::{Page, PageQuery};
use crate::problem::Problem;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MapGroup {
    /// The organisation's identity connection whose tokens carry the group.
    connection_id: Uuid,
    /// The group name as that identity provider puts it in the `groups` claim.
    idp_group: String,
    role: Role,
}

/// Give every member of an IdP group (of one connection) a role in the organisation.
#[utoipa::path(post, path = "/v1/organizations/{organization_id}/group-mappings", tag = "access",
    params(("organization_id" = Uuid, Path)), request_body = MapGroup,
    responses((status = CREATED, body = GroupMapping), (status = FORBIDDEN, body = Problem),
        (status = NOT_FOUND, body = Problem), (status = UNPROCESSABLE_ENTITY, body = Problem)))]
pub(super) async fn map_group(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    authn: Authenticated,
    Json(body): Json<MapGroup>,
) -> Result<(StatusCode, axum::Json<GroupMapping>), Problem> {
    let caller = authn
        .authorize_grant(
            &state,
            organization_id,
            "access.map_group",
            std::slice::from_ref(&body.role),
        )
        .await?;
    let connection_id = body.connection_id;
    let details = serde_json::json!({"role": body.role, "connection_id": connection_id});
    if !(1..=256).contains(&body.idp_group.len()) || body.idp_group.chars().any(char::is_control) {
        return caller
            .refused(
                &state,
                Some(organization_id),
                "access.map_group",
                format!("identity_connection:{connection_id}"),
                details,
                Problem::unprocessable("idp_group: 1 to 256 printable bytes"),
            )
            .await;
    }
    let MapGroup {
        idp_group, role, ..
    } = body;
    let mapped = caller
        .audited(
            &state,
            Some(organization_id),
            "access.map_group",
            |mapped: Option<&GroupMapping>| match mapped {
                Some(mapping) => format!("group_mapping:{}", mapping.id),
                None => format!("identity_connection:{connection_id}"),
            },
            details,
            move |conn| {
                Box::pin(async move {
                    Store::map_group_to_role_on(
                        conn,
                        organization_id,
                        connection_id,
                        &idp_group,
                        &role,
                    )
                    .await
                })
            },
        )
        .await;
    Ok((StatusCode::CREATED, axum::Json(mapped?)))
}

/// The organisation's group mappings.
#[utoipa::path(get, path = "/v1/organizations/{organization_id}/group-mappings", tag = "access",
    params(PageQuery, ("organization_id" = Uuid, Path)),
    responses((status = OK, body = Vec<GroupMapping>, headers(("Windlass-Next-Cursor" = String, description = "`after` of the next page, when there may be one"))), (status = FORBIDDEN, body = Problem)))]
pub(super) async fn list_group_mappings(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    authn: Authenticated,
    Query(page): Query<PageQuery>,
) -> Result<Page<GroupMapping>, Problem> {
    authn
        .authorize(&state, organization_id, Permission::MembersManage)
        .await?;
    Page::cut(
        state.store.group_mappings(organization_id).await?,
        &page,
        |x| format!("{}|{}", windlass_core::clock::to_db(x.created_at), x.id),
    )
}

/// Remove a group mapping (only one the caller could have made).
#[utoipa::path(delete, path = "/v1/organizations/{organization_id}/group-mappings/{mapping_id}",
    tag = "access", params(("organization_id" = Uuid, Path), ("mapping_id" = Uuid, Path)),
    responses((status = NO_CONTENT), (status = FORBIDDEN, body = Problem),
        (status = NOT_FOUND, body = Problem)))]
pub(super) async fn delete_group_mapping(
    State(state): State<AppState>,
    Path((organization_id, mapping_id)): Path<(Uuid, Uuid)>,
    authn: Authenticated,
) -> Result<StatusCode, Problem> {
    let found = state.store.group_mapping(organization_id, mapping_id).await;
    let mapping = super::existing(&state, &authn, organization_id, found).await?;
    let caller = authn
        .authorize_removal(
            &state,
            organization_id,
            "access.delete_group_mapping",
            std::slice::from_ref(&mapping.role),
        )
        .await?;
    caller
        .audited(
            &state,
            Some(organization_id),
            "access.delete_group_mapping",
            |_| format!("group_mapping:{mapping_id}"),
            serde_json::json!({"role": mapping.role}),
            move |conn| {
                Box::pin(Store::delete_group_mapping_on(
                    conn,
                    organization_id,
                    mapping_id,
                ))
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
