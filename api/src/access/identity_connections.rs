//! The organisation's own identity providers (OIDC). A token verified by one of them
//! authenticates a person on this organisation's routes only.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;
use windlass_core::identity_connections::{IdentityConnection, NewIdentityConnection};
use windlass_core::rbac::{Permission, Role};
use windlass_core::store::Store;

use crate::AppState;
use crate::authz::Authenticated;
use crate::extract::{Json, Path, Query};
use crate::pagination::{Page, PageQuery};
use crate::problem::Problem;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConnection {
    name: String,
    /// Exactly the `iss` claim of the provider's tokens (https://…).
    issuer: String,
    /// The `aud` the provider puts in tokens for Windlass.
    audience: String,
    /// Where the provider publishes its signing keys (https://…).
    jwks_uri: String,
}

/// Connect an identity provider: its people sign in to this organisation.
#[utoipa::path(post, path = "/v1/organizations/{organization_id}/identity-connections",
    tag = "access", params(("organization_id" = Uuid, Path)), request_body = CreateConnection,
    responses((status = CREATED, body = IdentityConnection), (status = FORBIDDEN, body = Problem),
        (status = CONFLICT, body = Problem), (status = UNPROCESSABLE_ENTITY, body = Problem)))]
pub(super) async fn create_connection(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    authn: Authenticated,
    Json(body): Json<CreateConnection>,
) -> Result<(StatusCode, axum::Json<IdentityConnection>), Problem> {
    let caller = authn
        .authorize(&state, organization_id, Permission::MembersManage)
        .await?;
    let new = NewIdentityConnection {
        organization_id,
        name: body.name.clone(),
        issuer: body.issuer.clone(),
        audience: body.audience.clone(),
        jwks_uri: body.jwks_uri.clone(),
    };
    let created = caller
        .audited(
            &state,
            Some(organization_id),
            "access.create_identity_connection",
            |created: Option<&IdentityConnection>| match created {
                Some(connection) => format!("identity_connection:{}", connection.id),
                None => format!("organization:{organization_id}"),
            },
            serde_json::json!({"issuer": body.issuer}),
            move |conn| {
                Box::pin(async move { Store::create_identity_connection_on(conn, &new).await })
            },
        )
        .await;
    Ok((StatusCode::CREATED, axum::Json(created?)))
}

/// The organisation's identity connections.
#[utoipa::path(get, path = "/v1/organizations/{organization_id}/identity-connections",
    tag = "access", params(PageQuery, ("organization_id" = Uuid, Path)),
    responses((status = OK, body = Vec<IdentityConnection>, headers(("Windlass-Next-Cursor" = String, description = "`after` of the next page, when there may be one"))), (status = FORBIDDEN, body = Problem)))]
pub(super) async fn list_connections(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    authn: Authenticated,
    Query(page): Query<PageQuery>,
) -> Result<Page<IdentityConnection>, Problem> {
    authn
        .authorize(&state, organization_id, Permission::MembersManage)
        .await?;
    Page::cut(
        state.store.identity_connections(organization_id).await?,
        &page,
        |x| x.name.clone(),
    )
}

/// Disconnect an identity provider and drop its group mappings; its tokens stop working
/// at once. Only for a caller who holds every role mapped through it.
#[utoipa::path(delete,
    path = "/v1/organizations/{organization_id}/identity-connections/{connection_id}",
    tag = "access", params(("organization_id" = Uuid, Path), ("connection_id" = Uuid, Path)),
    responses((status = NO_CONTENT), (status = FORBIDDEN, body = Problem),
        (status = NOT_FOUND, body = Problem)))]
pub(super) async fn delete_connection(
    State(state): State<AppState>,
    Path((organization_id, connection_id)): Path<(Uuid, Uuid)>,
    authn: Authenticated,
) -> Result<StatusCode, Problem> {
    // Only for a caller who holds every role mapped through the connection.
    let mapped: Vec<Role> = state
        .store
        .group_mappings(organization_id)
        .await?
        .into_iter()
        .filter(|m| m.connection_id == connection_id)
        .map(|m| m.role)
        .collect();
    let caller = authn
        .authorize_removal(
            &state,
            organization_id,
            "access.delete_identity_connection",
            &mapped,
        )
        .await?;
    caller
        .audited(
            &state,
            Some(organization_id),
            "access.delete_identity_connection",
            |_| format!("identity_connection:{connection_id}"),
            serde_json::json!({}),
            move |conn| {
                Box::pin(Store::delete_identity_connection_on(
                    conn,
                    organization_id,
                    connection_id,
                ))
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
