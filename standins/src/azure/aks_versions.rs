//! `GET .../providers/Microsoft.ContainerService/locations/{location}/kubernetesVersions`:
//! the Kubernetes versions AKS offers in a region, in the ARM response shape.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::{Shared, reply::json};

/// What the stand-in offers when a test sets nothing else.
pub(crate) fn default_versions() -> Vec<String> {
    ["1.31", "1.32", "1.33", "1.34"]
        .into_iter()
        .map(str::to_owned)
        .collect()
}

pub(crate) fn list(shared: &Shared, location: &str) -> Response {
    let versions = shared.with_state(|s| {
        s.kubernetes_versions
            .get(&location.to_ascii_lowercase())
            .cloned()
            .unwrap_or_else(default_versions)
    });
    let values: Vec<Value> = versions
        .iter()
        .enumerate()
        .map(|(i, minor)| {
            let patch = format!("{minor}.{}", 3 + i);
            let upgrades: Vec<String> = versions[i + 1..]
                .iter()
                .take(1)
                .map(|next| format!("{next}.0"))
                .collect();
            json!({
                "version": minor,
                "isPreview": false,
                "capabilities": {"supportPlan": ["KubernetesOfficial"]},
                "patchVersions": { patch: {"upgrades": upgrades} },
            })
        })
        .collect();
    json(StatusCode::OK, json!({ "values": values }))
}
