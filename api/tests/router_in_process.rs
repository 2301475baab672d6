//! The API's router in process (`oneshot`, axum's testing example) over an in-process
//! engine that journals what it was asked: who may call what, and what reaches the
//! workflow engine, without a Temporal server. The system tests drive the same routes
//! against the real one.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;
use windlass_test_support::TestApi;
use windlass_workflows::engine::WorkflowInput;

const PUBLIC: [&str; 2] = ["/healthz", "/readyz"];

fn setup_request(account: Uuid) -> Value {
    json!({
        "workflow": "azure_access_setup",
        "cloud_account_id": account,
        "setup_identity_client_id": Uuid::new_v4(),
    })
}

#[tokio::test]
async fn every_documented_route_refuses_a_caller_without_a_valid_token() {
    let api = TestApi::start().await;
    let (org, _) = api.organization_with_azure_account().await;
    let forged =
        "eyJhbGciOiJFUzI1NiIsImtpZCI6InN0YW5kaW4tMSJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJl";
    let made_up = format!("wlt_{}_00", Uuid::new_v4().simple());
    let document = serde_json::to_value(windlass_api::openapi_document()).unwrap();
    let mut checked = 0;
    for (template, operations) in document["paths"].as_object().unwrap() {
        if PUBLIC.contains(&template.as_str()) {
            continue;
        }
        let path = template
            .replace("{organization_id}", &org.to_string())
            .replace("{run_id}", &Uuid::new_v4().to_string())
            .replace("{project_id}", &Uuid::new_v4().to_string())
            .replace("{environment_id}", &Uuid::new_v4().to_string());
        for method in operations.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            for (who, token) in [
                ("anonymous", None),
                ("forged", Some(forged)),
                ("made-up", Some(made_up.as_str())),
            ] {
                let (status, body) = api
                    .raw(
                        method.clone(),
                        &path,
                        token,
                        &[("content-type", "application/json")],
                        b"{}".to_vec(),
                    )
                    .await;
                // 422 would mean the body was judged before the caller: never for a route
                // whose JSON is valid; here `{}` is invalid, so only 401 is acceptable.
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{who} {method} {template}: {body:#}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 9, "only {checked} routes checked");
    assert_eq!(
        api.engine.calls(),
        [],
        "a refused caller reached the engine"
    );
}

#[tokio::test]
async fn a_start_reaches_the_engine_once_with_its_typed_input_and_a_repeat_does_not() {
    let api = TestApi::start().await;
    let (org, account) = api.organization_with_azure_account().await;
    let path = format!("/v1/organizations/{org}/runs");
    let request = setup_request(account);
    let (status, first) = api
        .call_as(
            &api.tester,
            Method::POST,
            &path,
            Some(request.clone()),
            &[("idempotency-key", "setup-1")],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let (status, again) = api
        .call_as(
            &api.tester,
            Method::POST,
            &path,
            Some(request),
            &[("idempotency-key", "setup-1")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(first["id"], again["id"]);

    let started = api.engine.started();
    assert_eq!(started.len(), 1, "{started:?}");
    let (started_org, workflow_id, input) = &started[0];
    assert_eq!(*started_org, org);
    assert_eq!(
        Some(workflow_id.as_str()),
        first["workflow_id"].as_str(),
        "{first}"
    );
    let WorkflowInput::AzureAccessSetup(input) = input else {
        panic!("started {input:?}");
    };
    assert_eq!(input.target.organization_id, org);
    assert_eq!(input.target.cloud_account_id, account);
    assert_eq!(input.application_id, windlass_test_support::APPLICATION_ID);
}

#[tokio::test]
async fn a_caller_of_another_organization_starts_nothing_there() {
    let api = TestApi::start().await;
    let (victim, account) = api.organization_with_azure_account().await;
    // Mallory is admin of her own organisation, and nothing in the victim's.
    let mallory = api.idp.token("mallory", &[], 3600);
    let (status, own) = api
        .call_as(
            &mallory,
            Method::POST,
            "/v1/organizations",
            Some(json!({"name": format!("mallory-{}", Uuid::new_v4())})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{own}");

    let (status, refused) = api
        .call_as(
            &mallory,
            Method::POST,
            &format!("/v1/organizations/{victim}/runs"),
            Some(setup_request(account)),
            &[],
        )
        .await;
    assert!(
        status == StatusCode::NOT_FOUND || status == StatusCode::FORBIDDEN,
        "{status} {refused}"
    );
    assert_eq!(
        api.engine.calls(),
        [],
        "the refused start reached the engine"
    );
}
