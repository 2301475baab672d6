//! A typed client of the API, for tests: requests are the API's own request types and
//! answers are parsed into its response types, so a test reads `run.status ==
//! RunStatus::Succeeded` and a renamed field fails to compile instead of reading `null`.
//!
//! The same client drives the router in process ([`crate::TestApi`]) and a listening API
//! over HTTP (the system tests' `Api`): each only says how one request travels
//! ([`Transport`]).

use std::fmt;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;
use windlass_api::{ClusterDetail, ClusterStarted, CreateCluster, Problem, RunDetail, StartRun};
use windlass_core::runs::{Run, Step};
use windlass_core::step_logs::LogLine;

/// How one JSON request reaches the API.
#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    /// `body` is sent as JSON when present. The answer's body is `Value::Null` when it is
    /// empty or not JSON.
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value);
}

/// What the API answered instead of what was asked: its status and problem document.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: StatusCode,
    pub problem: Problem,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.problem.detail)
    }
}

/// One organisation's part of the API, as one caller sees it.
pub struct OrganizationClient<'a, T: Transport + ?Sized> {
    transport: &'a T,
    pub id: Uuid,
}

impl<'a, T: Transport + ?Sized> OrganizationClient<'a, T> {
    pub fn new(transport: &'a T, id: Uuid) -> Self {
        Self { transport, id }
    }

    fn path(&self, rest: &str) -> String {
        format!("/v1/organizations/{}{rest}", self.id)
    }

    /// Starts a run; `Ok` for 202 (started) and 200 (the run this key already started).
    pub async fn start_run(
        &self,
        run: &StartRun,
        idempotency_key: Option<&str>,
    ) -> Result<Run, Refusal> {
        self.start_run_answered(run, idempotency_key).await.1
    }

    /// [`Self::start_run`], with the status it was answered with.
    pub async fn start_run_answered(
        &self,
        run: &StartRun,
        idempotency_key: Option<&str>,
    ) -> (StatusCode, Result<Run, Refusal>) {
        let headers: Vec<(&str, &str)> = idempotency_key
            .map(|key| ("idempotency-key", key))
            .into_iter()
            .collect();
        let body = serde_json::to_value(run).unwrap();
        let answered = self
            .transport
            .request(Method::POST, &self.path("/runs"), Some(body), &headers)
            .await;
        (answered.0, answer(answered))
    }

    /// The run with its steps; panics unless the API answers 200.
    pub async fn run(&self, id: Uuid) -> RunDetail {
        expect(self.try_run(id).await, "GET run")
    }

    pub async fn try_run(&self, id: Uuid) -> Result<RunDetail, Refusal> {
        self.get(&format!("/runs/{id}")).await
    }

    pub async fn cancel_run(&self, id: Uuid) -> Result<Run, Refusal> {
        answer(
            self.transport
                .request(
                    Method::POST,
                    &self.path(&format!("/runs/{id}/cancel")),
                    Some(Value::Object(Default::default())),
                    &[],
                )
                .await,
        )
    }

    /// What a step of the run logged (up to 5,000 lines).
    pub async fn step_log(&self, id: Uuid, step: &str) -> Result<Vec<LogLine>, Refusal> {
        self.get(&format!("/runs/{id}/log?step={step}&limit=5000"))
            .await
    }

    /// Reads the run until `done` holds for it, as a person following it would; after
    /// `limit`, panics with the run and what its current step said at warning level or
    /// worse (the why).
    pub async fn wait_for_run(
        &self,
        id: Uuid,
        limit: Duration,
        done: impl Fn(&RunDetail) -> bool,
    ) -> RunDetail {
        let started = Instant::now();
        loop {
            let run = self.run(id).await;
            if done(&run) {
                return run;
            }
            if started.elapsed() >= limit {
                let step = run.current_step.clone().unwrap_or_default();
                let said: Vec<String> = self
                    .step_log(id, &step)
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|l| l.level == "error" || l.level == "warn")
                    .map(|l| format!("{} {}", l.attempt, l.line))
                    .collect();
                let (first, last) = if said.len() > 40 {
                    (&said[..20], &said[said.len() - 20..])
                } else {
                    (&said[..], &said[..0])
                };
                panic!(
                    "run not as expected after {limit:?}: {run:#?}\nits current step's warnings \
                     and errors (first and last 20):\n{}\n...\n{}",
                    first.join("\n"),
                    last.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits (up to two minutes) for the run to finish, however it ends.
    pub async fn wait_until_finished(&self, id: Uuid) -> RunDetail {
        self.wait_for_run(id, Duration::from_secs(120), |run| {
            run.run.finished_at.is_some()
        })
        .await
    }

    /// Creates a cluster and starts its provisioning (or, with `dry_run`, its plan).
    pub async fn create_cluster(&self, cluster: &CreateCluster) -> Result<ClusterStarted, Refusal> {
        let body = serde_json::to_value(cluster).unwrap();
        answer(
            self.transport
                .request(Method::POST, &self.path("/clusters"), Some(body), &[])
                .await,
        )
    }

    /// The cluster with its latest run; panics unless the API answers 200.
    pub async fn cluster(&self, id: Uuid) -> ClusterDetail {
        expect(self.get(&format!("/clusters/{id}")).await, "GET cluster")
    }

    /// Starts the cluster's deletion: the run that deletes it.
    pub async fn delete_cluster(&self, id: Uuid) -> Result<Run, Refusal> {
        answer(
            self.transport
                .request(
                    Method::DELETE,
                    &self.path(&format!("/clusters/{id}")),
                    None,
                    &[],
                )
                .await,
        )
    }

    /// A GET of this organisation's `rest`, parsed as `R`.
    pub async fn get<R: DeserializeOwned>(&self, rest: &str) -> Result<R, Refusal> {
        answer(
            self.transport
                .request(Method::GET, &self.path(rest), None, &[])
                .await,
        )
    }
}

/// What a finished run gave back (`null` until it has).
pub fn output(run: &Run) -> &Value {
    static NOTHING: Value = Value::Null;
    run.output.as_ref().unwrap_or(&NOTHING)
}

/// The step of `run` named `key`; panics naming the steps there are.
pub fn step<'a>(run: &'a RunDetail, key: &str) -> &'a Step {
    run.steps.iter().find(|s| s.key == key).unwrap_or_else(|| {
        let keys: Vec<&str> = run.steps.iter().map(|s| s.key.as_str()).collect();
        panic!("no step {key} in run {}; its steps: {keys:?}", run.run.id)
    })
}

/// A 2xx answer parsed as `R`, anything else as the problem it is.
pub fn answer<R: DeserializeOwned>((status, body): (StatusCode, Value)) -> Result<R, Refusal> {
    if status.is_success() {
        return Ok(serde_json::from_value(body.clone()).unwrap_or_else(|e| {
            panic!("a {status} answer that is not what the API documents ({e}): {body:#}")
        }));
    }
    let problem = serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("a {status} answer that is not a problem ({e}): {body:#}"));
    Err(Refusal { status, problem })
}

fn expect<R>(answer: Result<R, Refusal>, what: &str) -> R {
    answer.unwrap_or_else(|refusal| panic!("{what}: {refusal}"))
}
