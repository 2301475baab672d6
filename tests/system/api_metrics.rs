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

#[tokio::test]
async fn invented_methods_leave_the_metrics_the_same_size() {
    let stack = Stack::without_worker().await;
    let http = reqwest::Client::new();
    let scrape = || async {
        reqwest::get(format!("{}/metrics", stack.api.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let invent = |i: u32| {
        reqwest::Method::from_bytes(format!("M{:08X}", i.wrapping_mul(2_654_435_761)).as_bytes())
            .unwrap()
    };
    // One of each kind first, so the series they count under exist.
    for path in [
        "/v1/organizations".to_owned(),
        format!("/nowhere/{}", uuid::Uuid::new_v4()),
    ] {
        http.request(invent(0), format!("{}{path}", stack.api.base))
            .send()
            .await
            .unwrap();
    }
    // The first scrape counts itself.
    scrape().await;
    let before = scrape().await;
    // The issue's reproduction: 500 unauthenticated requests with random methods (and
    // random paths) once added 9,519 lines.
    for i in 1..=500 {
        let path = if i % 2 == 0 {
            "/v1/organizations".to_owned()
        } else {
            format!("/nowhere/{}", uuid::Uuid::new_v4())
        };
        let answer = http
            .request(invent(i), format!("{}{path}", stack.api.base))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_client_error(), "{}", answer.status());
    }
    let after = scrape().await;
    assert_eq!(
        before.lines().count(),
        after.lines().count(),
        "series added:\n{}",
        after
            .lines()
            .filter(|l| !before
                .lines()
                .any(|b| b.split(' ').next() == l.split(' ').next()))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(after.contains(r#"method="other""#), "{after}");
    assert!(!after.contains("M0"), "no invented method is a label value");
}
