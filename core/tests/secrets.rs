//! Per-organisation keys and scoped secrets, on SQLite and PostgreSQL.

use std::sync::Arc;

use serde_json::json;
use uuid::Uuid;
use windlass_core::crypto::LocalKeyFile;
use windlass_core::keys::KeyRing;
use windlass_core::runs::{InsertedRun, NewRun, WorkflowKind};
use windlass_core::secret_vault::{put_secret, resolve_for_run};
use windlass_core::secrets::SecretRef;
use windlass_core::{Error, Store};

#[macro_use]
mod support;

on_both_databases!(
    a_run_reads_exactly_the_secrets_it_was_granted,
    values_are_stored_sealed_and_bound_to_their_organization,
    key_rotation_keeps_old_values_readable,
    kek_rotation_rewraps_without_losing_a_key,
    maintenance_rotates_an_organization_key_only_when_it_is_old,
);

fn key_ring(store: &Store, dir: &tempfile::TempDir, file: &str) -> KeyRing {
    let kek = LocalKeyFile::load_or_create(&dir.path().join(file)).unwrap();
    KeyRing::new(store.clone(), Arc::new(kek))
}

async fn run_of(store: &Store, org: Uuid) -> Uuid {
    match store
        .insert_run(NewRun {
            organization_id: org,
            kind: WorkflowKind::AzureAccessSetup,
            target: format!("target-{}", Uuid::new_v4()),
            idempotency_key: None,
            request_fingerprint: "f".into(),
            input: json!({}),
        })
        .await
        .unwrap()
    {
        InsertedRun::Created(run) => run.id,
        InsertedRun::Existing(run) => run.id,
    }
}

async fn a_run_reads_exactly_the_secrets_it_was_granted(store: &Store) {
    let dir = tempfile::tempdir().unwrap();
    let keys = key_ring(store, &dir, "kek");
    let acme = store
        .create_organization(&format!("acme-{}", Uuid::new_v4()))
        .await
        .unwrap()
        .id;
    let globex = store
        .create_organization(&format!("globex-{}", Uuid::new_v4()))
        .await
        .unwrap()
        .id;
    put_secret(store, &keys, acme, "registry-token", "acme-token-value")
        .await
        .unwrap();
    put_secret(store, &keys, acme, "db-password", "acme-db-value")
        .await
        .unwrap();
    put_secret(store, &keys, globex, "registry-token", "globex-token-value")
        .await
        .unwrap();

    let deploy = run_of(store, acme).await;
    store
        .grant_secrets(deploy, &["registry-token".into()])
        .await
        .unwrap();
    let other_job = run_of(store, acme).await;

    let granted = SecretRef {
        organization_id: acme,
        name: "registry-token".into(),
    };
    assert_eq!(
        resolve_for_run(store, &keys, deploy, &granted)
            .await
            .unwrap()
            .as_str(),
        "acme-token-value"
    );
    // Not granted to this run, though the same organisation's.
    let not_granted = SecretRef {
        organization_id: acme,
        name: "db-password".into(),
    };
    assert!(matches!(
        resolve_for_run(store, &keys, deploy, &not_granted).await,
        Err(Error::Forbidden(_))
    ));
    // Another job of the same organisation.
    assert!(matches!(
        resolve_for_run(store, &keys, other_job, &granted).await,
        Err(Error::Forbidden(_))
    ));
    // Another organisation's secret of the same name.
    let foreign = SecretRef {
        organization_id: globex,
        name: "registry-token".into(),
    };
    let refused = resolve_for_run(store, &keys, deploy, &foreign)
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Forbidden(_)));
    assert!(!refused.to_string().contains("globex-token-value"));
}

async fn values_are_stored_sealed_and_bound_to_their_organization(store: &Store) {
    let dir = tempfile::tempdir().unwrap();
    let keys = key_ring(store, &dir, "kek");
    let acme = store
        .create_organization(&format!("acme-{}", Uuid::new_v4()))
        .await
        .unwrap()
        .id;
    let globex = store
        .create_organization(&format!("globex-{}", Uuid::new_v4()))
        .await
        .unwrap()
        .id;
    put_secret(store, &keys, acme, "api-key", "s3cr3t-plaintext")
        .await
        .unwrap();
    let sealed = store.sealed_secret(acme, "api-key").await.unwrap();
    assert!(
        !sealed
            .ciphertext
            .contains(&windlass_core::crypto::to_hex(b"s3cr3t-plaintext"))
    );

    // Each organisation has its own key: moving the ciphertext to another organisation
    // does not decrypt.
    let (_, acme_key) = keys.organization_key(acme).await.unwrap();
    let (_, globex_key) = keys.organization_key(globex).await.unwrap();
    assert_ne!(acme_key.expose_bytes(), globex_key.expose_bytes());
    store
        .upsert_sealed_secret(
            &windlass_core::secrets::SealedSecret {
                organization_id: globex,
                ..sealed.clone()
            },
            &windlass_core::secrets::SecretScope::Organization,
        )
        .await
        .unwrap();
    let run = run_of(store, globex).await;
    store.grant_secrets(run, &["api-key".into()]).await.unwrap();
    let moved = resolve_for_run(
        store,
        &keys,
        run,
        &SecretRef {
            organization_id: globex,
            name: "api-key".into(),
        },
    )
    .await;
    assert!(matches!(moved, Err(Error::Crypto(_))), "{moved:?}");
    assert!(matches!(
        put_secret(store, &keys, acme, "bad name!", "x").await,
        Err(Error::InvalidInput(_))
    ));
}

async fn key_rotation_keeps_old_values_readable(store: &Store) {
    let dir = tempfile::tempdir().unwrap();
    let keys = key_ring(store, &dir, "kek");
    let org = store
        .create_organization(&format!("acme-{}", Uuid::new_v4()))
        .await
        .unwrap()
        .id;
    put_secret(store, &keys, org, "old", "sealed-under-v1")
        .await
        .unwrap();
    assert_eq!(
        keys.rotate("organization", &org.to_string()).await.unwrap(),
        2
    );
    put_secret(store, &keys, org, "new", "sealed-under-v2")
        .await
        .unwrap();
    assert_eq!(
        store.sealed_secret(org, "old").await.unwrap().key_version,
        1
    );
    assert_eq!(
        store.sealed_secret(org, "new").await.unwrap().key_version,
        2
    );
    let run = run_of(store, org).await;
    store
        .grant_secrets(run, &["old".into(), "new".into()])
        .await
        .unwrap();
    for (name, value) in [("old", "sealed-under-v1"), ("new", "sealed-under-v2")] {
        let secret = SecretRef {
            organization_id: org,
            name: name.into(),
        };
        assert_eq!(
            resolve_for_run(store, &keys, run, &secret)
                .await
                .unwrap()
                .as_str(),
            value
        );
    }
}

async fn kek_rotation_rewraps_without_losing_a_key(store: &Store) {
    let dir = tempfile::tempdir().unwrap();
    let old = key_ring(store, &dir, "old-kek");
    let org = store
        .create_organization(&format!("acme-{}", Uuid::new_v4()))
        .await
        .unwrap()
        .id;
    put_secret(store, &old, org, "token", "before-rotation")
        .await
        .unwrap();
    let run = run_of(store, org).await;
    store.grant_secrets(run, &["token".into()]).await.unwrap();
    let secret = SecretRef {
        organization_id: org,
        name: "token".into(),
    };

    // A process that only knows the new KEK cannot read yet...
    let new_only = key_ring(store, &dir, "new-kek");
    assert!(
        resolve_for_run(store, &new_only, run, &secret)
            .await
            .is_err()
    );
    // ...one configured with both reads throughout and re-wraps everything...
    let rotating = key_ring(store, &dir, "new-kek").with_previous(Arc::new(
        LocalKeyFile::load_or_create(&dir.path().join("old-kek")).unwrap(),
    ));
    assert_eq!(
        resolve_for_run(store, &rotating, run, &secret)
            .await
            .unwrap()
            .as_str(),
        "before-rotation"
    );
    assert!(rotating.rewrap_all().await.unwrap() >= 1);
    assert_eq!(
        rotating.rewrap_all().await.unwrap(),
        0,
        "a second pass has nothing to do"
    );
    // ...after which the new KEK alone is enough.
    let after = key_ring(store, &dir, "new-kek");
    assert_eq!(
        resolve_for_run(store, &after, run, &secret)
            .await
            .unwrap()
            .as_str(),
        "before-rotation"
    );
}

async fn maintenance_rotates_an_organization_key_only_when_it_is_old(store: &Store) {
    let dir = tempfile::tempdir().unwrap();
    let keys = key_ring(store, &dir, "kek");
    let org = store
        .create_organization(&format!("acme-{}", Uuid::new_v4()))
        .await
        .unwrap()
        .id;
    let ninety_days = chrono::Duration::days(90);
    let now = chrono::Utc::now();
    // The first check makes the first key.
    assert_eq!(
        keys.rotate_organization_key_if_older_than(org, ninety_days, now)
            .await
            .unwrap(),
        (1, false)
    );
    put_secret(store, &keys, org, "db-password", "hunter2-but-longer")
        .await
        .unwrap();
    // A week later it is still young; a season later it is replaced, once.
    let week = now + chrono::Duration::days(7);
    assert_eq!(
        keys.rotate_organization_key_if_older_than(org, ninety_days, week)
            .await
            .unwrap(),
        (1, false)
    );
    let season = now + chrono::Duration::days(91);
    assert_eq!(
        keys.rotate_organization_key_if_older_than(org, ninety_days, season)
            .await
            .unwrap(),
        (2, true)
    );
    // The new version was made just now: a week on from here it is still young.
    assert_eq!(
        keys.rotate_organization_key_if_older_than(org, ninety_days, week)
            .await
            .unwrap(),
        (2, false),
        "no second rotation"
    );
    assert_eq!(keys.organization_key(org).await.unwrap().0, 2);
}
