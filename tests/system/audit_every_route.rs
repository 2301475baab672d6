//! Every state-changing route, walked as an auditor would: each call leaves exactly one
//! entry in the organisation's trail, success or not; and when the trail cannot be
//! written, no route changes anything (the database as a dump, and Temporal's runs,
//! unchanged).

use std::collections::BTreeSet;
use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{Stack, repo_root, setup_request};

/// One call of a route, and the entry it must leave.
struct Call {
    method: Method,
    /// The OpenAPI template it exercises.
    template: &'static str,
    path: String,
    body: Value,
    action: &'static str,
}

impl Call {
    fn new(
        method: Method,
        template: &'static str,
        path: String,
        body: Value,
        action: &'static str,
    ) -> Self {
        Self {
            method,
            template,
            path,
            body,
            action,
        }
    }
}

/// What the walk works on: an organisation with a verified account, a cluster, a project
/// and an environment, made through the API before the walk.
struct Estate {
    org: Uuid,
    account: Uuid,
    cluster: String,
    project: String,
    environment: String,
    webhook_secret: String,
}

async fn estate(stack: &Stack) -> Estate {
    let org = stack.organization().await;
    let tenant = stack.customer_tenant_trusting(org);
    let (status, account) = stack.register_azure_account(org, &tenant).await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
    let account: Uuid = account["id"].as_str().unwrap().parse().unwrap();
    stack.mark_verified(org, account).await;
    let base = format!("/v1/organizations/{org}");
    let (status, _, cluster) = stack
        .api
        .post(
            &format!("{base}/clusters"),
            json!({"name": "walk", "cloud_account_id": account, "region": "westeurope",
                   "kubernetes_version": "1.33"}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{cluster}");
    let cluster = cluster["cluster"]["id"].as_str().unwrap().to_owned();
    let (status, _, project) = stack
        .api
        .post(&format!("{base}/projects"), json!({"name": "walk"}), &[])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    let project = project["id"].as_str().unwrap().to_owned();
    let (status, _, environment) = stack
        .api
        .post(
            &format!("{base}/projects/{project}/environments"),
            json!({"name": "prod", "type": "production", "cluster_id": cluster,
                   "services": [{"kind": "container_app", "name": "web", "image": "walk/web:1",
                                 "port": 8080}]}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{environment}");
    Estate {
        org,
        account,
        cluster,
        project,
        environment: environment["environment"]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        webhook_secret: environment["webhook_secret"].as_str().unwrap().to_owned(),
    }
}

/// The calls that change something, in an order where each finds what it needs: the
/// ids they name are made by the calls before (through `made`).
fn calls(estate: &Estate, made: &Made) -> Vec<Call> {
    let Estate {
        org,
        account,
        cluster,
        project,
        environment,
        ..
    } = estate;
    let base = format!("/v1/organizations/{org}");
    let custom_reader = json!({"type": "custom", "name": "reader",
        "grants": [{"permission": "runs_read", "scope": {"kind": "all_clusters"}}]});
    vec![
        Call::new(
            Method::POST,
            "/v1/organizations/{organization_id}/cloud-accounts",
            format!("{base}/cloud-accounts"),
            json!({"provider": "azure", "tenant_id": Uuid::new_v4(), "external_id": Uuid::new_v4(),
                   "display_name": "second"}),
            "cloud_accounts.create",
        ),
        Call::new(
            Method::PUT,
            "/v1/organizations/{organization_id}/chart-policy",
            format!("{base}/chart-policy"),
            json!({"allow_plain_http": true}),
            "organizations.chart_policy",
        ),
        Call::new(
            Method::POST,
            "/v1/organizations/{organization_id}/identity-connections",
            format!("{base}/identity-connections"),
            json!({"name": "corp", "issuer": format!("https://idp.example/{org}"),
                   "audience": "windlass", "jwks_uri": "https://idp.example/keys"}),
            "access.create_identity_connection",
        ),
        Call::new(
            Method::POST,
            "/v1/organizations/{organization_id}/group-mappings",
            format!("{base}/group-mappings"),
            json!({"connection_id": made.get("connection"), "idp_group": "readers",
                   "role": {"type": "built_in", "role": "viewer"}}),
            "access.map_group",
        ),
        Call::new(
            Method::DELETE,
            "/v1/organizations/{organization_id}/group-mappings/{mapping_id}",
            format!("{base}/group-mappings/{}", made.get("mapping")),
            Value::Null,
            "access.delete_group_mapping",
        ),
        Call::new(
            Method::DELETE,
            "/v1/organizations/{organization_id}/identity-connections/{connection_id}",
            format!("{base}/identity-connections/{}", made.get("connection")),
            Value::Null,
            "access.delete_identity_connection",
        ),
        Call::new(
            Method::POST,
            "/v1/organizations/{organization_id}/role-bindings",
            format!("{base}/role-bindings"),
            json!({"subject": MEMBER, "role": custom_reader}),
            "access.bind_role",
        ),
        // A second role, so the member is still there for the removal below.
        Call::new(
            Method::POST,
            "/v1/organizations/{organization_id}/role-bindings",
            format!("{base}/role-bindings"),
            json!({"subject": MEMBER, "role": {"type": "built_in", "role": "viewer"}}),
            "access.bind_role",
        ),
        Call::new(
            Method::DELETE,
            "/v1/organizations/{organization_id}/role-bindings/{binding_id}",
            format!("{base}/role-bindings/{}", made.get("binding")),
            Value::Null,
            "access.delete_role_binding",
        ),
        Call::new(
            Method::DELETE,
            "/v1/organizations/{organization_id}/members/{subject}",
            format!("{base}/members/{MEMBER}"),
            Value::Null,
            "access.remove_member",
        ),
        Call::new(
            Method::POST,
            "/v1/organizations/{organization_id}/api-tokens",
            format!("{base}/api-tokens"),
            json!({"name": "ci", "role": custom_reader, "expires_in_days": 30}),
            "access.issue_api_token",
        ),
        Call::new(
            Method::POST,
            "/v1/organizations/{organization_id}/api-tokens/{token_id}/revoke",
            format!("{base}/api-tokens/{}/revoke", made.get("token")),
            Value::Null,
            "access.revoke_api_token",
        ),
        Call::new(
            Method::POST,
            "/v1/organizations/{organization_id}/placements",
            format!("{base}/placements"),
            json!({"name": format!("p{}", &org.simple().to_string()[..12])}),
            "placements.register",
        ),
        Call::new(
            Method::DELETE,
            "/v1/organizations/{organization_id}/placements/{name}",
            format!("{base}/placements/p{}", &org.simple().to_string()[..12]),
            Value::Null,
            "placements.delete",
        ),
        Call::new(
            Method::POST,
            "/v1/organizations/{organization_id}/secrets",
            format!("{base}/secrets"),
            json!({"name": "walk/token", "value": "s3cret-walk-value"}),
            "secrets.put",
        ),
        Call::new(
            Method::POST,
            "/v1/organizations/{organization_id}/projects",
            format!("{base}/projects"),
            json!({"name": "second"}),
            "projects.create",
        ),
        Call::new(
            Method::POST,
            "/v1/organizations/{organization_id}/projects/{project_id}/environments",
            format!("{base}/projects/{project}/environments"),
            json!({"name": "staging", "type": "staging", "cluster_id": cluster}),
            "environments.create",
        ),
        Call::new(
            Method::PUT,
            "/v1/organizations/{organization_id}/environments/{environment_id}/services",
            format!("{base}/environments/{environment}/services"),
            json!([{"kind": "container_app", "name": "web", "image": "walk/web:2", "port": 8080}]),
            "environments.update",
        ),
        Call::new(
            Method::POST,
            "/v1/organizations/{organization_id}/environments/{environment_id}/webhook-secret",
            format!("{base}/environments/{environment}/webhook-secret"),
            Value::Null,
            "environments.webhook_secret.rotate",
        ),
        Call::new(
            Method::POST,
            "/v1/organizations/{organization_id}/environments/{environment_id}/deployments",
            format!("{base}/environments/{environment}/deployments"),
            json!({}),
            "environments.deploy",
        ),
        Call::new(
            Method::POST,
            "/v1/webhooks/environments/{environment_id}/deployments",
            format!("/v1/webhooks/environments/{environment}/deployments"),
            json!({"images": {"web": "walk/web:3"}}),
            "environments.deploy",
        ),
        Call::new(
            Method::POST,
            "/v1/organizations/{organization_id}/clusters/{cluster_id}/maintenance/pause",
            format!("{base}/clusters/{cluster}/maintenance/pause"),
            json!({"note": "walk"}),
            "maintenance.pause",
        ),
        Call::new(
            Method::POST,
            "/v1/organizations/{organization_id}/clusters/{cluster_id}/maintenance/unpause",
            format!("{base}/clusters/{cluster}/maintenance/unpause"),
            json!({"note": "walk"}),
            "maintenance.unpause",
        ),
        Call::new(
            Method::POST,
            "/v1/organizations/{organization_id}/clusters/{cluster_id}/maintenance/backfill",
            format!("{base}/clusters/{cluster}/maintenance/backfill"),
            json!({"start": "2026-01-01T00:00:00Z", "end": "2026-01-08T00:00:00Z"}),
            "maintenance.backfill",
        ),
        Call::new(
            Method::POST,
            "/v1/organizations/{organization_id}/clusters/{cluster_id}/maintenance/trigger",
            format!("{base}/clusters/{cluster}/maintenance/trigger"),
            Value::Null,
            "maintenance.trigger",
        ),
        // The provisioning still holds the cluster: refused (409), and on the record.
        Call::new(
            Method::POST,
            "/v1/organizations/{organization_id}/clusters/{cluster_id}/upgrade",
            format!("{base}/clusters/{cluster}/upgrade"),
            json!({"kubernetes_version": "1.34"}),
            "clusters.upgrade",
        ),
        Call::new(
            Method::POST,
            "/v1/organizations/{organization_id}/runs",
            format!("{base}/runs"),
            json!(setup_request(*account)),
            "runs.start",
        ),
        Call::new(
            Method::POST,
            "/v1/organizations/{organization_id}/runs/{run_id}/cancel",
            format!("{base}/runs/{}/cancel", made.get("run")),
            json!({}),
            "runs.cancel",
        ),
        Call::new(
            Method::DELETE,
            "/v1/organizations/{organization_id}/clusters/{cluster_id}",
            format!("{base}/clusters/{cluster}"),
            Value::Null,
            "clusters.delete",
        ),
        Call::new(
            Method::POST,
            "/v1/organizations/{organization_id}/clusters",
            format!("{base}/clusters"),
            json!({"name": "second", "cloud_account_id": account, "region": "westeurope",
                   "kubernetes_version": "1.33"}),
            "clusters.create",
        ),
    ]
}

const MEMBER: &str = "user:0123456789abcdef0123456789abcdef";

/// Ids the walk's calls made, for the calls after them.
#[derive(Default)]
struct Made(std::collections::HashMap<&'static str, String>);

impl Made {
    fn get(&self, what: &str) -> String {
        self.0
            .get(what)
            .cloned()
            .unwrap_or_else(|| Uuid::nil().to_string())
    }

    fn learn(&mut self, action: &str, answer: &Value) {
        let id = |v: &Value| v.as_str().map(str::to_owned);
        let learned = match action {
            "access.create_identity_connection" => Some(("connection", id(&answer["id"]))),
            "access.map_group" => Some(("mapping", id(&answer["id"]))),
            "access.bind_role" => Some(("binding", id(&answer["id"]))),
            "access.issue_api_token" => Some(("token", id(&answer["id"]))),
            "runs.start" => Some(("run", id(&answer["id"]))),
            "environments.webhook_secret.rotate" => {
                Some(("webhook_secret", id(&answer["webhook_secret"])))
            }
            _ => None,
        };
        if let Some((what, Some(value))) = learned {
            self.0.insert(what, value);
        }
    }
}

async fn send(stack: &Stack, estate: &Estate, made: &Made, call: &Call) -> (StatusCode, Value) {
    if call.template.starts_with("/v1/webhooks/") {
        let body = call.body.to_string();
        let key = Uuid::new_v4().to_string();
        let secret = made
            .0
            .get("webhook_secret")
            .unwrap_or(&estate.webhook_secret);
        let signature = windlass_api::webhooks::sign(
            secret,
            chrono::Utc::now().timestamp(),
            Some(&key),
            body.as_bytes(),
        );
        let response = reqwest::Client::new()
            .post(format!("{}{}", stack.api.base, call.path))
            .header("content-type", "application/json")
            .header("windlass-signature", signature)
            .header("idempotency-key", key)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        return (status, response.json().await.unwrap_or(Value::Null));
    }
    let body = if call.body.is_null() {
        Vec::new()
    } else {
        call.body.to_string().into_bytes()
    };
    let content_type = (!call.body.is_null()).then_some("application/json");
    let (status, _, answer) = stack
        .api
        .raw(call.method.clone(), &call.path, content_type, body)
        .await;
    (status, answer)
}

async fn trail(stack: &Stack, org: Uuid) -> Vec<Value> {
    let (status, trail) = stack
        .api
        .get(&format!("/v1/organizations/{org}/audit?limit=1000"))
        .await;
    assert_eq!(status, StatusCode::OK, "{trail:#}");
    trail.as_array().unwrap().clone()
}

/// Every POST, PUT, PATCH and DELETE the OpenAPI document lists.
fn documented_changes() -> BTreeSet<(String, String)> {
    let document = serde_json::to_value(windlass_api::openapi_document()).unwrap();
    let mut changes = BTreeSet::new();
    for (template, operations) in document["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            if ["post", "put", "patch", "delete"].contains(&method.as_str()) {
                changes.insert((method.to_uppercase(), template.clone()));
            }
        }
    }
    changes
}

#[tokio::test]
async fn every_state_changing_route_leaves_exactly_one_entry() {
    let stack = Stack::without_worker().await;
    // Creating an organisation opens its chain with exactly one entry.
    let estate = estate(&stack).await;
    let first = trail(&stack, estate.org).await;
    assert_eq!(first[0]["action"], "organizations.create", "{first:#?}");
    assert_eq!(
        first
            .iter()
            .filter(|e| e["action"] == "organizations.create")
            .count(),
        1
    );
    let mut walked = BTreeSet::from([("POST".to_owned(), "/v1/organizations".to_owned())]);
    let mut made = Made::default();
    let count = calls(&estate, &made).len();
    for index in 0..count {
        // Each call is built when its turn comes, from what the calls before made.
        let call = calls(&estate, &made).remove(index);
        let before = trail(&stack, estate.org).await;
        let (status, answer) = send(&stack, &estate, &made, &call).await;
        let after = trail(&stack, estate.org).await;
        let new = &after[before.len()..];
        assert_eq!(
            new.len(),
            1,
            "{} {} ({status}) left {} entries: {new:#?}",
            call.method,
            call.template,
            new.len()
        );
        assert_eq!(
            new[0]["action"], call.action,
            "{} {} ({status}): {new:#?}",
            call.method, call.template
        );
        let expected = if status.is_success() {
            "success"
        } else {
            "failed"
        };
        assert_eq!(
            new[0]["result"], expected,
            "{} {}: {answer:#}",
            call.method, call.template
        );
        // The upgrade and the delete are refused while the provisioning holds the
        // cluster (no worker runs it here); every other call of the walk succeeds.
        if !["clusters.upgrade", "clusters.delete"].contains(&call.action) {
            assert!(
                status.is_success(),
                "{} {} answered {status}: {answer:#}",
                call.method,
                call.template
            );
        }
        made.learn(call.action, &answer);
        walked.insert((call.method.to_string(), call.template.to_owned()));
    }
    assert_eq!(
        walked,
        documented_changes(),
        "the walk must cover every documented state-changing route"
    );
}

/// The database as text, audit tables left out (their rows are what the test refuses), and
/// the webhook replay cache (a signature is spent once presented, whatever follows: a
/// refused deployment must not make its signature reusable).
fn dump(database_url: &str) -> String {
    let path = database_url
        .trim_start_matches("sqlite://")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let output = Command::new(repo_root().join(".venv/bin/python"))
        .args([
            "-c",
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1])\n\
             for line in c.iterdump():\n\
             \x20   if 'audit_' not in line and 'webhook_signatures_seen' not in line: print(line)",
            &path,
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The estate's cluster's maintenance schedule, as its owner reads it.
async fn schedule(stack: &Stack, estate: &Estate) -> Value {
    stack
        .api
        .get(&format!(
            "/v1/organizations/{}/clusters/{}/maintenance",
            estate.org, estate.cluster
        ))
        .await
        .1
}

#[tokio::test]
async fn when_the_trail_cannot_be_written_no_route_changes_anything() {
    let stack = Stack::without_worker().await;
    let estate = estate(&stack).await;
    // A run to cancel and ids for the routes that name one, made while the trail works.
    let mut made = Made::default();
    for call in calls(&estate, &made) {
        if ["access.create_identity_connection", "runs.start"].contains(&call.action) {
            let (status, answer) = send(&stack, &estate, &made, &call).await;
            assert!(status.is_success(), "{answer:#}");
            made.learn(call.action, &answer);
        }
    }
    let schedule_before = schedule(&stack, &estate).await;
    let database_before = dump(&stack.database_url);
    sqlx::query(
        "CREATE TRIGGER refuse_entries BEFORE INSERT ON audit_log \
         BEGIN SELECT RAISE(ABORT, 'forced append failure'); END",
    )
    .execute(stack.store.pool_for_tests())
    .await
    .unwrap();
    let (status, _, answer) = stack
        .api
        .post("/v1/organizations", json!({"name": "unrecorded"}), &[])
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer:#}");
    let mut refused_for_the_trail = 0;
    for call in calls(&estate, &made) {
        let (status, answer) = send(&stack, &estate, &made, &call).await;
        // Calls naming what the walk did not make here (a mapping, a binding) are
        // refused (404), as are repeats of what the set-up made (409); the others
        // because their entry cannot be written.
        assert!(
            [
                StatusCode::SERVICE_UNAVAILABLE,
                StatusCode::NOT_FOUND,
                StatusCode::CONFLICT
            ]
            .contains(&status),
            "{} {} answered {status}: {answer:#}",
            call.method,
            call.template
        );
        refused_for_the_trail += usize::from(status == StatusCode::SERVICE_UNAVAILABLE);
    }
    assert!(
        refused_for_the_trail >= 18,
        "only {refused_for_the_trail} reached their change"
    );
    assert_eq!(
        dump(&stack.database_url),
        database_before,
        "a route changed the database without its entry"
    );
    // Nor did anything reach Temporal: the schedule is as it was.
    let schedule_after = schedule(&stack, &estate).await;
    assert_eq!(schedule_after["paused"], schedule_before["paused"]);
    assert_eq!(schedule_after["note"], schedule_before["note"]);
}
