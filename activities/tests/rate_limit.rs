//! The per-account cloud rate limit: in-process buckets, buckets shared through a real
//! Redis (127.0.0.1:6379, or WINDLASS_TEST_REDIS_URL), and the ARM client held to it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uuid::Uuid;
use windlass_activities::azure::{
    ArmClient, AzureClientConfig, AzureEndpoints, ClientAssertionSource,
};
use windlass_activities::rate_limit::{
    CloudAccount, CloudProvider, LocalBuckets, RateLimit, RateLimitedHttpClient, RateLimiter,
    RedisBuckets, TokenBuckets, WaitObserver,
};
use windlass_standins::AzureStandIn;

/// One token per 100 s: nothing refills while a test runs, so grants are counted exactly.
fn slow(burst: u32) -> RateLimit {
    RateLimit::new(0.01, burst).unwrap()
}

fn redis_url() -> String {
    std::env::var("WINDLASS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A key prefix no other test (or test run) shares.
fn prefix() -> String {
    format!("windlass-test:{}", Uuid::new_v4())
}

#[derive(Default)]
struct Waits {
    count: AtomicUsize,
    total: Mutex<Duration>,
}

impl WaitObserver for Waits {
    fn waited(&self, _provider: CloudProvider, wait: Duration) {
        self.count.fetch_add(1, Ordering::SeqCst);
        *self.total.lock().unwrap() += wait;
    }

    fn backend_failed(&self, _provider: CloudProvider) {}
}

#[tokio::test(start_paused = true)]
async fn in_process_buckets_grant_the_burst_then_queue_callers_by_the_rate() {
    let buckets = LocalBuckets::new();
    let mut waits = Vec::new();
    for _ in 0..5 {
        waits.push(buckets.reserve("azure:a", slow(3)).await.unwrap());
    }
    assert_eq!(&waits[..3], &[Duration::ZERO; 3]);
    // Each caller past the burst waits one more token's time than the one before it.
    assert_eq!(waits[3], Duration::from_secs(100));
    assert_eq!(waits[4], Duration::from_secs(200));
    // Another account has its own bucket.
    assert_eq!(
        buckets.reserve("azure:b", slow(3)).await.unwrap(),
        Duration::ZERO
    );
}

#[tokio::test(start_paused = true)]
async fn a_limited_request_waits_for_its_token_instead_of_failing() {
    let waits = Arc::new(Waits::default());
    let limiter = RateLimiter::new(
        Arc::new(LocalBuckets::new()),
        RateLimit::new(2.0, 2).unwrap(),
    )
    .with_observer(waits.clone());
    let account = CloudAccount::azure("sub-1");
    let started = tokio::time::Instant::now();
    for _ in 0..6 {
        limiter.acquire(&account).await;
    }
    // Two from the burst, then four at 2/s: two seconds on the (paused, auto-advanced) clock.
    assert_eq!(waits.count.load(Ordering::SeqCst), 4);
    assert_eq!(started.elapsed(), Duration::from_secs(2));
}

#[tokio::test]
async fn two_workers_on_redis_share_one_budget() {
    let prefix = prefix();
    let first = RedisBuckets::connect(&redis_url(), prefix.clone())
        .await
        .expect("Redis at 127.0.0.1:6379 (redis-server --daemonize yes)");
    let second = RedisBuckets::connect(&redis_url(), prefix.clone())
        .await
        .unwrap();
    let limit = slow(4);
    let mut waits = Vec::new();
    for i in 0..10 {
        let worker = if i % 2 == 0 { &first } else { &second };
        waits.push(worker.reserve("aws:123456789012", limit).await.unwrap());
    }
    let granted = waits.iter().filter(|w| w.is_zero()).count();
    assert_eq!(granted, 4, "one burst between both workers: {waits:?}");
    // The rest queue behind each other, one token time (100 s) apart, whichever worker asked.
    for (n, wait) in waits[4..].iter().enumerate() {
        let expected = 100.0 * (n as f64 + 1.0);
        assert!(
            (wait.as_secs_f64() - expected).abs() < 1.0,
            "request {} waits {wait:?}, expected about {expected} s",
            n + 5
        );
    }
    // Another account is not held back by this one's queue.
    assert_eq!(
        first.reserve("aws:210987654321", limit).await.unwrap(),
        Duration::ZERO
    );
}

#[tokio::test]
async fn the_redis_bucket_refills_at_the_rate() {
    let buckets = RedisBuckets::connect(&redis_url(), prefix()).await.unwrap();
    // 1000 tokens per second and a burst of one: after one token's wait, one more is there.
    let limit = RateLimit::new(1000.0, 1).unwrap();
    assert_eq!(
        buckets.reserve("azure:x", limit).await.unwrap(),
        Duration::ZERO
    );
    let wait = buckets.reserve("azure:x", limit).await.unwrap();
    assert!(wait <= Duration::from_millis(1), "{wait:?}");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        buckets.reserve("azure:x", limit).await.unwrap(),
        Duration::ZERO
    );
}

#[tokio::test]
async fn an_unreachable_redis_is_no_error_at_start_and_an_error_to_retry_when_asked() {
    // Nothing listens on port 1: a worker starting during an outage still starts.
    let buckets = RedisBuckets::connect("redis://127.0.0.1:1", prefix())
        .await
        .unwrap();
    let error = buckets
        .reserve("azure:x", RateLimit::new(10.0, 2).unwrap())
        .await
        .unwrap_err();
    assert!(error.is_retryable(), "{error}");
}

#[tokio::test]
async fn the_arm_client_waits_for_the_subscriptions_budget() {
    let standin = AzureStandIn::start().await;
    let waits = Arc::new(Waits::default());
    let buckets = Arc::new(RedisBuckets::connect(&redis_url(), prefix()).await.unwrap());
    // A token each 100 ms: well above a loopback round trip, so no token refills between
    // two requests that did not wait.
    let limiter =
        RateLimiter::new(buckets, RateLimit::new(10.0, 2).unwrap()).with_observer(waits.clone());
    let (tenant, client) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
    let (subscription, other) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
    // An identity of the tenant, Owner of both subscriptions, trusting a local issuer.
    let issuer: &'static windlass_standins::OidcIssuerStandIn = Box::leak(Box::new(
        windlass_standins::OidcIssuerStandIn::start(0, "unused")
            .await
            .unwrap(),
    ));
    for sub in [&subscription, &other] {
        standin.seed_customer_tenant(&tenant, sub, &client, &issuer.issuer, "windlass:test");
    }
    let mut config = AzureClientConfig::new(
        AzureEndpoints::single_origin(&standin.base_url).unwrap(),
        tenant,
        client,
        ClientAssertionSource::callback(move || async move {
            Ok(issuer.assertion("windlass:test", "api://AzureADTokenExchange", 600))
        }),
    );
    config.extra_root_ca_pem = Some(standin.ca_cert_pem.clone());
    config.rate_limiter = Some(limiter);
    let arm = ArmClient::new(&config).unwrap();

    // The first request also fetches a token and opens the connection: not on the budget
    // under test.
    arm.get_resource_group(&other, "rg-windlass").await.unwrap();
    for _ in 0..6 {
        arm.get_resource_group(&subscription, "rg-windlass")
            .await
            .unwrap();
    }
    let reads = |sub: &str| {
        standin
            .requests()
            .iter()
            .filter(|r| r.path.contains(sub))
            .count()
    };
    assert_eq!(reads(&subscription), 6, "every request reached ARM");
    // Two went with the burst; the other four each waited for a token.
    assert_eq!(waits.count.load(Ordering::SeqCst), 4);
    assert!(*waits.total.lock().unwrap() >= Duration::from_millis(300));

    // Another subscription has its own budget (one token of its burst left).
    arm.get_resource_group(&other, "rg-windlass").await.unwrap();
    assert_eq!(waits.count.load(Ordering::SeqCst), 4);
    assert_eq!(reads(&other), 2);
}

/// An S3 client for `account` on moto, as `AwsClients` builds one with a limiter.
async fn limited_s3(
    endpoint: &str,
    http: aws_smithy_runtime_api::client::http::SharedHttpClient,
    limiter: RateLimiter,
    account: &str,
) -> aws_sdk_s3::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .http_client(RateLimitedHttpClient::new(
            http,
            limiter,
            CloudAccount::aws(account),
        ))
        .load()
        .await;
    windlass_activities::aws::s3_client(&config, Some(endpoint))
}

#[tokio::test]
async fn aws_sdk_requests_wait_for_the_accounts_budget() {
    let moto = windlass_standins::moto::Moto::start()
        .await
        .expect("moto_server: run scripts/setup.sh (it installs moto into .venv)");
    let waits = Arc::new(Waits::default());
    // A token each 100 ms, well above a loopback round trip to moto.
    let limiter = RateLimiter::new(
        Arc::new(LocalBuckets::new()),
        RateLimit::new(10.0, 2).unwrap(),
    )
    .with_observer(waits.clone());
    let http = RateLimitedHttpClient::default_inner();
    // Opens the connection and wakes moto up, on another account's budget.
    let warm = limited_s3(
        &moto.endpoint(),
        http.clone(),
        limiter.clone(),
        "210987654321",
    )
    .await;
    warm.list_buckets().send().await.unwrap();
    let s3 = limited_s3(&moto.endpoint(), http, limiter, "123456789012").await;
    for _ in 0..6 {
        s3.list_buckets().send().await.unwrap();
    }
    assert_eq!(
        waits.count.load(Ordering::SeqCst),
        4,
        "two from the burst, four waited"
    );
}
