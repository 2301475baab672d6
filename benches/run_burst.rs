//! A burst of Azure access setups (default 1,000) started as fast as clients can, through
//! the API, on one worker in this process (the system tests' bed: Temporal's dev server,
//! SQLite, the Azure stand-in). Clients behave as documented: a `429` (an organisation's
//! runs in flight are at their limit) is retried after its `Retry-After`. Printed: how many
//! were refused and retried, how many succeeded and failed (with the failures' errors), and
//! when the first, median and last finished. Waiting in a queue must fail none of them.
//!
//! `cargo bench --bench run_burst`; `BENCH_RUNS` (default 1000), `BENCH_ORGS` (default 4:
//! 250 runs each, above the default 200 in flight per organisation).

#[path = "../tests/system/support.rs"]
#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;
use windlass_core::runs::RunStatus;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Starts one setup, retrying after each 429's Retry-After; the run's id.
async fn start(stack: &support::Stack, org: Uuid, account: Uuid, refused: &AtomicUsize) -> Uuid {
    loop {
        let (status, headers, body) = stack
            .api
            .post(
                &format!("/v1/organizations/{org}/runs"),
                json!(support::setup_request(account)),
                &[("idempotency-key", &format!("burst-{account}"))],
            )
            .await;
        match status {
            StatusCode::ACCEPTED => return support::id_of(&body),
            StatusCode::TOO_MANY_REQUESTS => {
                refused.fetch_add(1, Ordering::Relaxed);
                let wait = headers
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1);
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            other => panic!("start refused: {other} {body}"),
        }
    }
}

#[tokio::main]
async fn main() {
    let runs = env_usize("BENCH_RUNS", 1000);
    let orgs = env_usize("BENCH_ORGS", 4).max(1);
    let stack = Arc::new(support::Stack::start().await);
    stack.azure.without_propagation_delays();
    stack.azure.set_provider_registration_delay(Duration::ZERO);

    // Organisations and accounts first: the burst is of starts, not of sign-ups.
    let mut targets = Vec::with_capacity(runs);
    let mut organizations = Vec::with_capacity(orgs);
    for _ in 0..orgs {
        organizations.push(stack.organization().await);
    }
    for i in 0..runs {
        let org = organizations[i % orgs];
        let tenant = stack.customer_tenant_trusting(org);
        let (status, account) = stack.register_azure_account(org, &tenant).await;
        assert_eq!(status, StatusCode::CREATED, "{account}");
        targets.push((
            org,
            account["id"].as_str().unwrap().parse::<Uuid>().unwrap(),
        ));
    }

    let refused = Arc::new(AtomicUsize::new(0));
    let began = Instant::now();
    let began_at = Utc::now();
    let mut starting = Vec::with_capacity(runs);
    for (org, account) in targets {
        let (stack, refused) = (stack.clone(), refused.clone());
        starting.push(tokio::spawn(async move {
            (org, start(&stack, org, account, &refused).await)
        }));
    }
    let mut started = Vec::with_capacity(runs);
    for task in starting {
        started.push(task.await.unwrap());
    }
    let all_started = began.elapsed();

    let mut finished_after = Vec::with_capacity(runs);
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    let mut succeeded = 0;
    for (org, id) in &started {
        let run = stack
            .wait_for_run(*org, *id, Duration::from_secs(3600), |r| {
                r.finished_at.is_some()
            })
            .await;
        if run.status == RunStatus::Succeeded {
            succeeded += 1;
        } else {
            let error = run.error.as_deref().unwrap_or("(none)");
            *errors.entry(error.chars().take(160).collect()).or_default() += 1;
        }
        let at: DateTime<Utc> = run.finished_at.unwrap();
        finished_after.push((at - began_at).as_seconds_f64());
    }
    finished_after.sort_by(f64::total_cmp);
    let quantile = |p: f64| finished_after[((finished_after.len() - 1) as f64 * p) as usize];

    println!(
        "\nburst of {runs} access setups over {orgs} organisations, one worker (in process), Temporal dev server + SQLite"
    );
    println!(
        "all started after        {:>8.1} s  ({} refused with 429 and retried after Retry-After)",
        all_started.as_secs_f64(),
        refused.load(Ordering::Relaxed)
    );
    println!(
        "finished: first {:.1} s, median {:.1} s, last {:.1} s after the burst began",
        quantile(0.0),
        quantile(0.5),
        quantile(1.0)
    );
    println!("succeeded {succeeded}, failed {}", runs - succeeded);
    for (error, count) in errors {
        println!("  {count:>5} x {error}");
    }
}
