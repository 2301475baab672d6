//! The webhook replay cache, on SQLite and PostgreSQL: a signature is accepted once.

use chrono::{Duration, Utc};
use uuid::Uuid;
use windlass_core::Store;

#[macro_use]
mod support;

on_both_databases!(
    a_signature_is_accepted_once_per_environment,
    old_signatures_are_forgotten
);

async fn a_signature_is_accepted_once_per_environment(store: &Store) {
    let environment = Uuid::new_v4();
    let long_ago = Utc::now() - Duration::hours(1);
    let first = |env, at, tag| store.first_use_of_webhook_signature(env, at, tag, long_ago);
    assert!(first(environment, 1_700_000_000, "aa").await.unwrap());
    assert!(
        !first(environment, 1_700_000_000, "aa").await.unwrap(),
        "a replay"
    );
    assert!(
        first(environment, 1_700_000_001, "aa").await.unwrap(),
        "another time"
    );
    assert!(
        first(environment, 1_700_000_000, "bb").await.unwrap(),
        "another signature"
    );
    assert!(
        first(Uuid::new_v4(), 1_700_000_000, "aa").await.unwrap(),
        "another environment"
    );
    assert!(
        first(environment, i64::MIN, "aa").await.unwrap(),
        "any i64 is stored as is"
    );
}

async fn old_signatures_are_forgotten(store: &Store) {
    let environment = Uuid::new_v4();
    let long_ago = Utc::now() - Duration::hours(1);
    assert!(
        store
            .first_use_of_webhook_signature(environment, 5, "aa", long_ago)
            .await
            .unwrap()
    );
    // Everything seen before "a second from now" is purged, so the pair is new again.
    let soon = Utc::now() + Duration::seconds(1);
    assert!(
        store
            .first_use_of_webhook_signature(environment, 6, "bb", soon)
            .await
            .unwrap()
    );
    assert!(
        store
            .first_use_of_webhook_signature(environment, 5, "aa", long_ago)
            .await
            .unwrap()
    );
}
