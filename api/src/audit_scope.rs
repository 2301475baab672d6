//! Fills an audit entry's cluster, project, environment and service from what it names, so
//! a customer can investigate from any of those standpoints (the audit route's filters).
//! Looked up here, once, rather than passed by every route: a route names its resource
//! (`environment:<id>`) and the scope follows from the records.

use uuid::Uuid;
use windlass_core::audit::NewAuditEntry;

use crate::AppState;

pub(crate) async fn fill(state: &AppState, entry: &mut NewAuditEntry) {
    let Some(organization_id) = entry.organization_id else {
        return;
    };
    let named = entry
        .resource
        .split_once(':')
        .and_then(|(kind, id)| Some((kind.to_owned(), id.parse::<Uuid>().ok()?)));
    let mut environment_id = entry
        .details
        .get("environment_id")
        .and_then(|e| e.as_str())
        .and_then(|e| e.parse::<Uuid>().ok());
    match named {
        Some((kind, id)) if kind == "cluster" => entry.cluster_id = Some(id),
        Some((kind, id)) if kind == "project" => entry.project_id = Some(id),
        Some((kind, id)) if kind == "environment" => environment_id = Some(id),
        _ => {}
    }
    if let Some(id) = environment_id {
        // An unknown environment (a refused request naming a made-up id) just has no
        // scope; the entry is written all the same.
        if let Ok(environment) = state.store.environment(organization_id, id).await {
            entry.project_id = Some(environment.project_id);
            entry.cluster_id = Some(environment.cluster_id);
            entry.environment = Some(environment.environment_type);
        }
    }
    if entry.service.is_none()
        && let Some(service) = entry.details.get("service").and_then(|s| s.as_str())
    {
        entry.service = Some(service.to_owned());
    }
    if entry.cluster_id.is_none()
        && let Some(cluster) = entry
            .details
            .get("cluster_id")
            .and_then(|c| c.as_str())
            .and_then(|c| c.parse().ok())
    {
        entry.cluster_id = Some(cluster);
    }
}
