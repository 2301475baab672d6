use std::time::Duration;

use windlass_activities::ActivitySet;
use windlass_activities::key_rotation::KeyRotation;
use windlass_workers::{WorkerConfig, spawn_worker};

use crate::cluster_config::ClusterArgs;
use crate::config::{AzureArgs, EngineArgs, KeyArgs, LiveLogArgs, StoreArgs};

#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub azure: AzureArgs,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub clusters: ClusterArgs,
    #[command(flatten)]
    pub live_logs: LiveLogArgs,
    #[arg(long, env = "WINDLASS_MAX_CONCURRENT_ACTIVITIES", default_value_t = 20)]
    pub max_concurrent_activities: usize,
    #[arg(
        long,
        env = "WINDLASS_MAX_CONCURRENT_WORKFLOW_TASKS",
        default_value_t = 10
    )]
    pub max_concurrent_workflow_tasks: usize,
    /// On SIGTERM, how long in-flight activities may finish before they are cancelled and
    /// handed back to Temporal.
    #[arg(long, env = "WINDLASS_GRACEFUL_SHUTDOWN_SECONDS", default_value_t = 30)]
    pub graceful_shutdown_seconds: u64,
}

impl WorkerArgs {
    /// The activities this worker can run: Azure and cluster work only when it has a
    /// federated identity to act with.
    pub async fn activity_set(
        &self,
        store: &windlass_core::Store,
        keys: std::sync::Arc<windlass_core::keys::KeyRing>,
    ) -> anyhow::Result<ActivitySet> {
        let clusters = match self.azure.client_template()? {
            Some(template) => Some(
                self.clusters
                    .activities(template, store.clone(), self.live_logs.live_logs()?)
                    .await?,
            ),
            None => None,
        };
        Ok(ActivitySet {
            azure: self.azure.activities()?,
            deployments: clusters
                .as_ref()
                .map(|c| c.deployments(store.clone(), keys.clone())),
            clusters,
            keys: Some(KeyRotation::new(keys)),
        })
    }

    pub fn worker_config(&self, engine: windlass_workflows::engine::EngineConfig) -> WorkerConfig {
        WorkerConfig {
            engine,
            max_concurrent_activities: self.max_concurrent_activities,
            max_concurrent_workflow_tasks: self.max_concurrent_workflow_tasks,
            graceful_shutdown: Duration::from_secs(self.graceful_shutdown_seconds),
        }
    }
}

pub async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let store = args.store.connect().await?;
    let keys = std::sync::Arc::new(args.keys.key_ring(&store).await?);
    let activities = args.activity_set(&store, keys.clone()).await?;
    let config = args.worker_config(args.engine.config(&keys).await?);
    let worker =
        tokio::task::spawn_blocking(move || spawn_worker(config, store, activities)).await??;
    tokio::select! {
        _ = crate::serve::shutdown_signal() => {}
        _ = async {
            while !worker.is_finished() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        } => {}
    }
    tokio::task::spawn_blocking(move || worker.shutdown()).await?
}
