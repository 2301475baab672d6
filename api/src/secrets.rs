//! Organisation secrets: written here, sealed under the organisation's key, read back only
//! by the runs granted them (never through the API).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use windlass_core::rbac::Permission;
use windlass_core::secrets::{RESERVED_PREFIX, put_secret};
use zeroize::Zeroizing;

use crate::AppState;
use crate::authz::Authenticated;
use crate::extract::{Json, Path};
use crate::problem::Problem;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(put, list))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSecret {
    /// Letters, digits, `- _ . /`; names under `windlass.` are reserved.
    pub name: String,
    pub value: String,
}

/// Create or replace a secret. The value is never returned by any route.
#[utoipa::path(post, path = "/v1/organizations/{organization_id}/secrets", tag = "secrets",
    params(("organization_id" = Uuid, Path)), request_body = PutSecret,
    responses((status = NO_CONTENT, description = "stored"), (status = UNPROCESSABLE_ENTITY, body = Problem)))]
async fn put(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    authn: Authenticated,
    Json(request): Json<PutSecret>,
) -> Result<StatusCode, Problem> {
    let (name, value) = (request.name, Zeroizing::new(request.value));
    let caller = authn
        .authorize(&state, organization_id, Permission::SecretsWrite)
        .await?;
    let stored = async {
        if name.starts_with(RESERVED_PREFIX) {
            return Err(Problem::unprocessable(format!(
                "secret names starting with {RESERVED_PREFIX} are Windlass's own"
            )));
        }
        put_secret(&state.store, &state.keys, organization_id, &name, &value)
            .await
            .map_err(Problem::from)
    }
    .await;
    caller
        .record(
            &state,
            Some(organization_id),
            "secrets.put",
            format!("secret:{name}"),
            &stored,
            serde_json::json!({}),
        )
        .await;
    stored?;
    Ok(StatusCode::NO_CONTENT)
}

/// Names of the organisation's secrets (never their values).
#[utoipa::path(get, path = "/v1/organizations/{organization_id}/secrets", tag = "secrets",
    params(("organization_id" = Uuid, Path)),
    responses((status = OK, body = Vec<String>)))]
async fn list(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    authn: Authenticated,
) -> Result<axum::Json<Vec<String>>, Problem> {
    authn
        .authorize(&state, organization_id, Permission::ProjectsRead)
        .await?;
    let names = state.store.secret_names(organization_id).await?;
    Ok(axum::Json(
        names
            .into_iter()
            .filter(|n| !n.starts_with(RESERVED_PREFIX))
            .collect(),
    ))
}
