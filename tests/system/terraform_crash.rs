//! A worker SIGKILLed during `terraform apply`: nothing terraform started outlives it,
//! the retry on another worker breaks the dead attempt's state lock at once (not after the
//! stale-lock grace), creates nothing twice, and the run reports every resource added.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use windlass_core::clusters::ClusterSpec;
use windlass_core::runs::{RunStatus, StepStatus};
use windlass_core::step_logs::LogLine;
use windlass_test_support::client::output;

use crate::cluster_provisioning::{
    cluster_creations, cluster_request, create_cluster, recorded_arm_ids, resource_ids,
};
use crate::support::{Stack, id_of, step};

/// The stale-lock grace the workers run with: the production default.
const GRACE_SECONDS: u64 = 60;

/// Process ids and process groups of the live (not zombie) processes on this machine.
pub(crate) fn processes() -> Vec<(u32, u32, u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields[0] == "Z" || fields[0] == "X" {
            continue;
        }
        let ppid = fields[1].parse().unwrap_or(0);
        let pgid = fields[2].parse().unwrap_or(0);
        let name = head
            .split_once(" (")
            .map(|(_, n)| n)
            .unwrap_or("")
            .to_owned();
        found.push((pid, ppid, pgid, name));
    }
    found
}

/// The process groups of the terraforms `worker` runs (each terraform leads its own).
pub(crate) fn terraform_groups(worker: u32) -> BTreeSet<u32> {
    processes()
        .into_iter()
        .filter(|(pid, ppid, pgid, _)| *ppid == worker && pid == pgid)
        .filter(|(pid, ..)| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("terraform"))
        })
        .map(|(pid, ..)| pid)
        .collect()
}

pub(crate) fn members_of(groups: &BTreeSet<u32>) -> Vec<(u32, u32, u32, String)> {
    processes()
        .into_iter()
        .filter(|(_, _, pgid, _)| groups.contains(pgid))
        .collect()
}

async fn step_log(stack: &Stack, org: uuid::Uuid, run_id: uuid::Uuid, key: &str) -> Vec<LogLine> {
    stack
        .organization_client(org)
        .step_log(run_id, key)
        .await
        .unwrap_or_else(|refusal| panic!("the step's log: {refusal}"))
}

#[tokio::test]
async fn a_worker_killed_mid_apply_leaves_no_process_no_duplicate_and_no_wait_for_the_grace() {
    let stack = Stack::with_clusters_without_worker().await;
    let (org, account) = stack.organization_with_azure_account().await;
    let mut first = stack
        .cluster_worker_command("first")
        .env(
            "WINDLASS_STALE_LOCK_GRACE_SECONDS",
            GRACE_SECONDS.to_string(),
        )
        .spawn()
        .expect("spawn windlass worker");
    stack.set_up_access(org, account).await;
    // Long-running creations take seconds, so the kill lands while some are under way:
    // made by ARM, not yet recorded by terraform.
    stack.azure.set_lro_clock(Duration::from_secs(2), 1);

    let (status, started) = create_cluster(
        &stack,
        org,
        cluster_request(account, "crash-eu"),
        "create-crash-eu",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let run_id = id_of(&started["run"]);
    let spec: ClusterSpec = serde_json::from_value(started["cluster"].clone()).unwrap();
    let subscription = stack
        .store
        .cloud_account(org, account)
        .await
        .unwrap()
        .external_id;

    // Until terraform has recorded some resources and is creating more: its provider's
    // process is running in its group.
    stack
        .wait_for_run(org, run_id, Duration::from_secs(120), |r| {
            r.steps
                .iter()
                .any(|s| s.key == "terraform-apply" && s.status == StepStatus::Running)
        })
        .await;
    let state = stack.state_container(&spec, &subscription).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let groups = loop {
        let ids = match state.get("cluster.tfstate").await.unwrap() {
            Some(blob) => resource_ids(&blob.content),
            None => Default::default(),
        };
        let groups = terraform_groups(first.id());
        if ids.len() >= 5
            && !ids.contains_key("azurerm_kubernetes_cluster.this")
            && members_of(&groups).len() > groups.len()
        {
            break groups;
        }
        assert!(Instant::now() < deadline, "terraform recorded {ids:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let in_flight = members_of(&groups);
    first.kill().expect("SIGKILL the worker");
    first.wait().unwrap();
    let killed_at = Instant::now();

    // Nothing of the killed worker's terraform runs on: not terraform, not the provider
    // it had started.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut left = members_of(&groups);
    while !left.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = members_of(&groups);
    }
    assert!(
        left.is_empty(),
        "processes of the killed worker's terraform outlived it: {left:?} (in flight: {in_flight:?})"
    );
    assert!(
        state.get("cluster.tfstate.lock").await.unwrap().is_some(),
        "the dead worker's lock is left behind"
    );

    let mut second = stack
        .cluster_worker_command("second")
        .env(
            "WINDLASS_STALE_LOCK_GRACE_SECONDS",
            GRACE_SECONDS.to_string(),
        )
        .spawn()
        .expect("spawn windlass worker");
    // The retry takes the lock as soon as it starts: its holder is known dead.
    let broken = loop {
        let log = step_log(&stack, org, run_id, "terraform-apply").await;
        if let Some(line) = log
            .iter()
            .find(|l| l.line.starts_with("state lock held by"))
        {
            break line.clone();
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(GRACE_SECONDS),
            "no lock broken within the grace: {log:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let recovery = killed_at.elapsed();
    let text = broken.line.as_str();
    assert!(text.contains("broken at once"), "{text}");
    assert!(
        text.contains("is dead"),
        "broken because its holder is dead: {text}"
    );
    assert!(broken.attempt >= 2, "{broken:?}");
    eprintln!("terraform-apply: the dead attempt's lock was broken {recovery:?} after the kill");
    assert!(
        recovery < Duration::from_secs(GRACE_SECONDS / 2),
        "recovery took {recovery:?}"
    );

    let run = stack
        .wait_for_run(org, run_id, Duration::from_secs(300), |r| {
            r.finished_at.is_some()
        })
        .await;
    let _ = second.kill();
    let _ = second.wait();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert!(step(&run, "terraform-apply").attempts >= 2);

    for line in step_log(&stack, org, run_id, "terraform-apply").await {
        if line.level == "warn" {
            eprintln!("terraform-apply attempt {}: {}", line.attempt, line.line);
        }
    }
    // The Azure stand-in's own journal: every resource of the cluster was created exactly
    // once, and the state records each of them (what the killed attempt made included).
    let creations = cluster_creations(&stack, &spec);
    let twice: Vec<_> = creations.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "created more than once: {twice:?}");
    let state_doc = state.get("cluster.tfstate").await.unwrap().unwrap().content;
    let recorded: BTreeSet<String> = recorded_arm_ids(&state_doc, &spec).into_values().collect();
    let created: BTreeSet<String> = creations.keys().cloned().collect();
    assert_eq!(recorded, created);
    // What the run reports counts the killed attempt's creations too: everything but
    // what the bootstrap made and terraform imported.
    assert_eq!(
        output(&run)["terraform"]["add"].as_u64().unwrap() as usize,
        resource_ids(&state_doc).len() - 3,
        "{:#}",
        output(&run)["terraform"]
    );
    assert!(state.get("cluster.tfstate.lock").await.unwrap().is_none());
}
