//! A burst waits at the door, not in the queues: an organisation's starts beyond its
//! in-flight limit are a 429 with Retry-After (audited, nothing recorded), a repeat of an
//! accepted request is still answered, and other organisations are not held back.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Stack, setup_request};

const LIMIT: u32 = 5;

#[tokio::test]
async fn starts_beyond_the_in_flight_limit_are_refused_with_retry_after() {
    let stack = Stack::without_worker_allowing(LIMIT).await;
    let org = stack.organization().await;
    let base = format!("/v1/organizations/{org}");
    let mut accounts = Vec::new();
    for _ in 0..=LIMIT {
        let tenant = stack.customer_tenant_trusting(org);
        let (status, account) = stack.register_azure_account(org, &tenant).await;
        assert_eq!(status, StatusCode::CREATED, "{account}");
        accounts.push(account["id"].as_str().unwrap().parse().unwrap());
    }
    // No worker runs them: each stays in flight.
    for (i, account) in accounts.iter().take(LIMIT as usize).enumerate() {
        let key = format!("setup-{i}");
        let (status, _, started) = stack
            .api
            .post(
                &format!("{base}/runs"),
                json!(setup_request(*account)),
                &[("idempotency-key", key.as_str())],
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "start {i}: {started}");
    }
    let (status, headers, refused) = stack
        .api
        .post(
            &format!("{base}/runs"),
            json!(setup_request(accounts[LIMIT as usize])),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{refused}");
    assert_eq!(headers["retry-after"], "10");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("runs in flight"),
        "{refused}"
    );
    // A client repeating an accepted request gets its answer, not a refusal.
    let (status, _, repeated) = stack
        .api
        .post(
            &format!("{base}/runs"),
            json!(setup_request(accounts[2])),
            &[("idempotency-key", "setup-2")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{repeated}");
    // Nothing of the refused start was recorded; the refusal is on the trail.
    let (_, runs) = stack.api.get(&format!("{base}/runs")).await;
    assert_eq!(runs.as_array().unwrap().len(), LIMIT as usize);
    let (_, trail) = stack.api.get(&format!("{base}/audit")).await;
    let refusals: Vec<_> = trail
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["result"] == "failed" && e["details"]["status"] == 429)
        .collect();
    assert_eq!(refusals.len(), 1, "{trail:#}");
    assert_eq!(refusals[0]["action"], "runs.start");
    // Another organisation starts as usual.
    let (other, other_account) = stack.organization_with_azure_account().await;
    let (status, _, started) = stack
        .api
        .post(
            &format!("/v1/organizations/{other}/runs"),
            json!(setup_request(other_account)),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
}
