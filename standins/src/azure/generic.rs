//! ARM resources the stand-in keeps as plain documents, with ARM's resource rules but no
//! behaviour of their own: virtual networks and subnets, public IPs, NAT gateways,
//! container registries, managed identities and their federated credentials, blob
//! containers, managed clusters and their agent pools (what the terraform provider
//! stand-in creates from the exported blueprint).
//!
//! As ARM: a PUT creates (201) or replaces (200) the resource at its path and reports it
//! `Succeeded`; the resource group, and for a child resource its parent, must exist
//! (`ResourceGroupNotFound`, `ParentResourceNotFound`); GET answers 404
//! `ResourceNotFound` for what does not exist; DELETE removes the resource and its
//! children (200), or answers 204 when there is nothing to delete. Each creation and
//! deletion is recorded in the stand-in's write journal.

use axum::{
    http::{Method, StatusCode},
    response::{IntoResponse, Response},
};
use base64::Engine;
use serde_json::{Value, json};

use super::{
    Shared,
    arm_common::{async_url, method_not_allowed, new_operation, parse_body, rg_key},
    reply::{arm_error, json, with_headers},
    state::{ServicePrincipal, State},
};

/// `segs`: `subscriptions/{sub}/resourceGroups/{rg}/providers/{ns}/{type}/{name}` and
/// any number of `/{child type}/{child name}` pairs.
pub(crate) fn handle(shared: &Shared, method: &Method, segs: &[&str], body: &[u8]) -> Response {
    let id = format!("/{}", segs.join("/"));
    let key = id.to_ascii_lowercase();
    let (sub, rg, name) = (segs[1], segs[3], segs[segs.len() - 1]);
    let resource_type = std::iter::once(segs[5])
        .chain(segs[6..].iter().step_by(2).copied())
        .collect::<Vec<_>>()
        .join("/");
    match *method {
        Method::GET => match shared.with_state(|s| s.resources.get(&key).cloned()) {
            Some(doc) => json(StatusCode::OK, doc),
            None => arm_error(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                format!(
                    "The Resource '{resource_type}/{name}' under resource group '{rg}' was not found."
                ),
            ),
        },
        Method::PUT => {
            let mut doc = match parse_body(body) {
                Ok(doc) => doc,
                Err(response) => return response,
            };
            // A nested resource needs its top-level resource (a container its storage
            // account; `blobServices/default` exists implicitly, as in ARM).
            let parent =
                (segs.len() > 8).then(|| format!("/{}", segs[..8].join("/")).to_ascii_lowercase());
            shared.mutate(|s| {
                if !s.resource_groups.contains_key(&rg_key(sub, rg)) {
                    return arm_error(
                        StatusCode::NOT_FOUND,
                        "ResourceGroupNotFound",
                        format!("Resource group '{rg}' could not be found."),
                    );
                }
                if let Some(parent) = &parent
                    && !s.resources.contains_key(parent)
                {
                    return arm_error(
                        StatusCode::NOT_FOUND,
                        "ParentResourceNotFound",
                        format!(
                            "Can not perform requested operation on nested resource. Parent resource '{}' not found.",
                            segs[7]
                        ),
                    );
                }
                doc["id"] = json!(id);
                doc["name"] = json!(name);
                doc["type"] = json!(resource_type);
                if !doc["properties"].is_object() {
                    doc["properties"] = json!({});
                }
                let previous = s.resources.get(&key).cloned();
                // Long-running types are accepted and finish on the operation's clock:
                // until then the resource exists, `Creating` or `Updating`.
                let long_running =
                    s.faults.lro_duration_ms > 0 && is_long_running(&resource_type);
                doc["properties"]["provisioningState"] = json!(match (long_running, &previous) {
                    (false, _) => "Succeeded",
                    (true, None) => "Creating",
                    (true, Some(_)) => "Updating",
                });
                managed_identities(s, sub, &resource_type, &mut doc, previous.as_ref());
                let existed = s.resources.insert(key.clone(), doc.clone()).is_some();
                let status = if existed {
                    s.record_change(&key);
                    StatusCode::OK
                } else {
                    s.record_creation(&key);
                    StatusCode::CREATED
                };
                if !long_running {
                    return json(status, doc);
                }
                let op = new_operation(s, sub, "PUT", &key);
                let mut headers = vec![("azure-asyncoperation", async_url(&shared.base_url, &op))];
                if let Some(r) = s.faults.lro_retry_after_secs {
                    headers.push(("retry-after", r.to_string()));
                }
                with_headers(json(status, doc), &headers)
            })
        }
        Method::DELETE => shared.mutate(|s| {
            if s.resources.remove(&key).is_none() {
                return StatusCode::NO_CONTENT.into_response();
            }
            let children = format!("{key}/");
            s.resources.retain(|k, _| !k.starts_with(&children));
            s.record_deletion(&key);
            StatusCode::OK.into_response()
        }),
        _ => method_not_allowed(),
    }
}

/// The types whose PUT ARM documents as long-running (201/200 with
/// `Azure-AsyncOperation`): the ones that take real time to provision.
fn is_long_running(resource_type: &str) -> bool {
    const LONG_RUNNING: &[&str] = &[
        "microsoft.containerservice/managedclusters",
        "microsoft.containerservice/managedclusters/agentpools",
        "microsoft.network/virtualnetworks",
        "microsoft.network/virtualnetworks/subnets",
        "microsoft.network/natgateways",
        "microsoft.network/publicipaddresses",
        "microsoft.containerregistry/registries",
    ];
    LONG_RUNNING.contains(&resource_type.to_ascii_lowercase().as_str())
}

/// `POST .../managedClusters/{name}/listClusterAdminCredential` (and the user variant):
/// the cluster's kubeconfig, base64 in `kubeconfigs[].value` as AKS returns it, which
/// here is the Kubernetes stand-in's (`AzureStandIn::set_managed_cluster_kubeconfig`).
pub(crate) fn cluster_credentials(shared: &Shared, segs: &[&str]) -> Response {
    let cluster = format!("/{}", segs[..8].join("/")).to_ascii_lowercase();
    shared.with_state(|s| {
        if !s.resources.contains_key(&cluster) {
            return arm_error(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                format!(
                    "The Resource 'Microsoft.ContainerService/managedClusters/{}' under resource group '{}' was not found.",
                    segs[7], segs[3]
                ),
            );
        }
        match &s.managed_cluster_kubeconfig {
            Some(kubeconfig) => json(
                StatusCode::OK,
                json!({"kubeconfigs": [{
                    "name": "clusterAdmin",
                    "value": base64::engine::general_purpose::STANDARD.encode(kubeconfig),
                }]}),
            ),
            None => arm_error(
                StatusCode::CONFLICT,
                "OperationNotAllowed",
                "The stand-in has no Kubernetes API server to hand out credentials for.",
            ),
        }
    })
}

/// Managed identities are service principals in the subscription's tenant, which role
/// assignments name: a user-assigned identity, a cluster's system-assigned identity and
/// its kubelet identity each get one when first created (kept when the resource is
/// replaced), and ARM reports their ids as Azure does.
fn managed_identities(
    s: &mut State,
    sub: &str,
    resource_type: &str,
    doc: &mut Value,
    previous: Option<&Value>,
) {
    let tenant = subscription_tenant(s, sub);
    let principal = |s: &mut State, kept: &Value, name: &str| -> (String, String) {
        let object_id = kept["principalId"]
            .as_str()
            .or(kept["objectId"].as_str())
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        let client_id = kept["clientId"]
            .as_str()
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        s.service_principals
            .entry(object_id.clone())
            .or_insert_with(|| ServicePrincipal {
                id: object_id.clone(),
                tenant_id: tenant.clone(),
                app_id: client_id.clone(),
                display_name: name.to_owned(),
                created_at: chrono::Utc::now(),
                graph_permissions: vec![],
            });
        (object_id, client_id)
    };
    let name = doc["name"].as_str().unwrap_or_default().to_owned();
    match resource_type.to_ascii_lowercase().as_str() {
        "microsoft.managedidentity/userassignedidentities" => {
            let kept = previous.map_or(Value::Null, |p| p["properties"].clone());
            let (object_id, client_id) = principal(s, &kept, &name);
            doc["properties"]["principalId"] = json!(object_id);
            doc["properties"]["clientId"] = json!(client_id);
            doc["properties"]["tenantId"] = json!(tenant);
        }
        "microsoft.containerservice/managedclusters" => {
            if doc["identity"]["type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("SystemAssigned"))
            {
                let kept = previous.map_or(Value::Null, |p| p["identity"].clone());
                let (object_id, _) = principal(s, &kept, &name);
                doc["identity"]["principalId"] = json!(object_id);
                doc["identity"]["tenantId"] = json!(tenant);
            }
            let kept = previous.map_or(Value::Null, |p| {
                p["properties"]["identityProfile"]["kubeletidentity"].clone()
            });
            let (object_id, client_id) = principal(s, &kept, &format!("{name}-agentpool"));
            let node_group = doc["properties"]["nodeResourceGroup"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            doc["properties"]["identityProfile"]["kubeletidentity"] = json!({
                "resourceId": format!(
                    "/subscriptions/{sub}/resourceGroups/{node_group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}-agentpool"
                ),
                "clientId": client_id,
                "objectId": object_id,
            });
        }
        _ => {}
    }
}

/// The tenant a subscription trusts: that of the principals holding roles on it.
fn subscription_tenant(s: &State, sub: &str) -> String {
    let scope = format!("/subscriptions/{sub}").to_ascii_lowercase();
    s.role_assignments
        .values()
        .filter(|a| {
            a["properties"]["scope"]
                .as_str()
                .is_some_and(|x| x.to_ascii_lowercase().starts_with(&scope))
        })
        .filter_map(|a| a["properties"]["principalId"].as_str())
        .find_map(|p| s.service_principals.get(p))
        .map(|sp| sp.tenant_id.clone())
        .unwrap_or_default()
}
