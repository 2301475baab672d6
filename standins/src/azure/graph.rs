//! Microsoft Graph v1.0 stand-in: service principals only, in the caller's tenant.
//!
//! Graph authorises by application permission: reading service principals needs
//! `Application.Read.All` (or `.ReadWrite.All`), creating and deleting them
//! `Application.ReadWrite.All`, which the customer grants their setup identity alone.

use axum::{
    http::{Method, StatusCode},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use serde_json::{Value, json};

use super::{
    Shared,
    reply::{graph_error, json},
    state::{IssuedToken, ServicePrincipal},
};

const READ_WRITE: &str = "Application.ReadWrite.All";
const READ: &str = "Application.Read.All";

fn permitted(shared: &Shared, caller: &IssuedToken, write: bool) -> Result<(), Response> {
    let granted = shared.with_state(|s| {
        s.service_principals
            .get(&caller.object_id)
            .map(|sp| sp.graph_permissions.clone())
            .unwrap_or_default()
    });
    let ok = granted
        .iter()
        .any(|p| p == READ_WRITE || (!write && p == READ));
    if ok {
        Ok(())
    } else {
        Err(graph_error(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        ))
    }
}

pub(crate) fn handle(
    shared: &Shared,
    caller: &IssuedToken,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Response {
    if let Err(refused) = permitted(shared, caller, *method != Method::GET) {
        return refused;
    }
    let tenant = caller.tenant_id.as_str();
    let rest = path.trim_start_matches("/v1.0/");
    let by_app_id = rest
        .strip_prefix("servicePrincipals(appId='")
        .and_then(|r| r.strip_suffix("')"));
    match (method, rest, by_app_id) {
        (&Method::POST, "servicePrincipals", _) => create(shared, tenant, body),
        (&Method::GET, _, Some(app_id)) => {
            let found = shared.with_state(|s| {
                s.service_principal_in(tenant, app_id)
                    .filter(|sp| s.settled(&format!("/serviceprincipals/{}", sp.id)))
                    .cloned()
            });
            match found {
                Some(sp) => json(StatusCode::OK, sp_json(&sp)),
                None => not_found(app_id),
            }
        }
        (_, _, None) if rest.starts_with("servicePrincipals/") => {
            let id = rest.trim_start_matches("servicePrincipals/");
            by_object_id(shared, tenant, method, id)
        }
        _ => graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Resource not found for the segment '{rest}' (Windlass Graph stand-in)."),
        ),
    }
}

fn sp_json(sp: &ServicePrincipal) -> Value {
    json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#servicePrincipals/$entity",
        "id": sp.id,
        "appId": sp.app_id,
        "displayName": sp.display_name,
        "accountEnabled": true,
        "servicePrincipalType": "Application",
        "servicePrincipalNames": [sp.app_id],
    })
}

fn not_found(what: &str) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        format!(
            "Resource '{what}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

fn create(shared: &Shared, tenant: &str, body: &[u8]) -> Response {
    let body: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Unable to read JSON request payload.",
            );
        }
    };
    let Some(app_id) = body["appId"]
        .as_str()
        .filter(|a| uuid::Uuid::parse_str(a).is_ok())
    else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "Invalid value specified for property 'appId' of resource 'ServicePrincipal'.",
        );
    };
    let display_name = body["displayName"].as_str().unwrap_or(app_id).to_string();
    shared.mutate(|s| {
        // Real Graph: the appId is a service principal name, unique per tenant.
        if s.service_principal_in(tenant, app_id).is_some() {
            return graph_error(
                StatusCode::CONFLICT,
                "Request_MultipleObjectsWithSameKeyValue",
                format!("The service principal cannot be created, updated, or restored because the service principal name {app_id} is already in use."),
            );
        }
        let sp = ServicePrincipal {
            id: uuid::Uuid::new_v4().to_string(),
            tenant_id: tenant.to_owned(),
            app_id: app_id.to_ascii_lowercase(),
            display_name,
            created_at: Utc::now(),
            graph_permissions: Vec::new(),
        };
        let key = format!("/serviceprincipals/{}", sp.id);
        s.service_principals.insert(sp.id.clone(), sp.clone());
        s.record_creation(&key);
        // Reads go to replicas that learn of it later (read-after-write lag).
        let lag = s.faults.graph_lag_ms;
        s.settle_after(&key, lag);
        json(StatusCode::CREATED, sp_json(&sp))
    })
}

fn by_object_id(shared: &Shared, tenant: &str, method: &Method, id: &str) -> Response {
    let in_tenant = |s: &super::state::State| {
        s.service_principals
            .get(id)
            .filter(|sp| sp.tenant_id.eq_ignore_ascii_case(tenant))
            .cloned()
    };
    match *method {
        Method::GET => match shared.with_state(|s| in_tenant(s)) {
            Some(sp) => json(StatusCode::OK, sp_json(&sp)),
            None => not_found(id),
        },
        Method::DELETE => shared.mutate(|s| match in_tenant(s) {
            Some(_) => {
                s.service_principals.remove(id);
                s.record_deletion(&format!("/serviceprincipals/{id}"));
                StatusCode::NO_CONTENT.into_response()
            }
            None => not_found(id),
        }),
        _ => graph_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            "Method not supported by the Windlass Graph stand-in.",
        ),
    }
}
