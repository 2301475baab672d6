//! Tamper evidence that survives a database owner: someone who can write the database
//! rewrites an entry and recomputes every hash after it in the organisation's chain (the
//! only chain an entry joins since migration 0016). The chains then verify; the signed digests do not, checked by
//! `AuditDigests::verify` and by the customer's own script on the exported trail alone.

use std::sync::Arc;

use serde_json::json;
use sqlx::Row;
use uuid::Uuid;
use windlass_core::Store;
use windlass_core::audit::{ActorKind, AuditResult, NewAuditEntry, organization_chain_hash};
use windlass_core::audit_digests::AuditDigests;
use windlass_core::crypto::LocalKeyFile;
use windlass_core::keys::KeyRing;

#[macro_use]
mod support;

on_both_databases!(a_rewritten_entry_with_recomputed_chains_is_caught_by_the_signed_digests,);

fn event(org: Uuid, n: u32) -> NewAuditEntry {
    NewAuditEntry::new(
        Some(org),
        "sub-7f3a",
        ActorKind::User,
        "access.bind_role",
        format!("role_binding:{n}"),
        AuditResult::Success,
        json!({"role": "viewer", "n": n}),
    )
}

const TEXT_COLUMNS: [&str; 15] = [
    "id",
    "organization_id",
    "occurred_at",
    "actor",
    "actor_kind",
    "action",
    "resource",
    "cluster_id",
    "project_id",
    "environment",
    "service",
    "client",
    "ip",
    "result",
    "details",
];

/// What the database owner does: edit a row, then recompute the organisation's chain from
/// there on (and the platform-wide columns, which repeat it past the cutover).
async fn rewrite_and_rechain(store: &Store, org: Uuid, chain_seq: i64, details: &str) {
    support::disable_audit_protection(store).await;
    let pool = store.pool_for_tests();
    sqlx::query("UPDATE audit_log SET details = $1 WHERE organization_id = $2 AND chain_seq = $3")
        .bind(details)
        .bind(org.to_string())
        .bind(chain_seq)
        .execute(pool)
        .await
        .unwrap();
    let rows = sqlx::query(
        "SELECT seq, chain_seq, id, organization_id, occurred_at, actor, actor_kind, action, \
         resource, cluster_id, project_id, environment, service, client, ip, result, details \
         FROM audit_log WHERE organization_id = $1 ORDER BY chain_seq",
    )
    .bind(org.to_string())
    .fetch_all(pool)
    .await
    .unwrap();
    let mut chain_prev = windlass_core::audit::GENESIS_HASH.to_owned();
    for row in rows {
        let seq: i64 = row.get("seq");
        let own: i64 = row.get("chain_seq");
        let mut fields: Vec<Option<String>> = vec![Some(own.to_string())];
        fields.extend(
            TEXT_COLUMNS
                .iter()
                .map(|c| row.get::<Option<String>, _>(*c)),
        );
        let hash = organization_chain_hash(
            &chain_prev,
            &fields.iter().map(|f| f.as_deref()).collect::<Vec<_>>(),
        );
        sqlx::query(
            "UPDATE audit_log SET chain_prev_hash = $1, chain_hash = $2, prev_hash = $1, \
             hash = $2 WHERE seq = $3",
        )
        .bind(&chain_prev)
        .bind(&hash)
        .bind(seq)
        .execute(pool)
        .await
        .unwrap();
        chain_prev = hash;
    }
}

/// The customer's check: the exported trail, the script, nothing of Windlass.
async fn customer_verifies(store: &Store, digests: &AuditDigests, org: Uuid) -> (bool, String) {
    let export = json!({
        "entries": store.audit_export(org, 0, 1000).await.unwrap(),
        "digests": store.audit_digests(Some(org)).await.unwrap(),
        "public_keys": digests.public_keys().await.unwrap(),
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.json");
    std::fs::write(&path, export.to_string()).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("scripts/verify_audit_export.py"))
        .arg(&path)
        .output()
        .expect("python from scripts/setup.sh");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

async fn a_rewritten_entry_with_recomputed_chains_is_caught_by_the_signed_digests(store: &Store) {
    let dir = tempfile::tempdir().unwrap();
    let kek = LocalKeyFile::load_or_create(&dir.path().join("kek")).unwrap();
    let digests = AuditDigests::new(Arc::new(KeyRing::new(store.clone(), Arc::new(kek))));
    let (acme, globex) = (Uuid::new_v4(), Uuid::new_v4());
    for n in 0..3 {
        store.append_audit(event(acme, n)).await.unwrap();
        store.append_audit(event(globex, n)).await.unwrap();
    }
    // Each organisation's chain is its own: 1, 2, 3.
    let exported = store.audit_export(acme, 0, 1000).await.unwrap();
    assert_eq!(
        exported.iter().map(|e| e.chain_seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(digests.sign_heads(store).await.unwrap().len(), 2);
    assert!(
        digests.sign_heads(store).await.unwrap().is_empty(),
        "nothing grew"
    );
    store.append_audit(event(acme, 3)).await.unwrap();
    assert_eq!(digests.sign_heads(store).await.unwrap().len(), 1);
    let (ok, said) = customer_verifies(store, &digests, acme).await;
    assert!(ok, "{said}");
    assert!(
        digests
            .verify(store, Some(acme))
            .await
            .unwrap()
            .first_mismatch
            .is_none()
    );

    rewrite_and_rechain(store, acme, 2, r#"{"role":"admin","n":1}"#).await;
    // The chains alone are fooled: every hash was recomputed.
    assert!(store.verify_audit_chain().await.unwrap().is_intact());
    assert!(
        store
            .verify_organization_chain(Some(acme))
            .await
            .unwrap()
            .is_intact()
    );
    // The digests are not: the heads signed before the rewrite no longer match.
    let checked = digests.verify(store, Some(acme)).await.unwrap();
    let mismatch = checked.first_mismatch.expect("the rewrite is caught");
    assert_eq!(mismatch.reason, "entry rewritten", "{mismatch:?}");
    assert_eq!(mismatch.chain_seq, 3);
    let (ok, said) = customer_verifies(store, &digests, acme).await;
    assert!(!ok, "the customer's check passed a rewritten trail: {said}");
    assert!(said.contains("rewritten"), "{said}");
    // Another organisation's slice is untouched and still verifies.
    let (ok, said) = customer_verifies(store, &digests, globex).await;
    assert!(ok, "{said}");
}
