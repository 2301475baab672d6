//! The HTTP API: starts workflows and reads their state.
//!
//! Every error is `application/problem+json` (RFC 9457) with a message a person can act on;
//! malformed input is a precise 4xx, never a 500.

mod access;
mod audit;
mod audit_scope;
mod authz;
mod caller;
pub mod client_address;
mod cloud_accounts;
mod clusters;
mod deployments;
mod environments;
mod extract;
mod health;
mod launch;
mod maintenance;
mod metrics;
pub mod oidc;
mod openapi;
mod organizations;
mod pagination;
mod placement_routes;
mod placements;
mod problem;
mod request_limits;
mod run_events;
mod runs;
mod secrets;
mod stream_slots;
mod webhook_refusals;
mod webhook_signature;
pub mod webhooks;
mod workload_identity;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use windlass_core::Store;
use windlass_core::live_logs::LiveLogs;
use windlass_workflows::engine::WorkflowEngine;

pub use clusters::{ClusterDetail, ClusterStarted, CreateCluster};
pub use deployments::{DeployRequest, DeploymentStarted};
pub use metrics::{ApiMetrics, metrics_router};
pub use openapi::openapi_document;
pub use problem::Problem;
pub use request_limits::{MAX_HEADER_BYTES, MAX_HEADER_COUNT};
pub use runs::{RunDetail, StartRun, WorkerCapacity};

/// Requests are small JSON documents; anything bigger is a mistake or an attack.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Application (client) id of Windlass's multi-tenant Entra application, whose service
    /// principal the Azure access setup creates in customer tenants.
    pub azure_application_id: String,
    /// Windlass's workload-identity issuer URL (`iss` of the assertions workers present
    /// to Entra ID); its discovery document and keys are served under `/.well-known/`.
    pub workload_identity_issuer: String,
    /// Proxies whose `X-Forwarded-For` names the client in audit entries.
    pub trusted_proxies: client_address::TrustedProxies,
    /// Unfinished runs an organisation may have; a start beyond it is a 429 with
    /// Retry-After, so a burst waits at the door instead of in every queue.
    pub runs_in_flight_per_organization: u32,
}

/// [`ApiConfig::runs_in_flight_per_organization`] unless configured.
pub const DEFAULT_RUNS_IN_FLIGHT_PER_ORGANIZATION: u32 = 200;

/// How callers prove who they are. API tokens need no configuration; people sign in with
/// Windlass's own OIDC issuers (none configured: no platform sign-in), or with an
/// organisation's own connections on that organisation's routes.
#[derive(Default)]
pub struct Authentication {
    pub oidc: oidc::OidcVerifier,
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// Temporal (`windlass_workflows::engine::Engine`) except in router tests, which run
    /// without a server.
    pub engine: Arc<dyn WorkflowEngine>,
    pub config: Arc<ApiConfig>,
    pub auth: Arc<Authentication>,
    /// Seals secrets written through the API and opens webhook signing keys.
    pub keys: Arc<windlass_core::keys::KeyRing>,
    /// Live step logs for `GET .../runs/{id}/events`: the same fan-out the workers publish
    /// to (in-process in `windlass dev`, Redis in production).
    pub live_logs: LiveLogs,
}

/// The API with `/metrics` on the same listener.
pub fn router(state: AppState) -> Router {
    router_with_metrics(state, ApiMetrics::new(), MetricsExposure::OnApiListener)
}

/// Where `/metrics` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsExposure {
    OnApiListener,
    /// On a listener of its own ([`metrics_router`] with the same `ApiMetrics`), so the
    /// API's public address does not expose it.
    Separate,
}

/// The API, counting into `metrics`.
pub fn router_with_metrics(
    state: AppState,
    metrics: ApiMetrics,
    exposure: MetricsExposure,
) -> Router {
    let (router, api) = api_routes().split_for_parts();
    let api = Arc::new(api);
    let scrape = metrics.clone();
    let webhook_refusals = webhook_refusals::WebhookRefusals::new(metrics.clone());
    let router = router
        .merge(placement_routes::routes())
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let api = api.clone();
                async move { axum::Json(api.as_ref().clone()) }
            }),
        )
        .merge(workload_identity::routes());
    let router = match exposure {
        MetricsExposure::OnApiListener => router.route(
            "/metrics",
            axum::routing::get(move || metrics::serve(axum::extract::State(scrape.clone()))),
        ),
        MetricsExposure::Separate => router,
    };
    router
        .route_layer(axum::middleware::from_fn(metrics::name_route))
        .layer(axum::Extension(webhook_refusals))
        .layer(axum::Extension(stream_slots::StreamSlots::new()))
        .fallback(problem::unknown_route)
        .method_not_allowed_fallback(problem::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authz::authenticate,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(request_limits::limit_headers))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::track,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Every documented route; `/openapi.json` is generated from exactly this list.
pub(crate) fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .merge(health::routes())
        .merge(organizations::routes())
        .merge(cloud_accounts::routes())
        .merge(clusters::routes())
        .merge(placements::routes())
        .merge(maintenance::routes())
        .merge(environments::routes())
        .merge(deployments::routes())
        .merge(webhooks::routes())
        .merge(secrets::routes())
        .merge(runs::routes())
        .merge(run_events::routes())
        .merge(audit::routes())
        .merge(access::routes())
}
