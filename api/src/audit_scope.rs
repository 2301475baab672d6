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
    let environment_id = fill_named(entry);
    if let Some(id) = environment_id {
        // An unknown environment (a refused request naming a made-up id) just has no
        // scope; the entry is written all the same.
        if let Ok(environment) = state.store.environment(organization_id, id).await {
            entry.project_id = Some(environment.project_id);
            entry.cluster_id = Some(environment.cluster_id);
            entry.environment = Some(environment.environment_type);
        }
    }
}

/// The part of the scope an entry names itself (its resource, `cluster_id`, `project_id`,
/// `service` in its details), with no lookup; returns the environment it names, if any.
pub(crate) fn fill_named(entry: &mut NewAuditEntry) -> Option<Uuid> {
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
    if entry.project_id.is_none()
        && let Some(project) = entry
            .details
            .get("project_id")
            .and_then(|c| c.as_str())
            .and_then(|c| c.parse().ok())
    {
        entry.project_id = Some(project);
    }
    environment_id
}
