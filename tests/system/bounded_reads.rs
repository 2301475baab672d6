//! Reads that hold up under abuse: live streams capped per caller and checked again while
//! they run (a revoked token's stream ends), step logs a page at a time.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use windlass_core::rbac::{BuiltInRole, Role};
use windlass_core::step_logs::LogLine;

use crate::run_events::EventStream;
use crate::support::{Stack, setup_request};

/// What the API promises: a stream re-checks its caller every 10 s.
const REAUTHORIZE_EVERY: Duration = Duration::from_secs(10);

async fn open_stream(stack: &Stack, token: &str, path: &str) -> reqwest::Response {
    stack
        .api
        .http
        .get(format!("{}{path}", stack.api.base))
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn streams_are_capped_per_caller_and_a_revoked_tokens_stream_ends() {
    // No worker: the run stays running, its stream open.
    let stack = Stack::without_worker().await;
    let (org, account) = stack.organization_with_azure_account().await;
    let run = stack
        .start_run(org, setup_request(account), None)
        .await
        .unwrap();
    let path = format!("/v1/organizations/{org}/runs/{}/events", run.id);
    let (token, secret) = stack
        .store
        .issue_api_token(
            org,
            "follower",
            &Role::BuiltIn {
                role: BuiltInRole::Viewer,
            },
            chrono::Duration::hours(1),
        )
        .await
        .unwrap();

    let mut open = Vec::new();
    for _ in 0..8 {
        let response = open_stream(&stack, &secret, &path).await;
        assert_eq!(response.status(), StatusCode::OK);
        open.push(EventStream::from_response(response));
    }
    let ninth = open_stream(&stack, &secret, &path).await;
    assert_eq!(ninth.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(ninth.headers().contains_key("retry-after"));
    // Another caller is not held back by this one's streams.
    let admin = open_stream(&stack, stack.api.token.as_deref().unwrap(), &path).await;
    assert_eq!(admin.status(), StatusCode::OK);
    drop(admin);
    // A closed stream gives its slot back (once the server has seen the client leave).
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let again = open_stream(&stack, &secret, &path).await;
        if again.status() == StatusCode::OK {
            open.push(EventStream::from_response(again));
            break;
        }
        assert!(Instant::now() < deadline, "the slot never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Revoked: every stream of the token ends within the re-authorisation interval.
    stack.store.revoke_api_token(org, token.id).await.unwrap();
    let revoked_at = Instant::now();
    for stream in &mut open {
        let mut last = None;
        while let Some(event) = stream.next().await {
            last = Some(event);
        }
        let last = last.expect("an error event before the end");
        assert_eq!(last.event, "error", "{}", last.data);
        assert!(last.data.contains("401"), "{}", last.data);
    }
    let took = revoked_at.elapsed();
    assert!(
        took <= REAUTHORIZE_EVERY + Duration::from_secs(3),
        "streams ended {took:?} after the revocation"
    );
}

#[tokio::test]
async fn a_step_log_reads_a_page_at_a_time() {
    let stack = Stack::without_worker().await;
    let (org, account) = stack.organization_with_azure_account().await;
    let run = stack
        .start_run(org, setup_request(account), None)
        .await
        .unwrap();
    let run_id = run.id;
    let lines: Vec<LogLine> = (1..=5)
        .map(|seq| LogLine {
            attempt: 1,
            seq,
            at: chrono::Utc::now(),
            level: "info".into(),
            line: format!("line {seq}"),
        })
        .collect();
    stack
        .store
        .append_step_log(run_id, "assign-role", &lines)
        .await
        .unwrap();
    let base = format!("/v1/organizations/{org}/runs/{run_id}/log?step=assign-role");

    // Without paging parameters: every line (up to the default page of 1000), no cursor.
    let whole = stack
        .api
        .http
        .get(format!("{}{base}", stack.api.base))
        .bearer_auth(stack.api.token.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(whole.status(), StatusCode::OK);
    assert!(!whole.headers().contains_key("windlass-next-cursor"));
    assert_eq!(
        whole.json::<Vec<serde_json::Value>>().await.unwrap().len(),
        5
    );

    let mut read = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..4 {
        let mut url = format!("{}{base}&limit=2", stack.api.base);
        if let Some(after) = &after {
            url.push_str(&format!("&after={after}"));
        }
        let page = stack
            .api
            .http
            .get(url)
            .bearer_auth(stack.api.token.as_deref().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        after = page
            .headers()
            .get("windlass-next-cursor")
            .map(|v| v.to_str().unwrap().to_owned());
        let page: Vec<serde_json::Value> = page.json().await.unwrap();
        read.extend(
            page.into_iter()
                .map(|l| l["line"].as_str().unwrap().to_owned()),
        );
        if after.is_none() {
            break;
        }
    }
    assert_eq!(read, ["line 1", "line 2", "line 3", "line 4", "line 5"]);
    for bad in ["&limit=0", "&limit=5001", "&after=one", "&after=1"] {
        let (status, problem) = stack.api.get(&format!("{base}{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {problem}");
    }
    // Each page read is on the record, with the step and the cursor it was read from.
    let (_, trail) = stack
        .api
        .get(&format!(
            "/v1/organizations/{org}/audit?action=runs.log_read&limit=1000"
        ))
        .await;
    let reads = trail.as_array().unwrap();
    assert_eq!(reads.len(), 1 + 3, "{trail:#}");
    assert!(
        reads
            .iter()
            .all(|e| e["resource"] == format!("run:{run_id}"))
    );
    assert_eq!(reads[0]["details"]["step"], "assign-role");
}
