//! Chart references users supply: nothing helm could take for a flag, DNS-label names,
//! `https://` or `oci://` unless the organisation allows plain HTTP.

use reqwest::StatusCode;
use serde_json::{Value, json};
use windlass_core::audit::Environment;

use crate::deployments::allow_plain_http_charts;
use crate::support::Stack;
use crate::tenancy::{audited, cluster_hosting, new_environment, project_of};

fn chart_service(chart: Value) -> Value {
    json!([{"kind": "helm_chart", "name": "cache", "chart": chart}])
}

#[tokio::test]
async fn a_chart_named_like_a_flag_or_served_over_plain_http_is_refused() {
    let stack = Stack::without_worker().await;
    let (org, account) = stack.organization_with_azure_account().await;
    let shop = project_of(&stack, org, "shop").await;
    let cluster =
        cluster_hosting(&stack, org, account, "prod-eu", &[Environment::Production]).await;
    let environments = format!("/v1/organizations/{org}/projects/{shop}/environments");
    let create = |name: &str, chart: Value| {
        let body = new_environment(name, "production", cluster, chart_service(chart));
        let api = &stack.api;
        let path = environments.clone();
        async move { api.post(&path, body, &[]).await }
    };

    // The reproduction: accepted before, then reached helm as a flag.
    let (status, _, problem) = create(
        "prod",
        json!({"from": "repository", "url": "https://charts.example",
               "name": "--post-renderer=/bin/sh", "version": "1.0.0"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem:#}");
    assert!(
        problem["detail"].as_str().unwrap().contains("DNS label"),
        "{problem:#}"
    );
    for chart in [
        json!({"from": "oci", "reference": "oci://registry.example/--post-renderer=/bin/sh", "version": "1"}),
        json!({"from": "oci", "reference": "oci://registry.example/charts/redis", "version": "--post-renderer=/bin/sh"}),
        json!({"from": "repository", "url": "https://user:pw@charts.example", "name": "redis", "version": "1"}),
        json!({"from": "repository", "url": "file:///etc", "name": "redis", "version": "1"}),
    ] {
        let (status, _, problem) = create("prod", chart.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{chart}: {problem:#}"
        );
    }

    // Plain HTTP: refused until an administrator of the organisation allows it.
    let plain = json!({"from": "repository", "url": "http://charts.internal", "name": "redis", "version": "1.0.0"});
    let (status, _, problem) = create("prod", plain.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem:#}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("allow_plain_http_charts"),
        "{problem:#}"
    );
    let organization = allow_plain_http_charts(&stack, org).await;
    assert_eq!(organization["allow_plain_http_charts"], true);
    assert_eq!(
        audited(&stack, org, "organizations.chart_policy")
            .await
            .len(),
        1
    );
    let (status, _, created) = create("prod", plain).await;
    assert_eq!(status, StatusCode::CREATED, "{created:#}");

    // A well-formed https chart was and stays accepted.
    let (status, _, created) = create(
        "staging",
        json!({"from": "repository", "url": "https://charts.example", "name": "redis", "version": "20.1.0"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created:#}");
}
