//! Every list route pages with a cursor: walked one item at a time, each listing gives
//! every item exactly once, in the order of the whole listing, and a made-up cursor is a
//! precise 400.

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{Stack, setup_request};

/// Every page of `path`, `limit` items at a time, following `Windlass-Next-Cursor`.
async fn walk(stack: &Stack, path: &str, limit: u32) -> Vec<Value> {
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    let separator = if path.contains('?') { '&' } else { '?' };
    for _ in 0..1000 {
        let mut url = format!("{}{path}{separator}limit={limit}", stack.api.base);
        if let Some(cursor) = &after {
            url.push_str(&format!("&after={cursor}"));
        }
        let response = stack
            .api
            .http
            .get(url)
            .bearer_auth(stack.api.token.as_deref().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let next = response
            .headers()
            .get("windlass-next-cursor")
            .map(|v| v.to_str().unwrap().to_owned());
        let page: Vec<Value> = response.json().await.unwrap();
        assert!(
            page.len() <= limit as usize,
            "{path}: a page longer than asked"
        );
        items.extend(page);
        match next {
            Some(next) => after = Some(next),
            None => return items,
        }
    }
    panic!("{path}: the cursor never ended");
}

async fn created(stack: &Stack, path: &str, body: Value) -> Value {
    let (status, _, answer) = stack.api.post(path, body, &[]).await;
    assert!(status.is_success(), "{path}: {answer:#}");
    answer
}

#[tokio::test]
async fn every_list_route_gives_every_item_once_a_page_at_a_time() {
    let stack = Stack::without_worker().await;
    let (org, account) = stack.organization_with_azure_account().await;
    stack.mark_verified(org, account).await;
    let base = format!("/v1/organizations/{org}");
    // Three of everything that lists.
    let mut clusters = Vec::new();
    for i in 0..3 {
        let tenant = stack.customer_tenant_trusting(org);
        let (status, other) = stack.register_azure_account(org, &tenant).await;
        assert_eq!(status, StatusCode::CREATED, "{other}");
        created(
            &stack,
            &format!("{base}/runs"),
            json!(setup_request(
                other["id"].as_str().unwrap().parse().unwrap()
            )),
        )
        .await;
        let cluster = created(
            &stack,
            &format!("{base}/clusters"),
            json!({"name": format!("c{i}"), "cloud_account_id": account, "region": "westeurope",
                   "kubernetes_version": "1.33"}),
        )
        .await;
        clusters.push(cluster["cluster"]["id"].as_str().unwrap().to_owned());
        created(
            &stack,
            &format!("{base}/secrets"),
            json!({"name": format!("s/{i}"), "value": "v4lue-of-it"}),
        )
        .await;
        created(
            &stack,
            &format!("{base}/placements"),
            json!({"name": format!("p{i}{}", &org.simple().to_string()[..8])}),
        )
        .await;
        created(
            &stack,
            &format!("{base}/role-bindings"),
            json!({"subject": format!("user:{}", Uuid::new_v4().simple()),
                   "role": {"type": "built_in", "role": "viewer"}}),
        )
        .await;
        created(
            &stack,
            &format!("{base}/api-tokens"),
            json!({"name": format!("t{i}"), "role": {"type": "built_in", "role": "viewer"},
                   "expires_in_days": 3}),
        )
        .await;
        let connection = created(
            &stack,
            &format!("{base}/identity-connections"),
            json!({"name": format!("idp{i}"), "issuer": format!("https://idp{i}.example"),
                   "audience": "windlass", "jwks_uri": "https://idp.example/keys"}),
        )
        .await;
        created(
            &stack,
            &format!("{base}/group-mappings"),
            json!({"connection_id": connection["id"], "idp_group": "g",
                   "role": {"type": "built_in", "role": "viewer"}}),
        )
        .await;
    }
    let project = created(&stack, &format!("{base}/projects"), json!({"name": "p0"})).await;
    created(&stack, &format!("{base}/projects"), json!({"name": "p1"})).await;
    created(&stack, &format!("{base}/projects"), json!({"name": "p2"})).await;
    let project = project["id"].as_str().unwrap();
    let mut environment = String::new();
    for name in ["a", "b", "c"] {
        let created = created(
            &stack,
            &format!("{base}/projects/{project}/environments"),
            json!({"name": name, "type": "production", "cluster_id": clusters[0],
                   "services": [{"kind": "container_app", "name": "web", "image": "w:1", "port": 80}]}),
        )
        .await;
        environment = created["environment"]["id"].as_str().unwrap().to_owned();
    }
    for _ in 0..3 {
        created(
            &stack,
            &format!("{base}/environments/{environment}/deployments"),
            json!({}),
        )
        .await;
    }

    let lists = [
        format!("{base}/cloud-accounts"),
        format!("{base}/runs"),
        format!("{base}/clusters"),
        format!("{base}/maintenance-schedules"),
        format!("{base}/secrets"),
        format!("{base}/placements"),
        format!("{base}/role-bindings"),
        format!("{base}/api-tokens"),
        format!("{base}/identity-connections"),
        format!("{base}/group-mappings"),
        format!("{base}/projects"),
        format!("{base}/projects/{project}/environments"),
        format!("{base}/environments/{environment}/deployments"),
        format!("{base}/audit"),
    ];
    for path in &lists {
        let whole = walk(&stack, path, 500).await;
        assert!(
            whole.len() >= 2,
            "{path}: only {} items to page",
            whole.len()
        );
        assert_eq!(walk(&stack, path, 1).await, whole, "{path} one at a time");
        assert_eq!(walk(&stack, path, 2).await, whole, "{path} two at a time");
        let (status, problem) = stack.api.get(&format!("{path}?after=not-a-cursor!")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {problem:#}");
    }
    // Every list route of the OpenAPI document is one of them.
    let document = serde_json::to_value(windlass_api::openapi_document()).unwrap();
    let mut documented = 0;
    for (template, operations) in document["paths"].as_object().unwrap() {
        let Some(get) = operations.get("get") else {
            continue;
        };
        let lists_items =
            get["responses"]["200"]["content"]["application/json"]["schema"]["type"] == "array";
        if lists_items && !template.ends_with("/log") {
            documented += 1;
            assert!(
                get["responses"]["200"]["headers"]["Windlass-Next-Cursor"].is_object(),
                "{template} documents no cursor"
            );
        }
    }
    assert_eq!(
        documented,
        lists.len(),
        "a list route the walk does not know"
    );
}
