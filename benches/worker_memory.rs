//! A worker's resident memory against the number of tenants it has served. One `windlass
//! worker` process (as operators run it) serves Azure access setups for 10, then 100, then
//! 1,000 organisations, each in its own customer tenant (the Azure stand-in, in this
//! process, not the worker's); after each step its RSS is read from `/proc`. What a worker
//! keeps per tenant (Azure clients and tokens, unwrapped data keys, rate-limit buckets)
//! must be bounded: the figure should stay flat, not grow with the tenants ever served.
//!
//! The resident set is printed split in two: private memory (`RssAnon`: heap, stacks),
//! which is what per-tenant state would grow, and the binary's pages mapped from its file
//! (`RssFile`), which grow as code paths run for the first time (a retry, a cache
//! eviction) and are shared, reclaimable page cache. Under heaptrack the worker's heap
//! peaked at 20 MB over 250 tenants (debug build); what its private memory held beyond
//! that was freed heap glibc had kept, which the worker now gives back (`heap_trim`).
//!
//! `cargo bench --bench worker_memory`; `BENCH_TENANTS` (default `10,100,1000`, cumulative)
//! and `BENCH_IN_FLIGHT` (runs started at once, default 32).

#[path = "../tests/system/support.rs"]
#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use uuid::Uuid;
use windlass_core::runs::RunStatus;

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

fn resident_mb(pid: u32, field: &str) -> f64 {
    windlass_activities::memory_budget::process_status_kb(pid, field)
        .map_or(0.0, |kb| kb as f64 / 1024.0)
}

/// Sets up access for one new organisation in its own tenant; whether it succeeded.
async fn serve_one_tenant(stack: &support::Stack) -> bool {
    let org = stack.organization().await;
    let tenant = stack.customer_tenant_trusting(org);
    let (status, account) = stack.register_azure_account(org, &tenant).await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
    let account: Uuid = account["id"].as_str().unwrap().parse().unwrap();
    let started = stack
        .start_run(org, support::setup_request(account), None)
        .await
        .unwrap();
    let run = stack
        .wait_for_run(org, started.id, Duration::from_secs(1800), |r| {
            r.finished_at.is_some()
        })
        .await;
    run.status == RunStatus::Succeeded
}

#[tokio::main]
async fn main() {
    let steps = env_list("BENCH_TENANTS", &[10, 100, 1000]);
    let in_flight = std::env::var("BENCH_IN_FLIGHT")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(32)
        .max(1);
    let stack = std::sync::Arc::new(support::Stack::without_worker().await);
    // Azure's lags are not what this measures.
    stack.azure.without_propagation_delays();
    stack.azure.set_provider_registration_delay(Duration::ZERO);
    let mut worker = stack
        .worker_process_command()
        .env("WINDLASS_MAX_CONCURRENT_ACTIVITIES", "64")
        .spawn()
        .expect("spawn windlass worker");
    let pid = worker.id();

    println!(
        "\nworker memory against tenants served (one `windlass worker` process; Azure access setups, one organisation and tenant each, {in_flight} at once)"
    );
    println!(
        "{:>8} {:>8} {:>8} {:>10} {:>10} {:>13} {:>10} {:>11} {:>10} {:>14}",
        "tenants",
        "ok",
        "failed",
        "time (s)",
        "RSS (MB)",
        "private (MB)",
        "file (MB)",
        "peak (MB)",
        "RSS/first",
        "private/first"
    );
    let (mut served, mut ok, mut failed) = (0usize, 0usize, 0usize);
    let mut first_rss = None;
    let mut first_private = None;
    let began = Instant::now();
    for target in steps {
        while served < target {
            let batch = (target - served).min(in_flight);
            let mut tasks = Vec::with_capacity(batch);
            for _ in 0..batch {
                let stack = stack.clone();
                tasks.push(tokio::spawn(async move { serve_one_tenant(&stack).await }));
            }
            for task in tasks {
                if task.await.unwrap() {
                    ok += 1;
                } else {
                    failed += 1;
                }
            }
            served += batch;
        }
        // Let idle connections and finished tasks settle, and the worker give its freed
        // heap back (it trims every 10 s, `src/heap_trim.rs`), before reading.
        tokio::time::sleep(Duration::from_secs(12)).await;
        let rss = resident_mb(pid, "VmRSS");
        let private = resident_mb(pid, "RssAnon");
        let file = resident_mb(pid, "RssFile");
        let peak = resident_mb(pid, "VmHWM");
        let first = *first_rss.get_or_insert(rss);
        let first_private_mb = *first_private.get_or_insert(private);
        println!(
            "{served:>8} {ok:>8} {failed:>8} {:>10.1} {rss:>10.1} {private:>13.1} {file:>10.1} {peak:>11.1} {:>10.2} {:>14.2}",
            began.elapsed().as_secs_f64(),
            rss / first,
            private / first_private_mb
        );
    }
    let _ = worker.kill();
    let _ = worker.wait();
}
