//! ARM stand-in: resource providers, role definitions, role assignments,
//! resource groups and long-running operation monitors.
//!
//! Paths are matched case-insensitively, as ARM does.

use axum::{
    http::{Method, StatusCode},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use serde_json::{Value, json};

use super::{
    Shared,
    arm_common::{async_url, location_url, method_not_allowed, new_operation, parse_body, rg_key},
    reply::{arm_error, json, with_headers},
    state::{LroMode, Operation, Provider, State},
};

const AUTHZ: &str = "providers/microsoft.authorization/";

/// Microsoft.Resources versions served: Windlass's client's and the Azure SDK for
/// Python's (azure-mgmt-resource 26), whose shapes agree for what is served here.
const RESOURCES_API_VERSIONS: &[&str] = &["2021-04-01", "2024-11-01", "2025-04-01"];
/// Microsoft.Storage versions served: Windlass's client's and azure-mgmt-storage 25's.
const STORAGE_API_VERSIONS: &[&str] = &["2023-05-01", "2024-01-01", "2025-06-01", "2026-09-01"];

pub(crate) fn handle(
    shared: &Shared,
    method: &Method,
    path: &str,
    api_version: Option<&str>,
    body: &[u8],
) -> Response {
    let trimmed = path.trim_matches('/');
    let lower = trimmed.to_ascii_lowercase();
    let segs: Vec<&str> = trimmed.split('/').collect();
    let lsegs: Vec<&str> = lower.split('/').collect();

    let Some(api_version) = api_version else {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    };

    if let Some(pos) = lower.find(&format!("/{AUTHZ}roledefinitions/")) {
        let id = trimmed[lower.rfind('/').unwrap_or(0) + 1..].to_string();
        let scope = &trimmed[..pos];
        return versioned(api_version, &["2022-04-01"], || {
            role_definition(shared, method, scope, &id, body)
        });
    }
    if let Some(pos) = lower.find(&format!("/{AUTHZ}roleassignments/")) {
        let id = trimmed[lower.rfind('/').unwrap_or(0) + 1..].to_string();
        let scope = format!("/{}", &trimmed[..pos]);
        return versioned(api_version, &["2022-04-01"], || {
            role_assignment(shared, method, &scope, &id, body)
        });
    }

    match (method, lsegs.as_slice()) {
        (
            &Method::GET,
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.resources",
                "operationstatuses",
                op,
            ],
        ) => async_operation_status(shared, segs[1], op),
        (&Method::GET, ["subscriptions", _, "operationresults", op]) => {
            location_status(shared, segs[1], op)
        }
        (
            &Method::GET,
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.containerservice",
                "locations",
                _,
                "kubernetesversions",
            ],
        ) => versioned(api_version, &["2024-09-01", "2025-01-01"], || {
            super::aks_versions::list(shared, segs[5])
        }),
        (&Method::GET, ["subscriptions", _, "providers", _]) => {
            versioned(api_version, RESOURCES_API_VERSIONS, || {
                read_provider(shared, segs[1], segs[3])
            })
        }
        (
            &Method::POST,
            [
                "subscriptions",
                _,
                "providers",
                _,
                action @ ("register" | "unregister"),
            ],
        ) => {
            let register = *action == "register";
            versioned(api_version, RESOURCES_API_VERSIONS, || {
                register_provider(shared, segs[1], segs[3], register)
            })
        }
        // Blob containers through ARM (the terraform provider stand-in's route to them).
        (
            _,
            [
                "subscriptions",
                _,
                "resourcegroups",
                _,
                "providers",
                "microsoft.storage",
                "storageaccounts",
                _,
                "blobservices",
                "default",
                "containers",
                _,
            ],
        ) => versioned(api_version, &["2023-05-01", "2024-01-01"], || {
            super::generic::handle(shared, method, &segs, body)
        }),
        (
            _,
            [
                "subscriptions",
                _,
                "resourcegroups",
                _,
                "providers",
                "microsoft.storage",
                "storageaccounts",
                _,
                ..,
            ],
        ) => versioned(api_version, STORAGE_API_VERSIONS, || {
            super::storage::handle(shared, method, &segs, body)
        }),
        (_, ["subscriptions", _, "resourcegroups", _]) => {
            versioned(api_version, RESOURCES_API_VERSIONS, || {
                resource_group(shared, method, segs[1], segs[3], body)
            })
        }
        (
            &Method::POST,
            [
                "subscriptions",
                _,
                "resourcegroups",
                _,
                "providers",
                "microsoft.containerservice",
                "managedclusters",
                _,
                "listclusteradmincredential" | "listclusterusercredential",
            ],
        ) => super::generic::cluster_credentials(shared, &segs),
        // Any other resource in a resource group: kept as a document (generic.rs).
        (
            _,
            [
                "subscriptions",
                _,
                "resourcegroups",
                _,
                "providers",
                _,
                _,
                _,
                rest @ ..,
            ],
        ) if rest.len() % 2 == 0 => super::generic::handle(shared, method, &segs, body),
        _ => arm_error(
            StatusCode::NOT_FOUND,
            "InvalidResourceType",
            format!("The Windlass ARM stand-in does not implement {method} /{trimmed}."),
        ),
    }
}

fn versioned(api_version: &str, supported: &[&str], f: impl FnOnce() -> Response) -> Response {
    if supported.contains(&api_version) {
        f()
    } else {
        arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidApiVersionParameter",
            format!(
                "The api-version '{api_version}' is invalid. The supported versions are '{}'.",
                supported.join(",")
            ),
        )
    }
}

// ---------------------------------------------------------------- providers

fn provider_json(p: &Provider) -> Value {
    json!({
        "id": format!("/subscriptions/{}/providers/{}", p.subscription_id, p.namespace),
        "namespace": p.namespace,
        "registrationState": p.registration_state,
        "registrationPolicy": "RegistrationRequired",
        "resourceTypes": [],
    })
}

/// Moves a provider past a pending transition whose time has come.
fn settle(p: &mut Provider) {
    if p.settles_at.is_some_and(|t| t <= Utc::now()) {
        p.settles_at = None;
        p.registration_state = match p.registration_state.as_str() {
            "Registering" => "Registered",
            "Unregistering" => "NotRegistered",
            other => other,
        }
        .to_string();
    }
}

fn provider_key(sub: &str, ns: &str) -> String {
    format!("/subscriptions/{sub}/providers/{ns}").to_ascii_lowercase()
}

fn read_provider(shared: &Shared, sub: &str, ns: &str) -> Response {
    let key = provider_key(sub, ns);
    let p = shared.with_state(|s| {
        let p = s.providers.entry(key).or_insert_with(|| Provider {
            subscription_id: sub.to_string(),
            namespace: ns.to_string(),
            registration_state: "NotRegistered".to_string(),
            settles_at: None,
        });
        settle(p);
        p.clone()
    });
    json(StatusCode::OK, provider_json(&p))
}

fn register_provider(shared: &Shared, sub: &str, ns: &str, register: bool) -> Response {
    let key = provider_key(sub, ns);
    let p = shared.mutate(|s| {
        let delay = chrono::Duration::milliseconds(s.faults.provider_registration_ms as i64);
        let p = s.providers.entry(key.clone()).or_insert_with(|| Provider {
            subscription_id: sub.to_string(),
            namespace: ns.to_string(),
            registration_state: "NotRegistered".to_string(),
            settles_at: None,
        });
        settle(p);
        let (settled, pending) = if register {
            ("Registered", "Registering")
        } else {
            ("NotRegistered", "Unregistering")
        };
        let mut applied = false;
        if p.registration_state != settled && p.registration_state != pending {
            p.registration_state = pending.to_string();
            p.settles_at = Some(Utc::now() + delay);
            applied = true;
        }
        let p = p.clone();
        if applied {
            if register {
                s.record_creation(&key);
            } else {
                s.record_deletion(&key);
            }
        }
        p
    });
    json(StatusCode::OK, provider_json(&p))
}

// --------------------------------------------------------- role definitions

fn role_definition(
    shared: &Shared,
    method: &Method,
    scope: &str,
    id: &str,
    body: &[u8],
) -> Response {
    let full_id = format!("/{scope}/providers/Microsoft.Authorization/roleDefinitions/{id}");
    let key = full_id.to_ascii_lowercase();
    if uuid::Uuid::parse_str(id).is_err() {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidRoleDefinitionId",
            format!(
                "The role definition ID '{id}' is not valid. The role definition ID must be a GUID."
            ),
        );
    }
    match *method {
        // A new custom role is missing from the replicas reads go to for a while.
        Method::GET => match shared.with_state(|s| {
            s.role_definitions
                .get(&key)
                .filter(|_| s.settled(&key))
                .cloned()
        }) {
            Some(v) => json(StatusCode::OK, v),
            None => arm_error(
                StatusCode::NOT_FOUND,
                "RoleDefinitionDoesNotExist",
                format!("The specified role definition with ID '{id}' does not exist."),
            ),
        },
        Method::DELETE => shared.mutate(|s| {
            let in_use = s.role_assignments.values().any(|a| {
                a["properties"]["roleDefinitionId"]
                    .as_str()
                    .is_some_and(|r| r.eq_ignore_ascii_case(&full_id))
            });
            if in_use {
                return arm_error(
                    StatusCode::CONFLICT,
                    "RoleDefinitionHasAssignments",
                    "There are existing role assignments referencing role.",
                );
            }
            match s.role_definitions.remove(&key) {
                Some(v) => {
                    s.record_deletion(&key);
                    json(StatusCode::OK, v)
                }
                None => StatusCode::NO_CONTENT.into_response(),
            }
        }),
        Method::PUT => {
            let body = match parse_body(body) {
                Ok(b) => b,
                Err(r) => return r,
            };
            put_role_definition(shared, &full_id, id, &body)
        }
        _ => method_not_allowed(),
    }
}

fn put_role_definition(shared: &Shared, full_id: &str, id: &str, body: &Value) -> Response {
    let key = full_id.to_ascii_lowercase();
    let props = &body["properties"];
    let role_name = props["roleName"].as_str().unwrap_or_default();
    if role_name.is_empty() {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "RoleDefinitionNameNullOrEmpty",
            "The role definition name cannot be null or empty.",
        );
    }
    let scopes = props["assignableScopes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if scopes.is_empty() {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidAssignableScopes",
            "The role definition must have at least one assignable scope.",
        );
    }
    if !props["permissions"].is_array() {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidRoleDefinitionPermissions",
            "The role definition must contain a permissions array.",
        );
    }
    // Only the fields a caller controls decide whether a PUT changed anything.
    let desired = json!({
        "roleName": role_name,
        "type": "CustomRole",
        "description": props["description"].as_str().unwrap_or_default(),
        "assignableScopes": scopes,
        "permissions": props["permissions"],
    });
    shared.mutate(|s| {
        let clash = s.role_definitions.iter().any(|(k, v)| {
            *k != key
                && v["properties"]["roleName"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(role_name))
        });
        if clash {
            return arm_error(
                StatusCode::CONFLICT,
                "RoleDefinitionWithSameNameExists",
                "A custom role with the same name already exists in this directory. Use a different name.",
            );
        }
        let now = Utc::now().to_rfc3339();
        let existing = s.role_definitions.get(&key).cloned();
        let (status, created_on) = match &existing {
            Some(old) => {
                let old_props = &old["properties"];
                let same = ["roleName", "type", "description", "assignableScopes", "permissions"]
                    .iter()
                    .all(|f| old_props[*f] == desired[*f]);
                if same {
                    return json(StatusCode::OK, old.clone());
                }
                s.record_change(&key);
                (StatusCode::OK, old_props["createdOn"].clone())
            }
            None => {
                s.record_creation(&key);
                let delay = s.faults.role_replication_ms;
                s.settle_after(&key, delay);
                (StatusCode::CREATED, json!(now))
            }
        };
        let mut properties = desired.clone();
        properties["createdOn"] = created_on;
        properties["updatedOn"] = json!(now);
        let doc = json!({
            "id": full_id,
            "name": id,
            "type": "Microsoft.Authorization/roleDefinitions",
            "properties": properties,
        });
        s.role_definitions.insert(key.clone(), doc.clone());
        json(status, doc)
    })
}

// --------------------------------------------------------- role assignments

fn role_assignment(
    shared: &Shared,
    method: &Method,
    scope: &str,
    id: &str,
    body: &[u8],
) -> Response {
    let full_id = format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{id}");
    let key = full_id.to_ascii_lowercase();
    match *method {
        Method::GET => match shared.with_state(|s| s.role_assignments.get(&key).cloned()) {
            Some(v) => json(StatusCode::OK, v),
            None => arm_error(
                StatusCode::NOT_FOUND,
                "RoleAssignmentNotFound",
                format!("The role assignment '{id}' is not found."),
            ),
        },
        Method::DELETE => shared.mutate(|s| match s.role_assignments.remove(&key) {
            Some(v) => {
                s.record_deletion(&key);
                json(StatusCode::OK, v)
            }
            None => StatusCode::NO_CONTENT.into_response(),
        }),
        Method::PUT => {
            let body = match parse_body(body) {
                Ok(b) => b,
                Err(r) => return r,
            };
            put_role_assignment(shared, scope, &full_id, id, &body)
        }
        _ => method_not_allowed(),
    }
}

fn put_role_assignment(
    shared: &Shared,
    scope: &str,
    full_id: &str,
    id: &str,
    body: &Value,
) -> Response {
    let key = full_id.to_ascii_lowercase();
    let props = &body["properties"];
    let role_def = props["roleDefinitionId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let principal = props["principalId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let principal_type = props["principalType"]
        .as_str()
        .unwrap_or("ServicePrincipal")
        .to_string();
    if uuid::Uuid::parse_str(id).is_err() {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidRoleAssignmentId",
            format!(
                "The role assignment ID '{id}' is not valid. The role assignment ID must be a GUID."
            ),
        );
    }
    shared.mutate(|s| {
        let role_uuid = role_def.rsplit('/').next().unwrap_or_default().to_string();
        if !role_definition_exists(s, &role_def) {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "RoleDefinitionDoesNotExist",
                format!("The specified role definition with ID '{role_uuid}' does not exist."),
            );
        }
        // ARM resolves principals through a directory replica that lags
        // Graph; a just-created service principal is invisible for a while.
        let delay = chrono::Duration::milliseconds(s.faults.replication_delay_ms as i64);
        let visible = s
            .service_principals
            .values()
            .any(|sp| sp.id.eq_ignore_ascii_case(&principal) && sp.created_at + delay <= Utc::now());
        if !visible {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "PrincipalNotFound",
                format!(
                    "Principal {} does not exist in the directory. Check that you have the correct principal ID. \
                     If you are creating this principal and then immediately assigning a role, this error might be \
                     related to a replication delay.",
                    principal.replace('-', "")
                ),
            );
        }
        let same_triple = |a: &Value| {
            let p = &a["properties"];
            p["principalId"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(&principal))
                && p["roleDefinitionId"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(&role_def))
                && p["scope"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(scope))
        };
        if let Some(existing) = s.role_assignments.get(&key) {
            if same_triple(existing) {
                return json(StatusCode::OK, existing.clone());
            }
            return arm_error(
                StatusCode::CONFLICT,
                "RoleAssignmentUpdateNotPermitted",
                "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
            );
        }
        if let Some(other) = s.role_assignments.values().find(|a| same_triple(a)) {
            let other_id = other["name"].as_str().unwrap_or_default().replace('-', "");
            return arm_error(
                StatusCode::CONFLICT,
                "RoleAssignmentExists",
                format!("The role assignment already exists. The ID of the existing role assignment is {other_id}."),
            );
        }
        let now = Utc::now().to_rfc3339();
        let doc = json!({
            "id": full_id,
            "name": id,
            "type": "Microsoft.Authorization/roleAssignments",
            "properties": {
                "roleDefinitionId": role_def,
                "principalId": principal,
                "principalType": principal_type,
                "scope": scope,
                "condition": null,
                "conditionVersion": null,
                "createdOn": now,
                "updatedOn": now,
            }
        });
        s.role_assignments.insert(key.clone(), doc.clone());
        s.record_creation(&key);
        let delay = s.faults.assignment_propagation_ms;
        s.settle_after(&key, delay);
        json(StatusCode::CREATED, doc)
    })
}

fn role_definition_exists(s: &State, role_def: &str) -> bool {
    let wanted = role_def.to_ascii_lowercase();
    let wanted_uuid = wanted.rsplit('/').next().unwrap_or_default();
    !wanted_uuid.is_empty()
        && (super::authorization::is_built_in(wanted_uuid)
            || s.role_definitions.keys().any(|k| {
                (*k == wanted || k.rsplit('/').next() == Some(wanted_uuid)) && s.settled(k)
            }))
}

// ---------------------------------------------------------- resource groups

fn resource_group(
    shared: &Shared,
    method: &Method,
    sub: &str,
    name: &str,
    body: &[u8],
) -> Response {
    let key = rg_key(sub, name);
    match *method {
        Method::GET => match shared.with_state(|s| s.resource_groups.get(&key).cloned()) {
            Some(v) => json(StatusCode::OK, v),
            None => rg_not_found(name),
        },
        // "Check existence": 204 or 404 without a body.
        Method::HEAD => match shared.with_state(|s| s.resource_groups.contains_key(&key)) {
            true => StatusCode::NO_CONTENT.into_response(),
            false => StatusCode::NOT_FOUND.into_response(),
        },
        Method::PUT => {
            let body = match parse_body(body) {
                Ok(b) => b,
                Err(r) => return r,
            };
            put_resource_group(shared, sub, name, &body)
        }
        Method::DELETE => delete_resource_group(shared, sub, name),
        _ => method_not_allowed(),
    }
}

fn rg_not_found(name: &str) -> Response {
    arm_error(
        StatusCode::NOT_FOUND,
        "ResourceGroupNotFound",
        format!("Resource group '{name}' could not be found."),
    )
}

fn put_resource_group(shared: &Shared, sub: &str, name: &str, body: &Value) -> Response {
    let key = rg_key(sub, name);
    let Some(location) = body["location"].as_str().filter(|l| !l.is_empty()) else {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "LocationRequired",
            "The location property is required for this definition.",
        );
    };
    let tags = if body["tags"].is_object() {
        body["tags"].clone()
    } else {
        json!({})
    };
    let base = shared.base_url.clone();
    shared.mutate(|s| {
        if let Some(existing) = s.resource_groups.get_mut(&key) {
            if !existing["location"].as_str().is_some_and(|l| l.eq_ignore_ascii_case(location)) {
                return arm_error(
                    StatusCode::CONFLICT,
                    "InvalidResourceGroupLocation",
                    format!("Invalid resource group location '{location}'. The Resource group already exists in location '{}'.", existing["location"].as_str().unwrap_or_default()),
                );
            }
            let changed = existing["tags"] != tags;
            existing["tags"] = tags;
            let doc = existing.clone();
            if changed {
                s.record_change(&key);
            }
            return json(StatusCode::OK, doc);
        }
        let asynchronous = s.faults.lro_mode == LroMode::AzureAsyncOperation;
        let doc = json!({
            "id": format!("/subscriptions/{sub}/resourceGroups/{name}"),
            "name": name,
            "type": "Microsoft.Resources/resourceGroups",
            "location": location,
            "tags": tags,
            "properties": {"provisioningState": if asynchronous { "Accepted" } else { "Succeeded" }},
        });
        s.resource_groups.insert(key.clone(), doc.clone());
        s.record_creation(&key);
        if !asynchronous {
            return json(StatusCode::CREATED, doc);
        }
        let op = new_operation(s, sub, "PUT", &key);
        let retry = s.faults.lro_retry_after_secs;
        let mut headers = vec![("azure-asyncoperation", async_url(&base, &op))];
        if let Some(r) = retry {
            headers.push(("retry-after", r.to_string()));
        }
        with_headers(json(StatusCode::CREATED, doc), &headers)
    })
}

fn delete_resource_group(shared: &Shared, sub: &str, name: &str) -> Response {
    let key = rg_key(sub, name);
    let base = shared.base_url.clone();
    shared.mutate(|s| {
        let Some(rg) = s.resource_groups.get_mut(&key) else {
            return rg_not_found(name);
        };
        rg["properties"]["provisioningState"] = json!("Deleting");
        let op = new_operation(s, sub, "DELETE", &key);
        let mut headers = vec![("location", location_url(&base, &op))];
        if s.faults.lro_mode == LroMode::AzureAsyncOperation {
            headers.push(("azure-asyncoperation", async_url(&base, &op)));
        }
        if let Some(r) = s.faults.lro_retry_after_secs {
            headers.push(("retry-after", r.to_string()));
        }
        with_headers(StatusCode::ACCEPTED.into_response(), &headers)
    })
}

// --------------------------------------------------------------- operations

/// Advances an operation by one poll, applying its effect when it ends.
fn poll(s: &mut State, sub: &str, op_id: &str) -> Option<Operation> {
    let op = s.operations.get_mut(op_id)?;
    if !op.subscription_id.eq_ignore_ascii_case(sub) {
        return None;
    }
    if op.status == "InProgress" {
        // The operation runs on its own clock; polling does not hurry it.
        let running = op.runs_until.is_some_and(|t| t > Utc::now());
        if op.polls_remaining > 0 {
            op.polls_remaining -= 1;
        } else if !running {
            op.status = op.outcome.clone();
            let op = op.clone();
            finish(s, &op);
            return Some(op);
        }
    }
    Some(op.clone())
}

fn finish(s: &mut State, op: &Operation) {
    let succeeded = op.status == "Succeeded";
    match (op.method.as_str(), succeeded) {
        ("DELETE", true) => {
            s.resource_groups.remove(&op.resource_key);
            s.resources.remove(&op.resource_key);
            // A resource group takes what it holds with it.
            let held = format!("{}/", op.resource_key);
            s.resources.retain(|k, _| !k.starts_with(&held));
            s.record_deletion(&op.resource_key);
        }
        ("DELETE", false) => {
            if let Some(rg) = s.resource_groups.get_mut(&op.resource_key) {
                rg["properties"]["provisioningState"] = json!("Succeeded");
            }
        }
        (_, _) => {
            let doc = s
                .resource_groups
                .get_mut(&op.resource_key)
                .or_else(|| s.resources.get_mut(&op.resource_key));
            if let Some(doc) = doc {
                doc["properties"]["provisioningState"] = json!(op.status);
            }
        }
    }
}

fn operation_not_found(op: &str) -> Response {
    arm_error(
        StatusCode::NOT_FOUND,
        "OperationNotFound",
        format!("The operation '{op}' could not be found."),
    )
}

fn async_operation_status(shared: &Shared, sub: &str, op_id: &str) -> Response {
    let base = shared.base_url.clone();
    shared.mutate(|s| {
        let retry = s.faults.lro_retry_after_secs;
        let Some(op) = poll(s, sub, op_id) else {
            return operation_not_found(op_id);
        };
        let mut body = json!({
            "id": async_url(&base, &op),
            "name": op.id,
            "status": op.status,
            "startTime": op.started_at.to_rfc3339(),
        });
        if op.status == "InProgress" {
            let resp = json(StatusCode::OK, body);
            return match retry {
                Some(r) => with_headers(resp, &[("retry-after", r.to_string())]),
                None => resp,
            };
        }
        body["endTime"] = json!(Utc::now().to_rfc3339());
        if op.status != "Succeeded" {
            body["error"] = terminal_error(&op);
        }
        json(StatusCode::OK, body)
    })
}

fn location_status(shared: &Shared, sub: &str, op_id: &str) -> Response {
    let base = shared.base_url.clone();
    shared.mutate(|s| {
        let retry = s.faults.lro_retry_after_secs;
        let Some(op) = poll(s, sub, op_id) else {
            return operation_not_found(op_id);
        };
        match op.status.as_str() {
            "InProgress" => {
                let mut headers = vec![("location", location_url(&base, &op))];
                if let Some(r) = retry {
                    headers.push(("retry-after", r.to_string()));
                }
                with_headers(StatusCode::ACCEPTED.into_response(), &headers)
            }
            "Succeeded" => match s
                .resource_groups
                .get(&op.resource_key)
                .or_else(|| s.resources.get(&op.resource_key))
            {
                Some(doc) if op.method == "PUT" => json(StatusCode::OK, doc.clone()),
                _ => StatusCode::OK.into_response(),
            },
            // A Location monitor has no status field: failure is an error
            // status carrying the operation's error.
            _ => json(
                StatusCode::BAD_REQUEST,
                json!({"error": terminal_error(&op)}),
            ),
        }
    })
}

fn terminal_error(op: &Operation) -> Value {
    if op.status == "Canceled" {
        json!({"code": "OperationCanceled", "message": "The operation was canceled (stand-in injected outcome)."})
    } else {
        json!({"code": "InternalOperationError", "message": "The operation failed (stand-in injected outcome)."})
    }
}
