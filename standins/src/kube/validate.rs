//! The API server's validation of what a write stores, for the rules charts and
//! Windlass's own objects meet in practice: object names (DNS-1035 for Services, DNS-1123
//! labels for Namespaces, DNS-1123 subdomains otherwise; CronJob names at most 52
//! characters, Job names at most 63), immutable fields (a Deployment's or Job's selector,
//! a Job's pod template, a Service's cluster IP, a StatefulSet's spec outside the few
//! fields that may change, an immutable Secret's or ConfigMap's data, a Secret's type)
//! and the 1 MiB limit on a Secret's data. A failure is the real `422 Invalid` Status,
//! one cause per field, in the messages of k8s.io/apimachinery's validation.

use base64::Engine as _;
use serde_json::{Value, json};

use super::registry::ResourceType;
use super::store::ApiError;

const DNS1035_LABEL: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// The largest a Secret's (or ConfigMap's) data may be, in bytes.
pub const MAX_SECRET_BYTES: usize = 1024 * 1024;

/// One field error, as a `Status` cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `FieldValueInvalid`, `FieldValueTooLong`, `FieldValueForbidden`, ...
    pub reason: &'static str,
    pub field: String,
    /// The message after the field: `Invalid value: "2fa": a DNS-1035 label ...`.
    pub detail: String,
}

impl FieldError {
    fn invalid(field: &str, value: &Value, why: &str) -> Self {
        Self {
            reason: "FieldValueInvalid",
            field: field.into(),
            detail: format!("Invalid value: {}: {why}", go_value(value)),
        }
    }

    fn too_long(field: &str, max: usize) -> Self {
        Self {
            reason: "FieldValueTooLong",
            field: field.into(),
            detail: format!("Too long: must have at most {max} bytes"),
        }
    }

    fn forbidden(field: &str, why: &str) -> Self {
        Self {
            reason: "FieldValueForbidden",
            field: field.into(),
            detail: format!("Forbidden: {why}"),
        }
    }
}

/// How Go's validation prints a value: strings quoted, the rest as JSON.
fn go_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// Checks an object about to be stored (`current`: what it replaces, if anything).
pub fn check(rt: &ResourceType, obj: &Value, current: Option<&Value>) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    if current.is_none() {
        errors.extend(name_errors(rt, name));
    }
    if let Some(current) = current {
        errors.extend(immutable_errors(rt, obj, current));
    }
    if rt.group.is_empty() && rt.kind == "Secret" {
        let size: usize = obj["data"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, v)| {
                let text = v.as_str().unwrap_or_default();
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_or(text.len(), |b| b.len())
            })
            .sum();
        if size > MAX_SECRET_BYTES {
            errors.push(FieldError::too_long("data", MAX_SECRET_BYTES));
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    Err(invalid(rt, name, &errors))
}

/// The `422 Invalid` Status for field errors.
pub fn invalid(rt: &ResourceType, name: &str, errors: &[FieldError]) -> ApiError {
    let parts: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.detail))
        .collect();
    let listed = if parts.len() == 1 {
        parts[0].clone()
    } else {
        format!("[{}]", parts.join(", "))
    };
    let mut e = ApiError::new(
        422,
        "Invalid",
        format!("{} \"{name}\" is invalid: {listed}", qualified_kind(rt)),
    );
    e.kind = rt.kind.clone();
    e.group = rt.group.clone();
    e.name = name.into();
    e.causes = errors
        .iter()
        .map(|f| json!({"reason": f.reason, "message": f.detail, "field": f.field}))
        .collect();
    e
}

/// `Deployment.apps`, or `Service` for the core group: how Invalid errors name a kind.
fn qualified_kind(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        rt.kind.clone()
    } else {
        format!("{}.{}", rt.kind, rt.group)
    }
}

fn name_errors(rt: &ResourceType, name: &str) -> Vec<FieldError> {
    let field = "metadata.name";
    let value = json!(name);
    if name.is_empty() {
        return Vec::new(); // "Required value" is the store's, with generateName.
    }
    let mut errors = Vec::new();
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Service") => {
            if !is_dns1035_label(name) {
                errors.push(FieldError::invalid(field, &value, DNS1035_LABEL));
            }
            if name.len() > 63 {
                errors.push(FieldError::invalid(
                    field,
                    &value,
                    "must be no more than 63 characters",
                ));
            }
        }
        ("", "Namespace") => {
            if !is_dns1123_label(name) {
                errors.push(FieldError::invalid(field, &value, DNS1123_LABEL));
            }
            if name.len() > 63 {
                errors.push(FieldError::invalid(
                    field,
                    &value,
                    "must be no more than 63 characters",
                ));
            }
        }
        ("" | "apps" | "batch" | "networking.k8s.io" | "policy" | "autoscaling", _) => {
            if !is_dns1123_subdomain(name) {
                errors.push(FieldError::invalid(field, &value, DNS1123_SUBDOMAIN));
            }
            let limit = match (rt.group.as_str(), rt.kind.as_str()) {
                // Its Jobs are named <cronjob>-<11-digit schedule time>: 63 in all.
                ("batch", "CronJob") => 52,
                // Its pods carry the name as a label value.
                ("batch", "Job") => 63,
                _ => 253,
            };
            if name.len() > limit {
                errors.push(FieldError::invalid(
                    field,
                    &value,
                    &format!("must be no more than {limit} characters"),
                ));
            }
        }
        // Other groups (RBAC's `system:...` names, custom resources) only need a name
        // that can be a path segment.
        _ => {
            if name == "." || name == ".." || name.contains('/') || name.contains('%') {
                errors.push(FieldError::invalid(
                    field,
                    &value,
                    "may not contain '/' or '%' and may not be '.' or '..'",
                ));
            }
        }
    }
    errors
}

fn immutable_errors(rt: &ResourceType, obj: &Value, current: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut immutable = |field: &str, pointer: &str| {
        let now = current.pointer(pointer);
        let next = obj.pointer(pointer);
        if now.is_some() && now != next {
            errors.push(FieldError::invalid(
                field,
                next.unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
    };
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet") => {
            immutable("spec.selector", "/spec/selector");
        }
        ("batch", "Job") => {
            immutable("spec.selector", "/spec/selector");
            immutable("spec.template", "/spec/template");
            immutable("spec.completionMode", "/spec/completionMode");
        }
        ("", "Secret") => {
            immutable("type", "/type");
        }
        ("", "Service") => {
            let before = current["spec"]["clusterIP"].as_str().unwrap_or_default();
            let after = obj["spec"]["clusterIP"].as_str().unwrap_or_default();
            if !before.is_empty() && before != "None" && before != after {
                errors.push(FieldError::invalid(
                    "spec.clusterIPs[0]",
                    &json!([after]),
                    "may not change once set",
                ));
            }
        }
        ("apps", "StatefulSet") => {
            let mutable = [
                "replicas",
                "ordinals",
                "template",
                "updateStrategy",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
            ];
            let rest = |spec: &Value| {
                let mut spec = spec.clone();
                if let Some(o) = spec.as_object_mut() {
                    for k in mutable {
                        o.remove(k);
                    }
                }
                spec
            };
            if rest(&obj["spec"]) != rest(&current["spec"]) {
                errors.push(FieldError::forbidden(
                    "spec",
                    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                ));
            }
        }
        _ => {}
    }
    if rt.group.is_empty()
        && matches!(rt.kind.as_str(), "Secret" | "ConfigMap")
        && current["immutable"].as_bool() == Some(true)
    {
        for field in ["data", "binaryData"] {
            if obj[field] != current[field] {
                errors.push(FieldError::forbidden(
                    field,
                    "field is immutable when `immutable` is set",
                ));
            }
        }
    }
    errors
}

pub fn is_dns1035_label(name: &str) -> bool {
    name.len() <= 63 && name.starts_with(|c: char| c.is_ascii_lowercase()) && is_label_body(name)
}

pub fn is_dns1123_label(name: &str) -> bool {
    name.len() <= 63 && name.starts_with(|c: char| c.is_ascii_alphanumeric()) && is_label_body(name)
}

pub fn is_dns1123_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns1123_label_ignoring_length)
}

fn is_dns1123_label_ignoring_length(part: &str) -> bool {
    part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) && is_label_body(part)
}

/// Lower-case letters, digits and '-', ending in a letter or digit.
fn is_label_body(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && !name.starts_with(|c: char| c.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::registry;

    fn rt(kind: &str) -> ResourceType {
        registry::builtins()
            .into_iter()
            .find(|t| t.kind == kind)
            .unwrap()
    }

    #[test]
    fn a_service_name_must_start_with_a_letter() {
        let e = check(&rt("Service"), &json!({"metadata": {"name": "2fa"}}), None).unwrap_err();
        assert_eq!((e.code, e.reason), (422, "Invalid"));
        assert!(
            e.message
                .starts_with("Service \"2fa\" is invalid: metadata.name: Invalid value: \"2fa\": a DNS-1035 label"),
            "{}",
            e.message
        );
        assert_eq!(e.causes[0]["field"], "metadata.name");
        assert_eq!(e.causes[0]["reason"], "FieldValueInvalid");
        // The same name is fine for a Deployment (a DNS-1123 subdomain).
        check(
            &rt("Deployment"),
            &json!({"metadata": {"name": "2fa"}}),
            None,
        )
        .unwrap();
    }

    #[test]
    fn a_cron_job_name_is_at_most_52_characters() {
        let name = "a".repeat(53);
        let e = check(&rt("CronJob"), &json!({"metadata": {"name": name}}), None).unwrap_err();
        assert!(
            e.message.contains("must be no more than 52 characters"),
            "{}",
            e.message
        );
        assert_eq!(e.kind, "CronJob");
        check(
            &rt("CronJob"),
            &json!({"metadata": {"name": "a".repeat(52)}}),
            None,
        )
        .unwrap();
    }

    #[test]
    fn immutable_fields_cannot_change() {
        let before =
            json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"a": "1"}}}});
        let after =
            json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"a": "2"}}}});
        let e = check(&rt("Deployment"), &after, Some(&before)).unwrap_err();
        assert!(
            e.message.contains("spec.selector: Invalid value"),
            "{}",
            e.message
        );
        assert!(e.message.ends_with("field is immutable"));
        let svc = json!({"metadata": {"name": "web"}, "spec": {"clusterIP": "10.96.0.5"}});
        let moved = json!({"metadata": {"name": "web"}, "spec": {"clusterIP": "10.96.0.9"}});
        let e = check(&rt("Service"), &moved, Some(&svc)).unwrap_err();
        assert!(
            e.message.contains("may not change once set"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_secret_holds_at_most_one_mebibyte() {
        let big = base64::engine::general_purpose::STANDARD.encode(vec![0u8; MAX_SECRET_BYTES + 1]);
        let e = check(
            &rt("Secret"),
            &json!({"metadata": {"name": "s"}, "data": {"k": big}}),
            None,
        )
        .unwrap_err();
        assert_eq!(e.causes[0]["reason"], "FieldValueTooLong");
        assert!(
            e.message
                .contains("data: Too long: must have at most 1048576 bytes")
        );
    }

    #[test]
    fn name_rules() {
        assert!(is_dns1035_label("web-2"));
        assert!(!is_dns1035_label("2fa") && !is_dns1035_label("web-") && !is_dns1035_label("Web"));
        assert!(is_dns1123_label("2fa"));
        assert!(is_dns1123_subdomain("sh.helm.release.v1.web.v1"));
        assert!(!is_dns1123_subdomain("a..b") && !is_dns1123_subdomain("under_score"));
    }
}
