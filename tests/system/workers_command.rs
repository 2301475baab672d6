//! `windlass workers` shows an operator which workers poll which task queue: every kind of
//! work by default, or one placement's queues.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::Stack;

fn workers(stack: &Stack, extra: &[&str]) -> Vec<Value> {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_windlass"))
        .args(["workers", "--json", "--temporal-address"])
        .arg(&stack.temporal.address)
        .args(extra)
        .env("WINDLASS_LOG", "warn")
        .output()
        .expect("run windlass workers");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Lists until `queue` shows a worker (matching `is_it`) polling both workflows and
/// activities; Temporal learns of pollers as they poll.
fn wait_for_worker(
    stack: &Stack,
    extra: &[&str],
    queue: &str,
    is_it: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listing = workers(stack, extra);
        let found = listing
            .iter()
            .filter(|q| q["task_queue"] == queue)
            .flat_map(|q| q["workers"].as_array().unwrap())
            .any(|w| is_it(w) && w["workflows"] == true && w["activities"] == true);
        if found {
            return listing;
        }
        assert!(
            Instant::now() < deadline,
            "no worker on {queue}: {listing:#?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn queue_names(listing: &[Value]) -> Vec<&str> {
    listing
        .iter()
        .map(|q| q["task_queue"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn windlass_workers_lists_the_workers_of_every_queue() {
    let stack = Stack::start().await;
    let listing = wait_for_worker(&stack, &[], "windlass-infrastructure", |_| true);
    assert_eq!(
        queue_names(&listing),
        ["windlass-infrastructure", "windlass-environment"]
    );
    for worker in listing[0]["workers"].as_array().unwrap() {
        assert!(
            worker["identity"].as_str().unwrap().contains('@'),
            "{worker}"
        );
        assert!(worker["last_access"].is_string(), "{worker}");
    }

    // A worker placed in a customer's network polls that placement's queues only.
    let mut onprem = stack
        .worker_process_command()
        .env("WINDLASS_PLACEMENT", "acme-onprem")
        .spawn()
        .expect("spawn windlass worker");
    let identity = format!("{}@", onprem.id());
    let is_onprem = |w: &Value| w["identity"].as_str().unwrap().starts_with(&identity);
    let placed = ["--placement", "acme-onprem"];
    wait_for_worker(
        &stack,
        &placed,
        "windlass-infrastructure@acme-onprem",
        is_onprem,
    );
    let listing = wait_for_worker(
        &stack,
        &placed,
        "windlass-environment@acme-onprem",
        is_onprem,
    );
    assert_eq!(
        queue_names(&listing),
        [
            "windlass-infrastructure@acme-onprem",
            "windlass-environment@acme-onprem"
        ]
    );
    let shared = workers(&stack, &[]);
    assert!(
        !shared
            .iter()
            .flat_map(|q| q["workers"].as_array().unwrap())
            .any(is_onprem),
        "the placed worker does not poll the shared queues: {shared:#?}"
    );

    // The table a person reads names the queue, the worker and what it polls.
    let table = std::process::Command::new(env!("CARGO_BIN_EXE_windlass"))
        .args([
            "workers",
            "--placement",
            "acme-onprem",
            "--temporal-address",
        ])
        .arg(&stack.temporal.address)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("windlass-environment@acme-onprem") && l.contains(&identity)),
        "{table}"
    );
    onprem.kill().unwrap();
    onprem.wait().unwrap();
}
