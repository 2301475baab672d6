//! The API's Prometheus metrics: requests by method, matched route and status, their
//! latency, and how many are in flight. Served at `/metrics`, outside the OpenAPI document
//! (it is for the operator's scraper, not for API clients) and without authentication, on
//! the API's listener or on a listener of its own (`windlass serve --metrics-listen`).
//!
//! Every label comes from a closed set: methods are the standard ones or `other`, routes
//! are route templates or `unmatched`, statuses are three digits. Nothing a caller sends
//! becomes a label value.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Requests the router did not match (or refused before routing, such as a missing token)
/// share one label value, so a scan of random paths cannot grow the label set.
const UNMATCHED: &str = "unmatched";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookRefusalLabels {
    /// One of `webhook_signature::Refusal`'s labels: a closed set.
    reason: String,
}

/// The route template a request matched, handed from the inner (per-route) layer to the
/// outer one through the response.
#[derive(Clone)]
struct MatchedRoute(String);

#[derive(Clone)]
pub struct ApiMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RequestLabels, Histogram, fn() -> Histogram>,
    in_flight: Gauge,
    webhook_refusals: Family<WebhookRefusalLabels, Counter>,
    webhook_rate_limited: Counter,
}

impl ApiMetrics {
    pub fn new() -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        // 1 ms to ~16 s: most calls are a few ms; a run start waits on Temporal.
        let duration: Family<RequestLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 15)));
        let in_flight = Gauge::default();
        let mut registry = Registry::with_prefix("windlass_api");
        registry.register("requests", "HTTP requests answered", requests.clone());
        registry.register(
            "request_duration_seconds",
            "Time to answer HTTP requests",
            duration.clone(),
        );
        registry.register(
            "requests_in_flight",
            "HTTP requests being answered",
            in_flight.clone(),
        );
        let webhook_refusals = Family::<WebhookRefusalLabels, Counter>::default();
        registry.register(
            "webhook_refusals",
            "Webhook calls refused before authentication, by reason",
            webhook_refusals.clone(),
        );
        let webhook_rate_limited = Counter::default();
        registry.register(
            "webhook_rate_limited",
            "Webhook calls answered 429 because their environment used up its refusals",
            webhook_rate_limited.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry: Mutex::new(registry),
                requests,
                duration,
                in_flight,
                webhook_refusals,
                webhook_rate_limited,
            }),
        }
    }

    pub(crate) fn count_webhook_refusal(&self, reason: &'static str) {
        self.inner
            .webhook_refusals
            .get_or_create(&WebhookRefusalLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub(crate) fn count_webhook_rate_limited(&self) {
        self.inner.webhook_rate_limited.inc();
    }

    pub fn encode(&self) -> String {
        let mut text = String::new();
        let registry = self
            .inner
            .registry
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Outer layer: counts every request, whatever answered it.
pub(crate) async fn track(
    State(metrics): State<ApiMetrics>,
    request: Request,
    next: Next,
) -> Response {
    let method = method_label(request.method()).to_owned();
    let began = Instant::now();
    metrics.inner.in_flight.inc();
    let response = next.run(request).await;
    metrics.inner.in_flight.dec();
    let labels = RequestLabels {
        method,
        route: response
            .extensions()
            .get::<MatchedRoute>()
            .map(|r| r.0.clone())
            .unwrap_or_else(|| UNMATCHED.to_owned()),
        status: response.status().as_u16(),
    };
    metrics.inner.requests.get_or_create(&labels).inc();
    metrics
        .inner
        .duration
        .get_or_create(&labels)
        .observe(began.elapsed().as_secs_f64());
    response
}

/// The method as a label: the standard methods by name, anything else `other`, so a scan
/// with invented methods cannot grow the label set (each one was a new series).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Inner (route) layer: names the matched route template on the response.
pub(crate) async fn name_route(
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    if let Some(matched) = matched {
        response
            .extensions_mut()
            .insert(MatchedRoute(matched.as_str().to_owned()));
    }
    response
}

/// A router serving only `/metrics`, for a listener of its own.
pub fn metrics_router(metrics: ApiMetrics) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || serve(State(metrics.clone()))),
    )
}

pub(crate) async fn serve(State(metrics): State<ApiMetrics>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        for invented in ["XYZZY", "get", "PROPFIND", "BREW"] {
            assert_eq!(
                method_label(&Method::from_bytes(invented.as_bytes()).unwrap()),
                "other"
            );
        }
    }

    #[tokio::test]
    async fn metrics_can_be_served_on_a_router_of_their_own() {
        let metrics = ApiMetrics::new();
        metrics.count_webhook_rate_limited();
        let response = metrics_router(metrics)
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            text.contains("windlass_api_webhook_rate_limited_total 1"),
            "{text}"
        );
    }
}
