//! The workload-identity issuer's public face: OIDC discovery and JWKS, which Entra ID
//! fetches to verify the client assertions Windlass's workers mint. Public (no token), not
//! in the OpenAPI document: they are for relying parties, not API clients.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use windlass_core::workload_identity::{DISCOVERY_PATH, JWKS_PATH, WorkloadIdentityIssuer};

use crate::AppState;
use crate::problem::Problem;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(DISCOVERY_PATH, get(discovery))
        .route(JWKS_PATH, get(jwks))
}

fn issuer(state: &AppState) -> WorkloadIdentityIssuer {
    WorkloadIdentityIssuer::new(
        state.config.workload_identity_issuer.clone(),
        state.keys.clone(),
    )
}

async fn discovery(State(state): State<AppState>) -> axum::Json<serde_json::Value> {
    axum::Json(issuer(&state).discovery())
}

async fn jwks(State(state): State<AppState>) -> Result<axum::Json<serde_json::Value>, Problem> {
    Ok(axum::Json(issuer(&state).jwks().await?))
}
