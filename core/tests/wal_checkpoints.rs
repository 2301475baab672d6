//! SQLite's WAL is copied back beside the writer, not inside its commits (a latency
//! matter, for `benches/auth_overhead.rs`); what a test can hold it to is that the WAL
//! still does not grow without end: its frames are reused once copied back.

use std::time::Duration;

use serde_json::json;
use windlass_core::Store;
use windlass_core::audit::{ActorKind, AuditResult, NewAuditEntry};

fn entry(i: usize) -> NewAuditEntry {
    NewAuditEntry::new(
        None,
        "sub-7f3a",
        ActorKind::User,
        "runs.start",
        format!("run:{i}"),
        AuditResult::Success,
        json!({"padding": "x".repeat(2000)}),
    )
}

fn wal_bytes(dir: &std::path::Path) -> u64 {
    std::fs::metadata(dir.join("windlass.db-wal")).map_or(0, |m| m.len())
}

#[tokio::test]
async fn the_wal_is_checkpointed_beside_the_writer_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("windlass.db").display());
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    // A batch of writes larger than SQLite's default autocheckpoint (1,000 pages = 4 MB).
    let batch = 2500;
    for i in 0..batch {
        store.append_audit(entry(i)).await.unwrap();
    }
    let after_first = wal_bytes(dir.path());
    assert!(after_first > 0, "the store writes through a WAL");
    // The store's own checkpoints copy it back; the next batch reuses the WAL's frames.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for i in batch..2 * batch {
        store.append_audit(entry(i)).await.unwrap();
    }
    let after_second = wal_bytes(dir.path());
    assert!(
        after_second < after_first * 5 / 4,
        "the WAL was reused, not grown: {after_first} then {after_second} bytes"
    );
}
