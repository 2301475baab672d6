//! Cluster state in S3 against a real moto server: the bucket's setup and teardown, the
//! conditional writes the state lock is made of, and real terraform applying through
//! `RemoteState` over `S3Objects`. Each test starts its own server and bucket.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use uuid::Uuid;
use windlass_activities::aws::{
    AwsError, S3Objects, delete_bucket_with_contents, ensure_state_bucket, s3_client,
};
use windlass_activities::object_store::ObjectStore;
use windlass_activities::terraform::{Plan, PlanGuard, RemoteState, Terraform, TerraformError};

mod support {
    pub mod moto;
}
use support::moto::free_port;

/// A client as a worker builds one, with static dummy credentials so nothing from the
/// developer's own AWS setup is used.
async fn client(endpoint: &str, region: &str) -> aws_sdk_s3::Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .load()
        .await;
    s3_client(&config, Some(endpoint))
}

/// 3-63 lowercase characters, unique per test.
fn bucket_name(purpose: &str) -> String {
    format!(
        "windlass-{purpose}-{}",
        &Uuid::new_v4().simple().to_string()[..12]
    )
}

fn tags() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("windlass:cluster".to_owned(), "c1".to_owned()),
        ("windlass:purpose".to_owned(), "terraform-state".to_owned()),
    ])
}

#[tokio::test]
async fn the_state_bucket_is_versioned_encrypted_private_and_tagged_and_setup_converges() {
    let moto = support::moto::start().await;
    let region = "eu-west-1";
    let s3 = client(&moto.endpoint(), region).await;
    let bucket = bucket_name("ensure");
    ensure_state_bucket(&s3, &bucket, region, &tags())
        .await
        .unwrap();
    ensure_state_bucket(&s3, &bucket, region, &tags())
        .await
        .expect("a second call on the existing bucket succeeds");

    let location = s3
        .get_bucket_location()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(
        location.location_constraint().map(|c| c.as_str()),
        Some(region)
    );
    // Versioning, by its effect: moto 5.2 answers GetBucketVersioning with a
    // `GetBucketVersioningResponse` root element, which the SDK refuses to parse.
    for body in ["1", "2"] {
        s3.put_object()
            .bucket(&bucket)
            .key("probe")
            .body(ByteStream::from_static(body.as_bytes()))
            .send()
            .await
            .unwrap();
    }
    let versions = s3
        .list_object_versions()
        .bucket(&bucket)
        .prefix("probe")
        .send()
        .await
        .unwrap();
    assert_eq!(versions.versions().len(), 2, "both writes kept");
    assert!(
        versions
            .versions()
            .iter()
            .all(|v| v.version_id().is_some_and(|id| id != "null"))
    );

    let encryption = s3
        .get_bucket_encryption()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let rules = encryption
        .server_side_encryption_configuration()
        .expect("encryption configured")
        .rules();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0]
            .apply_server_side_encryption_by_default()
            .map(|d| d.sse_algorithm()),
        Some(&ServerSideEncryption::Aes256)
    );

    let block = s3
        .get_public_access_block()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let block = block.public_access_block_configuration().unwrap();
    assert_eq!(block.block_public_acls(), Some(true));
    assert_eq!(block.ignore_public_acls(), Some(true));
    assert_eq!(block.block_public_policy(), Some(true));
    assert_eq!(block.restrict_public_buckets(), Some(true));

    let tagging = s3
        .get_bucket_tagging()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let found: BTreeMap<String, String> = tagging
        .tag_set()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    assert_eq!(found, tags());
}

#[tokio::test]
async fn conditional_writes_make_a_compare_and_swap() {
    let moto = support::moto::start().await;
    let s3 = client(&moto.endpoint(), "us-east-1").await;
    let bucket = bucket_name("cas");
    ensure_state_bucket(&s3, &bucket, "us-east-1", &tags())
        .await
        .unwrap();
    let store = S3Objects::new(s3.clone(), &bucket, "clusters/c1/");
    assert_eq!(store.describe(), format!("s3://{bucket}/clusters/c1"));

    assert!(store.get("lock").await.unwrap().is_none());
    assert!(
        store
            .create_if_absent("lock", b"first".to_vec())
            .await
            .unwrap()
    );
    assert!(
        !store
            .create_if_absent("lock", b"second".to_vec())
            .await
            .unwrap()
    );
    let held = store.get("lock").await.unwrap().expect("lock object");
    assert_eq!(
        &held.content[..],
        b"first",
        "the refused write changed nothing"
    );
    assert!(!held.etag.is_empty());
    // Keys sit under the prefix, as a user listing the bucket sees them.
    s3.head_object()
        .bucket(&bucket)
        .key("clusters/c1/lock")
        .send()
        .await
        .expect("prefixed key");

    let wrong = "\"0123456789abcdef0123456789abcdef\"";
    assert!(!store.delete_if_unchanged("lock", wrong).await.unwrap());
    assert_eq!(
        &store
            .get("lock")
            .await
            .unwrap()
            .expect("still there")
            .content[..],
        b"first"
    );

    // A rewrite changes the ETag, so the old one no longer deletes it.
    store.put("lock", b"rewritten".to_vec()).await.unwrap();
    let rewritten = store.get("lock").await.unwrap().unwrap();
    assert_ne!(rewritten.etag, held.etag);
    assert!(!store.delete_if_unchanged("lock", &held.etag).await.unwrap());
    assert!(
        store
            .delete_if_unchanged("lock", &rewritten.etag)
            .await
            .unwrap()
    );
    assert!(store.get("lock").await.unwrap().is_none());
    assert!(
        !store
            .delete_if_unchanged("lock", &rewritten.etag)
            .await
            .unwrap()
    );

    // After a delete (a delete marker in a versioned bucket) the key can be created again.
    assert!(
        store
            .create_if_absent("lock", b"again".to_vec())
            .await
            .unwrap()
    );
    store.delete("lock").await.unwrap();
    store
        .delete("lock")
        .await
        .expect("deleting a missing key is fine");
    assert!(store.get("lock").await.unwrap().is_none());
}

#[tokio::test]
async fn failures_are_classified_and_never_carry_credentials() {
    let moto = support::moto::start().await;
    let s3 = client(&moto.endpoint(), "us-east-1").await;
    let missing = S3Objects::new(s3, bucket_name("missing"), "");
    let error = missing.put("k", b"x".to_vec()).await.unwrap_err();
    assert!(!error.retryable, "{error}");
    assert!(error.message.contains("NoSuchBucket"), "{error}");
    // A missing bucket is not a lock someone else already released.
    let error = missing
        .delete_if_unchanged("k", "\"etag\"")
        .await
        .unwrap_err();
    assert!(!error.retryable, "{error}");

    // Nothing listens here: a transport failure, worth retrying.
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let nowhere = S3Objects::new(client(&endpoint, "us-east-1").await, "b", "");
    let error = nowhere.get("k").await.unwrap_err();
    assert!(error.retryable, "{error}");
    assert!(!error.message.contains("testing"), "{error}");

    let error = ensure_state_bucket(
        &client(&endpoint, "us-east-1").await,
        "b",
        "us-east-1",
        &tags(),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, AwsError::S3Transport { .. }), "{error:?}");
    assert!(error.is_retryable());
}

/// A working directory holding the blueprint as exported, with its own s3 backend block,
/// which the runner's override replaces.
fn workspace(resources: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let main = format!(
        "terraform {{\n  backend \"s3\" {{\n    key = \"cluster.tfstate\"\n  }}\n}}\n{resources}"
    );
    std::fs::write(dir.path().join("main.tf"), main).unwrap();
    dir
}

/// Checks out, inits, applies and releases under `lease`: what the apply activity does.
async fn apply(
    lease: windlass_activities::terraform::StateLease,
    dir: &Path,
) -> Result<Plan, TerraformError> {
    let tf = Terraform::locate().with_interrupt_grace(Duration::from_secs(20));
    lease.check_out(dir).await?;
    let result = lease
        .synced(dir, async {
            tf.init(dir, &mut |_| {}, std::future::pending()).await?;
            tf.plan_and_apply(
                dir,
                false,
                &PlanGuard::default(),
                &mut |_| {},
                std::future::pending(),
            )
            .await
        })
        .await;
    lease.release(dir).await?;
    result
}

const TWO: &str = r#"
resource "terraform_data" "network" { input = "10.0.0.0/16" }
resource "terraform_data" "cluster" { input = terraform_data.network.output }
"#;

#[tokio::test]
async fn terraform_state_and_its_lock_live_in_the_bucket() {
    let moto = support::moto::start().await;
    let s3 = client(&moto.endpoint(), "us-east-1").await;
    let bucket = bucket_name("tfstate");
    ensure_state_bucket(&s3, &bucket, "us-east-1", &tags())
        .await
        .unwrap();
    let remote = RemoteState::new(
        Arc::new(S3Objects::new(s3.clone(), &bucket, "c1")),
        "cluster.tfstate",
    );

    let lease = remote.lock("OperationTypeApply", "worker-1").await.unwrap();
    let refused = remote.lock("OperationTypeApply", "worker-2").await;
    let held = match refused {
        Err(TerraformError::Locked(held)) => held,
        Err(other) => panic!("the second lock failed otherwise: {other:?}"),
        Ok(_) => panic!("a second lock was granted"),
    };
    assert_eq!(held.who, "worker-1");
    assert_eq!(held.id, lease.lock_id());
    s3.head_object()
        .bucket(&bucket)
        .key("c1/cluster.tfstate.lock")
        .send()
        .await
        .expect("the lock object");

    let ws = workspace(TWO);
    let plan = apply(lease, ws.path()).await.unwrap();
    assert_eq!(plan.summary.add, 2);

    // The state object, read as a user would with the SDK.
    let object = s3
        .get_object()
        .bucket(&bucket)
        .key("c1/cluster.tfstate")
        .send()
        .await
        .unwrap();
    let state = object.body.collect().await.unwrap().into_bytes();
    let state: serde_json::Value = serde_json::from_slice(&state).unwrap();
    let mut names: Vec<&str> = state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["cluster", "network"]);

    let lock = s3
        .head_object()
        .bucket(&bucket)
        .key("c1/cluster.tfstate.lock")
        .send()
        .await;
    assert!(lock.is_err(), "the lock object is gone after release");
    assert!(remote.holder().await.unwrap().is_none());

    // The next run on another worker picks the state up: nothing left to add.
    let lease = remote.lock("OperationTypeApply", "worker-2").await.unwrap();
    let again = workspace(TWO);
    let plan = apply(lease, again.path()).await.unwrap();
    assert_eq!(plan.summary.add, 0);
}

#[tokio::test]
async fn a_versioned_bucket_is_deleted_with_every_version_and_deletion_is_idempotent() {
    let moto = support::moto::start().await;
    let region = "eu-central-1";
    let s3 = client(&moto.endpoint(), region).await;
    let bucket = bucket_name("teardown");
    ensure_state_bucket(&s3, &bucket, region, &tags())
        .await
        .unwrap();
    for (key, body) in [("a", "1"), ("a", "2"), ("a", "3"), ("dir/b", "1")] {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(ByteStream::from_static(body.as_bytes()))
            .send()
            .await
            .unwrap();
    }
    // A delete marker on top of a's versions.
    s3.delete_object()
        .bucket(&bucket)
        .key("a")
        .send()
        .await
        .unwrap();
    let listed = s3
        .list_object_versions()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.versions().len(), 4);
    assert_eq!(listed.delete_markers().len(), 1);

    assert!(delete_bucket_with_contents(&s3, &bucket).await.unwrap());
    let head = s3.head_bucket().bucket(&bucket).send().await.unwrap_err();
    assert_eq!(
        head.raw_response().map(|r| r.status().as_u16()),
        Some(404),
        "{head:?}"
    );
    assert!(!delete_bucket_with_contents(&s3, &bucket).await.unwrap());
    assert!(
        !delete_bucket_with_contents(&s3, &bucket_name("never"))
            .await
            .unwrap()
    );
}
