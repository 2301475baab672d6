//! Fixtures for the tenant-isolation tests: organisations, projects, clusters that host
//! some environment types, and callers holding exactly the grants a test names.

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;
use windlass_core::audit::Environment;
use windlass_core::rbac::{Role, Scope};
pub use windlass_test_support::tenancy::{record_cluster, role, token_holding};

use crate::support::{Api, Stack};

pub fn previews_of(project: Uuid) -> Scope {
    Scope::EnvironmentType {
        project_id: Some(project),
        environment: Environment::Preview,
    }
}

/// A machine caller of `org` holding exactly `role` (issued through the store, as an
/// administrator would have issued it).
pub async fn caller_holding(stack: &Stack, org: Uuid, role: &Role) -> Api {
    let token = token_holding(&stack.store, org, role).await;
    stack.api.with_token(Some(token))
}

pub async fn project_of(stack: &Stack, org: Uuid, name: &str) -> Uuid {
    let (status, _, project) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/projects"),
            json!({"name": name}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{project:#}");
    project["id"].as_str().unwrap().parse().unwrap()
}

/// A cluster record of `org` hosting only `types` (recorded, not provisioned: these tests
/// stop at the API).
pub async fn cluster_hosting(
    stack: &Stack,
    org: Uuid,
    account: Uuid,
    name: &str,
    types: &[Environment],
) -> Uuid {
    record_cluster(&stack.store, org, account, name, types).await
}

/// The organisation's audit entries of `action`.
pub async fn audited(stack: &Stack, org: Uuid, action: &str) -> Vec<Value> {
    let (status, trail) = stack
        .api
        .get(&format!(
            "/v1/organizations/{org}/audit?action={action}&limit=1000"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{trail:#}");
    trail.as_array().unwrap().clone()
}

pub fn new_environment(name: &str, kind: &str, cluster: Uuid, services: Value) -> Value {
    json!({"name": name, "type": kind, "cluster_id": cluster, "services": services})
}

pub fn app_using_secret(name: &str, secret: &str) -> Value {
    json!([{"kind": "container_app", "name": name, "image": "registry.example/app:1",
            "port": 8080, "secrets": {"DATABASE_URL": secret}}])
}
