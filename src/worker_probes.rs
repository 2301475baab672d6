//! A worker's health and metrics endpoints, for orchestrators and Prometheus. No auth: they
//! say nothing about customers, and are bound where the operator chooses (a pod port).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use windlass_workers::WorkerMetrics;
use windlass_workflows::engine::Engine;

/// How long readiness waits for Temporal before calling it unreachable.
const TEMPORAL_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Probe {
    pub metrics: Arc<WorkerMetrics>,
    pub engine: Engine,
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    probe: Probe,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { (StatusCode::OK, "ok\n") }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(probe);
    tracing::info!(listen = %listener.local_addr()?, "worker health and metrics serving");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// 200 while every queue is polled and Temporal answers; 503 while draining (from the
/// signal on), when a queue's worker stopped, or when Temporal is unreachable.
async fn ready(State(probe): State<Probe>) -> (StatusCode, String) {
    let unavailable = |why: &str| (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n"));
    if probe.metrics.is_draining() {
        return unavailable("draining");
    }
    if !probe.metrics.all_queues_polling() {
        return unavailable("not polling every task queue");
    }
    match tokio::time::timeout(TEMPORAL_PROBE_TIMEOUT, probe.engine.ping()).await {
        Ok(Ok(())) if !probe.metrics.is_draining() => (StatusCode::OK, "ready\n".into()),
        Ok(Ok(())) => unavailable("draining"),
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness: Temporal unreachable");
            unavailable("Temporal unreachable")
        }
        Err(_) => unavailable("Temporal did not answer"),
    }
}

async fn metrics(State(probe): State<Probe>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        probe.metrics.encode(),
    )
}
