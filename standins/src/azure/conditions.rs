//! What ARM refuses after RBAC and before a resource provider sees a request, in ARM's
//! words: management locks (`409 ScopeLocked`), Azure Policy deny assignments
//! (`403 RequestDisallowedByPolicy`) and operations still running on the resource
//! (`409 AnotherOperationInProgress`, with `Retry-After`). Tests seed them through the
//! control API; a real subscription has them when its administrators or other tools do.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::{
    authorization::{action_matches, arm_action, within},
    reply::{arm_error, json, with_headers},
    state::State,
};

/// `Some(refusal)` when a lock, a deny policy or a busy resource stops the request.
pub(crate) fn refuse(state: &mut State, method: &Method, path: &str) -> Option<Response> {
    let scope = format!("/{}", path.trim_matches('/'));
    busy(state, method, &scope)
        .or_else(|| locked(state, method, &scope))
        .or_else(|| denied_by_policy(state, method, &scope))
}

fn busy(state: &mut State, method: &Method, scope: &str) -> Option<Response> {
    let lower = scope.to_ascii_lowercase();
    let rule = state.busy.iter_mut().find(|r| {
        r.count > 0
            && r.method.eq_ignore_ascii_case(method.as_str())
            && lower.contains(&r.path_contains)
    })?;
    rule.count -= 1;
    let retry_after = rule.retry_after_secs;
    let operation = uuid::Uuid::new_v4();
    let subscription = scope.split('/').nth(2).unwrap_or_default();
    Some(with_headers(
        arm_error(
            StatusCode::CONFLICT,
            "AnotherOperationInProgress",
            format!(
                "Another operation on this or dependent resource is in progress. To retrieve \
                 status of the operation use uri: https://management.azure.com/subscriptions/\
                 {subscription}/providers/Microsoft.Resources/operationStatuses/{operation}\
                 ?api-version=2021-04-01."
            ),
        ),
        &[("retry-after", retry_after.to_string())],
    ))
}

fn locked(state: &State, method: &Method, scope: &str) -> Option<Response> {
    let operation = match *method {
        Method::DELETE => "delete",
        Method::PUT | Method::PATCH | Method::POST => "write",
        _ => return None,
    };
    let locks: Vec<&super::state::Lock> = state
        .locks
        .iter()
        .filter(|l| within(&l.scope, scope))
        .filter(|l| operation == "delete" || l.level.eq_ignore_ascii_case("ReadOnly"))
        .collect();
    if locks.is_empty() {
        return None;
    }
    let names = locks
        .iter()
        .map(|l| {
            format!(
                "{}/providers/Microsoft.Authorization/locks/{}",
                l.scope.trim_end_matches('/'),
                l.name
            )
        })
        .collect::<Vec<_>>()
        .join("', '");
    Some(arm_error(
        StatusCode::CONFLICT,
        "ScopeLocked",
        format!(
            "The scope '{scope}' cannot perform {operation} operation because following scope(s) \
             are locked: '{names}'. Please remove the lock and try again."
        ),
    ))
}

fn denied_by_policy(state: &State, method: &Method, scope: &str) -> Option<Response> {
    if *method == Method::GET {
        return None;
    }
    let action = arm_action(method, scope)?;
    let policy = state
        .deny_policies
        .iter()
        .find(|p| within(&p.scope, scope) && action_matches(&p.action, &action))?;
    let assignment_id = format!(
        "{}/providers/Microsoft.Authorization/policyAssignments/{}",
        policy.scope.trim_end_matches('/'),
        policy.assignment_name
    );
    let definition_name = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        policy.assignment_name.as_bytes(),
    );
    let definition_id =
        format!("/providers/Microsoft.Authorization/policyDefinitions/{definition_name}");
    let resource = scope.rsplit('/').next().unwrap_or_default();
    let identifiers = json!([{
        "policyAssignment": {"name": policy.display_name, "id": assignment_id},
        "policyDefinition": {"name": policy.display_name, "id": definition_id},
    }]);
    Some(json(
        StatusCode::FORBIDDEN,
        json!({"error": {
            "code": "RequestDisallowedByPolicy",
            "target": resource,
            "message": format!(
                "Resource '{resource}' was disallowed by policy. Policy identifiers: '{identifiers}'."
            ),
            "additionalInfo": [{
                "type": "PolicyViolation",
                "info": {
                    "policyDefinitionDisplayName": policy.display_name,
                    "policyDefinitionId": definition_id,
                    "policyDefinitionName": definition_name.to_string(),
                    "policyDefinitionEffect": "deny",
                    "policyAssignmentId": assignment_id,
                    "policyAssignmentName": policy.assignment_name,
                    "policyAssignmentDisplayName": policy.display_name,
                    "policyAssignmentScope": policy.scope,
                    "policyAssignmentParameters": {},
                }
            }],
        }}),
    ))
}
