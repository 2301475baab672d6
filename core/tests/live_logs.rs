//! The live log fan-out on both backends: in process, and Redis Streams on the machine's
//! real Redis (`WINDLASS_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`). Every test
//! uses its own key prefix, so tests running side by side never share a stream.

use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use uuid::Uuid;
use windlass_core::live_logs::{LiveLine, LiveLogs, LiveStream, RedisConfig};
use windlass_core::runs::{InsertedRun, NewRun, WorkflowKind};
use windlass_core::step_logs::LogLine;

fn redis_url() -> String {
    std::env::var("WINDLASS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn redis_config() -> RedisConfig {
    RedisConfig {
        key_prefix: format!("windlass-test:{}:run-log:", Uuid::new_v4().simple()),
        ..RedisConfig::new(redis_url())
    }
}

async fn redis_connection() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("Redis must be reachable (redis-server --daemonize yes)")
}

fn line(step: &str, seq: u32) -> LiveLine {
    LiveLine {
        step: step.into(),
        attempt: 1,
        seq,
        at: Utc::now(),
        level: "info".into(),
        line: format!("{step} line {seq}"),
        kind: windlass_core::live_logs::LiveKind::Line,
    }
}

async fn next_lines(stream: &mut LiveStream, n: usize) -> Vec<(String, u32)> {
    let mut got = Vec::new();
    while got.len() < n {
        let line = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("a line within 10 s")
            .expect("the stream goes on");
        got.push((line.step, line.seq));
    }
    got
}

/// Nothing more arrives within a short while.
async fn assert_quiet(stream: &mut LiveStream) {
    if let Ok(Some(line)) = tokio::time::timeout(Duration::from_millis(300), stream.next()).await {
        panic!("unexpected line {line:?}");
    }
}

async fn order_and_late_subscribers(logs: LiveLogs) {
    let run = Uuid::new_v4();
    let mut early = logs.subscribe(run).await;
    for seq in 1..=3 {
        logs.publish(run, &line("terraform-apply", seq)).await;
    }
    let mut late = logs.subscribe(run).await;
    logs.publish_all(
        run,
        &[line("install-chart/loki", 1), line("terraform-apply", 4)],
    )
    .await;
    assert_eq!(
        next_lines(&mut early, 5).await,
        [
            ("terraform-apply".into(), 1),
            ("terraform-apply".into(), 2),
            ("terraform-apply".into(), 3),
            ("install-chart/loki".into(), 1),
            ("terraform-apply".into(), 4),
        ]
    );
    // Joining late gets what was published after, nothing from before.
    assert_eq!(
        next_lines(&mut late, 2).await,
        [
            ("install-chart/loki".into(), 1),
            ("terraform-apply".into(), 4)
        ]
    );
    assert_quiet(&mut late).await;
    // Another run's lines never reach this run's subscribers.
    logs.publish(Uuid::new_v4(), &line("other-run", 1)).await;
    assert_quiet(&mut early).await;
}

#[tokio::test]
async fn in_process_delivers_in_order_and_late_subscribers_get_only_new_lines() {
    order_and_late_subscribers(LiveLogs::in_process()).await;
}

#[tokio::test]
async fn redis_delivers_in_order_and_late_subscribers_get_only_new_lines() {
    order_and_late_subscribers(LiveLogs::redis(redis_config()).unwrap()).await;
}

#[tokio::test]
async fn redis_streams_are_trimmed_and_expire() {
    let config = RedisConfig {
        max_lines_per_run: 100,
        retention: Duration::from_secs(600),
        ..redis_config()
    };
    let logs = LiveLogs::redis(config).unwrap();
    let run = Uuid::new_v4();
    let key = logs.redis_key(run).unwrap();
    let lines: Vec<LiveLine> = (1..=2000).map(|seq| line("terraform-apply", seq)).collect();
    for chunk in lines.chunks(100) {
        logs.publish_all(run, chunk).await;
    }
    let mut redis = redis_connection().await;
    let len: u64 = redis::cmd("XLEN")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    // `MAXLEN ~` trims whole nodes (100 entries by default): about 100, never 2,000.
    assert!((100..=300).contains(&len), "stream length {len}");
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!((590..=600).contains(&ttl), "ttl {ttl}");
    // What is kept is the newest.
    let newest: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(&key)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut redis)
        .await
        .unwrap();
    let json: String = newest.ids[0].get("l").unwrap();
    assert_eq!(serde_json::from_str::<LiveLine>(&json).unwrap().seq, 2000);
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
}

#[tokio::test]
async fn redis_down_loses_live_lines_but_never_fails_the_publisher() {
    // Nothing listens on port 1.
    let logs = LiveLogs::redis(RedisConfig::new("redis://127.0.0.1:1")).unwrap();
    let started = std::time::Instant::now();
    logs.publish(Uuid::new_v4(), &line("terraform-apply", 1))
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(LiveLogs::redis(RedisConfig::new("not a url")).is_err());
}

/// A follower that joins mid-run: what was printed before comes from the store, what is
/// printed after from the fan-out.
async fn late_follower_replays_from_the_store(logs: LiveLogs) {
    let dir = tempfile::tempdir().unwrap();
    let store = &windlass_core::Store::connect(&format!(
        "sqlite://{}",
        dir.path().join("windlass.db").display()
    ))
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let org = store.create_organization("acme").await.unwrap().id;
    let InsertedRun::Created(run) = store
        .insert_run(NewRun {
            organization_id: org,
            kind: WorkflowKind::AzureAccessSetup,
            target: "cluster:c1".into(),
            idempotency_key: None,
            request_fingerprint: "f".into(),
            input: serde_json::json!({}),
        })
        .await
        .unwrap()
    else {
        panic!("a new run")
    };
    // What a step writer does: the store and the fan-out get the same lines.
    let print = |step: &str, seq: u32| {
        let live = line(step, seq);
        let stored = LogLine {
            attempt: live.attempt,
            seq: live.seq,
            at: live.at,
            level: live.level.clone(),
            line: live.line.clone(),
        };
        (live, stored)
    };
    for seq in 1..=3 {
        let (live, stored) = print("terraform-apply", seq);
        logs.publish(run.id, &live).await;
        store
            .append_step_log(run.id, "terraform-apply", &[stored])
            .await
            .unwrap();
    }
    let mut follower = logs.subscribe(run.id).await;
    let replay: Vec<(String, u32)> = store
        .run_log(run.id)
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.step, l.seq))
        .collect();
    assert_eq!(
        replay,
        [
            ("terraform-apply".into(), 1),
            ("terraform-apply".into(), 2),
            ("terraform-apply".into(), 3)
        ]
    );
    let (live, _) = print("publish-kubeconfig", 1);
    logs.publish(run.id, &live).await;
    assert_eq!(
        next_lines(&mut follower, 1).await,
        [("publish-kubeconfig".into(), 1)]
    );
}

#[tokio::test]
async fn in_process_late_follower_replays_from_the_store() {
    late_follower_replays_from_the_store(LiveLogs::in_process()).await;
}

#[tokio::test]
async fn redis_late_follower_replays_from_the_store() {
    late_follower_replays_from_the_store(LiveLogs::redis(redis_config()).unwrap()).await;
}
