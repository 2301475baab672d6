//! STS AssumeRole against a real moto server (installed into .venv by scripts/setup.sh).
//! Each test starts its own server (tests/support/moto.rs) so no state leaks between tests.
//!
//! moto does not evaluate trust policies or the `sts:ExternalId` condition: these tests
//! show that the ExternalId is sent and the credentials are handled and cached correctly,
//! not that AWS would refuse a wrong ExternalId.

use std::sync::{Arc, Once};
use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;
use windlass_activities::aws::{AssumedRoleProvider, AwsError, external_id};

mod support {
    pub mod moto;
}
use support::moto::{Moto, free_port};

/// A role whose trust policy requires `organization_id`'s ExternalId; its ARN.
async fn create_role(moto: &Moto, organization_id: Uuid) -> String {
    let name = format!("windlass-test-{}", Uuid::new_v4().simple());
    let arn = moto
        .create_role(&name, &external_id(organization_id))
        .await
        .unwrap();
    assert_eq!(arn, format!("arn:aws:iam::123456789012:role/{name}"));
    arn
}

/// Dummy credentials for this test process, and nothing from the developer's own AWS
/// setup (profiles, region, instance metadata), so the provider's default chain is what
/// runs.
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
                "AWS_ENDPOINT_URL_STS",
                "AWS_ROLE_ARN",
                "AWS_WEB_IDENTITY_TOKEN_FILE",
            ] {
                std::env::remove_var(name);
            }
        }
    });
}

#[tokio::test]
async fn credentials_are_short_lived_cached_and_never_printed() {
    aws_test_environment();
    let moto = support::moto::start().await;
    let org = Uuid::new_v4();
    let role = create_role(&moto, org).await;
    let provider = AssumedRoleProvider::new(Some(moto.endpoint()), None).await;

    let first = provider.credentials(org, &role).await.unwrap();
    assert!(!first.access_key_id.is_empty());
    assert!(!first.secret_access_key.is_empty());
    assert!(!first.session_token.is_empty());
    let remaining = first.expires_at - Utc::now();
    assert!(
        remaining > chrono::Duration::minutes(14) && remaining <= chrono::Duration::minutes(15),
        "expected ~15 minutes left, got {remaining}"
    );

    // Within the margin: the cached set, not a second AssumeRole (moto issues a new
    // access key id per call).
    let second = provider.credentials(org, &role).await.unwrap();
    assert_eq!(second.access_key_id, first.access_key_id);
    assert_eq!(*second.session_token, *first.session_token);
    assert_eq!(second.expires_at, first.expires_at);

    // Another organisation on the same role gets its own session.
    let other = provider.credentials(Uuid::new_v4(), &role).await.unwrap();
    assert_ne!(other.access_key_id, first.access_key_id);

    for text in [format!("{first:?}"), format!("{provider:?}")] {
        assert!(!text.contains(first.secret_access_key.as_str()), "{text}");
        assert!(!text.contains(first.session_token.as_str()), "{text}");
    }
    assert!(format!("{first:?}").contains(&first.access_key_id));
}

#[tokio::test]
async fn concurrent_callers_share_one_assume_role() {
    aws_test_environment();
    let moto = support::moto::start().await;
    let org = Uuid::new_v4();
    let role = create_role(&moto, org).await;
    let provider = Arc::new(AssumedRoleProvider::new(Some(moto.endpoint()), None).await);

    let calls = (0..8).map(|_| {
        let provider = provider.clone();
        let role = role.clone();
        tokio::spawn(async move { provider.credentials(org, &role).await.unwrap() })
    });
    let results = futures::future::join_all(calls).await;
    let first = results[0].as_ref().unwrap().access_key_id.clone();
    for result in results {
        assert_eq!(result.unwrap().access_key_id, first);
    }
}

#[tokio::test]
async fn a_margin_longer_than_the_session_refreshes_on_every_call() {
    aws_test_environment();
    let moto = support::moto::start().await;
    let org = Uuid::new_v4();
    let role = create_role(&moto, org).await;
    let provider = AssumedRoleProvider::new(Some(moto.endpoint()), None)
        .await
        .with_refresh_margin(Duration::from_secs(16 * 60));

    let first = provider.credentials(org, &role).await.unwrap();
    let second = provider.credentials(org, &role).await.unwrap();
    assert_ne!(second.access_key_id, first.access_key_id);
}

#[tokio::test]
async fn a_longer_duration_is_requested_when_configured() {
    aws_test_environment();
    let moto = support::moto::start().await;
    let org = Uuid::new_v4();
    let role = create_role(&moto, org).await;
    let provider = AssumedRoleProvider::new(Some(moto.endpoint()), None)
        .await
        .with_duration(Duration::from_secs(3600));
    let credentials = provider.credentials(org, &role).await.unwrap();
    let remaining = credentials.expires_at - Utc::now();
    assert!(
        remaining > chrono::Duration::minutes(59) && remaining <= chrono::Duration::minutes(60),
        "{remaining}"
    );
}

#[tokio::test]
async fn a_malformed_role_arn_is_refused_without_calling_sts() {
    aws_test_environment();
    // Nothing listens here: had STS been called, the error would be a transport error.
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let provider = AssumedRoleProvider::new(Some(endpoint), None).await;
    for arn in [
        "arn:aws:iam::1234:role/windlass",
        "arn:aws:iam::123456789012:user/windlass",
        "not-an-arn",
    ] {
        let error = provider.credentials(Uuid::new_v4(), arn).await.unwrap_err();
        assert!(
            matches!(&error, AwsError::InvalidRoleArn { role_arn } if role_arn == arn),
            "{error:?}"
        );
        assert!(!error.is_retryable());
    }

    // The same provider with a valid ARN does try to reach STS, and that failure retries.
    let error = provider
        .credentials(Uuid::new_v4(), "arn:aws:iam::123456789012:role/windlass")
        .await
        .unwrap_err();
    assert!(matches!(error, AwsError::Transport { .. }), "{error:?}");
    assert!(error.is_retryable());
}
