//! Workflow starts through the API vs through the bare Temporal client, in one run against
//! the same Temporal dev server. Prints starts/s and p50/p99 start latency for both and the
//! ratio. `cargo bench --bench workflow_starts` (N and concurrency: BENCH_RUNS, BENCH_CONCURRENCY).
//!
//! The API path does more on purpose: validation, an idempotency-keyed row in SQLite, the
//! Temporal start, and recording the start. The ratio is the price of that bookkeeping.
//!
//! Then reads: `GET .../runs/{id}` of runs still running (no worker runs them here) and of
//! finished ones, which the API must serve alike from its read model, without asking
//! Temporal.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use temporalio_client::{WorkflowIdConflictPolicy, WorkflowStartOptions};
use uuid::Uuid;
use windlass_api::{ApiConfig, AppState};
use windlass_core::Store;
use windlass_core::cloud_accounts::{CloudProvider, NewCloudAccount};
use windlass_workflows::AzureAccessSetup;
use windlass_workflows::contracts::{AzureAccessSetupInput, AzureTarget};
use windlass_workflows::engine::dev_server::{DevServer, DevServerOptions, find_temporal_cli};
use windlass_workflows::engine::{Engine, EngineConfig};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Figures {
    label: &'static str,
    total: Duration,
    latencies: Vec<Duration>,
}

impl Figures {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.total.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[index]
    }

    fn print(&self) {
        println!(
            "{:<22} {:>6} calls   {:>8.1} calls/s   p50 {:>7.2} ms  p99 {:>7.2} ms",
            self.label,
            self.latencies.len(),
            self.rate(),
            self.percentile(0.50).as_secs_f64() * 1e3,
            self.percentile(0.99).as_secs_f64() * 1e3,
        );
    }
}

async fn timed<F, Fut>(label: &'static str, runs: usize, concurrency: usize, start: F) -> Figures
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let began = Instant::now();
    let latencies = futures::stream::iter(0..runs)
        .map(|i| {
            let fut = start(i);
            async move {
                let t = Instant::now();
                fut.await;
                t.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    Figures {
        label,
        total: began.elapsed(),
        latencies,
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    let runs = env_usize("BENCH_RUNS", 300);
    let concurrency = env_usize("BENCH_CONCURRENCY", 8);
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cli = find_temporal_cli(&root).expect("temporal CLI: run scripts/setup.sh");
    let temporal = DevServer::start(&cli, DevServerOptions::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!(
        "sqlite://{}",
        dir.path().join("bench.db").display()
    ))
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let engine_config = EngineConfig::new(temporal.address.clone());
    let engine = Engine::connect(&engine_config).await.unwrap();

    // One account per run: a target takes one unfinished run at a time.
    let org = store.create_organization("bench").await.unwrap();
    let mut accounts = Vec::with_capacity(runs);
    for _ in 0..runs {
        let account = store
            .create_cloud_account(NewCloudAccount {
                organization_id: org.id,
                provider: CloudProvider::Azure,
                tenant_id: Uuid::new_v4().to_string(),
                external_id: Uuid::new_v4().to_string(),
                display_name: "bench".into(),
            })
            .await
            .unwrap();
        accounts.push(account);
    }
    let accounts = Arc::new(accounts);

    // Callers authenticate as in production: an OIDC token verified against the issuer's
    // JWKS (here a local issuer stand-in), roles looked up, every start audited.
    let idp = windlass_standins::OidcIssuerStandIn::start(0, "windlass-bench")
        .await
        .unwrap();
    store
        .bind_role(
            org.id,
            &windlass_api::oidc::pseudonymous_subject(&idp.issuer, "bench"),
            &windlass_core::rbac::Role::BuiltIn {
                role: windlass_core::rbac::BuiltInRole::DevOps,
            },
        )
        .await
        .unwrap();
    let token = idp.token("bench", &[], 3600);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = windlass_api::router(AppState {
        store: store.clone(),
        engine: Arc::new(engine.clone()),
        live_logs: windlass_core::live_logs::LiveLogs::in_process(),
        config: Arc::new(ApiConfig {
            azure_application_id: Uuid::new_v4().to_string(),
            // Benchmarks start no Azure work: nobody reads the issuer.
            workload_identity_issuer: "http://127.0.0.1".into(),
            trusted_proxies: Default::default(),
            // No worker runs these: every start stays in flight, and all are measured.
            runs_in_flight_per_organization: u32::try_from(runs).unwrap_or(u32::MAX),
        }),
        auth: Arc::new(windlass_api::Authentication {
            oidc: windlass_api::oidc::OidcVerifier::new(vec![windlass_api::oidc::TrustedIssuer {
                issuer: idp.issuer.clone(),
                audience: idp.audience.clone(),
                jwks_uri: idp.jwks_uri.clone(),
            }]),
        }),
        keys: Arc::new(windlass_core::keys::KeyRing::new(
            store.clone(),
            Arc::new(
                windlass_core::crypto::LocalKeyFile::load_or_create(&dir.path().join("kek"))
                    .unwrap(),
            ),
        )),
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::new();

    // Warm both paths (connections, SQLite pages, Temporal's namespace cache).
    let client = engine.client().clone();
    let bare_input = |i: usize, prefix: &str| {
        let account = &accounts[i % accounts.len()];
        (
            format!("{prefix}-{i}-{}", Uuid::new_v4()),
            AzureAccessSetupInput {
                target: AzureTarget {
                    organization_id: org.id,
                    cloud_account_id: account.id,
                    tenant_id: account.tenant_id.clone(),
                    subscription_id: account.external_id.clone(),
                    setup_identity_client_id: Uuid::new_v4().to_string(),
                },
                application_id: Uuid::new_v4().to_string(),
            },
        )
    };
    for i in 0..10 {
        let (id, input) = bare_input(i, "warmup");
        client
            .start_workflow(
                AzureAccessSetup::run,
                input,
                WorkflowStartOptions::new(engine_config.task_queue.clone(), id).build(),
            )
            .await
            .unwrap();
    }

    let bare = timed("bare Temporal client", runs, concurrency, |i| {
        let client = client.clone();
        let (id, input) = bare_input(i, "bare");
        let queue = engine_config.task_queue.clone();
        async move {
            client
                .start_workflow(
                    AzureAccessSetup::run,
                    input,
                    WorkflowStartOptions::new(queue, id)
                        .id_conflict_policy(WorkflowIdConflictPolicy::UseExisting)
                        .build(),
                )
                .await
                .unwrap();
        }
    })
    .await;

    let started_ids = Arc::new(std::sync::Mutex::new(Vec::with_capacity(runs)));
    let api = timed("API (POST /runs)", runs, concurrency, |i| {
        let started_ids = started_ids.clone();
        let http = http.clone();
        let token = token.clone();
        let url = format!("{base}/v1/organizations/{}/runs", org.id);
        let body = json!({
            "workflow": "azure_access_setup",
            "cloud_account_id": accounts[i].id,
            "setup_identity_client_id": Uuid::new_v4(),
        });
        async move {
            let response = http
                .post(url)
                .header("idempotency-key", format!("bench-{i}"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
            let run: serde_json::Value = response.json().await.unwrap();
            started_ids
                .lock()
                .unwrap()
                .push(run["id"].as_str().unwrap().to_owned());
        }
    })
    .await;

    // Half the runs finish (as their workflows would record it); the rest stay running.
    let ids = started_ids.lock().unwrap().clone();
    let (finished, running) = ids.split_at(ids.len() / 2);
    for id in finished {
        store
            .finish_run(
                id.parse().unwrap(),
                windlass_core::runs::RunStatus::Succeeded,
                None,
                None,
            )
            .await
            .unwrap();
    }
    let reads = runs * 4;
    let read = |ids: &[String], i: usize| {
        let http = http.clone();
        let token = token.clone();
        let url = format!(
            "{base}/v1/organizations/{}/runs/{}",
            org.id,
            ids[i % ids.len()]
        );
        async move {
            let response = http.get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(response.status(), reqwest::StatusCode::OK);
            response.bytes().await.unwrap();
        }
    };
    let read_running = timed("GET a running run", reads, concurrency, |i| {
        read(running, i)
    })
    .await;
    let read_finished = timed("GET a finished run", reads, concurrency, |i| {
        read(finished, i)
    })
    .await;

    println!(
        "\nworkflow starts, {runs} runs, {concurrency} in flight, Temporal dev server + SQLite on this machine"
    );
    bare.print();
    api.print();
    println!(
        "API / bare: throughput {:.2}x, p50 latency {:.2}x, p99 latency {:.2}x",
        api.rate() / bare.rate(),
        api.percentile(0.5).as_secs_f64() / bare.percentile(0.5).as_secs_f64(),
        api.percentile(0.99).as_secs_f64() / bare.percentile(0.99).as_secs_f64(),
    );
    println!("\nrun reads, {reads} each, {concurrency} in flight");
    read_running.print();
    read_finished.print();
    println!(
        "running / finished: p50 {:.2}x, p99 {:.2}x, throughput {:.2}x",
        read_running.percentile(0.5).as_secs_f64() / read_finished.percentile(0.5).as_secs_f64(),
        read_running.percentile(0.99).as_secs_f64() / read_finished.percentile(0.99).as_secs_f64(),
        read_running.rate() / read_finished.rate(),
    );
    temporal.stop().await;
}
