//! The audit log on SQLite and PostgreSQL: filtering, append-only enforcement by the
//! database, tamper detection by the hash chain, and concurrent appends.

use std::collections::BTreeSet;

use serde_json::json;
use uuid::Uuid;
use windlass_core::audit::{
    ActorKind, AuditEntry, AuditFilter, AuditResult, ChainBreak, ChainBreakReason, Environment,
    GENESIS_HASH, NewAuditEntry,
};
use windlass_core::{Backend, Store};

#[macro_use]
mod support;

on_both_databases!(
    entries_are_chained_filtered_and_kept_per_organization,
    the_database_refuses_update_and_delete,
    an_edited_entry_breaks_the_chain_there,
    a_removed_entry_breaks_the_chain_there,
    concurrent_appends_keep_one_chain,
    appends_for_another_organization_do_not_wait,
);

fn event(org: Option<Uuid>, action: &str) -> NewAuditEntry {
    NewAuditEntry {
        organization_id: org,
        actor: "sub-7f3a".into(),
        actor_kind: ActorKind::User,
        action: action.into(),
        resource: format!("run:{}", Uuid::new_v4()),
        cluster_id: None,
        project_id: None,
        environment: None,
        service: None,
        client: Some("windlass-cli/0.1".into()),
        ip: Some("203.0.113.7".into()),
        result: AuditResult::Success,
        details: json!({"kind": "azure_access_setup"}),
    }
}

async fn append_many(store: &Store, count: usize) -> Vec<AuditEntry> {
    let org = Uuid::new_v4();
    let mut entries = Vec::new();
    for _ in 0..count {
        entries.push(
            store
                .append_audit(event(Some(org), "runs.start"))
                .await
                .unwrap(),
        );
    }
    entries
}

async fn raw(store: &Store, sql: &str) -> Result<u64, sqlx::Error> {
    sqlx::query(sql)
        .execute(store.pool_for_tests())
        .await
        .map(|done| done.rows_affected())
}

async fn entries_are_chained_filtered_and_kept_per_organization(store: &Store) {
    let acme = Uuid::new_v4();
    let globex = Uuid::new_v4();
    let cluster = Uuid::new_v4();
    let project = Uuid::new_v4();

    let first = store
        .append_audit(NewAuditEntry {
            cluster_id: Some(cluster),
            project_id: Some(project),
            environment: Some(Environment::Production),
            service: Some("api".into()),
            ..event(Some(acme), "runs.start")
        })
        .await
        .unwrap();
    assert_eq!(first.seq, 1);
    assert_eq!(first.prev_hash, GENESIS_HASH);
    assert_eq!(first.hash.len(), 64);

    let denied = store
        .append_audit(NewAuditEntry {
            actor: "sub-support-1".into(),
            actor_kind: ActorKind::Support,
            result: AuditResult::Denied,
            environment: Some(Environment::Staging),
            ip: None,
            ..event(Some(acme), "authz.denied")
        })
        .await
        .unwrap();
    assert_eq!(denied.seq, 2);
    assert_eq!(denied.prev_hash, first.hash);

    store
        .append_audit(event(Some(globex), "runs.start"))
        .await
        .unwrap();
    store
        .append_audit(NewAuditEntry {
            actor: "windlass-worker".into(),
            actor_kind: ActorKind::System,
            ..event(None, "workflow.finished")
        })
        .await
        .unwrap();
    let cancel = store
        .append_audit(NewAuditEntry {
            cluster_id: Some(cluster),
            environment: Some(Environment::Production),
            result: AuditResult::Failed,
            ..event(Some(acme), "runs.cancel")
        })
        .await
        .unwrap();

    // Read back exactly as written, oldest first, and only acme's.
    let all = store
        .audit_entries(acme, &AuditFilter::default())
        .await
        .unwrap();
    assert_eq!(all, vec![first.clone(), denied.clone(), cancel.clone()]);
    let globex_seen = store
        .audit_entries(globex, &AuditFilter::default())
        .await
        .unwrap();
    assert_eq!(globex_seen.len(), 1);
    assert!(
        globex_seen
            .iter()
            .all(|e| e.organization_id == Some(globex))
    );
    assert!(
        store
            .audit_entries(Uuid::new_v4(), &AuditFilter::default())
            .await
            .unwrap()
            .is_empty()
    );

    let seqs = |entries: Vec<AuditEntry>| entries.iter().map(|e| e.seq).collect::<Vec<_>>();
    let by = |filter: AuditFilter| async move {
        seqs(store.audit_entries(acme, &filter).await.unwrap())
    };
    assert_eq!(
        by(AuditFilter {
            cluster_id: Some(cluster),
            ..Default::default()
        })
        .await,
        vec![1, 5]
    );
    assert_eq!(
        by(AuditFilter {
            project_id: Some(project),
            ..Default::default()
        })
        .await,
        vec![1]
    );
    assert_eq!(
        by(AuditFilter {
            environment: Some(Environment::Staging),
            ..Default::default()
        })
        .await,
        vec![2]
    );
    assert_eq!(
        by(AuditFilter {
            service: Some("api".into()),
            ..Default::default()
        })
        .await,
        vec![1]
    );
    assert_eq!(
        by(AuditFilter {
            action: Some("runs.cancel".into()),
            ..Default::default()
        })
        .await,
        vec![5]
    );
    // Keyset paging.
    assert_eq!(
        by(AuditFilter {
            limit: Some(2),
            ..Default::default()
        })
        .await,
        vec![1, 2]
    );
    assert_eq!(
        by(AuditFilter {
            after_seq: Some(2),
            limit: Some(2),
            ..Default::default()
        })
        .await,
        vec![5]
    );
    // A filter naming another organisation's cluster still sees only acme's entries.
    assert_eq!(
        store
            .audit_entries(
                globex,
                &AuditFilter {
                    cluster_id: Some(cluster),
                    ..Default::default()
                }
            )
            .await
            .unwrap(),
        vec![]
    );

    let report = store.verify_audit_chain().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.entries_checked, 5);
    assert_eq!(report.head_seq, Some(5));
    assert_eq!(report.head_hash, Some(cancel.hash));

    // An entry is reshaped, never refused over its content (the change it records would go
    // unrecorded): an email becomes a digest, a credential's key is renamed and its value
    // digested. Only a malformed action (a bug in Windlass, not input) is refused.
    let reshaped = store
        .append_audit(NewAuditEntry {
            actor: "ada@example.com".into(),
            details: json!({"secret": "hunter2"}),
            ..event(Some(acme), "runs.start")
        })
        .await
        .unwrap();
    assert!(reshaped.actor.starts_with("sha256:"), "{reshaped:?}");
    assert!(!reshaped.details.to_string().contains("hunter2"));
    assert!(reshaped.details.get("secret~renamed").is_some());
    assert!(
        store
            .append_audit(event(Some(acme), "Runs Start"))
            .await
            .is_err()
    );
    assert_eq!(store.verify_audit_chain().await.unwrap().entries_checked, 6);
}

async fn the_database_refuses_update_and_delete(store: &Store) {
    append_many(store, 2).await;
    for sql in [
        "UPDATE audit_log SET action = 'runs.cancel' WHERE seq = 1",
        "UPDATE audit_log SET details = '{}'",
        "DELETE FROM audit_log WHERE seq = 2",
        "DELETE FROM audit_log",
    ] {
        let error = raw(store, sql).await.unwrap_err();
        assert!(
            error.to_string().contains("audit_log is append-only"),
            "{sql}: {error}"
        );
    }
    if store.backend() == Backend::Postgres {
        let error = raw(store, "TRUNCATE audit_log").await.unwrap_err();
        assert!(error.to_string().contains("append-only"), "{error}");
    }
    let report = store.verify_audit_chain().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.entries_checked, 2);
}

async fn an_edited_entry_breaks_the_chain_there(store: &Store) {
    let entries = append_many(store, 5).await;
    support::disable_audit_protection(store).await;
    let edited = raw(
        store,
        "UPDATE audit_log SET action = 'runs.inspect' WHERE seq = 3",
    )
    .await
    .unwrap();
    assert_eq!(edited, 1);

    let report = store.verify_audit_chain().await.unwrap();
    assert_eq!(
        report.first_break,
        Some(ChainBreak {
            seq: 3,
            reason: ChainBreakReason::HashMismatch
        })
    );
    assert_eq!(report.entries_checked, 5);
    assert_eq!(
        report.first_break.unwrap().reason.to_string(),
        "hash mismatch"
    );

    // Re-hashing the edited row does not help: the next entry no longer links to it.
    raw(
        store,
        &format!(
            "UPDATE audit_log SET hash = '{}' WHERE seq = 3",
            "f".repeat(64)
        ),
    )
    .await
    .unwrap();
    let report = store.verify_audit_chain().await.unwrap();
    assert_eq!(report.first_break.map(|b| b.seq), Some(3));
    assert_ne!(entries[2].hash, "f".repeat(64));
}

async fn a_removed_entry_breaks_the_chain_there(store: &Store) {
    append_many(store, 5).await;
    support::disable_audit_protection(store).await;
    assert_eq!(
        raw(store, "DELETE FROM audit_log WHERE seq = 3")
            .await
            .unwrap(),
        1
    );

    let report = store.verify_audit_chain().await.unwrap();
    assert_eq!(
        report.first_break,
        Some(ChainBreak {
            seq: 4,
            reason: ChainBreakReason::MissingEntries { expected_seq: 3 }
        })
    );
    assert_eq!(report.entries_checked, 4);

    // Closing the gap by renumbering the chain leaves an entry that does not link to its
    // predecessor.
    for (from, to) in [(4, 3), (5, 4)] {
        raw(
            store,
            &format!("UPDATE audit_log SET chain_seq = {to} WHERE chain_seq = {from}"),
        )
        .await
        .unwrap();
    }
    let report = store.verify_audit_chain().await.unwrap();
    assert_eq!(
        report.first_break,
        Some(ChainBreak {
            seq: 4,
            reason: ChainBreakReason::PrevHashMismatch
        })
    );
    assert_eq!(
        report.first_break.unwrap().reason.to_string(),
        "prev_hash mismatch"
    );
}

async fn concurrent_appends_keep_one_chain(store: &Store) {
    let org = Uuid::new_v4();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append_audit(NewAuditEntry {
                        details: json!({"n": i}),
                        ..event(Some(org), "runs.start")
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut seqs = BTreeSet::new();
    for task in tasks {
        seqs.insert(task.await.unwrap().seq);
    }
    assert_eq!(seqs, (1..=50).collect());

    let report = store.verify_audit_chain().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.entries_checked, 50);
    assert_eq!(report.head_seq, Some(50));

    let listed = store
        .audit_entries(org, &AuditFilter::default())
        .await
        .unwrap();
    assert_eq!(listed.len(), 50);
    assert!(listed.windows(2).all(|w| w[1].prev_hash == w[0].hash));
}

/// An append holds its organisation's chain until it commits; another organisation's
/// append goes through meanwhile (PostgreSQL; SQLite serialises every write), and the
/// first organisation's next append waits for it.
async fn appends_for_another_organization_do_not_wait(store: &Store) {
    if store.backend() != Backend::Postgres {
        return;
    }
    let (acme, globex) = (Uuid::new_v4(), Uuid::new_v4());
    store
        .append_audit(event(Some(acme), "runs.start"))
        .await
        .unwrap();
    // acme's append, its transaction still open.
    let (let_go, go) = tokio::sync::oneshot::channel::<()>();
    let (held, is_held) = tokio::sync::oneshot::channel::<()>();
    let holder = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .audited_ahead(event(Some(acme), "runs.cancel"), async move {
                    held.send(()).unwrap();
                    go.await.unwrap();
                    Ok::<(), ()>(())
                })
                .await
                .unwrap()
                .unwrap();
        })
    };
    is_held.await.unwrap();
    let other = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        store.append_audit(event(Some(globex), "runs.start")),
    )
    .await
    .expect("another organisation's append waited for acme's")
    .unwrap();
    assert_eq!(other.chain_seq, Some(1));
    let same = {
        let store = store.clone();
        tokio::spawn(async move { store.append_audit(event(Some(acme), "runs.start")).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!same.is_finished(), "acme's chain was not held");
    let_go.send(()).unwrap();
    holder.await.unwrap();
    let same = same.await.unwrap().unwrap();
    assert_eq!(same.chain_seq, Some(3));

    let report = store.verify_audit_chain().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.entries_checked, 4);
}
