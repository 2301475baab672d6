//! What a client of the API can rely on: problem documents with precise 4xx statuses for
//! every kind of bad input, and an OpenAPI document that matches the served routes.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{Stack, repo_root, setup_request};

fn assert_problem(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &Value,
    expected: StatusCode,
) {
    assert_eq!(status, expected, "{body:#}");
    assert_eq!(
        headers.get("content-type").unwrap(),
        "application/problem+json",
        "{body:#}"
    );
    assert_eq!(body["status"], expected.as_u16(), "{body:#}");
    assert!(
        !body["detail"].as_str().unwrap_or_default().is_empty(),
        "a problem says what went wrong: {body:#}"
    );
}

#[tokio::test]
async fn bad_input_gets_a_precise_client_error_and_changes_nothing() {
    let stack = Stack::without_worker().await;
    let (org, account) = stack.organization_with_azure_account().await;
    let runs = format!("/v1/organizations/{org}/runs");
    let json_type = Some("application/json");

    let (s, h, b) = stack
        .api
        .raw(Method::POST, &runs, json_type, b"{\"workflow\": ".to_vec())
        .await;
    assert_problem(s, &h, &b, StatusCode::BAD_REQUEST);
    assert!(
        b["detail"].as_str().unwrap().contains("malformed JSON"),
        "{b:#}"
    );

    let mut unknown_field = json!(setup_request(account));
    unknown_field["region"] = json!("westeurope");
    let (s, h, b) = stack
        .api
        .raw(
            Method::POST,
            &runs,
            json_type,
            unknown_field.to_string().into_bytes(),
        )
        .await;
    assert_problem(s, &h, &b, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(b["detail"].as_str().unwrap().contains("region"), "{b:#}");

    let (s, h, b) = stack
        .api
        .raw(
            Method::POST,
            &runs,
            json_type,
            json!({"workflow": "mine_bitcoin"}).to_string().into_bytes(),
        )
        .await;
    assert_problem(s, &h, &b, StatusCode::UNPROCESSABLE_ENTITY);

    let (s, h, b) = stack
        .api
        .raw(
            Method::POST,
            &runs,
            Some("text/plain"),
            json!(setup_request(account)).to_string().into_bytes(),
        )
        .await;
    assert_problem(s, &h, &b, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let oversized = json!({"name": "x".repeat(200_000)})
        .to_string()
        .into_bytes();
    let (s, h, b) = stack
        .api
        .raw(Method::POST, "/v1/organizations", json_type, oversized)
        .await;
    assert_problem(s, &h, &b, StatusCode::PAYLOAD_TOO_LARGE);

    let (s, h, b) = stack
        .api
        .raw(
            Method::GET,
            &format!("{runs}/{}", Uuid::new_v4()),
            None,
            vec![],
        )
        .await;
    assert_problem(s, &h, &b, StatusCode::NOT_FOUND);

    let (s, h, b) = stack
        .api
        .raw(Method::GET, &format!("{runs}/not-a-uuid"), None, vec![])
        .await;
    assert_problem(s, &h, &b, StatusCode::NOT_FOUND);

    let (s, h, b) = stack
        .api
        .raw(
            Method::GET,
            &format!("/v1/organizations/{}/runs", Uuid::new_v4()),
            None,
            vec![],
        )
        .await;
    // An organisation the caller has no role in, existing or not, is forbidden alike.
    assert_problem(s, &h, &b, StatusCode::FORBIDDEN);

    let (s, h, b) = stack
        .api
        .raw(Method::GET, &format!("{runs}?limit=0"), None, vec![])
        .await;
    assert_problem(s, &h, &b, StatusCode::BAD_REQUEST);

    let (s, h, b) = stack
        .api
        .raw(
            Method::GET,
            &format!("{runs}?status=exploded"),
            None,
            vec![],
        )
        .await;
    assert_problem(s, &h, &b, StatusCode::BAD_REQUEST);

    let (s, h, b) = stack.api.raw(Method::DELETE, &runs, None, vec![]).await;
    assert_problem(s, &h, &b, StatusCode::METHOD_NOT_ALLOWED);

    let (s, h, b) = stack
        .api
        .raw(Method::GET, "/v2/anything", None, vec![])
        .await;
    assert_problem(s, &h, &b, StatusCode::NOT_FOUND);

    let (s, h, b) = stack
        .api
        .post(
            &runs,
            json!(setup_request(account)),
            &[("idempotency-key", "")],
        )
        .await;
    assert_problem(s, &h, &b, StatusCode::BAD_REQUEST);

    // Another organisation's account is not found, not borrowed.
    let (other_org, _) = stack.organization_with_azure_account().await;
    let (s, h, b) = stack
        .api
        .post(
            &format!("/v1/organizations/{other_org}/runs"),
            json!(setup_request(account)),
            &[],
        )
        .await;
    assert_problem(s, &h, &b, StatusCode::NOT_FOUND);

    let (s, h, b) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/cloud-accounts"),
            json!({"provider": "azure", "external_id": "not-a-subscription", "display_name": "x"}),
            &[],
        )
        .await;
    assert_problem(s, &h, &b, StatusCode::UNPROCESSABLE_ENTITY);

    // None of it started or recorded anything.
    let (status, listed) = stack.api.get(&runs).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed, json!([]));
    let (_, accounts) = stack
        .api
        .get(&format!("/v1/organizations/{org}/cloud-accounts"))
        .await;
    assert_eq!(accounts.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_openapi_document_describes_every_served_route_and_is_checked_in() {
    let stack = Stack::without_worker().await;
    let (status, served) = stack.api.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let generated = serde_json::to_value(windlass_api::openapi_document()).unwrap();
    assert_eq!(served, generated);

    let paths = served["paths"].as_object().unwrap();
    for (path, method) in [
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/v1/organizations", "post"),
        ("/v1/organizations/{organization_id}", "get"),
        ("/v1/organizations/{organization_id}/cloud-accounts", "post"),
        ("/v1/organizations/{organization_id}/cloud-accounts", "get"),
        ("/v1/organizations/{organization_id}/runs", "post"),
        ("/v1/organizations/{organization_id}/runs", "get"),
        ("/v1/organizations/{organization_id}/runs/{run_id}", "get"),
        (
            "/v1/organizations/{organization_id}/runs/{run_id}/cancel",
            "post",
        ),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not documented"
        );
    }

    // The checked-in copy is what clients generate code from: it must not drift.
    let checked_in_path = repo_root().join("openapi.json");
    let pretty = serde_json::to_string_pretty(&generated).unwrap() + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&checked_in_path, &pretty).unwrap();
    }
    let checked_in = std::fs::read_to_string(&checked_in_path)
        .expect("openapi.json at the repository root (UPDATE_OPENAPI=1 writes it)");
    assert_eq!(
        checked_in, pretty,
        "openapi.json is stale: run the tests with UPDATE_OPENAPI=1 and commit it"
    );
}
