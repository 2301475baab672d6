//! Cluster charts along their dependency graph vs one by one. Each install is simulated by
//! a sleep of its chart's typical install time (scaled by BENCH_SCALE_MS per second,
//! default 100 ms); the graph is run by `along_graph`, the function the provisioning
//! workflow uses. `cargo bench --bench chart_graph`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use windlass_core::cluster_charts::{ChartGraph, ClusterChart};
use windlass_workflows::chart_graph::{ChartOutcome, along_graph};

/// Typical `helm upgrade --install --wait` times on a fresh AKS cluster, in seconds.
fn typical_seconds() -> HashMap<&'static str, f64> {
    HashMap::from([
        ("cert-manager", 45.0),
        ("external-dns", 20.0),
        ("karpenter", 40.0),
        ("loki", 90.0),
        ("prometheus", 75.0),
        ("ingress-nginx", 60.0),
        ("windlass-agent", 15.0),
    ])
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let scale_ms: f64 = std::env::var("BENCH_SCALE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100.0);
    let seconds = typical_seconds();
    let graph = ChartGraph::standard();
    let simulated = |chart: &ClusterChart| {
        Duration::from_secs_f64(seconds[chart.name.as_str()] * scale_ms / 1000.0)
    };

    let started = Instant::now();
    let outcomes = futures::future::join_all(along_graph(&graph, |chart: ClusterChart| {
        let duration = simulated(&chart);
        async move {
            tokio::time::sleep(duration).await;
            Ok::<_, String>(chart.name)
        }
    }))
    .await;
    let along = started.elapsed();
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, ChartOutcome::Installed(_)))
    );

    let started = Instant::now();
    for chart in graph.charts() {
        tokio::time::sleep(simulated(chart)).await;
    }
    let one_by_one = started.elapsed();

    let critical = graph.critical_path(|c| simulated(c));
    let sum: Duration = graph.charts().iter().map(simulated).sum();
    println!(
        "cluster charts: {} charts, simulated install times (1 s = {scale_ms} ms):",
        graph.charts().len()
    );
    for chart in graph.charts() {
        println!(
            "  {:<16} {:>6.0} ms  after [{}]",
            chart.name,
            simulated(chart).as_secs_f64() * 1e3,
            chart.depends_on.join(", ")
        );
    }
    println!(
        "along the dependency graph  {:>8.0} ms   (critical path {:.0} ms)",
        along.as_secs_f64() * 1e3,
        critical.as_secs_f64() * 1e3
    );
    println!(
        "one by one                  {:>8.0} ms   (sum {:.0} ms)",
        one_by_one.as_secs_f64() * 1e3,
        sum.as_secs_f64() * 1e3
    );
    println!(
        "speed-up                    {:>8.2}x",
        one_by_one.as_secs_f64() / along.as_secs_f64()
    );
}
