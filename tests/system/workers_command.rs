//! `windlass workers` shows an operator which workers poll the task queue.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::Stack;

#[tokio::test]
async fn windlass_workers_lists_the_pollers_of_the_task_queue() {
    let stack = Stack::start().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let pollers = loop {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_windlass"))
            .args(["workers", "--json", "--temporal-address"])
            .arg(&stack.temporal.address)
            .env("WINDLASS_LOG", "warn")
            .output()
            .expect("run windlass workers");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let pollers: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
        let kinds = |kind: &str| pollers.iter().any(|p| p["kind"] == kind);
        if kinds("workflow") && kinds("activity") {
            break pollers;
        }
        assert!(Instant::now() < deadline, "no pollers listed: {pollers:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for poller in &pollers {
        assert_eq!(poller["task_queue"], "windlass-infrastructure");
        assert!(
            poller["identity"].as_str().unwrap().contains('@'),
            "{poller}"
        );
        assert!(poller["last_poll"].is_string(), "{poller}");
    }

    // The table a person reads names the queue and both kinds.
    let table = std::process::Command::new(env!("CARGO_BIN_EXE_windlass"))
        .args(["workers", "--temporal-address"])
        .arg(&stack.temporal.address)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("windlass-infrastructure") && table.contains("activity"),
        "{table}"
    );
}
