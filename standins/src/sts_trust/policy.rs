//! A role's trust policy, evaluated for one `sts:AssumeRole` as IAM evaluates it for the
//! cases Windlass relies on: an explicit Deny wins, otherwise an Allow whose action,
//! principal and conditions all match grants, otherwise the request is implicitly denied.
//!
//! Supported: `Action` (`sts:AssumeRole`, `sts:*`, `*`, case-insensitive), `Principal`
//! (`*`, or `AWS` naming `*`, an account id, `arn:aws:iam::<account>:root`, or an exact
//! ARN; a role ARN also matches that role's sessions), and conditions `StringEquals` on
//! `sts:ExternalId`. Anything else (NotAction, NotPrincipal, other operators or keys) makes
//! the statement not match, so an Allow the stand-in cannot judge grants nothing.

use serde_json::Value;

/// Who asks, and with which ExternalId.
#[derive(Debug, Clone)]
pub struct AssumeRoleRequest<'a> {
    /// The caller's ARN as STS GetCallerIdentity reports it.
    pub caller_arn: &'a str,
    pub caller_account: &'a str,
    pub external_id: Option<&'a str>,
}

/// Whether the trust policy lets the request assume the role.
pub fn allows(policy: &Value, request: &AssumeRoleRequest<'_>) -> bool {
    let statements: Vec<&Value> = match &policy["Statement"] {
        Value::Array(items) => items.iter().collect(),
        single @ Value::Object(_) => vec![single],
        _ => return false,
    };
    let applies = |statement: &&Value| statement_applies(statement, request);
    let matching: Vec<&Value> = statements.into_iter().filter(applies).collect();
    let effect = |s: &Value| s["Effect"].as_str().unwrap_or_default().to_owned();
    if matching.iter().any(|s| effect(s) == "Deny") {
        return false;
    }
    matching.iter().any(|s| effect(s) == "Allow")
}

fn statement_applies(statement: &Value, request: &AssumeRoleRequest<'_>) -> bool {
    for unsupported in ["NotAction", "NotPrincipal"] {
        if statement.get(unsupported).is_some() {
            tracing::warn!(
                unsupported,
                "trust policy element not evaluated by the stand-in"
            );
            return false;
        }
    }
    action_matches(&statement["Action"])
        && principal_matches(&statement["Principal"], request)
        && conditions_hold(&statement["Condition"], request)
}

fn strings(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn action_matches(action: &Value) -> bool {
    strings(action).iter().any(|a| {
        let a = a.to_ascii_lowercase();
        a == "sts:assumerole" || a == "sts:*" || a == "*"
    })
}

fn principal_matches(principal: &Value, request: &AssumeRoleRequest<'_>) -> bool {
    if principal.as_str() == Some("*") {
        return true;
    }
    strings(&principal["AWS"])
        .iter()
        .any(|p| aws_principal_matches(p, request))
}

fn aws_principal_matches(principal: &str, request: &AssumeRoleRequest<'_>) -> bool {
    if principal == "*" {
        return true;
    }
    // An account (by id or its root ARN) delegates to the account's own IAM policies:
    // every principal of that account matches the trust policy.
    let account = principal
        .strip_prefix("arn:aws:iam::")
        .and_then(|rest| rest.strip_suffix(":root"))
        .unwrap_or(principal);
    if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) {
        return account == request.caller_account;
    }
    principal == request.caller_arn
        || role_of_session(request.caller_arn).as_deref() == Some(principal)
}

/// `arn:aws:sts::<account>:assumed-role/<role>/<session>` is a session of
/// `arn:aws:iam::<account>:role/<role>`.
fn role_of_session(arn: &str) -> Option<String> {
    let (account, session) = arn
        .strip_prefix("arn:aws:sts::")?
        .split_once(":assumed-role/")?;
    let (role, _session_name) = session.split_once('/')?;
    Some(format!("arn:aws:iam::{account}:role/{role}"))
}

fn conditions_hold(conditions: &Value, request: &AssumeRoleRequest<'_>) -> bool {
    let Some(conditions) = conditions.as_object() else {
        return conditions.is_null();
    };
    conditions.iter().all(|(operator, keys)| {
        let Some(keys) = keys.as_object() else {
            return false;
        };
        keys.iter().all(|(key, expected)| {
            let supported = operator == "StringEquals" && key.eq_ignore_ascii_case("sts:ExternalId");
            if !supported {
                tracing::warn!(%operator, %key, "trust policy condition not evaluated by the stand-in");
                return false;
            }
            request
                .external_id
                .is_some_and(|given| strings(expected).contains(&given))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trust(principal: Value, condition: Value) -> Value {
        json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole",
            "Condition": condition}]})
    }

    fn request<'a>(external_id: Option<&'a str>) -> AssumeRoleRequest<'a> {
        AssumeRoleRequest {
            caller_arn: "arn:aws:iam::111111111111:user/windlass",
            caller_account: "111111111111",
            external_id,
        }
    }

    #[test]
    fn the_external_id_must_be_one_the_policy_names() {
        let policy = trust(
            json!({"AWS": "arn:aws:iam::111111111111:root"}),
            json!({"StringEquals": {"sts:ExternalId": "windlass-a"}}),
        );
        assert!(allows(&policy, &request(Some("windlass-a"))));
        assert!(!allows(&policy, &request(Some("windlass-b"))));
        assert!(!allows(&policy, &request(None)));
        let either = trust(
            json!({"AWS": "111111111111"}),
            json!({"StringEquals": {"sts:externalid": ["windlass-a", "windlass-b"]}}),
        );
        assert!(allows(&either, &request(Some("windlass-b"))));
    }

    #[test]
    fn the_caller_must_be_a_trusted_principal() {
        let condition = json!({"StringEquals": {"sts:ExternalId": "x"}});
        for (principal, allowed) in [
            (json!({"AWS": "arn:aws:iam::222222222222:root"}), false),
            (
                json!({"AWS": "arn:aws:iam::111111111111:user/windlass"}),
                true,
            ),
            (
                json!({"AWS": "arn:aws:iam::111111111111:user/other"}),
                false,
            ),
            (
                json!({"AWS": ["arn:aws:iam::222222222222:root", "111111111111"]}),
                true,
            ),
            (json!("*"), true),
            (json!({"Service": "ec2.amazonaws.com"}), false),
        ] {
            let policy = trust(principal.clone(), condition.clone());
            assert_eq!(allows(&policy, &request(Some("x"))), allowed, "{principal}");
        }
    }

    #[test]
    fn a_role_principal_matches_its_sessions() {
        let policy = trust(
            json!({"AWS": "arn:aws:iam::111111111111:role/ci"}),
            Value::Null,
        );
        let session = AssumeRoleRequest {
            caller_arn: "arn:aws:sts::111111111111:assumed-role/ci/run-1",
            caller_account: "111111111111",
            external_id: None,
        };
        assert!(allows(&policy, &session));
    }

    #[test]
    fn deny_wins_and_what_cannot_be_judged_grants_nothing() {
        let mut policy = trust(json!({"AWS": "111111111111"}), Value::Null);
        assert!(allows(&policy, &request(None)));
        policy["Statement"]
            .as_array_mut()
            .unwrap()
            .push(json!({"Effect": "Deny", "Principal": "*", "Action": "sts:*"}));
        assert!(!allows(&policy, &request(None)));
        let unknown = trust(
            json!({"AWS": "111111111111"}),
            json!({"StringLike": {"sts:ExternalId": "windlass-*"}}),
        );
        assert!(!allows(&unknown, &request(Some("windlass-a"))));
        let wrong_action = json!({"Statement": {"Effect": "Allow", "Principal": "*",
            "Action": "sts:AssumeRoleWithWebIdentity"}});
        assert!(!allows(&wrong_action, &request(None)));
    }
}
