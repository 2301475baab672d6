//! Failures a real API server gives now and then, injected through the settings:
//! throttling (`429` with `Retry-After`, API Priority and Fairness), transient `500`s,
//! and admission webhooks whose pods are not serving yet.

use std::time::{Duration, Instant};

use axum::http::Method;
use serde_json::Value;

use super::registry::ResourceType;
use super::store::{ApiError, Store};

/// An admission webhook configuration and when its webhook starts answering.
#[derive(Debug, Clone)]
pub struct PendingWebhook {
    pub name: String,
    /// The first webhook's name, which the error names.
    pub webhook: String,
    /// The API groups its rules cover (`*`: all).
    pub groups: Vec<String>,
    pub service: String,
    pub ready_at: Instant,
}

/// Notes a newly created webhook configuration, if webhooks start late.
pub fn webhook_created(store: &mut Store, rt: &ResourceType, obj: &Value) {
    let delay = store.settings.webhook_not_ready_ms;
    if delay == 0
        || rt.group != "admissionregistration.k8s.io"
        || !rt.resource.ends_with("webhookconfigurations")
    {
        return;
    }
    let hooks = obj["webhooks"].as_array().cloned().unwrap_or_default();
    let Some(first) = hooks.first() else { return };
    let groups = hooks
        .iter()
        .flat_map(|h| h["rules"].as_array().cloned().unwrap_or_default())
        .flat_map(|r| r["apiGroups"].as_array().cloned().unwrap_or_default())
        .filter_map(|g| g.as_str().map(String::from))
        .collect();
    let svc = &first["clientConfig"]["service"];
    let service = match (svc["name"].as_str(), svc["namespace"].as_str()) {
        (Some(name), Some(ns)) => {
            format!("{name}.{ns}.svc:{}", svc["port"].as_u64().unwrap_or(443))
        }
        _ => first["clientConfig"]["url"]
            .as_str()
            .unwrap_or("webhook")
            .to_string(),
    };
    store.pending_webhooks.push(PendingWebhook {
        name: obj["metadata"]["name"].as_str().unwrap_or_default().into(),
        webhook: first["name"].as_str().unwrap_or_default().into(),
        groups,
        service,
        ready_at: Instant::now() + Duration::from_millis(delay),
    });
}

/// The injected failure for this request, if any (counting it down).
pub fn injected(store: &mut Store, method: &Method, rt: &ResourceType) -> Option<ApiError> {
    if store.settings.throttle_next > 0 {
        store.settings.throttle_next -= 1;
        let mut e = ApiError::new(
            429,
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later",
        );
        e.retry_after = Some(store.settings.retry_after_seconds);
        return Some(e);
    }
    if store.settings.fail_next > 0 {
        store.settings.fail_next -= 1;
        return Some(ApiError::new(
            500,
            "InternalError",
            "Internal error occurred: etcdserver: request timed out",
        ));
    }
    let writes = matches!(*method, Method::POST | Method::PUT | Method::PATCH);
    let now = Instant::now();
    store.pending_webhooks.retain(|w| w.ready_at > now);
    if !writes {
        return None;
    }
    let hook = store
        .pending_webhooks
        .iter()
        .find(|w| w.groups.iter().any(|g| g == "*" || *g == rt.group))?;
    Some(ApiError::new(
        500,
        "InternalError",
        format!(
            "Internal error occurred: failed calling webhook \"{}\": failed to call webhook: Post \"https://{}/validate?timeout=10s\": dial tcp: connect: connection refused",
            hook.webhook, hook.service
        ),
    ))
}
