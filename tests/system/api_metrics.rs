//! The API's `/metrics`: Prometheus text, no token needed, requests counted by route
//! template and status, and not part of the API clients' OpenAPI document.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::Stack;

#[tokio::test]
async fn the_api_counts_requests_by_route_and_status() {
    let stack = Stack::without_worker().await;
    let (status, _, org) = stack
        .api
        .post("/v1/organizations", json!({"name": "metrics-co"}), &[])
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let org = org["id"].as_str().unwrap();
    for _ in 0..2 {
        let (status, _) = stack
            .api
            .get(&format!("/v1/organizations/{org}/runs"))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let anonymous = stack.api.with_token(None);
    let (status, _) = anonymous
        .get(&format!("/v1/organizations/{org}/runs"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let response = reqwest::get(format!("{}/metrics", stack.api.base))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "no token needed");
    let text = response.text().await.unwrap();
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .to_owned()
    };
    assert!(
        line(
            r#"windlass_api_requests_total{method="POST",route="/v1/organizations",status="201"}"#
        )
        .ends_with(" 1")
    );
    // By the route's template, not the organisation's id.
    let runs = line(r#"windlass_api_requests_total{method="GET",route="/v1/organizations/{"#);
    assert!(
        runs.contains(r#"/runs",status="200"}"#) && runs.ends_with(" 2"),
        "{runs}"
    );
    assert!(!text.contains(org), "no id in a label");
    // Refused before routing: counted, under one label value whatever the path.
    line(r#"windlass_api_requests_total{method="GET",route="unmatched",status="401"}"#);
    assert!(
        line(r#"windlass_api_request_duration_seconds_count{method="POST",route="/v1/organizations",status="201"}"#)
            .ends_with(" 1")
    );
    line("windlass_api_requests_in_flight ");

    let (_, document) = stack.api.get("/openapi.json").await;
    assert!(
        document["paths"].get("/metrics").is_none(),
        "not an API route"
    );
}
