//! Deploy time of an environment of 1, 10, 50 and 200 services, end to end: the API, the
//! environment's queue and deploy workflows on Temporal's dev server, real helm, and the
//! Kubernetes stand-in, where each service's rollout takes a simulated time between 0.3 and
//! 3 s. Services deploy in parallel (max_parallel = the number of services), so the time
//! should follow the slowest service, not the sum. `cargo bench --bench deploy_environment`
//! (`BENCH_SERVICES`, default `1,10,50,200`).
//!
//! Services deploy at most 100 at once (`max_parallel`'s limit), so 200 take two waves.
//!
//! Also printed per deployment: the peak memory (proportional set size, so helm's shared
//! binary counts once) of this process (worker, API and the in-process stand-ins: an upper
//! bound for the worker) plus its helm processes, sampled every 50 ms (Temporal's dev
//! server and Azurite, also children, are not counted); the CPU seconds its helm processes
//! used; and how soon a follower of the run's events (`GET .../runs/{id}/events`) hears of the
//! first step start and of the first log line, against the times the worker recorded.
//!
//! The bed is the system tests' (`tests/system/support.rs`): a provisioned cluster first.

#[path = "../tests/system/support.rs"]
#[allow(dead_code)]
mod support;

#[path = "../tests/system/deployments.rs"]
#[allow(dead_code, unused_imports)]
mod deployments;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use windlass_core::runs::RunStatus;
use windlass_standins::kube::ImageDelay;

/// The slowest service takes 3 s; the others between 0.3 and 2.7 s.
fn rollout_ms(index: usize) -> u64 {
    if index == 0 {
        3000
    } else {
        300 + (index as u64 * 337) % 2400
    }
}

/// The memory of `pid` and every helm process below it, in kB: the sum of their
/// proportional set sizes (`Pss`), where a page shared by n processes counts 1/n in each.
/// Summing resident sets instead would count the helm binary's shared pages once per
/// helm process (45 MB each), memory the machine holds once.
fn worker_and_helm_pss_kb(pid: u32) -> u64 {
    let mut parents = std::collections::HashMap::<u32, Vec<u32>>::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        // The parent's pid is the second field after the command's closing parenthesis.
        if let Some(ppid) = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split(' ').nth(1))
            .and_then(|p| p.parse::<u32>().ok())
        {
            parents.entry(ppid).or_default().push(child);
        }
    }
    let pss = |p: u32| {
        std::fs::read_to_string(format!("/proc/{p}/smaps_rollup"))
            .ok()
            .and_then(|text| windlass_activities::memory_budget::kb_field(&text, "Pss"))
            .unwrap_or(0)
    };
    let is_helm = |p: u32| {
        std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|name| name.trim() == "helm")
    };
    let mut total = pss(pid);
    let mut stack: Vec<u32> = parents.get(&pid).cloned().unwrap_or_default();
    while let Some(p) = stack.pop() {
        if is_helm(p) {
            total += pss(p);
        }
        stack.extend(parents.get(&p).into_iter().flatten());
    }
    total
}

/// CPU seconds used by this process's children that have ended (helm processes; the
/// dev server and Azurite run on): `cutime` + `cstime` of `/proc/self/stat`.
fn ended_children_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split(' ').collect())
        .unwrap_or_default();
    // After the command: state is field 3, so cutime (16) and cstime (17) are at 13 and 14.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(13) + ticks(14)) / 100.0
}

/// Samples this process tree's memory until stopped; the peak in kB.
fn sample_peak(stop: Arc<AtomicBool>, peak: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let me = std::process::id();
        while !stop.load(Ordering::Relaxed) {
            peak.fetch_max(worker_and_helm_pss_kb(me), Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(50));
        }
    })
}

/// What a follower of the run's events heard first: the first `step` event's lag behind
/// the step's recorded start and the first `log` line's lag behind its recorded time, in ms.
async fn follow_first_events(
    api: &support::Api,
    org: &str,
    run: &str,
) -> (Option<f64>, Option<f64>) {
    let mut response = api
        .http
        .get(format!(
            "{}/v1/organizations/{org}/runs/{run}/events",
            api.base
        ))
        .bearer_auth(api.token.as_deref().unwrap_or_default())
        .send()
        .await
        .unwrap();
    let (mut step_lag, mut log_lag) = (None, None);
    let mut buffer = String::new();
    let mut event = String::new();
    while step_lag.is_none() || log_lag.is_none() {
        let Ok(Ok(Some(chunk))) =
            tokio::time::timeout(Duration::from_secs(120), response.chunk()).await
        else {
            break;
        };
        let received = Utc::now();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find('\n') {
            let line: String = buffer.drain(..=end).collect();
            let line = line.trim_end();
            if let Some(name) = line.strip_prefix("event:") {
                event = name.trim().to_owned();
            } else if let Some(data) = line.strip_prefix("data:") {
                let data: Value = serde_json::from_str(data.trim()).unwrap_or(Value::Null);
                let lag = |at: &Value| {
                    at.as_str()
                        .and_then(|t| t.parse::<DateTime<Utc>>().ok())
                        .map(|t| (received - t).as_seconds_f64() * 1e3)
                };
                match event.as_str() {
                    "step" if step_lag.is_none() => step_lag = lag(&data["first_started_at"]),
                    "log" if log_lag.is_none() => log_lag = lag(&data["at"]),
                    "end" => return (step_lag, log_lag),
                    _ => {}
                }
            }
        }
    }
    (step_lag, log_lag)
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::var("BENCH_SERVICES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 10, 50, 200]);
    let stack = support::Stack::with_clusters().await;
    let kube = &stack.clusters.as_ref().unwrap().kube;
    let (org, account) = stack.organization_with_verified_azure_account().await;
    let cluster = deployments::provisioned_cluster(&stack, org, account).await;
    let (_, _, project) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/projects"),
            json!({"name": "bench"}),
            &[],
        )
        .await;
    let project = project["id"].as_str().unwrap().to_owned();
    kube.set_image_delays(
        (0..sizes.iter().copied().max().unwrap_or(1))
            .map(|i| ImageDelay {
                marker: format!(":r-{}ms", rollout_ms(i)),
                delay_ms: rollout_ms(i),
            })
            .collect(),
    );

    println!(
        "\nenvironment deploy time (API -> queue -> deploy workflow -> helm -> rollout watch), simulated rollouts 0.3-3 s"
    );
    println!(
        "{:>9} {:>12} {:>10} {:>11} {:>15} {:>14} {:>13} {:>16} {:>15}",
        "services",
        "slowest (s)",
        "sum (s)",
        "deploy (s)",
        "deploy/slowest",
        "peak PSS (MB)",
        "helm CPU-s",
        "1st step (ms)",
        "1st line (ms)"
    );
    for services in sizes {
        let specs: Vec<_> = (0..services)
            .map(|i| {
                json!({"kind": "container_app", "name": format!("svc-{i}"),
                       "image": format!("bench/app:r-{}ms", rollout_ms(i)), "port": 8080})
            })
            .collect();
        let (_, _, created) = stack
            .api
            .post(
                &format!("/v1/organizations/{org}/projects/{project}/environments"),
                json!({"name": format!("n{services}"), "type": "development",
                       "cluster_id": cluster, "max_parallel": services.min(100), "services": specs}),
                &[],
            )
            .await;
        let env = created["environment"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("environment not created: {created}"))
            .to_owned();
        let (stop, peak) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let sampler = sample_peak(stop.clone(), peak.clone());
        let cpu_before = ended_children_cpu_s();
        let started = deployments::deploy(&stack, org, &env, json!({})).await;
        let run_id = started.run.id.to_string();
        let follower = {
            let api = stack.api.with_token(stack.api.token.clone());
            let (org, run_id) = (org.to_string(), run_id.clone());
            tokio::spawn(async move { follow_first_events(&api, &org, &run_id).await })
        };
        let run = stack
            .wait_for_run(org, started.run.id, Duration::from_secs(900), |r| {
                r.finished_at.is_some()
            })
            .await;
        stop.store(true, Ordering::Relaxed);
        sampler.join().unwrap();
        let (step_lag, log_lag) = follower.await.unwrap();
        assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
        let wall = (run.finished_at.unwrap() - run.created_at).as_seconds_f64();
        let slowest = (0..services).map(rollout_ms).max().unwrap() as f64 / 1000.0;
        let sum = (0..services).map(rollout_ms).sum::<u64>() as f64 / 1000.0;
        let ms = |lag: Option<f64>| lag.map_or("-".to_owned(), |l| format!("{l:.0}"));
        println!(
            "{services:>9} {slowest:>12.1} {sum:>10.1} {wall:>11.1} {:>15.2} {:>14.0} {:>13.2} {:>16} {:>15}",
            wall / slowest,
            peak.load(Ordering::Relaxed) as f64 / 1024.0,
            ended_children_cpu_s() - cpu_before,
            ms(step_lag),
            ms(log_lag)
        );
    }
}
