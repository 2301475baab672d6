//! One store suite, run against SQLite and PostgreSQL.
//!
//! PostgreSQL comes from `WINDLASS_TEST_POSTGRES_URL` (default: the local server with trust
//! auth); each test gets a database of its own, dropped afterwards.

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;
use windlass_core::cloud_accounts::{CloudProvider, NewCloudAccount, Verification};
use windlass_core::runs::{
    InsertedRun, NewRun, RunFilter, RunStatus, StepOutcome, StepStatus, WorkflowKind,
};
use windlass_core::{Error, Store};

#[macro_use]
mod support;

on_both_databases!(
    organizations_have_unique_names,
    cloud_accounts_belong_to_one_organization,
    one_organization_holds_a_verified_claim_on_an_account,
    a_repeated_idempotency_key_returns_the_first_run,
    a_reused_idempotency_key_with_another_request_is_refused,
    one_unfinished_run_per_target,
    the_first_recorded_end_of_a_run_wins,
    runs_are_listed_newest_first_and_filtered,
    a_targets_last_run_is_found_however_many_runs_came_after,
    steps_record_attempts_timings_and_last_error,
    steps_left_running_are_closed_when_the_run_is_cancelled,
    steps_of_unknown_runs_are_ignored,
    step_logs_keep_every_attempt_in_order_once,
    a_runs_log_lists_every_step_in_the_order_printed,
);

async fn organization(store: &Store) -> Uuid {
    store
        .create_organization(&format!("acme-{}", Uuid::new_v4()))
        .await
        .unwrap()
        .id
}

fn setup_request(org: Uuid, target: &str, key: Option<&str>, fingerprint: &str) -> NewRun {
    NewRun {
        organization_id: org,
        kind: WorkflowKind::AzureAccessSetup,
        target: target.into(),
        idempotency_key: key.map(Into::into),
        request_fingerprint: fingerprint.into(),
        input: json!({"cloud_account_id": target}),
    }
}

fn created(inserted: InsertedRun) -> windlass_core::runs::Run {
    match inserted {
        InsertedRun::Created(run) => run,
        InsertedRun::Existing(run) => panic!("expected a new run, got existing {}", run.id),
    }
}

async fn organizations_have_unique_names(store: &Store) {
    let org = store.create_organization("acme").await.unwrap();
    assert_eq!(store.organization(org.id).await.unwrap().name, "acme");
    let again = store.create_organization("acme").await.unwrap_err();
    assert!(matches!(again, Error::Conflict(_)), "{again}");
    assert!(matches!(
        store.create_organization("  ").await.unwrap_err(),
        Error::InvalidInput(_)
    ));
    assert!(matches!(
        store.organization(Uuid::new_v4()).await.unwrap_err(),
        Error::NotFound { .. }
    ));
}

async fn cloud_accounts_belong_to_one_organization(store: &Store) {
    let acme = organization(store).await;
    let globex = organization(store).await;
    let account = store
        .create_cloud_account(NewCloudAccount {
            organization_id: acme,
            provider: CloudProvider::Azure,
            tenant_id: "tenant-1".into(),
            external_id: "sub-1".into(),
            display_name: "production".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        store.cloud_account(acme, account.id).await.unwrap(),
        account
    );
    assert!(matches!(
        store.cloud_account(globex, account.id).await.unwrap_err(),
        Error::NotFound { .. }
    ));
    let duplicate = store
        .create_cloud_account(NewCloudAccount {
            organization_id: acme,
            provider: CloudProvider::Azure,
            tenant_id: "tenant-1".into(),
            external_id: "sub-1".into(),
            display_name: "again".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(duplicate, Error::Conflict(_)), "{duplicate}");
    assert_eq!(store.cloud_accounts(acme).await.unwrap().len(), 1);
    assert!(store.cloud_accounts(globex).await.unwrap().is_empty());
}

async fn one_organization_holds_a_verified_claim_on_an_account(store: &Store) {
    let (acme, globex) = (organization(store).await, organization(store).await);
    let register = |org| NewCloudAccount {
        organization_id: org,
        provider: CloudProvider::Azure,
        tenant_id: "tenant-v".into(),
        external_id: "sub-v".into(),
        display_name: "production".into(),
    };
    // Both may register it while nobody proved anything.
    let mine = store.create_cloud_account(register(acme)).await.unwrap();
    let theirs = store.create_cloud_account(register(globex)).await.unwrap();
    assert_eq!(mine.verification, Verification::Unverified);
    assert!(mine.verified_at.is_none());

    let verified = store
        .mark_cloud_account_verified(acme, mine.id)
        .await
        .unwrap();
    assert!(verified.is_verified() && verified.verified_at.is_some());
    // Idempotent for the holder.
    let again = store
        .mark_cloud_account_verified(acme, mine.id)
        .await
        .unwrap();
    assert_eq!(again.verified_at, verified.verified_at);
    // The unique index refuses a second verified claim.
    let refused = store
        .mark_cloud_account_verified(globex, theirs.id)
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Conflict(_)), "{refused}");
    assert!(
        !store
            .cloud_account(globex, theirs.id)
            .await
            .unwrap()
            .is_verified()
    );
    let claimed =
        |org| store.cloud_account_claimed_elsewhere(org, CloudProvider::Azure, "tenant-v", "sub-v");
    assert!(claimed(globex).await.unwrap());
    assert!(
        !claimed(acme).await.unwrap(),
        "its own claim is not elsewhere"
    );
}

async fn a_repeated_idempotency_key_returns_the_first_run(store: &Store) {
    let org = organization(store).await;
    let first = created(
        store
            .insert_run(setup_request(org, "account-a", Some("key-1"), "f1"))
            .await
            .unwrap(),
    );
    match store
        .insert_run(setup_request(org, "account-a", Some("key-1"), "f1"))
        .await
        .unwrap()
    {
        InsertedRun::Existing(run) => assert_eq!(run.id, first.id),
        InsertedRun::Created(run) => panic!("a second run {} was created", run.id),
    }
    // The same key in another organisation is another request.
    let other_org = organization(store).await;
    created(
        store
            .insert_run(setup_request(other_org, "account-b", Some("key-1"), "f1"))
            .await
            .unwrap(),
    );
}

async fn a_reused_idempotency_key_with_another_request_is_refused(store: &Store) {
    let org = organization(store).await;
    created(
        store
            .insert_run(setup_request(org, "account-a", Some("key-1"), "f1"))
            .await
            .unwrap(),
    );
    let refused = store
        .insert_run(setup_request(org, "account-b", Some("key-1"), "f2"))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, Error::Conflict(m) if m.contains("different request")),
        "{refused}"
    );
}

async fn one_unfinished_run_per_target(store: &Store) {
    let org = organization(store).await;
    let first = created(
        store
            .insert_run(setup_request(org, "account-a", None, "f1"))
            .await
            .unwrap(),
    );
    let busy = store
        .insert_run(setup_request(org, "account-a", None, "f2"))
        .await
        .unwrap_err();
    assert!(
        matches!(&busy, Error::Conflict(m) if m.contains(&first.id.to_string())),
        "{busy}"
    );
    store
        .finish_run(
            first.id,
            RunStatus::Succeeded,
            Some(&json!({"ok": true})),
            None,
        )
        .await
        .unwrap();
    created(
        store
            .insert_run(setup_request(org, "account-a", None, "f2"))
            .await
            .unwrap(),
    );
}

async fn the_first_recorded_end_of_a_run_wins(store: &Store) {
    let org = organization(store).await;
    let run = created(
        store
            .insert_run(setup_request(org, "account-a", None, "f1"))
            .await
            .unwrap(),
    );
    store
        .mark_run_started(run.id, "temporal-run-1")
        .await
        .unwrap();
    let started = store.run(org, run.id).await.unwrap();
    assert_eq!(started.status, RunStatus::Running);
    assert_eq!(started.temporal_run_id.as_deref(), Some("temporal-run-1"));
    assert!(
        store
            .finish_run(
                run.id,
                RunStatus::Cancelled,
                None,
                Some("cancelled by user")
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish_run(run.id, RunStatus::Succeeded, Some(&json!({})), None)
            .await
            .unwrap()
    );
    let finished = store.run(org, run.id).await.unwrap();
    assert_eq!(finished.status, RunStatus::Cancelled);
    assert_eq!(finished.error.as_deref(), Some("cancelled by user"));
    assert!(finished.finished_at.is_some());
    assert!(matches!(
        store
            .finish_run(run.id, RunStatus::Running, None, None)
            .await
            .unwrap_err(),
        Error::InvalidInput(_)
    ));
}

async fn runs_are_listed_newest_first_and_filtered(store: &Store) {
    let org = organization(store).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let run = created(
            store
                .insert_run(setup_request(org, &format!("account-{i}"), None, "f"))
                .await
                .unwrap(),
        );
        ids.push(run.id);
    }
    store
        .finish_run(ids[0], RunStatus::Succeeded, None, None)
        .await
        .unwrap();
    let all = store.runs(org, &RunFilter::default()).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.id).collect::<Vec<_>>(),
        ids.iter().rev().copied().collect::<Vec<_>>()
    );
    let succeeded = store
        .runs(
            org,
            &RunFilter {
                status: Some(RunStatus::Succeeded),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(succeeded.len(), 1);
    assert_eq!(succeeded[0].id, ids[0]);
    let limited = store
        .runs(
            org,
            &RunFilter {
                limit: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(limited.len(), 2);
    let teardowns = store
        .runs(
            org,
            &RunFilter {
                kind: Some(WorkflowKind::AzureAccessTeardown),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(teardowns.is_empty());
    let other = organization(store).await;
    assert!(
        store
            .runs(other, &RunFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn steps_record_attempts_timings_and_last_error(store: &Store) {
    let org = organization(store).await;
    let run = created(
        store
            .insert_run(setup_request(org, "account-a", None, "f"))
            .await
            .unwrap(),
    );
    let t0 = Utc::now();
    store
        .record_step_started(run.id, "assign-role", "azure.assign_role", 1, t0, Some(40))
        .await
        .unwrap();
    // The run was still pending: a started step proves it is running.
    assert_eq!(
        store.run(org, run.id).await.unwrap().status,
        RunStatus::Running
    );
    store
        .record_step_finished(
            run.id,
            "assign-role",
            1,
            &StepOutcome::Failed {
                error: "PrincipalNotFound: replication delay".into(),
                will_retry: true,
            },
            Utc::now(),
        )
        .await
        .unwrap();
    let retrying = &store.steps(run.id).await.unwrap()[0];
    assert_eq!(retrying.status, StepStatus::Retrying);
    assert_eq!(retrying.attempts, 1);
    assert!(retrying.finished_at.is_none());

    let t1 = Utc::now();
    let first_start = store
        .record_step_started(
            run.id,
            "assign-role",
            "azure.assign_role",
            2,
            t1,
            Some(2500),
        )
        .await
        .unwrap();
    // Whichever worker runs the retry learns when the first attempt began: its budget
    // counts from there.
    assert_eq!(
        first_start.map(|t| t.timestamp_millis()),
        Some(t0.timestamp_millis())
    );
    // A late report of attempt 1 must not lower the count, nor change the wait.
    store
        .record_step_started(
            run.id,
            "assign-role",
            "azure.assign_role",
            1,
            t1,
            Some(9000),
        )
        .await
        .unwrap();
    // The longest wait of any attempt is kept: the second waited for a worker.
    assert_eq!(
        store.steps(run.id).await.unwrap()[0].longest_wait_ms,
        Some(2500)
    );
    store
        .record_step_finished(
            run.id,
            "assign-role",
            2,
            &StepOutcome::Succeeded,
            Utc::now(),
        )
        .await
        .unwrap();
    // Attempt 1's worker was frozen past its heartbeat timeout; resumed, it reports its
    // end late. The newer attempt's report stands.
    store
        .record_step_finished(
            run.id,
            "assign-role",
            1,
            &StepOutcome::Failed {
                error: "zombie".into(),
                will_retry: false,
            },
            Utc::now(),
        )
        .await
        .unwrap();
    let steps = store.steps(run.id).await.unwrap();
    assert_eq!(steps.len(), 1);
    let step = &steps[0];
    assert_eq!(step.key, "assign-role");
    assert_eq!(step.activity_type, "azure.assign_role");
    assert_eq!(step.status, StepStatus::Succeeded);
    assert_eq!(step.attempts, 2);
    assert_eq!(
        step.last_error.as_deref(),
        Some("PrincipalNotFound: replication delay")
    );
    assert!(step.first_started_at <= step.last_started_at);
    assert!(step.finished_at.unwrap() >= step.last_started_at);
    assert_eq!(
        step.first_started_at.timestamp_micros(),
        t0.timestamp_micros()
    );
}

async fn steps_left_running_are_closed_when_the_run_is_cancelled(store: &Store) {
    let org = organization(store).await;
    let run = created(
        store
            .insert_run(setup_request(org, "account-a", None, "f"))
            .await
            .unwrap(),
    );
    store
        .record_step_started(
            run.id,
            "ensure-role",
            "azure.ensure_custom_role",
            1,
            Utc::now(),
            None,
        )
        .await
        .unwrap();
    store
        .record_step_finished(
            run.id,
            "ensure-role",
            1,
            &StepOutcome::Succeeded,
            Utc::now(),
        )
        .await
        .unwrap();
    store
        .record_step_started(
            run.id,
            "assign-role",
            "azure.assign_role",
            3,
            Utc::now(),
            None,
        )
        .await
        .unwrap();
    store
        .finish_run(run.id, RunStatus::Cancelled, None, Some("cancelled"))
        .await
        .unwrap();
    let steps = store.steps(run.id).await.unwrap();
    let status_of = |key: &str| steps.iter().find(|s| s.key == key).unwrap().status;
    assert_eq!(status_of("ensure-role"), StepStatus::Succeeded);
    assert_eq!(status_of("assign-role"), StepStatus::Cancelled);
}

async fn steps_of_unknown_runs_are_ignored(store: &Store) {
    let stray = Uuid::new_v4();
    store
        .record_step_started(stray, "x", "y", 1, Utc::now(), None)
        .await
        .unwrap();
    assert!(store.steps(stray).await.unwrap().is_empty());
}

async fn step_logs_keep_every_attempt_in_order_once(store: &Store) {
    let org = organization(store).await;
    let run = created(
        store
            .insert_run(setup_request(org, "cluster:c1", None, "f"))
            .await
            .unwrap(),
    );
    let line = |attempt, seq, text: &str| windlass_core::step_logs::LogLine {
        attempt,
        seq,
        at: Utc::now(),
        level: "info".into(),
        line: text.into(),
    };
    store
        .append_step_log(
            run.id,
            "terraform-apply",
            &[line(1, 1, "Plan: 2 to add"), line(1, 2, "killed")],
        )
        .await
        .unwrap();
    // A retried flush writes the same lines again; the second attempt logs its own.
    store
        .append_step_log(
            run.id,
            "terraform-apply",
            &[line(1, 2, "killed"), line(2, 1, "Apply complete!")],
        )
        .await
        .unwrap();
    store
        .append_step_log(run.id, "install-chart/loki", &[line(1, 1, "other step")])
        .await
        .unwrap();
    let log = store.step_log(run.id, "terraform-apply").await.unwrap();
    let lines: Vec<(u32, &str)> = log.iter().map(|l| (l.attempt, l.line.as_str())).collect();
    assert_eq!(
        lines,
        [(1, "Plan: 2 to add"), (1, "killed"), (2, "Apply complete!")]
    );
    // Lines of a run that does not exist are not kept.
    let stray = Uuid::new_v4();
    store
        .append_step_log(stray, "x", &[line(1, 1, "lost")])
        .await
        .unwrap();
    assert!(store.step_log(stray, "x").await.unwrap().is_empty());
}

async fn a_runs_log_lists_every_step_in_the_order_printed(store: &Store) {
    let org = organization(store).await;
    let run = created(
        store
            .insert_run(setup_request(org, "cluster:c2", None, "f"))
            .await
            .unwrap(),
    );
    let other = created(
        store
            .insert_run(setup_request(org, "cluster:c3", None, "f"))
            .await
            .unwrap(),
    );
    let start = Utc::now();
    let line = |ms: i64, seq, text: &str| windlass_core::step_logs::LogLine {
        attempt: 1,
        seq,
        at: start + chrono::Duration::milliseconds(ms),
        level: "info".into(),
        line: text.into(),
    };
    // Two steps printing at the same time, written in batches out of time order.
    store
        .append_step_log(
            run.id,
            "install-chart/loki",
            &[line(2, 1, "loki 1"), line(4, 2, "loki 2")],
        )
        .await
        .unwrap();
    store
        .append_step_log(
            run.id,
            "install-chart/cert-manager",
            &[line(1, 1, "cm 1"), line(3, 2, "cm 2"), line(4, 3, "cm 3")],
        )
        .await
        .unwrap();
    store
        .append_step_log(other.id, "terraform-apply", &[line(0, 1, "other run")])
        .await
        .unwrap();
    let log = store.run_log(run.id).await.unwrap();
    let lines: Vec<(&str, u32, &str)> = log
        .iter()
        .map(|l| (l.step.as_str(), l.seq, l.line.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            ("install-chart/cert-manager", 1, "cm 1"),
            ("install-chart/loki", 1, "loki 1"),
            ("install-chart/cert-manager", 2, "cm 2"),
            // Same instant: by step key.
            ("install-chart/cert-manager", 3, "cm 3"),
            ("install-chart/loki", 2, "loki 2"),
        ]
    );
    assert!(store.run_log(Uuid::new_v4()).await.unwrap().is_empty());
}

/// What a PostgreSQL failover looks like to a write, and a lost race between two
/// transactions: both are worth another attempt, unlike a constraint violation.
#[tokio::test]
async fn failover_and_lost_races_on_postgresql_are_retryable() {
    let db = support::TestStore::postgres().await;
    let pool = db.store.pool_for_tests();
    // A write on a standby just demoted reads as a read-only transaction (25006).
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET TRANSACTION READ ONLY")
        .execute(&mut *tx)
        .await
        .unwrap();
    let read_only = sqlx::query("CREATE TABLE not_here (id INT)")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    drop(tx);
    assert!(windlass_core::Error::from(read_only).is_retryable());
    // A transaction that lost a serializable race (40001), raised as the server does.
    let lost = sqlx::query(
        "DO $$ BEGIN RAISE EXCEPTION 'could not serialize access' \
         USING ERRCODE = 'serialization_failure'; END $$",
    )
    .execute(pool)
    .await
    .unwrap_err();
    assert!(windlass_core::Error::from(lost).is_retryable());
    // A broken rule stays broken.
    let violation = sqlx::query(
        "DO $$ BEGIN RAISE EXCEPTION 'duplicate' USING ERRCODE = 'unique_violation'; END $$",
    )
    .execute(pool)
    .await
    .unwrap_err();
    assert!(!windlass_core::Error::from(violation).is_retryable());
    db.close().await;
}

/// Deployment requests of one environment queue one at a time (both backends): a second
/// request waits until the first lets go; another environment's does not wait.
#[tokio::test]
async fn deployment_requests_of_one_environment_are_serialised() {
    for db in [
        support::TestStore::sqlite().await,
        support::TestStore::postgres().await,
    ] {
        let store = db.store.clone();
        let env = Uuid::new_v4();
        let first = store.lock_environment_deploys(env).await.unwrap();
        let other = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            store.lock_environment_deploys(Uuid::new_v4()),
        )
        .await
        .expect("another environment does not wait")
        .unwrap();
        let waiting = {
            let store = store.clone();
            tokio::spawn(async move { store.lock_environment_deploys(env).await.map(|_| ()) })
        };
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "the second request waits");
        drop(first);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("it goes once the first lets go")
            .unwrap()
            .unwrap();
        drop(other);
        db.close().await;
    }
}

/// A cluster's page names its last run even when its organisation has had many runs on
/// other targets since (it used to look among the newest 500 only).
async fn a_targets_last_run_is_found_however_many_runs_came_after(store: &Store) {
    let org = store.create_organization("acme").await.unwrap().id;
    let first = created(
        store
            .insert_run(setup_request(org, "cluster:one", None, "a"))
            .await
            .unwrap(),
    );
    store
        .finish_run(first.id, RunStatus::Succeeded, None, None)
        .await
        .unwrap();
    let last = created(
        store
            .insert_run(setup_request(org, "cluster:one", None, "b"))
            .await
            .unwrap(),
    );
    for n in 0..30 {
        created(
            store
                .insert_run(setup_request(org, &format!("account:{n}"), None, "c"))
                .await
                .unwrap(),
        );
    }
    let found = store
        .last_run_for_target(org, "cluster:one")
        .await
        .unwrap()
        .expect("the cluster's last run");
    assert_eq!(found.id, last.id);
    // Another organisation's target of the same name is not this one's.
    let other = store.create_organization("globex").await.unwrap().id;
    assert!(
        store
            .last_run_for_target(other, "cluster:one")
            .await
            .unwrap()
            .is_none()
    );
}
