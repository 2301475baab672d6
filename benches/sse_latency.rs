//! Live step log latency, end to end: lines written through a step's `StepLogWriter`
//! (masked, stored, published) → the fan-out → the API's SSE endpoint on a loopback port
//! → an HTTP client reading the event stream. Prints p50/p99/max from the write to the
//! client's receipt, in process and over Redis (`WINDLASS_BENCH_REDIS_URL`, default the
//! local server). Then the same for step changes: a step journalled and announced as the
//! worker's step journal does, to the client's `step` event (the SSE route also polls
//! every 500 ms; the announcement is what makes it prompt).
//! `cargo bench --bench sse_latency` (N: BENCH_LINES, pace: BENCH_LINE_US).

use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;
use windlass_activities::step_log::StepLogs;
use windlass_api::{ApiConfig, AppState, Authentication};
use windlass_core::Store;
use windlass_core::live_logs::{LiveLine, LiveLogs, RedisConfig};
use windlass_core::runs::{InsertedRun, NewRun, WorkflowKind};
use windlass_core::step_logs::Masker;
use windlass_workflows::engine::dev_server::{DevServer, DevServerOptions, find_temporal_cli};
use windlass_workflows::engine::{Engine, EngineConfig};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}

struct Bed {
    store: Store,
    keys: Arc<windlass_core::keys::KeyRing>,
    engine: Engine,
    org: Uuid,
    idp: windlass_standins::OidcIssuerStandIn,
    token: String,
}

async fn bench() {
    let lines = env_u64("BENCH_LINES", 2000) as u32;
    let pace = Duration::from_micros(env_u64("BENCH_LINE_US", 1000));
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // The API needs an engine; the benchmark's run never reaches Temporal.
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
    let engine = Engine::connect(&EngineConfig::new(temporal.address.clone()))
        .await
        .unwrap();
    let org = store.create_organization("bench").await.unwrap().id;
    let idp = windlass_standins::OidcIssuerStandIn::start(0, "windlass-bench")
        .await
        .unwrap();
    store
        .bind_role(
            org,
            &windlass_api::oidc::pseudonymous_subject(&idp.issuer, "bench"),
            &windlass_core::rbac::Role::BuiltIn {
                role: windlass_core::rbac::BuiltInRole::Viewer,
            },
        )
        .await
        .unwrap();
    let token = idp.token("bench", &[], 3600);
    let keys = Arc::new(windlass_core::keys::KeyRing::new(
        store.clone(),
        Arc::new(
            windlass_core::crypto::LocalKeyFile::load_or_create(&dir.path().join("kek")).unwrap(),
        ),
    ));
    let bed = Bed {
        store,
        keys,
        engine,
        org,
        idp,
        token,
    };
    println!(
        "\nlive step log latency, write -> fan-out -> SSE -> client, {lines} lines, one every {} us",
        pace.as_micros()
    );
    measure(&bed, "in-process", LiveLogs::in_process(), lines, pace).await;
    let url = std::env::var("WINDLASS_BENCH_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let redis = LiveLogs::redis(RedisConfig {
        key_prefix: format!("windlass-bench:{}:run-log:", Uuid::new_v4().simple()),
        ..RedisConfig::new(url)
    })
    .unwrap();
    measure(&bed, "redis streams", redis, lines, pace).await;
    temporal.stop().await;
}

async fn measure(bed: &Bed, label: &str, live: LiveLogs, lines: u32, pace: Duration) {
    let InsertedRun::Created(run) = bed
        .store
        .insert_run(NewRun {
            organization_id: bed.org,
            kind: WorkflowKind::ProvisionCluster,
            target: format!("cluster:{}", Uuid::new_v4()),
            idempotency_key: None,
            request_fingerprint: "bench".into(),
            input: serde_json::json!({}),
        })
        .await
        .unwrap()
    else {
        panic!("a new run")
    };
    bed.store.mark_run_started(run.id, "bench").await.unwrap();
    let app = windlass_api::router(AppState {
        store: bed.store.clone(),
        engine: Arc::new(bed.engine.clone()),
        live_logs: live.clone(),
        keys: bed.keys.clone(),
        config: Arc::new(ApiConfig {
            azure_application_id: Uuid::new_v4().to_string(),
            // Benchmarks start no Azure work: nobody reads the issuer.
            workload_identity_issuer: "http://127.0.0.1".into(),
            trusted_proxies: Default::default(),
            runs_in_flight_per_organization: windlass_api::DEFAULT_RUNS_IN_FLIGHT_PER_ORGANIZATION,
        }),
        auth: Arc::new(Authentication {
            oidc: windlass_api::oidc::OidcVerifier::new(vec![windlass_api::oidc::TrustedIssuer {
                issuer: bed.idp.issuer.clone(),
                audience: bed.idp.audience.clone(),
                jwks_uri: bed.idp.jwks_uri.clone(),
            }]),
        }),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
    // Subscribed once the response's headers are back.
    let mut response = reqwest::Client::new()
        .get(format!(
            "{base}/v1/organizations/{}/runs/{}/events",
            bed.org, run.id
        ))
        .bearer_auth(&bed.token)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());

    let epoch = Instant::now();
    let (step_seen, mut step_events) = tokio::sync::mpsc::unbounded_channel::<(String, Duration)>();
    let client = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(lines as usize);
        let mut buffer = String::new();
        while latencies.len() < lines as usize {
            let chunk = tokio::time::timeout(Duration::from_secs(30), response.chunk())
                .await
                .expect("lines keep coming")
                .unwrap()
                .expect("the stream stays open");
            let received = epoch.elapsed();
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                // Each line carries the microsecond it was written at.
                if let Some(written) = event
                    .split("written_us=")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .and_then(|us| us.parse::<u64>().ok())
                {
                    latencies.push(received.saturating_sub(Duration::from_micros(written)));
                }
            }
        }
        // Then step events, reported as they arrive, until the stream is dropped.
        tokio::spawn(async move {
            loop {
                let Ok(Ok(Some(chunk))) =
                    tokio::time::timeout(Duration::from_secs(30), response.chunk()).await
                else {
                    return;
                };
                let received = epoch.elapsed();
                buffer.push_str(std::str::from_utf8(&chunk).unwrap());
                while let Some(end) = buffer.find("\n\n") {
                    let event: String = buffer.drain(..end + 2).collect();
                    if event.contains("event: step")
                        && let Some(key) = event
                            .split("\"key\":\"")
                            .nth(1)
                            .and_then(|rest| rest.split('"').next())
                    {
                        let _ = step_seen.send((key.to_owned(), received));
                    }
                }
            }
        });
        latencies
    });

    let mut masker = Masker::new();
    masker.mask_value("bench-secret-value");
    let mut writer = StepLogs::new(bed.store.clone())
        .with_live(live.clone())
        .writer_for(Some(run.id), "terraform-apply", 1, masker);
    let mut ticker = tokio::time::interval(pace);
    for seq in 1..=lines {
        ticker.tick().await;
        let written = epoch.elapsed().as_micros();
        writer.line(
            "info",
            &format!("terraform_data.resource[{seq}]: Creation complete (token bench-secret-value) written_us={written}"),
        );
    }
    let mut latencies = client.await.unwrap();
    writer.finish().await;

    // Step changes: journalled, then announced, as the worker's step journal does.
    let mut step_latencies = Vec::new();
    for i in 0..50u32 {
        let key = format!("bench-step-{i}");
        let sent = epoch.elapsed();
        bed.store
            .record_step_started(run.id, &key, "bench", 1, chrono::Utc::now(), None)
            .await
            .unwrap();
        live.publish(run.id, &LiveLine::step_changed(key.clone(), 1))
            .await;
        loop {
            let (seen, at) = tokio::time::timeout(Duration::from_secs(5), step_events.recv())
                .await
                .expect("the step event comes")
                .expect("the client runs");
            if seen == key {
                step_latencies.push(at.saturating_sub(sent));
                break;
            }
        }
    }
    server.abort();
    println!(
        "{label:<16} {:>5} lines  p50 {:>8.3} ms   p99 {:>8.3} ms   max {:>8.3} ms",
        latencies.len(),
        percentile(&mut latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&mut latencies, 0.99).as_secs_f64() * 1e3,
        percentile(&mut latencies, 1.0).as_secs_f64() * 1e3,
    );
    println!(
        "{label:<16} {:>5} steps  p50 {:>8.3} ms   p99 {:>8.3} ms   max {:>8.3} ms  (journalled -> step event)",
        step_latencies.len(),
        percentile(&mut step_latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&mut step_latencies, 0.99).as_secs_f64() * 1e3,
        percentile(&mut step_latencies, 1.0).as_secs_f64() * 1e3,
    );
}
