//! `windlass workers`: which workers poll which task queue, for fleet operators.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use windlass_workflows::engine::Engine;
use windlass_workflows::engine::pollers::Poller;

use crate::config::{QueueArgs, TemporalArgs};

#[derive(Debug, Clone, clap::Args)]
pub struct WorkersArgs {
    #[command(flatten)]
    pub temporal: TemporalArgs,
    /// Which queues to list: every kind by default, those of `--placement`, or the
    /// `--task-queue`s named.
    #[command(flatten)]
    pub queues: QueueArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The workers seen on one queue.
#[derive(Debug, Serialize)]
struct QueueWorkers {
    task_queue: String,
    workers: Vec<QueueWorker>,
}

/// One worker process (by identity) on a queue, and what it polls for.
#[derive(Debug, Serialize)]
struct QueueWorker {
    identity: String,
    workflows: bool,
    activities: bool,
    /// The later of its workflow and activity polls.
    last_access: Option<DateTime<Utc>>,
}

pub async fn run(args: WorkersArgs) -> anyhow::Result<()> {
    // Describing task queues reads no payload: no codec keys needed.
    let engine = Engine::connect(&args.temporal.config(None).await?).await?;
    let mut listing = Vec::new();
    for queue in args.queues.queues() {
        let pollers = engine.pollers(&queue).await?;
        listing.push(QueueWorkers {
            workers: by_worker(pollers),
            task_queue: queue,
        });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&listing)?);
        return Ok(());
    }
    println!(
        "{:<40} {:<40} {:<9} {:<10} LAST ACCESS",
        "TASK QUEUE", "WORKER", "WORKFLOWS", "ACTIVITIES"
    );
    let yes = |b: bool| if b { "yes" } else { "no" };
    for queue in &listing {
        if queue.workers.is_empty() {
            println!(
                "{:<40} (no worker has polled it recently)",
                queue.task_queue
            );
        }
        for worker in &queue.workers {
            println!(
                "{:<40} {:<40} {:<9} {:<10} {}",
                queue.task_queue,
                worker.identity,
                yes(worker.workflows),
                yes(worker.activities),
                worker
                    .last_access
                    .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                    .unwrap_or_else(|| "-".into())
            );
        }
    }
    Ok(())
}

/// Temporal lists workflow and activity pollers apart; an operator thinks in workers.
fn by_worker(pollers: Vec<Poller>) -> Vec<QueueWorker> {
    let mut workers: BTreeMap<String, QueueWorker> = BTreeMap::new();
    for poller in pollers {
        let worker = workers
            .entry(poller.identity.clone())
            .or_insert_with(|| QueueWorker {
                identity: poller.identity.clone(),
                workflows: false,
                activities: false,
                last_access: None,
            });
        match poller.kind {
            "workflow" => worker.workflows = true,
            _ => worker.activities = true,
        }
        worker.last_access = worker.last_access.max(poller.last_poll);
    }
    workers.into_values().collect()
}
