//! `windlass workers`: which workers poll which task queue, for fleet operators.

use windlass_workflows::engine::{Engine, EngineConfig};

use crate::config::EngineArgs;

#[derive(Debug, Clone, clap::Args)]
pub struct WorkersArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: WorkersArgs) -> anyhow::Result<()> {
    // Describing task queues reads no payload: no codec keys needed.
    let engine = Engine::connect(&EngineConfig {
        namespace: args.engine.temporal_namespace.clone(),
        task_queue: args.engine.task_queue.clone(),
        ..EngineConfig::new(args.engine.temporal_address.clone())
    })
    .await?;
    let pollers = engine.pollers(&args.engine.task_queue).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&pollers)?);
        return Ok(());
    }
    println!(
        "{:<28} {:<9} {:<40} LAST POLL",
        "TASK QUEUE", "KIND", "WORKER"
    );
    for poller in &pollers {
        println!(
            "{:<28} {:<9} {:<40} {}",
            poller.task_queue,
            poller.kind,
            poller.identity,
            poller
                .last_poll
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_else(|| "-".into())
        );
    }
    if pollers.is_empty() {
        println!("(no worker has polled {} recently)", args.engine.task_queue);
    }
    Ok(())
}
