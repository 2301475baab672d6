//! Managing who may do what in an organisation: role bindings for people, the
//! organisation's own identity providers and their group mappings, and API tokens for
//! machines. All need the members_manage permission, and nobody hands out (or takes away)
//! more than they hold themselves: see [`crate::authz::Authenticated::authorize_grant`].

mod api_tokens;
mod group_mappings;
mod identity_connections;
mod role_bindings;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use windlass_core::rbac::Permission;

use crate::AppState;
use crate::authz::Authenticated;
use crate::problem::Problem;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(
            role_bindings::bind_role,
            role_bindings::list_role_bindings
        ))
        .routes(routes!(role_bindings::delete_role_binding))
        .routes(routes!(role_bindings::remove_member))
        .routes(routes!(
            identity_connections::create_connection,
            identity_connections::list_connections
        ))
        .routes(routes!(identity_connections::delete_connection))
        .routes(routes!(
            group_mappings::map_group,
            group_mappings::list_group_mappings
        ))
        .routes(routes!(group_mappings::delete_group_mapping))
        .routes(routes!(
            api_tokens::issue_api_token,
            api_tokens::list_api_tokens
        ))
        .routes(routes!(api_tokens::revoke_api_token))
}

/// What a route looked up, or, if it does not exist, a refusal for a caller without
/// members_manage first (403), so a stranger cannot tell what exists; a member manager
/// gets the 404.
async fn existing<T>(
    state: &AppState,
    authn: &Authenticated,
    organization_id: Uuid,
    found: windlass_core::Result<T>,
) -> Result<T, Problem> {
    match found {
        Ok(found) => Ok(found),
        Err(error) => {
            authn
                .authorize(state, organization_id, Permission::MembersManage)
                .await?;
            Err(error.into())
        }
    }
}
