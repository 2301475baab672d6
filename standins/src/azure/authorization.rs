//! Azure RBAC as ARM enforces it: each request is an action over a scope (the resource's
//! id), allowed when the caller's principal holds a role assignment at that scope or
//! above whose role definition's `actions` match the action (wildcards as ARM reads them:
//! `*` matches any characters, case-insensitively) and whose `notActions` do not.
//! Otherwise `403 AuthorizationFailed`, in ARM's words.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::{reply::arm_error, state::IssuedToken, state::State};

/// Built-in role definition ids (the same in every tenant).
pub const OWNER_ROLE_ID: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
pub const CONTRIBUTOR_ROLE_ID: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
pub const READER_ROLE_ID: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
/// Built-in "Storage Account Contributor": what a customer grants a worker of its own
/// that reads its clusters' storage (account SAS included).
pub const STORAGE_ACCOUNT_CONTRIBUTOR_ROLE_ID: &str = "17d1049b-9a84-46fb-8f53-869881c3d3ab";

/// Built-in roles the exported blueprint assigns to the cluster's identities (no call
/// to the stand-in is authorised by them; they must exist to be assigned).
pub const NETWORK_CONTRIBUTOR_ROLE_ID: &str = "4d97b98b-1d4f-4787-a291-c67834d212e7";
pub const VIRTUAL_MACHINE_CONTRIBUTOR_ROLE_ID: &str = "9980e02c-c2be-4d73-94e8-173b1dc7cf3c";
pub const STORAGE_BLOB_DATA_CONTRIBUTOR_ROLE_ID: &str = "ba92f5b4-2d11-453d-a403-e96b0029c9fe";
pub const ACR_PULL_ROLE_ID: &str = "7f951dda-4ed3-4680-a7ca-43fe172d538d";

/// `(actions, notActions)` of a built-in role.
fn built_in(role_id: &str) -> Option<(Vec<&'static str>, Vec<&'static str>)> {
    match role_id {
        OWNER_ROLE_ID => Some((vec!["*"], vec![])),
        CONTRIBUTOR_ROLE_ID => Some((
            vec!["*"],
            vec![
                "Microsoft.Authorization/*/Delete",
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/elevateAccess/Action",
            ],
        )),
        READER_ROLE_ID => Some((vec!["*/read"], vec![])),
        STORAGE_ACCOUNT_CONTRIBUTOR_ROLE_ID => Some((
            vec![
                "Microsoft.Authorization/*/read",
                "Microsoft.Insights/alertRules/*",
                "Microsoft.Insights/diagnosticSettings/*",
                "Microsoft.Network/virtualNetworks/subnets/joinViaServiceEndpoint/action",
                "Microsoft.ResourceHealth/availabilityStatuses/read",
                "Microsoft.Resources/deployments/*",
                "Microsoft.Resources/subscriptions/resourceGroups/read",
                "Microsoft.Storage/storageAccounts/*",
                "Microsoft.Support/*",
            ],
            vec![],
        )),
        NETWORK_CONTRIBUTOR_ROLE_ID => Some((
            vec![
                "Microsoft.Authorization/*/read",
                "Microsoft.Insights/alertRules/*",
                "Microsoft.Network/*",
                "Microsoft.ResourceHealth/availabilityStatuses/read",
                "Microsoft.Resources/deployments/*",
                "Microsoft.Resources/subscriptions/resourceGroups/read",
                "Microsoft.Support/*",
            ],
            vec![],
        )),
        // Abridged to its compute actions and the network joins it is known for; the
        // stand-in serves no compute API.
        VIRTUAL_MACHINE_CONTRIBUTOR_ROLE_ID => Some((
            vec![
                "Microsoft.Authorization/*/read",
                "Microsoft.Compute/availabilitySets/*",
                "Microsoft.Compute/locations/*",
                "Microsoft.Compute/virtualMachines/*",
                "Microsoft.Compute/virtualMachineScaleSets/*",
                "Microsoft.Compute/disks/write",
                "Microsoft.Compute/disks/read",
                "Microsoft.Compute/disks/delete",
                "Microsoft.Network/networkInterfaces/*",
                "Microsoft.Network/virtualNetworks/read",
                "Microsoft.Network/virtualNetworks/subnets/join/action",
                "Microsoft.Resources/subscriptions/resourceGroups/read",
            ],
            vec![],
        )),
        // Its data actions (blobs) are Blob storage's to check, not ARM's.
        STORAGE_BLOB_DATA_CONTRIBUTOR_ROLE_ID => Some((
            vec![
                "Microsoft.Storage/storageAccounts/blobServices/containers/delete",
                "Microsoft.Storage/storageAccounts/blobServices/containers/read",
                "Microsoft.Storage/storageAccounts/blobServices/containers/write",
                "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
            ],
            vec![],
        )),
        ACR_PULL_ROLE_ID => Some((
            vec!["Microsoft.ContainerRegistry/registries/pull/read"],
            vec![],
        )),
        _ => None,
    }
}

pub(crate) fn is_built_in(role_id: &str) -> bool {
    built_in(&role_id.to_ascii_lowercase()).is_some()
}

/// The ARM action a request performs, for the routes the stand-in serves. `None` for
/// anything it does not serve (which answers 404 without an authorisation check).
pub(crate) fn arm_action(method: &Method, path: &str) -> Option<String> {
    let lower = path.trim_matches('/').to_ascii_lowercase();
    let segs: Vec<&str> = lower.split('/').collect();
    let verb = |read: &str, write: &str, delete: &str| match *method {
        Method::GET | Method::HEAD => Some(read.to_owned()),
        Method::PUT => Some(write.to_owned()),
        Method::DELETE => Some(delete.to_owned()),
        _ => None,
    };
    if lower.contains("/providers/microsoft.authorization/roledefinitions/") {
        return verb(
            "Microsoft.Authorization/roleDefinitions/read",
            "Microsoft.Authorization/roleDefinitions/write",
            "Microsoft.Authorization/roleDefinitions/delete",
        );
    }
    if lower.contains("/providers/microsoft.authorization/roleassignments/") {
        return verb(
            "Microsoft.Authorization/roleAssignments/read",
            "Microsoft.Authorization/roleAssignments/write",
            "Microsoft.Authorization/roleAssignments/delete",
        );
    }
    match (method, segs.as_slice()) {
        (
            &Method::GET,
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.resources",
                "operationstatuses",
                _,
            ],
        )
        | (&Method::GET, ["subscriptions", _, "operationresults", _]) => {
            Some("Microsoft.Resources/subscriptions/operationresults/read".to_owned())
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
            // Authorised as the orchestrators listing this API supersedes, which the seed's
            // role grants. (Whether ARM names a separate kubernetesVersions/read action is
            // not confirmed here.)
        ) => Some("Microsoft.ContainerService/locations/orchestrators/read".to_owned()),
        (&Method::GET, ["subscriptions", _, "providers", _]) => {
            Some("Microsoft.Resources/subscriptions/providers/read".to_owned())
        }
        (&Method::POST, ["subscriptions", _, "providers", _, action]) => {
            // As the caller spelled the namespace (matching is case-insensitive anyway).
            let namespace = path.trim_matches('/').split('/').nth(3).unwrap_or_default();
            Some(format!("{namespace}/{action}/action"))
        }
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
                ..,
            ],
        ) => {
            let original: Vec<&str> = path.trim_matches('/').split('/').collect();
            resource_action(method, &original[5..])
        }
        (_, ["subscriptions", _, "resourcegroups", _]) => verb(
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Resources/subscriptions/resourceGroups/write",
            "Microsoft.Resources/subscriptions/resourceGroups/delete",
        ),
        _ => None,
    }
}

/// The action on a resource inside a resource group, as ARM names it from the path
/// after `providers/`: `{namespace}/{type}[/{child type}...]/read|write|delete`, or
/// `.../{action}/action` for a POST to an action (`listKeys`, `listAccountSas`).
fn resource_action(method: &Method, after_providers: &[&str]) -> Option<String> {
    let (namespace, rest) = after_providers.split_first()?;
    let mut types: Vec<&str> = rest.iter().step_by(2).copied().collect();
    let trailing = rest.len() % 2 == 1;
    if trailing && *method == Method::POST {
        let action = types.pop()?;
        let mut prefix = vec![*namespace];
        prefix.extend(types);
        return Some(format!("{}/{action}/action", prefix.join("/")));
    }
    let base = format!("{namespace}/{}", types.join("/"));
    match *method {
        Method::GET => Some(format!("{base}/read")),
        Method::PUT | Method::PATCH => Some(format!("{base}/write")),
        Method::DELETE => Some(format!("{base}/delete")),
        _ => None,
    }
}

/// ARM's wildcard match: `*` spans any characters; case-insensitive.
pub(crate) fn action_matches(pattern: &str, action: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let action = action.to_ascii_lowercase();
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == action;
    }
    let mut rest = action.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(after) = rest.strip_prefix(part) else {
                return false;
            };
            rest = after;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else {
                return false;
            };
            rest = &rest[at + part.len()..];
        }
    }
    true
}

/// Whether `scope` is `assigned` or below it.
pub(crate) fn within(assigned: &str, scope: &str) -> bool {
    let assigned = assigned.trim_end_matches('/').to_ascii_lowercase();
    let scope = scope.trim_end_matches('/').to_ascii_lowercase();
    scope == assigned || scope.starts_with(&format!("{assigned}/"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// `(actions, notActions)` of a role definition id (full ARM id or bare GUID).
fn role_permissions(state: &State, role_definition_id: &str) -> Option<(Vec<String>, Vec<String>)> {
    let lower = role_definition_id.to_ascii_lowercase();
    let guid = lower.rsplit('/').next().unwrap_or_default();
    if let Some((actions, not_actions)) = built_in(guid) {
        let owned = |v: Vec<&str>| v.into_iter().map(str::to_owned).collect();
        return Some((owned(actions), owned(not_actions)));
    }
    let definition = state
        .role_definitions
        .iter()
        .find(|(k, _)| **k == lower || k.rsplit('/').next() == Some(guid))
        .map(|(_, v)| v)?;
    let mut actions = Vec::new();
    let mut not_actions = Vec::new();
    for permission in definition["properties"]["permissions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        actions.extend(strings(&permission["actions"]));
        not_actions.extend(strings(&permission["notActions"]));
    }
    Some((actions, not_actions))
}

pub(crate) fn allowed(state: &State, principal_object_id: &str, action: &str, scope: &str) -> bool {
    state.role_assignments.iter().any(|(key, assignment)| {
        let p = &assignment["properties"];
        // A new assignment authorises nothing until ARM's caches have it.
        state.settled(key)
            && p["principalId"]
                .as_str()
                .is_some_and(|id| id.eq_ignore_ascii_case(principal_object_id))
            && p["scope"].as_str().is_some_and(|s| within(s, scope))
            && p["roleDefinitionId"]
                .as_str()
                .and_then(|r| role_permissions(state, r))
                .is_some_and(|(actions, not_actions)| {
                    actions.iter().any(|a| action_matches(a, action))
                        && !not_actions.iter().any(|a| action_matches(a, action))
                })
    })
}

/// `Err(403 AuthorizationFailed)` unless the caller may perform the request.
pub(crate) fn authorize_arm(
    state: &State,
    caller: &IssuedToken,
    method: &Method,
    path: &str,
) -> Result<(), Response> {
    let Some(action) = arm_action(method, path) else {
        return Ok(());
    };
    let scope = format!("/{}", path.trim_matches('/'));
    if allowed(state, &caller.object_id, &action, &scope) {
        return Ok(());
    }
    Err(arm_error(
        StatusCode::FORBIDDEN,
        "AuthorizationFailed",
        format!(
            "The client '{oid}' with object id '{oid}' does not have authorization to perform \
             action '{action}' over scope '{scope}' or the scope is invalid. If access was \
             recently granted, please refresh your credentials.",
            oid = caller.object_id
        ),
    ))
}

/// A role assignment document as ARM stores it.
pub(crate) fn assignment_doc(
    id: &str,
    scope: &str,
    role_definition_id: &str,
    principal_id: &str,
) -> Value {
    let now = chrono::Utc::now().to_rfc3339();
    json!({
        "id": format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{id}"),
        "name": id,
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "roleDefinitionId": role_definition_id,
            "principalId": principal_id,
            "principalType": "ServicePrincipal",
            "scope": scope,
            "condition": null,
            "conditionVersion": null,
            "createdOn": now,
            "updatedOn": now,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_arm_reads_them() {
        assert!(action_matches(
            "Microsoft.Resources/subscriptions/resourceGroups/*",
            "Microsoft.Resources/subscriptions/resourceGroups/write"
        ));
        assert!(action_matches(
            "*/read",
            "Microsoft.Storage/storageAccounts/read"
        ));
        assert!(!action_matches(
            "*/read",
            "Microsoft.Storage/storageAccounts/write"
        ));
        assert!(action_matches("*", "anything/at/all"));
        assert!(action_matches(
            "microsoft.authorization/*/write",
            "Microsoft.Authorization/roleAssignments/write"
        ));
        assert!(!action_matches(
            "Microsoft.Storage/storageAccounts/*",
            "Microsoft.Resources/subscriptions/resourceGroups/write"
        ));
    }

    #[test]
    fn scopes_include_what_is_below_them_only() {
        assert!(within(
            "/subscriptions/a",
            "/subscriptions/A/resourceGroups/rg"
        ));
        assert!(within("/subscriptions/a", "/subscriptions/a"));
        assert!(!within("/subscriptions/a", "/subscriptions/ab"));
        assert!(!within(
            "/subscriptions/a/resourceGroups/rg",
            "/subscriptions/a"
        ));
    }

    #[test]
    fn routes_map_to_their_actions() {
        let a = |m: Method, p: &str| arm_action(&m, p).unwrap();
        assert_eq!(
            a(Method::PUT, "/subscriptions/s/resourcegroups/rg"),
            "Microsoft.Resources/subscriptions/resourceGroups/write"
        );
        assert_eq!(
            a(
                Method::POST,
                "/subscriptions/s/providers/Microsoft.Compute/register"
            ),
            "Microsoft.Compute/register/action"
        );
        assert_eq!(
            a(
                Method::PUT,
                "/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/x"
            ),
            "Microsoft.Authorization/roleAssignments/write"
        );
        assert_eq!(
            a(
                Method::POST,
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/sa/listAccountSas"
            ),
            "Microsoft.Storage/storageAccounts/listAccountSas/action"
        );
        assert_eq!(
            a(
                Method::PUT,
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c/agentPools/p"
            ),
            "Microsoft.ContainerService/managedClusters/agentPools/write"
        );
        assert_eq!(
            a(
                Method::POST,
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/sa/listKeys"
            ),
            "Microsoft.Storage/storageAccounts/listKeys/action"
        );
        assert_eq!(
            a(
                Method::GET,
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/sa"
            ),
            "Microsoft.Storage/storageAccounts/read"
        );
    }
}
