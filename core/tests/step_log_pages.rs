//! Step logs a page at a time, on SQLite and PostgreSQL: the pages put together are the
//! whole log, in the same order.

use chrono::{Duration, Utc};
use serde_json::json;
use uuid::Uuid;
use windlass_core::Store;
use windlass_core::runs::{InsertedRun, NewRun, WorkflowKind};
use windlass_core::step_logs::LogLine;
use windlass_core::store::RunLogCursor;

#[macro_use]
mod support;

on_both_databases!(pages_of_a_run_log_add_up_to_the_whole_log);

async fn pages_of_a_run_log_add_up_to_the_whole_log(store: &Store) {
    let org = store
        .create_organization(&format!("acme-{}", Uuid::new_v4()))
        .await
        .unwrap()
        .id;
    let InsertedRun::Created(run) = store
        .insert_run(NewRun {
            organization_id: org,
            kind: WorkflowKind::AzureAccessSetup,
            target: format!("account:{}", Uuid::new_v4()),
            idempotency_key: None,
            request_fingerprint: "f".into(),
            input: json!({}),
        })
        .await
        .unwrap()
    else {
        panic!("a new run")
    };
    let start = Utc::now();
    let line = |attempt, seq, offset_ms: i64| LogLine {
        attempt,
        seq,
        at: start + Duration::milliseconds(offset_ms),
        level: "info".into(),
        line: format!("{attempt}/{seq}"),
    };
    // Two steps interleaved, two lines sharing a timestamp, and a second attempt.
    let apply: Vec<LogLine> = (1..=5)
        .map(|s| line(1, s, i64::from(s) * 10))
        .chain([line(2, 1, 60)])
        .collect();
    let chart: Vec<LogLine> = (1..=4).map(|s| line(1, s, i64::from(s) * 10)).collect();
    store
        .append_step_log(run.id, "terraform-apply", &apply)
        .await
        .unwrap();
    store
        .append_step_log(run.id, "install-chart/loki", &chart)
        .await
        .unwrap();

    let whole = store.run_log(run.id).await.unwrap();
    assert_eq!(whole.len(), 10);
    let mut paged = Vec::new();
    let mut cursor: Option<RunLogCursor> = None;
    loop {
        let page = store
            .run_log_page(run.id, cursor.as_ref(), 3)
            .await
            .unwrap();
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        cursor = Some(RunLogCursor::after(last));
        paged.extend(page);
    }
    assert_eq!(paged, whole);

    let mut steps = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .step_log_page(run.id, "terraform-apply", after, 2)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some((last.attempt, last.seq));
        steps.extend(page);
    }
    assert_eq!(
        steps,
        store.step_log(run.id, "terraform-apply").await.unwrap()
    );

    assert_eq!(
        store
            .run_log_line_at(run.id, "terraform-apply", 2, 1)
            .await
            .unwrap(),
        Some(whole.iter().find(|l| l.attempt == 2).unwrap().at)
    );
    assert_eq!(
        store
            .run_log_line_at(run.id, "terraform-apply", 9, 9)
            .await
            .unwrap(),
        None
    );
}
