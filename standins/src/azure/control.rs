//! `/_standin/...`: test-only control and inspection API. Not part of any
//! Azure protocol; unauthenticated because it only listens on loopback.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

use super::{
    Shared,
    state::{
        Application, BusyRule, DenyPolicy, Faults, FaultsPatch, Lock, ServicePrincipal,
        State as StandInState,
    },
};

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/faults", get(get_faults).post(set_faults))
        .route("/reset", post(reset))
        .route("/state", get(state))
        .route("/state/{section}", get(section))
        .route("/writes", get(writes))
        .route("/applications", post(post_application))
        .route("/role-assignments", post(post_role_assignment))
        .route("/locks", post(post_lock))
        .route("/deny-policies", post(post_deny_policy))
        .route("/busy", post(post_busy))
        .route("/taken-storage-account-names", post(post_taken_name))
        .route(
            "/tenants/{tenant}/enterprise-applications/{app_id}",
            axum::routing::delete(delete_enterprise_application),
        )
}

/// `POST /_standin/locks`: a management lock on a scope.
async fn post_lock(State(shared): State<Shared>, Json(lock): Json<Lock>) -> StatusCode {
    shared.mutate(|s| s.locks.push(lock));
    StatusCode::NO_CONTENT
}

/// `POST /_standin/deny-policies`: a policy assignment denying matching actions.
async fn post_deny_policy(
    State(shared): State<Shared>,
    Json(policy): Json<DenyPolicy>,
) -> StatusCode {
    shared.mutate(|s| s.deny_policies.push(policy));
    StatusCode::NO_CONTENT
}

/// `POST /_standin/busy`: the next matching requests answer `409 AnotherOperationInProgress`.
async fn post_busy(State(shared): State<Shared>, Json(mut rule): Json<BusyRule>) -> StatusCode {
    rule.method = rule.method.to_ascii_uppercase();
    rule.path_contains = rule.path_contains.to_ascii_lowercase();
    shared.mutate(|s| s.busy.push(rule));
    StatusCode::NO_CONTENT
}

#[derive(serde::Deserialize)]
struct TakenName {
    name: String,
}

/// `POST /_standin/taken-storage-account-names`: another customer owns this name.
async fn post_taken_name(State(shared): State<Shared>, Json(taken): Json<TakenName>) -> StatusCode {
    shared.mutate(|s| {
        s.taken_storage_account_names
            .push(taken.name.to_ascii_lowercase())
    });
    StatusCode::NO_CONTENT
}

/// `DELETE /_standin/tenants/{tenant}/enterprise-applications/{app_id}`: the customer
/// deletes the enterprise application; its role assignments stay, orphaned.
async fn delete_enterprise_application(
    State(shared): State<Shared>,
    Path((tenant, app_id)): Path<(String, String)>,
) -> StatusCode {
    let removed = shared.mutate(|s| delete_enterprise_application_in(s, &tenant, &app_id));
    if removed.is_some() {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

/// `POST /_standin/applications`: an app registration, its federated credentials and its
/// service principal in its home tenant (what a tenant administrator sets up).
#[derive(serde::Deserialize)]
struct ApplicationSeed {
    #[serde(flatten)]
    application: Application,
    #[serde(default)]
    graph_permissions: Vec<String>,
}

async fn post_application(
    State(shared): State<Shared>,
    Json(seed): Json<ApplicationSeed>,
) -> Json<Value> {
    let permissions: Vec<&str> = seed.graph_permissions.iter().map(String::as_str).collect();
    let object_id = shared.mutate(|s| register_application(s, seed.application, &permissions));
    Json(json!({ "object_id": object_id }))
}

#[derive(serde::Deserialize)]
struct RoleAssignmentSeed {
    scope: String,
    role_definition_id: String,
    principal_id: String,
}

async fn post_role_assignment(
    State(shared): State<Shared>,
    Json(seed): Json<RoleAssignmentSeed>,
) -> StatusCode {
    shared.mutate(|s| assign_role(s, &seed.scope, &seed.role_definition_id, &seed.principal_id));
    StatusCode::NO_CONTENT
}

pub(crate) fn delete_enterprise_application_in(
    s: &mut StandInState,
    tenant: &str,
    app_id: &str,
) -> Option<String> {
    let id = s.service_principal_in(tenant, app_id)?.id.clone();
    s.service_principals.remove(&id);
    s.record_deletion(&format!("/serviceprincipals/{id}"));
    Some(id)
}

pub(crate) fn seed_service_principal(
    s: &mut StandInState,
    tenant: &str,
    app_id: &str,
    graph_permissions: &[&str],
) -> String {
    if let Some(existing) = s.service_principal_in(tenant, app_id).cloned() {
        let sp = s
            .service_principals
            .get_mut(&existing.id)
            .expect("just found");
        for permission in graph_permissions {
            if !sp.graph_permissions.iter().any(|p| p == permission) {
                sp.graph_permissions.push((*permission).to_owned());
            }
        }
        return existing.id;
    }
    let id = uuid::Uuid::new_v4().to_string();
    s.service_principals.insert(
        id.clone(),
        ServicePrincipal {
            id: id.clone(),
            tenant_id: tenant.to_ascii_lowercase(),
            app_id: app_id.to_ascii_lowercase(),
            display_name: app_id.to_string(),
            created_at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
            graph_permissions: graph_permissions.iter().map(|p| (*p).to_owned()).collect(),
        },
    );
    id
}

pub(crate) fn register_application(
    s: &mut StandInState,
    application: Application,
    graph_permissions: &[&str],
) -> String {
    let key = format!("{}/{}", application.home_tenant, application.app_id).to_ascii_lowercase();
    let (tenant, app_id) = (application.home_tenant.clone(), application.app_id.clone());
    s.applications.insert(key, application);
    seed_service_principal(s, &tenant, &app_id, graph_permissions)
}

pub(crate) fn assign_role(
    s: &mut StandInState,
    scope: &str,
    role_definition_id: &str,
    principal_id: &str,
) {
    let name = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("{scope}|{role_definition_id}|{principal_id}")
            .to_ascii_lowercase()
            .as_bytes(),
    )
    .to_string();
    let doc = super::authorization::assignment_doc(&name, scope, role_definition_id, principal_id);
    let key = doc["id"].as_str().unwrap_or_default().to_ascii_lowercase();
    s.role_assignments.entry(key).or_insert(doc);
}

async fn get_faults(State(shared): State<Shared>) -> Json<Faults> {
    Json(shared.with_state(|s| s.faults.clone()))
}

async fn set_faults(State(shared): State<Shared>, Json(patch): Json<FaultsPatch>) -> Json<Faults> {
    Json(shared.mutate(|s| {
        s.faults.apply(patch);
        s.faults.clone()
    }))
}

async fn reset(State(shared): State<Shared>) -> StatusCode {
    shared.mutate(|s| *s = StandInState::default());
    StatusCode::NO_CONTENT
}

async fn state(State(shared): State<Shared>) -> Json<StandInState> {
    Json(shared.snapshot())
}

async fn section(State(shared): State<Shared>, Path(section): Path<String>) -> Response {
    let full = serde_json::to_value(shared.snapshot()).unwrap_or(Value::Null);
    let key = section.replace('-', "_");
    match full.get(&key) {
        Some(v) => Json(v.clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("unknown section '{section}'")})),
        )
            .into_response(),
    }
}

async fn writes(State(shared): State<Shared>) -> Response {
    Json(shared.with_state(|s| s.writes.clone())).into_response()
}
