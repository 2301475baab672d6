use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::problem::Problem;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = OK, body = Health)))]
async fn live() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

/// The process can serve requests: its database answers.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = OK, body = Health), (status = SERVICE_UNAVAILABLE, body = Problem)))]
async fn ready(State(state): State<AppState>) -> Result<(StatusCode, axum::Json<Health>), Problem> {
    state.store.ping().await?;
    Ok((StatusCode::OK, axum::Json(Health { status: "ready" })))
}
