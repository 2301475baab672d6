//! The fault suite (issue 11): Windlass on the production topology (`topology`: API,
//! two workers, the stand-ins, PostgreSQL, Redis and Temporal, each its own process)
//! meets the faults a fleet meets, at moments chosen by what can be observed (a
//! terraform creating, a helm upgrading, a database session waiting), not by sleeps:
//!
//! - a provisioning: a worker SIGKILLed during `terraform apply`; Redis gone for the
//!   whole retry, and PostgreSQL restarted while the retry logs; Temporal restarted while
//!   the charts install; the worker recording the run's end SIGKILLed while it waits on
//!   the database (a bookkeeping step);
//! - a deployment: a worker SIGKILLed while its helm upgrades a release; the worker
//!   watching another release roll out frozen (SIGSTOP) past its heartbeat timeout, its
//!   step retried elsewhere, then resumed (a zombie attempt).
//!
//! After each: the run succeeded; the stand-ins' own journals show every resource created
//! exactly once and every release advanced exactly one revision; no step's log has a gap
//! and no step is left unfinished; every run's end is audited once and `windlass audit
//! verify` passes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use uuid::Uuid;
use windlass_core::runs::{RunStatus, StepStatus};
use windlass_test_support::client::output;

use crate::support::{id_of, step};
use crate::terraform_crash::{members_of, processes, terraform_groups};
use crate::topology::{Production, until};

#[tokio::test]
async fn a_cluster_and_a_deployment_come_through_kills_restarts_outages_and_a_zombie_whole() {
    let began = Instant::now();
    let mut bed = Production::start().await;
    bed.spawn_ready_worker().await;
    bed.spawn_ready_worker().await;
    let (org, account) = bed.organization_with_verified_azure_account().await;
    eprintln!(
        "fault suite: topology up, access set up after {:?}",
        began.elapsed()
    );

    let (cluster, provisioning) = provision_under_faults(&mut bed, org, account).await;
    assert_whole(&bed, org, &[provisioning]).await;
    eprintln!(
        "fault suite: provisioning whole after {:?}",
        began.elapsed()
    );

    let deployment = deploy_under_faults(&mut bed, org, &cluster).await;
    assert_whole(&bed, org, &[provisioning, deployment]).await;
    eprintln!("fault suite: deployment whole after {:?}", began.elapsed());
}

/// Provisions a cluster through every fault of the infrastructure; returns the cluster
/// and the run.
async fn provision_under_faults(bed: &mut Production, org: Uuid, account: Uuid) -> (String, Uuid) {
    let (status, _, started) = bed
        .api
        .post(
            &format!("/v1/organizations/{org}/clusters"),
            json!({"name": "faults-eu", "cloud_account_id": account, "region": "westeurope",
                   "kubernetes_version": "1.33"}),
            &[("idempotency-key", "create-faults-eu")],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let run_id = id_of(&started["run"]);
    let cluster = started["cluster"]["id"].as_str().unwrap().to_owned();

    // SIGKILL during terraform apply: some resources exist and the provider is creating
    // more, in the terraform of one of the workers.
    let victim = until(
        "terraform creating resources",
        Duration::from_secs(180),
        async || {
            if bed.cluster_creations().await.len() < 5 {
                return None;
            }
            bed.workers().iter().find_map(|w| {
                let groups = terraform_groups(w.pid());
                let creating = members_of(&groups).len() > groups.len();
                creating.then(|| w.name.clone())
            })
        },
    )
    .await;
    bed.kill_worker(&victim);
    eprintln!(
        "fault suite: killed {victim} during terraform apply, {} resources created",
        bed.cluster_creations().await.len()
    );

    // Redis is gone for the whole retry (live logs and the shared rate limit go without
    // it), the killed worker is replaced during the outage, and PostgreSQL restarts while
    // the retry writes its log.
    bed.redis.down();
    bed.spawn_ready_worker().await;
    // The retry runs on another worker and writes its log.
    bed.wait_for_run(org, run_id, Duration::from_secs(120), |r| {
        r.steps.iter().any(|s| {
            s.key == "terraform-apply" && s.status == StepStatus::Running && s.attempts >= 2
        })
    })
    .await;
    until(
        "the retried apply logging",
        Duration::from_secs(60),
        async || {
            let log = bed.step_log(org, run_id, "terraform-apply").await;
            log.iter().any(|l| l.attempt >= 2).then_some(())
        },
    )
    .await;
    bed.postgres.restart(Duration::from_secs(2)).await;
    eprintln!("fault suite: PostgreSQL restarted during the retried apply, Redis down");
    bed.wait_for_run(org, run_id, Duration::from_secs(240), |r| {
        r.finished_at.is_some()
            || r.steps
                .iter()
                .any(|s| s.key == "terraform-apply" && s.status == StepStatus::Succeeded)
    })
    .await;
    bed.redis.up().await;
    bed.assert_workers_alive("the Redis outage and the PostgreSQL restart");

    // Temporal restarts while the charts install.
    bed.wait_for_run(org, run_id, Duration::from_secs(120), |r| {
        r.finished_at.is_some()
            || r.steps
                .iter()
                .any(|s| s.status == StepStatus::Running && s.key.starts_with("install-chart/"))
    })
    .await;
    bed.temporal.restart().await;
    eprintln!("fault suite: Temporal restarted while charts install");
    bed.assert_workers_alive("the Temporal restart");

    // SIGKILL during a bookkeeping step: with the run's row held, recording its end waits
    // in the database, in the session of the worker that runs it (named after it).
    let mut holder = bed.postgres.connect().await;
    let mut held = holder.begin().await.unwrap();
    sqlx::query("SELECT id FROM workflow_runs WHERE id = $1 FOR NO KEY UPDATE")
        .bind(run_id.to_string())
        .fetch_one(&mut *held)
        .await
        .unwrap();
    let mut probe = bed.postgres.connect().await;
    let started_waiting = Instant::now();
    let recorder = loop {
        let waiting: Option<String> = sqlx::query_scalar(
            "SELECT application_name FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
             AND application_name LIKE 'windlass-worker-%' AND query LIKE 'UPDATE workflow_runs%'",
        )
        .fetch_optional(&mut probe)
        .await
        .unwrap();
        if let Some(name) = waiting {
            break name;
        }
        assert!(
            started_waiting.elapsed() < Duration::from_secs(240),
            "no worker recorded the run's end: {:#?}",
            bed.run(org, run_id).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    bed.kill_worker(&recorder);
    bed.spawn_ready_worker().await;
    held.rollback().await.unwrap();
    eprintln!("fault suite: killed {recorder} while it recorded the run's end");

    // The bookkeeping attempt times out (30 s) and is retried.
    let run = bed
        .wait_for_run(org, run_id, Duration::from_secs(180), |r| {
            r.finished_at.is_some()
        })
        .await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    bed.assert_workers_alive("the provisioning");
    assert!(step(&run, "terraform-apply").attempts >= 2, "{run:#?}");
    // What the run reports counts the killed attempt's creations too: every resource of
    // the blueprint but what the bootstrap made.
    let created_by_terraform = started["inventory"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["origin"] == "terraform")
        .count();
    assert_eq!(
        output(&run)["terraform"]["add"].as_u64().unwrap() as usize,
        created_by_terraform,
        "{:#}",
        output(&run)["terraform"]
    );
    (cluster, run_id)
}

/// Deploys two services onto the cluster through a kill during helm and a zombie
/// attempt; returns the run.
async fn deploy_under_faults(bed: &mut Production, org: Uuid, cluster: &str) -> Uuid {
    let (status, _, project) = bed
        .api
        .post(
            &format!("/v1/organizations/{org}/projects"),
            json!({"name": "shop"}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    let (status, _, created) = bed
        .api
        .post(
            &format!(
                "/v1/organizations/{org}/projects/{}/environments",
                project["id"].as_str().unwrap()
            ),
            json!({"name": "prod", "type": "production", "cluster_id": cluster,
                   "services": [
                       {"kind": "container_app", "name": "api", "image": "shop/api:1",
                        "port": 8080, "rollout_timeout_seconds": 120},
                       {"kind": "container_app", "name": "slow", "image": "shop/slow:1",
                        "port": 8080, "rollout_timeout_seconds": 120}]}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let env = created["environment"]["id"].as_str().unwrap().to_owned();
    // `slow` rolls out long enough to freeze its watcher past the heartbeat timeout (10 s)
    // and have another worker take over the watch.
    bed.kube_settings(|s| {
        s["image_delays"] = json!([{"marker": "shop/slow:1", "delay_ms": 25000},
                                   {"marker": "shop/api:1", "delay_ms": 2000}]);
    })
    .await;
    let (status, _, started) = bed
        .api
        .post(
            &format!("/v1/organizations/{org}/environments/{env}/deployments"),
            json!({}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let run_id = id_of(&started["run"]);

    // SIGKILL during helm: the worker whose helm is upgrading `api`.
    let victim = until("helm upgrading api", Duration::from_secs(120), async || {
        helm_upgrading(bed, "api")
    })
    .await;
    bed.kill_worker(&victim);
    eprintln!("fault suite: killed {victim} while its helm upgraded api");
    bed.spawn_ready_worker().await;

    // A zombie: the worker watching `slow` roll out (helm done) is frozen past its
    // heartbeat timeout; another worker takes the step over; then the frozen one resumes.
    let workflow_id = format!("run-{run_id}");
    let (watcher, attempt) = until(
        "a worker watching slow roll out",
        Duration::from_secs(120),
        async || {
            let deployed = bed
                .helm_releases()
                .await
                .iter()
                .any(|r| r.name == "slow" && r.status == "deployed");
            if !deployed {
                return None;
            }
            let described = bed.temporal.describe(&workflow_id)?;
            let pending = described["pendingActivities"]
                .as_array()?
                .iter()
                .find(|a| {
                    a["activityId"] == "deploy/slow"
                        && a["state"] == "PENDING_ACTIVITY_STATE_STARTED"
                })?;
            let pid = pending["lastWorkerIdentity"]
                .as_str()?
                .split('@')
                .next()?
                .to_owned();
            let attempt = pending["attempt"].as_u64().unwrap_or(1);
            let worker = bed.workers().iter().find(|w| w.pid().to_string() == pid)?;
            Some((worker.name.clone(), attempt))
        },
    )
    .await;
    bed.freeze(&watcher, true);
    eprintln!("fault suite: froze {watcher} while it watched slow (attempt {attempt})");
    let taken_over = bed
        .wait_for_run(org, run_id, Duration::from_secs(90), |r| {
            r.steps.iter().any(|s| {
                s.key == "deploy/slow"
                    && u64::from(s.attempts) > attempt
                    && s.status == StepStatus::Succeeded
            })
        })
        .await;
    let newest = step(&taken_over, "deploy/slow").clone();
    bed.freeze(&watcher, false);
    // The zombie attempt ends on its own (its completion refused by Temporal), and reports
    // to the step journal as it does. (A task Temporal handed to the frozen worker's
    // outstanding poll meanwhile, a later attempt that timed out unstarted, runs now too:
    // another zombie.)
    let metrics = bed.worker(&watcher).metrics.clone();
    until(
        "the zombie attempt ended",
        Duration::from_secs(60),
        async || activities_in_flight(&metrics).await.filter(|n| *n == 0),
    )
    .await;

    let run = bed
        .wait_for_run(org, run_id, Duration::from_secs(180), |r| {
            r.finished_at.is_some()
        })
        .await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    let slow = step(&run, "deploy/slow");
    // The zombie's late end changed nothing the newer attempt had journalled.
    assert_eq!(
        (
            slow.status,
            slow.attempts,
            slow.last_started_at,
            slow.finished_at
        ),
        (
            newest.status,
            newest.attempts,
            newest.last_started_at,
            newest.finished_at
        ),
        "{slow:#?} after {newest:#?}"
    );
    assert!(step(&run, "deploy/api").attempts >= 2, "{run:#?}");
    let (status, deployments) = bed
        .api
        .get(&format!(
            "/v1/organizations/{org}/environments/{env}/deployments"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{deployments}");
    let states: Vec<&Value> = deployments
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["state"])
        .collect();
    assert_eq!(states, [&json!("deployed")], "{deployments:#}");
    run_id
}

/// The worker one of whose helm processes is upgrading `release`.
fn helm_upgrading(bed: &Production, release: &str) -> Option<String> {
    let table = processes();
    bed.workers().iter().find_map(|w| {
        table
            .iter()
            .filter(|(_, ppid, ..)| *ppid == w.pid())
            .any(|(pid, ..)| {
                let args = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let args: Vec<&[u8]> = args.split(|b| *b == 0).collect();
                args.first().is_some_and(|a| a.ends_with(b"helm"))
                    && args.contains(&b"upgrade".as_slice())
                    && args.contains(&release.as_bytes())
            })
            .then(|| w.name.clone())
    })
}

/// `windlass_activities_in_flight` summed over the worker's queues and activity types.
async fn activities_in_flight(metrics: &str) -> Option<u64> {
    let text = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(
        text.lines()
            .filter(|l| l.starts_with("windlass_activities_in_flight"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64,
    )
}

/// What holds after every phase: see the module's documentation.
async fn assert_whole(bed: &Production, org: Uuid, runs: &[Uuid]) {
    for run_id in runs.iter().copied() {
        let run = bed.run(org, run_id).await.expect("the API answers");
        assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
        for s in &run.steps {
            let key = s.key.as_str();
            assert_eq!(
                s.status,
                StepStatus::Succeeded,
                "every step finished: {s:#?}"
            );
            let mut seqs: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
            for line in bed.step_log(org, run_id, key).await {
                seqs.entry(u64::from(line.attempt))
                    .or_default()
                    .push(u64::from(line.seq));
            }
            for (attempt, seqs) in &seqs {
                let whole: Vec<u64> = (1..=seqs.len() as u64).collect();
                assert_eq!(seqs, &whole, "{key}, attempt {attempt}: lines missing");
                assert!(
                    *attempt <= u64::from(s.attempts),
                    "{key}: lines of attempt {attempt}, journal {s:#?}"
                );
            }
        }
        let (status, finished) = bed
            .api
            .get(&format!(
                "/v1/organizations/{org}/audit?action=workflow.finished"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{finished}");
        let entries = finished
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["resource"] == format!("run:{run_id}"))
            .count();
        assert_eq!(entries, 1, "the run's end is audited once: {finished:#}");
    }

    assert!(!bed.cluster_creations().await.is_empty());
    let twice: Vec<_> = bed
        .azure_creations()
        .await
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .collect();
    assert!(twice.is_empty(), "ARM resources created again: {twice:?}");
    let mut releases: BTreeMap<(String, String), Vec<(u32, String)>> = BTreeMap::new();
    for r in bed.helm_releases().await {
        releases
            .entry((r.namespace, r.name))
            .or_default()
            .push((r.revision, r.status));
    }
    assert!(!releases.is_empty());
    for (release, revisions) in &releases {
        assert_eq!(
            revisions,
            &[(1, "deployed".to_owned())],
            "{release:?} advanced exactly one revision"
        );
    }

    let (intact, report) = bed.audit_verify();
    assert!(intact, "windlass audit verify: {report}");
}

/// The other moment of a bookkeeping kill: the worker recording the run's end dies while
/// its audit entry waits to be appended. The end and its entry are one transaction
/// (`Store::record_run_end`), so nothing of the end was recorded: the retry records both,
/// and the trail says the run ended, once. (Before, the end committed first and a kill
/// there lost the entry for good.)
#[tokio::test]
async fn a_worker_killed_between_recording_a_runs_end_and_auditing_it_leaves_the_end_audited() {
    let mut bed = Production::start().await;
    bed.spawn_ready_worker().await;
    bed.spawn_ready_worker().await;
    let (org, account) = bed.organization_with_verified_azure_account().await;
    // A plan only: a short run whose end proves nothing about the account.
    let (status, _, started) = bed
        .api
        .post(
            &format!("/v1/organizations/{org}/clusters"),
            json!({"name": "audit-gap", "cloud_account_id": account, "region": "westeurope",
                   "kubernetes_version": "1.33", "dry_run": true}),
            &[("idempotency-key", "plan-audit-gap")],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let run_id = id_of(&started["run"]);

    // Audit appends wait while the test holds a table lock their INSERT conflicts with.
    let mut holder = bed.postgres.connect().await;
    let mut held = holder.begin().await.unwrap();
    sqlx::query("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *held)
        .await
        .unwrap();
    let mut probe = bed.postgres.connect().await;
    let started_waiting = Instant::now();
    let recorder = loop {
        let waiting: Option<String> = sqlx::query_scalar(
            "SELECT application_name FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
             AND application_name LIKE 'windlass-worker-%' AND query LIKE 'INSERT INTO audit_log%'",
        )
        .fetch_optional(&mut probe)
        .await
        .unwrap();
        if let Some(name) = waiting {
            let run = bed.run(org, run_id).await;
            assert!(
                run.as_ref().is_some_and(|r| r.finished_at.is_none()),
                "the end was recorded before its entry: {run:?}"
            );
            break name;
        }
        assert!(started_waiting.elapsed() < Duration::from_secs(180));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    bed.kill_worker(&recorder);
    bed.spawn_ready_worker().await;
    held.rollback().await.unwrap();

    // The bookkeeping attempt times out (30 s) and is retried; then the workflow closes.
    let workflow_id = format!("run-{run_id}");
    until(
        "the run's workflow closed",
        Duration::from_secs(120),
        async || {
            let described = bed.temporal.describe(&workflow_id)?;
            (described["workflowExecutionInfo"]["status"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED")
                .then_some(())
        },
    )
    .await;
    let (status, finished) = bed
        .api
        .get(&format!(
            "/v1/organizations/{org}/audit?action=workflow.finished"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{finished}");
    let entries = finished
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource"] == format!("run:{run_id}"))
        .count();
    assert_eq!(entries, 1, "the run's end is audited once: {finished:#}");
    let (intact, report) = bed.audit_verify();
    assert!(intact, "windlass audit verify: {report}");
}
