//! Following a run live over Server-Sent Events: a cluster provisioning's terraform and
//! helm lines arrive while it runs, masked, then its end; a reconnect with Last-Event-ID
//! carries on without repeating a line; a finished run replays in full and ends at once.
//! Once with the in-process fan-out (the embedded default) and once over the machine's
//! real Redis (production's).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;
use windlass_core::live_logs::{LiveLogs, RedisConfig};
use windlass_core::runs::RunStatus;

use crate::support::{Stack, id_of};

pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

/// A client reading an SSE body as it streams.
pub struct EventStream {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl EventStream {
    pub async fn open(stack: &Stack, path: &str, last_event_id: Option<&str>) -> Self {
        let mut request = stack
            .api
            .http
            .get(format!("{}{path}", stack.api.base))
            .bearer_auth(stack.api.token.as_deref().unwrap())
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        Self::from_response(response)
    }

    /// Reads an SSE response already answered `200`.
    pub fn from_response(response: reqwest::Response) -> Self {
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Self {
            response,
            buffer: Vec::new(),
        }
    }

    /// The next event (keep-alive comments skipped); `None` once the server closed.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let block = String::from_utf8(block).unwrap();
                let mut event = SseEvent {
                    event: "message".into(),
                    id: None,
                    data: String::new(),
                };
                let mut fields = 0;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event.event = v.trim_start().into();
                        fields += 1;
                    } else if let Some(v) = line.strip_prefix("id:") {
                        event.id = Some(v.trim_start().into());
                        fields += 1;
                    } else if let Some(v) = line.strip_prefix("data:") {
                        event.data.push_str(v.trim_start());
                        fields += 1;
                    }
                }
                if fields > 0 {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(60), self.response.chunk())
                .await
                .expect("an event within 60 s")
                .unwrap()?;
            self.buffer.extend_from_slice(&chunk);
        }
    }
}

async fn follow_a_provisioning(stack: Stack) {
    let (org, account) = stack.organization_with_verified_azure_account().await;
    let (status, _, started) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/clusters"),
            json!({"name": "live-eu", "cloud_account_id": account, "region": "westeurope",
                   "kubernetes_version": "1.33"}),
            &[("idempotency-key", "live-eu")],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let run_id = id_of(&started["run"]);
    let path = format!("/v1/organizations/{org}/runs/{run_id}/events");
    let kube_token = stack.clusters.as_ref().unwrap().kube.token().to_owned();
    let mut raw = String::new();

    // First connection: a few lines while the run is still running, then the client drops.
    let mut first = EventStream::open(&stack, &path, None).await;
    let mut first_ids = Vec::new();
    let mut steps_seen = 0;
    while first_ids.len() < 5 {
        let event = first
            .next()
            .await
            .expect("the stream stays open while the run runs");
        raw.push_str(&event.data);
        match event.event.as_str() {
            "log" => {
                let line: Value = serde_json::from_str(&event.data).unwrap();
                let id = event.id.clone().unwrap();
                assert_eq!(
                    id,
                    format!(
                        "{}:{}:{}",
                        line["step"].as_str().unwrap(),
                        line["attempt"],
                        line["seq"]
                    )
                );
                for field in ["at", "level", "line"] {
                    assert!(line[field].is_string(), "{line}");
                }
                first_ids.push(id);
            }
            "step" => steps_seen += 1,
            other => panic!(
                "unexpected {other} event before the run ended: {}",
                event.data
            ),
        }
    }
    let run = stack.run(org, run_id).await;
    assert!(
        run.finished_at.is_none(),
        "lines arrive while the run runs: {run:#?}"
    );
    drop(first);

    // Second connection resumes after the last line the first one got.
    let mut second = EventStream::open(&stack, &path, first_ids.last().map(String::as_str)).await;
    let mut second_ids = Vec::new();
    let mut lines = Vec::new();
    let end = loop {
        let event = second.next().await.expect("the stream ends with `end`");
        raw.push_str(&event.data);
        match event.event.as_str() {
            "log" => {
                let line: Value = serde_json::from_str(&event.data).unwrap();
                lines.push(line["line"].as_str().unwrap().to_owned());
                second_ids.push(event.id.unwrap());
            }
            "step" => steps_seen += 1,
            "end" => break serde_json::from_str::<Value>(&event.data).unwrap(),
            other => panic!("unexpected event {other}"),
        }
    };
    assert!(
        second.next().await.is_none(),
        "the stream closes after `end`"
    );
    assert_eq!(end["status"], "succeeded", "{end:#}");
    assert!(end["finished_at"].is_string(), "{end:#}");
    assert!(steps_seen >= 10, "step changes are sent: {steps_seen}");

    // Nothing twice, nothing missing: together the two connections hold the run's log.
    let second_set: HashSet<&String> = second_ids.iter().collect();
    assert_eq!(
        second_set.len(),
        second_ids.len(),
        "duplicates within the resumed stream"
    );
    for id in &first_ids {
        assert!(
            !second_set.contains(id),
            "{id} sent again after Last-Event-ID"
        );
    }
    let stored: HashSet<String> = stack
        .store
        .run_log(run_id)
        .await
        .unwrap()
        .iter()
        .map(|l| l.event_id())
        .collect();
    let streamed: HashSet<String> = first_ids.iter().chain(&second_ids).cloned().collect();
    assert_eq!(streamed, stored);
    assert!(
        lines.iter().any(|l| l.contains("Apply complete!")),
        "terraform's lines"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("[rollout] release cert-manager/cert-manager")),
        "helm rollout events"
    );
    assert!(
        !raw.contains(&kube_token),
        "a secret in clear in the event stream"
    );

    // The finished run: everything replayed, in print order, then `end` at once.
    let started_at = Instant::now();
    let mut replay = EventStream::open(&stack, &path, None).await;
    let mut replayed = Vec::new();
    loop {
        let event = replay.next().await.unwrap();
        match event.event.as_str() {
            "log" => replayed.push(event.id.unwrap()),
            "step" => {}
            "end" => break,
            other => panic!("unexpected event {other}"),
        }
    }
    assert!(
        started_at.elapsed() < Duration::from_secs(5),
        "{:?}",
        started_at.elapsed()
    );
    assert_eq!(replayed.len(), stored.len());
    assert_eq!(replayed.into_iter().collect::<HashSet<_>>(), stored);
}

#[tokio::test]
async fn a_running_provisioning_streams_its_masked_lines_and_resumes_without_duplicates() {
    follow_a_provisioning(Stack::with_clusters().await).await;
}

#[tokio::test]
async fn the_same_over_redis_streams() {
    let url = std::env::var("WINDLASS_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let live = LiveLogs::redis(RedisConfig {
        key_prefix: format!("windlass-test:{}:run-log:", Uuid::new_v4().simple()),
        ..RedisConfig::new(url)
    })
    .unwrap();
    follow_a_provisioning(Stack::with_clusters_and_live_logs(live).await).await;
}

#[tokio::test]
async fn a_malformed_last_event_id_is_refused_and_unknown_runs_are_not_found() {
    let stack = Stack::without_worker().await;
    let (org, _) = stack.organization_with_azure_account().await;
    let (status, problem) = stack
        .api
        .get(&format!(
            "/v1/organizations/{org}/runs/{}/events",
            Uuid::new_v4()
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    let response = stack
        .api
        .http
        .get(format!(
            "{}/v1/organizations/{org}/runs/{}/events",
            stack.api.base,
            Uuid::new_v4()
        ))
        .bearer_auth(stack.api.token.as_deref().unwrap())
        .header("last-event-id", "terraform-apply:one")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

/// A run whose workflow ended without recording it (terminated by an operator) shows how
/// it ended once it has been quiet a while; reads of a run that moves never ask Temporal.
#[tokio::test]
async fn a_run_ended_behind_windlass_back_is_repaired_once_quiet() {
    let stack = crate::support::Stack::without_worker().await;
    let (org, account) = stack.organization_with_azure_account().await;
    let started = stack
        .start_run(org, crate::support::setup_request(account), None)
        .await
        .unwrap();
    let id = started.id;
    let workflow_id = started.workflow_id.clone();
    let cli = crate::support::repo_root().join(".venv/bin/temporal");
    let terminated = std::process::Command::new(cli)
        .args(["workflow", "terminate", "--workflow-id", &workflow_id])
        .args([
            "--address",
            stack.temporal.address.trim_start_matches("http://"),
            "--reason",
            "operator",
        ])
        .output()
        .unwrap();
    assert!(
        terminated.status.success(),
        "{}",
        String::from_utf8_lossy(&terminated.stderr)
    );
    // Just started: the read model is believed, Temporal is not asked.
    assert_eq!(stack.run(org, id).await.status, RunStatus::Running);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let run = stack.run(org, id).await;
        if run.status == RunStatus::Terminated {
            assert_eq!(run.error.as_deref(), Some("workflow terminated"));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never repaired: {run:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}
