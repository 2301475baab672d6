//! `windlass worker`: polls its task queues (one SDK worker per queue), serves health and
//! metrics, and drains on SIGTERM.

mod placed;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use windlass_activities::ActivitySet;
use windlass_activities::azure_access::AzureConnector;
use windlass_activities::key_rotation::KeyRotationActivities;
use windlass_activities::rate_limit::RateLimiter;
use windlass_activities::step_log::StepLogs;
use windlass_workers::{Fleet, WorkerConfig, WorkerMetrics};
use windlass_workflows::engine::Engine;

use crate::cluster_config::ClusterArgs;
use crate::config::{
    AzureArgs, KeyArgs, LiveLogArgs, QueueArgs, RateLimitArgs, RedisArgs, StoreArgs, TemporalArgs,
};

#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub temporal: TemporalArgs,
    #[command(flatten)]
    pub queues: QueueArgs,
    #[command(flatten)]
    pub azure: AzureArgs,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub clusters: ClusterArgs,
    #[command(flatten)]
    pub live_logs: LiveLogArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    #[command(flatten)]
    pub rate_limit: RateLimitArgs,
    /// Activities run at once, per task queue polled (a worker polling both kinds runs up to
    /// twice this many); the rest wait on the queue for other workers.
    #[arg(long, env = "WINDLASS_MAX_CONCURRENT_ACTIVITIES", default_value_t = 20)]
    pub max_concurrent_activities: usize,
    /// Workflow tasks run at once, per task queue polled.
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
    /// How long a step may wait in its task queue for a worker, on top of its budget (which
    /// counts only the time it runs). Generous: a burst of runs queues, it does not fail.
    #[arg(
        long,
        env = "WINDLASS_STEP_QUEUE_ALLOWANCE_SECONDS",
        default_value_t = windlass_workflows::step_budget::DEFAULT_QUEUE_ALLOWANCE.as_secs()
    )]
    pub step_queue_allowance_seconds: u64,
    /// Serve `/healthz`, `/readyz` and `/metrics` (Prometheus) here, e.g. `0.0.0.0:9464`.
    /// Off when unset, so several workers can share a machine without port clashes.
    #[arg(long, env = "WINDLASS_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// A placed worker's credential (shown once by `POST .../placements`). With it the
    /// worker holds no database URL and no key-encryption key: it polls only its
    /// placement's environment queue and reaches what its activities need from the store
    /// through the API at `--api-url`, for its own runs only.
    #[arg(
        long,
        env = "WINDLASS_PLACEMENT_CREDENTIAL",
        hide_env_values = true,
        requires = "api_url",
        requires = "placement"
    )]
    pub placement_credential: Option<String>,
    /// The Windlass API a placed worker reports to, e.g. `https://windlass.example.com`.
    #[arg(long, env = "WINDLASS_API_URL")]
    pub api_url: Option<String>,
    #[command(flatten)]
    pub own_identity: OwnIdentityArgs,
}

/// A placed worker's own Azure identity: the customer's workload identity in its tenant,
/// named the way Azure's SDKs and AKS's workload-identity webhook name it. Windlass never
/// hands a placed worker its own signing keys or platform credentials.
#[derive(Debug, Clone, clap::Args)]
pub struct OwnIdentityArgs {
    #[arg(long, env = "AZURE_TENANT_ID")]
    pub azure_tenant_id: Option<String>,
    #[arg(long, env = "AZURE_CLIENT_ID")]
    pub azure_client_id: Option<String>,
    /// The federated token (a JWT from the customer's own issuer, such as its cluster's
    /// service-account issuer), re-read on every token request.
    #[arg(long, env = "AZURE_FEDERATED_TOKEN_FILE")]
    pub azure_federated_token_file: Option<std::path::PathBuf>,
}

impl OwnIdentityArgs {
    /// `None` when none is set; an error naming what is missing when only some are.
    pub fn identity(
        &self,
    ) -> anyhow::Result<Option<windlass_activities::azure_access::OwnIdentity>> {
        match (
            &self.azure_tenant_id,
            &self.azure_client_id,
            &self.azure_federated_token_file,
        ) {
            (None, None, None) => Ok(None),
            (Some(tenant), Some(client), Some(file)) => {
                Ok(Some(windlass_activities::azure_access::OwnIdentity {
                    tenant_id: tenant.clone(),
                    client_id: client.clone(),
                    federated_token_file: file.clone(),
                }))
            }
            _ => anyhow::bail!(
                "a placed worker's Azure identity needs all of AZURE_TENANT_ID, AZURE_CLIENT_ID \
                 and AZURE_FEDERATED_TOKEN_FILE"
            ),
        }
    }
}

impl WorkerArgs {
    /// The activities this worker can run: Azure and cluster work only when it has a
    /// workload-identity issuer to act as. Every cloud client shares `limiter`.
    pub async fn activity_set(
        &self,
        store: &windlass_core::Store,
        keys: Arc<windlass_core::keys::KeyRing>,
        limiter: Option<RateLimiter>,
    ) -> anyhow::Result<ActivitySet> {
        let identity = self.azure.workload_identity(keys.clone());
        let template = match &identity {
            Some(issuer) => {
                let mut template = self.azure.client_template()?;
                template.rate_limiter = limiter.clone();
                Some((template, issuer.clone()))
            }
            None => None,
        };
        let live = self.live_logs.live_logs(&self.redis)?;
        let clusters = match &template {
            Some((template, issuer)) => Some(
                self.clusters
                    .activities(
                        AzureConnector::new(template.clone(), issuer.clone()),
                        StepLogs::new(store.clone()).with_live(live.clone()),
                        limiter,
                    )
                    .await?,
            ),
            None => None,
        };
        Ok(ActivitySet {
            azure: template.map(|(template, issuer)| AzureArgs::access(template, issuer)),
            aws_access: Some(self.clusters.aws_access().await),
            deployments: clusters
                .as_ref()
                .map(|c| c.deployments(store.clone(), keys.clone())),
            clusters,
            keys: Some(KeyRotationActivities::new(keys)),
            step_events: Some(live),
        })
    }

    pub fn worker_config(&self, engine: windlass_workflows::engine::EngineConfig) -> WorkerConfig {
        WorkerConfig {
            engine,
            max_concurrent_activities: self.max_concurrent_activities,
            max_concurrent_workflow_tasks: self.max_concurrent_workflow_tasks,
            graceful_shutdown: Duration::from_secs(self.graceful_shutdown_seconds),
            step_timing: windlass_workflows::step_budget::StepTiming {
                queue_allowance: Duration::from_secs(self.step_queue_allowance_seconds),
                budget_cap: None,
            },
        }
    }
}

pub async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let metrics = Arc::new(WorkerMetrics::new());
    let limiter = args
        .rate_limit
        .limiter(&args.redis, metrics.clone())
        .await?;
    let (config, queues, backing, activities) = match &args.placement_credential {
        Some(credential) => placed::prepare(&args, credential, limiter).await?,
        None => {
            let store = args.store.connect().await?;
            let keys = Arc::new(args.keys.key_ring(&store).await?);
            let activities = args.activity_set(&store, keys.clone(), limiter).await?;
            let config = args.worker_config(args.temporal.config(Some(&keys)).await?);
            (config, args.queues.queues(), store.into(), activities)
        }
    };
    // Bound before the workers start, so a port clash fails the start, not a probe later.
    let listener = match args.metrics_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr} for health and metrics"))?,
        ),
        None => None,
    };
    let drain_backing = backing.clone();
    let fleet = {
        let metrics = metrics.clone();
        tokio::task::spawn_blocking(move || {
            Fleet::spawn(&config, &queues, &backing, &activities, metrics)
        })
        .await??
    };
    tracing::info!(queues = ?fleet.queues().collect::<Vec<_>>(), "worker started");
    crate::heap_trim::spawn();
    let (stop_probes, probes_stopped) = tokio::sync::oneshot::channel::<()>();
    let probes = match listener {
        Some(listener) => {
            // Readiness asks Temporal itself; no payload is read, so no codec keys.
            let engine = Engine::connect(&args.temporal.config(None).await?).await?;
            let probe = crate::worker_probes::Probe {
                metrics: metrics.clone(),
                engine,
            };
            Some(tokio::spawn(crate::worker_probes::serve(
                listener,
                probe,
                async move {
                    let _ = probes_stopped.await;
                },
            )))
        }
        None => None,
    };

    let stopped_by_itself = tokio::select! {
        _ = crate::serve::shutdown_signal() => None,
        queue = async {
            loop {
                if let Some(queue) = fleet.stopped_queue() {
                    return queue.to_owned();
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        } => Some(queue),
    };
    // Not ready from this instant: load balancers and `kubectl rollout` see it before the
    // in-flight work has finished.
    metrics.set_draining();
    let drained_queues: Vec<String> = fleet.queues().map(str::to_owned).collect();
    if stopped_by_itself.is_none() {
        record_drain(&drain_backing, &drained_queues).await;
    }
    let drained = tokio::task::spawn_blocking(move || fleet.drain()).await?;
    let _ = stop_probes.send(());
    if let Some(probes) = probes {
        probes.await??;
    }
    // A worker that stopped by itself returns its error from the drain.
    drained?;
    if let Some(queue) = stopped_by_itself {
        anyhow::bail!("the worker for task queue {queue} stopped");
    }
    Ok(())
}

/// An operator's drain (SIGTERM: a scale-down, a rollout) is an operator action on the
/// record, before the drain starts. A placed worker has no store to write to: its drain
/// shows in the fleet listing (`windlass workers`) instead.
async fn record_drain(backing: &windlass_workers::Backing, queues: &[String]) {
    let windlass_workers::Backing::Store(store) = backing else {
        return;
    };
    let host = hostname();
    let entry = crate::admin::operator_action(
        "workers.drain",
        &format!("worker:{host}:{}", std::process::id()),
        serde_json::json!({"task_queues": queues}),
    );
    if let Err(error) = store.append_audit(entry).await {
        // The drain goes on: refusing to stop would not undo the signal.
        tracing::error!(%error, "could not record the drain in the audit log");
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}
