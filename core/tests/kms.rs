//! AWS KMS as the key-encryption key, against a real moto server (installed into .venv by
//! scripts/setup.sh). Each test starts its own server so no state leaks between tests.

use std::sync::{Arc, Once};

use aws_config::BehaviorVersion;
use aws_sdk_kms::config::Region;
use serde_json::json;
use uuid::Uuid;
use windlass_core::crypto::{AwsKmsKek, CryptoError, DataKey, KeyEncryptionKey, LocalKeyFile};
use windlass_core::keys::{KeyRing, ORGANIZATION};
use windlass_core::runs::{InsertedRun, NewRun, WorkflowKind};
use windlass_core::secret_vault::{put_secret, resolve_for_run};
use windlass_core::secrets::SecretRef;
use windlass_core::{Error, Store};
use windlass_standins::moto::Moto;

// Only the SQLite half of the shared support is used here.
#[allow(dead_code)]
#[macro_use]
mod support;

/// A new symmetric KMS key in `moto`; returns its ARN.
async fn create_key(moto: &Moto) -> String {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(moto.endpoint())
        .load()
        .await;
    aws_sdk_kms::Client::new(&config)
        .create_key()
        .description("windlass test KEK")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .arn
        .unwrap()
}

async fn start_moto() -> Moto {
    Moto::start()
        .await
        .expect("moto_server: run scripts/setup.sh (it installs moto into .venv)")
}

/// Dummy credentials for this test process, and nothing from the developer's own AWS
/// setup (profiles, region, instance metadata), so the KEK's default chain is what runs.
fn aws_test_environment() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: every test in this binary calls this before anything else, and `Once`
        // holds the others back until it returns, so no other thread reads the
        // environment while it changes.
        unsafe {
            std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
            std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
            std::env::set_var("AWS_CONFIG_FILE", "/nonexistent/windlass-test/config");
            std::env::set_var(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/windlass-test/credentials",
            );
            for name in [
                "AWS_SESSION_TOKEN",
                "AWS_PROFILE",
                "AWS_REGION",
                "AWS_DEFAULT_REGION",
                "AWS_ENDPOINT_URL",
                "AWS_ENDPOINT_URL_KMS",
            ] {
                std::env::remove_var(name);
            }
        }
    });
}

async fn kms_kek(moto: &Moto) -> (AwsKmsKek, String) {
    let arn = create_key(moto).await;
    let kek = AwsKmsKek::new(arn.clone(), Some(moto.endpoint()))
        .await
        .unwrap();
    (kek, arn)
}

async fn run_granted(store: &Store, org: Uuid, secret: &str) -> Uuid {
    let run = match store
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
    };
    store.grant_secrets(run, &[secret.into()]).await.unwrap();
    run
}

async fn read(store: &Store, keys: &KeyRing, run: Uuid, org: Uuid, name: &str) -> String {
    let secret = SecretRef {
        organization_id: org,
        name: name.into(),
    };
    resolve_for_run(store, keys, run, &secret)
        .await
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_data_key_round_trips_through_kms_bound_to_its_context() {
    aws_test_environment();
    let moto = start_moto().await;
    let (kek, arn) = kms_kek(&moto).await;
    assert_eq!(kek.id(), format!("kms:{arn}"));
    // No region in the environment: the fallback applies.
    assert!(arn.starts_with("arn:aws:kms:us-east-1:"), "{arn}");

    let data_key = DataKey::generate().unwrap();
    let wrapped = kek
        .wrap(&data_key, "windlass:organization:a")
        .await
        .unwrap();
    assert!(
        !wrapped
            .windows(32)
            .any(|w| w == data_key.expose_bytes().as_slice())
    );
    let unwrapped = kek
        .unwrap(&wrapped, "windlass:organization:a")
        .await
        .unwrap();
    assert_eq!(unwrapped.expose_bytes(), data_key.expose_bytes());

    // The context is authenticated: another organisation's context does not unwrap it.
    assert!(matches!(
        kek.unwrap(&wrapped, "windlass:organization:b").await,
        Err(CryptoError::Authentication)
    ));
    let mut tampered = wrapped.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(matches!(
        kek.unwrap(&tampered, "windlass:organization:a").await,
        Err(CryptoError::Authentication)
    ));
    // A KEK on another key refuses it too (real KMS says IncorrectKeyException, which is
    // Authentication; moto says AccessDenied, so only the refusal is checked).
    let (other, _) = kms_kek(&moto).await;
    assert!(
        other
            .unwrap(&wrapped, "windlass:organization:a")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn an_unreachable_kms_is_unavailable_and_says_no_key_material() {
    aws_test_environment();
    let moto = start_moto().await;
    let (kek, arn) = kms_kek(&moto).await;
    let data_key = DataKey::generate().unwrap();
    let wrapped = kek.wrap(&data_key, "ctx").await.unwrap();
    let endpoint = moto.endpoint();
    drop(moto);

    let gone = AwsKmsKek::new(arn, Some(endpoint)).await.unwrap();
    let hex = windlass_core::crypto::to_hex(data_key.expose_bytes());
    for error in [
        gone.wrap(&data_key, "ctx").await.unwrap_err(),
        gone.unwrap(&wrapped, "ctx").await.unwrap_err(),
    ] {
        let CryptoError::KekUnavailable(message) = &error else {
            panic!("expected KekUnavailable, got {error:?}");
        };
        assert!(message.contains(&gone.id()), "{message}");
        let text = format!("{error} {error:?}");
        assert!(!text.contains(&hex), "{text}");
        assert!(!text.contains(&windlass_core::crypto::to_hex(&wrapped)));
    }
}

#[tokio::test]
async fn a_key_ring_on_kms_seals_secrets_per_organization() {
    aws_test_environment();
    let moto = start_moto().await;
    let (kek, _) = kms_kek(&moto).await;
    let kek_id = kek.id();
    let db = support::TestStore::sqlite().await;
    let store = &db.store;
    let keys = KeyRing::new(store.clone(), Arc::new(kek));

    let acme = store.create_organization("acme").await.unwrap().id;
    let globex = store.create_organization("globex").await.unwrap().id;
    put_secret(store, &keys, acme, "token", "acme-value")
        .await
        .unwrap();
    put_secret(store, &keys, globex, "token", "globex-value")
        .await
        .unwrap();

    let rows = store.all_data_keys().await.unwrap();
    let org_rows: Vec<_> = rows.iter().filter(|r| r.purpose == ORGANIZATION).collect();
    assert_eq!(org_rows.len(), 2, "one key line per organisation");
    assert!(org_rows.iter().all(|r| r.kek_id == kek_id));
    assert_ne!(org_rows[0].wrapped_key, org_rows[1].wrapped_key);
    let (_, acme_key) = keys.organization_key(acme).await.unwrap();
    let (_, globex_key) = keys.organization_key(globex).await.unwrap();
    assert_ne!(acme_key.expose_bytes(), globex_key.expose_bytes());

    // A fresh ring (empty cache) has to go through KMS to read.
    let fresh = KeyRing::new(store.clone(), Arc::new(kms_kek_for(&moto, &kek_id).await));
    let acme_run = run_granted(store, acme, "token").await;
    let globex_run = run_granted(store, globex, "token").await;
    assert_eq!(
        read(store, &fresh, acme_run, acme, "token").await,
        "acme-value"
    );
    assert_eq!(
        read(store, &fresh, globex_run, globex, "token").await,
        "globex-value"
    );
    // One organisation's run still cannot read the other's secret.
    let foreign = SecretRef {
        organization_id: globex,
        name: "token".into(),
    };
    assert!(matches!(
        resolve_for_run(store, &fresh, acme_run, &foreign).await,
        Err(Error::Forbidden(_))
    ));
    db.close().await;
}

#[tokio::test]
async fn kek_rotation_from_a_key_file_to_kms_keeps_secrets_readable() {
    aws_test_environment();
    let moto = start_moto().await;
    let dir = tempfile::tempdir().unwrap();
    let local = || Arc::new(LocalKeyFile::load_or_create(&dir.path().join("kek")).unwrap());
    let db = support::TestStore::sqlite().await;
    let store = &db.store;

    let before = KeyRing::new(store.clone(), local());
    let org = store.create_organization("acme").await.unwrap().id;
    put_secret(store, &before, org, "token", "sealed-under-the-file")
        .await
        .unwrap();
    let run = run_granted(store, org, "token").await;

    let (kms, _) = kms_kek(&moto).await;
    let kms_id = kms.id();
    // KMS alone cannot read what the file wrapped...
    let kms_only = KeyRing::new(store.clone(), Arc::new(kms_kek_for(&moto, &kms_id).await));
    let secret = SecretRef {
        organization_id: org,
        name: "token".into(),
    };
    assert!(
        resolve_for_run(store, &kms_only, run, &secret)
            .await
            .is_err()
    );
    // ...KMS current with the file as previous reads throughout and re-wraps...
    let rotating = KeyRing::new(store.clone(), Arc::new(kms)).with_previous(local());
    assert_eq!(
        read(store, &rotating, run, org, "token").await,
        "sealed-under-the-file"
    );
    assert!(rotating.rewrap_all().await.unwrap() >= 1);
    assert_eq!(rotating.rewrap_all().await.unwrap(), 0);
    assert!(
        store
            .all_data_keys()
            .await
            .unwrap()
            .iter()
            .all(|r| r.kek_id == kms_id)
    );
    // ...after which KMS alone is enough, the key file can go, and new writes work.
    drop(rotating);
    drop(dir);
    let after = KeyRing::new(store.clone(), Arc::new(kms_kek_for(&moto, &kms_id).await));
    assert_eq!(
        read(store, &after, run, org, "token").await,
        "sealed-under-the-file"
    );
    put_secret(store, &after, org, "token", "sealed-after")
        .await
        .unwrap();
    assert_eq!(read(store, &after, run, org, "token").await, "sealed-after");
    db.close().await;
}

/// Another KEK on the same KMS key, as a second process would configure it.
async fn kms_kek_for(moto: &Moto, id: &str) -> AwsKmsKek {
    let key_id = id.strip_prefix("kms:").unwrap().to_owned();
    AwsKmsKek::new(key_id, Some(moto.endpoint())).await.unwrap()
}
