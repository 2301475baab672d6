//! Flags shared by the subcommands. Every flag has an environment variable, so the same
//! binary is configured by a compose file, a Kubernetes manifest or a shell.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use windlass_activities::azure::{AzureClientConfig, AzureEndpoints, ClientAssertionSource};
use windlass_activities::azure_access::{AzureAccessActivities, AzureConnector};
use windlass_activities::rate_limit::{
    LocalBuckets, RateLimit, RateLimiter, RedisBuckets, TokenBuckets, WaitObserver,
};
use windlass_core::Store;
use windlass_core::crypto::{AwsKmsKek, KeyEncryptionKey, LocalKeyFile};
use windlass_core::keys::KeyRing;
use windlass_core::live_logs::{LiveLogs, RedisConfig};
use windlass_core::workload_identity::WorkloadIdentityIssuer;
use windlass_workflows::engine::EngineConfig;
use windlass_workflows::engine::codec::PayloadKeys;
use windlass_workflows::task_queues;

#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// `sqlite://path` (embedded default) or `postgres://...` (production).
    #[arg(
        long,
        env = "WINDLASS_DATABASE_URL",
        default_value = "sqlite://.windlass/windlass.db"
    )]
    pub database_url: String,
}

impl StoreArgs {
    pub async fn connect(&self) -> anyhow::Result<Store> {
        if let Some(path) = self.database_url.strip_prefix("sqlite://")
            && let Some(dir) = std::path::Path::new(path.split('?').next().unwrap_or(path)).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating database directory {}", dir.display()))?;
        }
        Store::connect(&self.database_url)
            .await
            .context("connecting to the database")
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct EngineArgs {
    #[command(flatten)]
    pub temporal: TemporalArgs,
    /// Task queue infrastructure runs are started on.
    #[arg(long, env = "WINDLASS_TASK_QUEUE", default_value = task_queues::INFRASTRUCTURE)]
    pub task_queue: String,
    /// Environment queues started from now on continue as new after this many deployments
    /// (default 50); a small number makes tests cross the boundary.
    #[arg(long, env = "WINDLASS_QUEUE_DEPLOYMENTS_PER_HISTORY", hide = true)]
    pub queue_deployments_per_history: Option<u32>,
}

impl EngineArgs {
    /// With the payload codec's keys, so nothing reaches Temporal in clear.
    pub async fn config(&self, keys: &Arc<KeyRing>) -> anyhow::Result<EngineConfig> {
        Ok(EngineConfig {
            task_queue: self.task_queue.clone(),
            queue_deployments_per_history: self.queue_deployments_per_history,
            ..self.temporal.config(Some(keys)).await?
        })
    }
}

/// Every key line from the key ring (API and shared workers), checked readable now so a
/// misconfigured KEK fails the start, not the first payload.
pub async fn payload_keys(keys: &Arc<KeyRing>) -> anyhow::Result<PayloadKeys> {
    keys.all_versions(windlass_core::keys::TEMPORAL_PAYLOADS, "")
        .await
        .context("loading the payload codec keys")?;
    Ok(PayloadKeys::from_key_ring(keys.clone()))
}

#[derive(Debug, Clone, clap::Args)]
pub struct KeyArgs {
    /// The key-encryption key (embedded default): a 32-byte key file, created mode 0600 on
    /// first use. It wraps every data key; keep it as safe as the database backups.
    #[arg(long, env = "WINDLASS_KEK_FILE", default_value = ".windlass/kek")]
    pub kek_file: PathBuf,
    /// During a KEK rotation: the old key file, still used to unwrap (never to wrap).
    #[arg(long, env = "WINDLASS_PREVIOUS_KEK_FILE")]
    pub previous_kek_file: Option<PathBuf>,
    /// Production: an AWS KMS key (ARN) as the KEK instead of the key file. Credentials
    /// and region come from the standard AWS chain (short-lived, e.g. IRSA).
    #[arg(long, env = "WINDLASS_KMS_KEY_ID")]
    pub kms_key_id: Option<String>,
    /// KMS endpoint override (a local KMS-compatible endpoint in tests).
    #[arg(long, env = "WINDLASS_KMS_ENDPOINT_URL")]
    pub kms_endpoint_url: Option<String>,
}

impl KeyArgs {
    pub async fn key_ring(&self, store: &Store) -> anyhow::Result<KeyRing> {
        let current: Arc<dyn KeyEncryptionKey> = match &self.kms_key_id {
            Some(key_id) => {
                Arc::new(AwsKmsKek::new(key_id.clone(), self.kms_endpoint_url.clone()).await?)
            }
            None => Arc::new(LocalKeyFile::load_or_create(&self.kek_file)?),
        };
        let mut ring = KeyRing::new(store.clone(), current);
        if let Some(previous) = &self.previous_kek_file {
            ring = ring.with_previous(Arc::new(LocalKeyFile::load_or_create(previous)?));
        }
        Ok(ring)
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct AzureArgs {
    #[arg(
        long,
        env = "WINDLASS_AZURE_ARM_ENDPOINT",
        default_value = "https://management.azure.com"
    )]
    pub azure_arm_endpoint: String,
    #[arg(
        long,
        env = "WINDLASS_AZURE_GRAPH_ENDPOINT",
        default_value = "https://graph.microsoft.com"
    )]
    pub azure_graph_endpoint: String,
    #[arg(
        long,
        env = "WINDLASS_AZURE_AUTHORITY_HOST",
        default_value = "https://login.microsoftonline.com"
    )]
    pub azure_authority_host: String,
    /// Windlass's workload-identity issuer URL (the API's public base URL, whose
    /// `/.well-known/openid-configuration` Entra ID reads): the `iss` of the assertions
    /// this worker mints per organisation (`windlass:organization:<id>`) and for the
    /// platform application (`windlass:platform`). Without it the worker runs no Azure
    /// activities.
    #[arg(long, env = "WINDLASS_WORKLOAD_IDENTITY_ISSUER")]
    pub workload_identity_issuer: Option<String>,
    /// Extra CA certificate (PEM) to trust, e.g. the local stand-in's throwaway CA.
    #[arg(long, env = "WINDLASS_AZURE_EXTRA_CA_FILE")]
    pub azure_extra_ca_file: Option<PathBuf>,
    /// Poll interval for long-running operations that send no Retry-After.
    #[arg(
        long,
        env = "WINDLASS_AZURE_DEFAULT_POLL_SECONDS",
        default_value_t = 60
    )]
    pub azure_default_poll_seconds: u64,
    /// First poll interval while a resource provider registers.
    #[arg(
        long,
        env = "WINDLASS_AZURE_PROVIDER_POLL_SECONDS",
        default_value_t = 2
    )]
    pub azure_provider_poll_seconds: u64,
    /// How long Azure's replication and propagation lags (a new role, principal or role
    /// assignment not yet visible) are waited out before a step fails with them; unset,
    /// 10 minutes for replication and 15 for role assignments, as Azure documents.
    #[arg(long, env = "WINDLASS_AZURE_SETTLE_WINDOW_SECONDS")]
    pub azure_settle_window_seconds: Option<u64>,
}

impl AzureArgs {
    /// The issuer this worker mints assertions as; `None` without
    /// `--workload-identity-issuer` (such a worker does not take Azure work). Its keys
    /// derive from the key ring's `workload_identity` data key.
    pub fn workload_identity(&self, keys: Arc<KeyRing>) -> Option<Arc<WorkloadIdentityIssuer>> {
        match &self.workload_identity_issuer {
            Some(issuer) => Some(Arc::new(WorkloadIdentityIssuer::new(issuer.clone(), keys))),
            None => {
                tracing::warn!(
                    "no WINDLASS_WORKLOAD_IDENTITY_ISSUER: this worker runs no Azure activities"
                );
                None
            }
        }
    }

    /// The Azure access activities on clients built from `template`.
    pub fn access(
        template: AzureClientConfig,
        issuer: Arc<WorkloadIdentityIssuer>,
    ) -> AzureAccessActivities {
        AzureAccessActivities::new(AzureConnector::new(template, issuer))
    }

    /// Endpoints and tuning shared by every Azure client of this worker (tenant, client
    /// id and assertions are set per identity by the connector).
    pub fn client_template(&self) -> anyhow::Result<AzureClientConfig> {
        let url = |s: &str| url::Url::parse(s).with_context(|| format!("Azure endpoint {s:?}"));
        let endpoints = AzureEndpoints {
            arm: url(&self.azure_arm_endpoint)?,
            graph: url(&self.azure_graph_endpoint)?,
            authority_host: url(&self.azure_authority_host)?,
            ..AzureEndpoints::public_cloud()
        };
        // Tenant and client id are per customer: the connector fills them in per run.
        let mut template = AzureClientConfig::new(
            endpoints,
            String::new(),
            String::new(),
            ClientAssertionSource::set_per_identity(),
        );
        if let Some(ca) = &self.azure_extra_ca_file {
            template.extra_root_ca_pem = Some(
                std::fs::read_to_string(ca).with_context(|| format!("reading {}", ca.display()))?,
            );
        }
        template.lro_default_poll_interval = Duration::from_secs(self.azure_default_poll_seconds);
        template.provider_poll_initial = Duration::from_secs(self.azure_provider_poll_seconds);
        if let Some(seconds) = self.azure_settle_window_seconds {
            let window = Duration::from_secs(seconds);
            template.settle_windows = windlass_activities::azure::SettleWindows {
                role_definition_replication: window,
                principal_replication: window,
                assignment_propagation: window,
            };
        }
        Ok(template)
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct LiveLogArgs {
    /// Redis trims each run's live log to about this many of its newest lines.
    #[arg(long, env = "WINDLASS_LIVE_LOG_MAX_LINES", default_value_t = RedisConfig::DEFAULT_MAX_LINES_PER_RUN)]
    pub live_log_max_lines: u64,
    /// A run's live log expires from Redis this long after its last line (the step logs
    /// in the database stay).
    #[arg(
        long,
        env = "WINDLASS_LIVE_LOG_RETENTION_SECONDS",
        default_value_t = RedisConfig::DEFAULT_RETENTION.as_secs()
    )]
    pub live_log_retention_seconds: u64,
}

impl LiveLogArgs {
    /// Redis Streams when the process has a Redis (`WINDLASS_REDIS_URL`, shared by the
    /// API and the workers); otherwise an in-process fan-out, which reaches only followers
    /// in the same process (the embedded default runs both in one).
    pub fn live_logs(&self, redis: &RedisArgs) -> anyhow::Result<LiveLogs> {
        let live = match &redis.redis_url {
            Some(url) => LiveLogs::redis(RedisConfig {
                max_lines_per_run: self.live_log_max_lines,
                retention: Duration::from_secs(self.live_log_retention_seconds),
                ..RedisConfig::new(url.clone())
            })
            .context("WINDLASS_REDIS_URL")?,
            None => LiveLogs::in_process(),
        };
        tracing::info!(backend = live.backend_name(), "live step logs");
        Ok(live)
    }
}

/// Where Temporal is. Processes that choose their task queues themselves (`windlass
/// worker`, `windlass workers`) use it alone; the API adds its start queue ([`EngineArgs`]).
#[derive(Debug, Clone, clap::Args)]
pub struct TemporalArgs {
    /// gRPC address of the Temporal frontend.
    #[arg(
        long,
        env = "WINDLASS_TEMPORAL_ADDRESS",
        default_value = "http://127.0.0.1:7233"
    )]
    pub temporal_address: String,
    #[arg(long, env = "WINDLASS_TEMPORAL_NAMESPACE", default_value = "default")]
    pub temporal_namespace: String,
}

impl TemporalArgs {
    /// `keys` for a process that reads or writes payloads (a worker); `None` for one that
    /// only describes queues.
    pub async fn config(&self, keys: Option<&Arc<KeyRing>>) -> anyhow::Result<EngineConfig> {
        Ok(EngineConfig {
            namespace: self.temporal_namespace.clone(),
            payload_keys: match keys {
                Some(keys) => Some(payload_keys(keys).await?),
                None => None,
            },
            ..EngineConfig::new(self.temporal_address.clone())
        })
    }
}

/// Which task queues a worker polls (or `windlass workers` lists).
#[derive(Debug, Clone, clap::Args)]
pub struct QueueArgs {
    /// A task queue, by name; repeat for several. Default: every kind of work
    /// (infrastructure, environment) at `--placement`.
    #[arg(
        long = "task-queue",
        env = "WINDLASS_TASK_QUEUES",
        value_delimiter = ',',
        conflicts_with = "placement"
    )]
    pub task_queues: Vec<String>,
    /// Only the queues of this placement (a region, or a customer's own pool such as
    /// `acme-onprem`), e.g. `windlass-environment@acme-onprem`: a worker inside a
    /// customer's network sees only that customer's work.
    #[arg(long, env = "WINDLASS_PLACEMENT", value_parser = parse_placement)]
    pub placement: Option<String>,
}

fn parse_placement(placement: &str) -> Result<String, String> {
    task_queues::validate_placement(placement).map(|()| placement.to_owned())
}

impl QueueArgs {
    pub fn queues(&self) -> Vec<String> {
        let explicit: Vec<String> = self
            .task_queues
            .iter()
            .map(|q| q.trim().to_owned())
            .filter(|q| !q.is_empty())
            .collect();
        if !explicit.is_empty() {
            return explicit;
        }
        task_queues::KINDS
            .iter()
            .map(|kind| task_queues::placed(kind, self.placement.as_deref()))
            .collect()
    }
}

/// Redis shared by a fleet's processes. Optional: without it everything that could be
/// shared stays in the process.
#[derive(Debug, Clone, clap::Args)]
pub struct RedisArgs {
    /// `redis://[user:password@]host:port[/db]`. Never logged.
    #[arg(long, env = "WINDLASS_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
}

/// The request budget per cloud account (Azure subscription, AWS account), shared by every
/// worker that uses the same Redis (or by this process alone without one).
#[derive(Debug, Clone, clap::Args)]
pub struct RateLimitArgs {
    /// Requests per second per cloud account; 0 turns the limit off. ARM and AWS throttle
    /// per account across all of its callers: leave headroom for the customer's own tools.
    #[arg(long, env = "WINDLASS_CLOUD_RATE_LIMIT", default_value_t = 10.0)]
    pub cloud_rate_limit: f64,
    /// Requests an idle account may send at once before the rate applies.
    #[arg(long, env = "WINDLASS_CLOUD_RATE_BURST", default_value_t = 50)]
    pub cloud_rate_burst: u32,
}

/// Keys of the shared buckets: `windlass:cloud-rate:<provider>:<account>`.
const RATE_LIMIT_PREFIX: &str = "windlass:cloud-rate";

impl RateLimitArgs {
    pub async fn limiter(
        &self,
        redis: &RedisArgs,
        observer: Arc<dyn WaitObserver>,
    ) -> anyhow::Result<Option<RateLimiter>> {
        if self.cloud_rate_limit == 0.0 {
            tracing::info!("no cloud rate limit");
            return Ok(None);
        }
        let limit = RateLimit::new(self.cloud_rate_limit, self.cloud_rate_burst)?;
        let buckets: Arc<dyn TokenBuckets> = match &redis.redis_url {
            Some(url) => Arc::new(
                RedisBuckets::connect(url, RATE_LIMIT_PREFIX)
                    .await
                    .context("connecting to Redis for the cloud rate limit")?,
            ),
            None => Arc::new(LocalBuckets::new()),
        };
        tracing::info!(
            per_second = limit.per_second,
            burst = limit.burst,
            shared = redis.redis_url.is_some(),
            "cloud rate limit per account"
        );
        Ok(Some(
            RateLimiter::new(buckets, limit).with_observer(observer),
        ))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::QueueArgs;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        queues: QueueArgs,
    }

    fn queues(args: &[&str]) -> Result<Vec<String>, clap::Error> {
        let cli = Cli::try_parse_from(std::iter::once("windlass").chain(args.iter().copied()))?;
        Ok(cli.queues.queues())
    }

    #[test]
    fn a_worker_polls_every_kind_by_default_or_at_its_placement() {
        assert_eq!(
            queues(&[]).unwrap(),
            ["windlass-infrastructure", "windlass-environment"]
        );
        assert_eq!(
            queues(&["--placement", "acme-onprem"]).unwrap(),
            [
                "windlass-infrastructure@acme-onprem",
                "windlass-environment@acme-onprem"
            ]
        );
    }

    #[test]
    fn named_queues_replace_the_default() {
        assert_eq!(
            queues(&["--task-queue", "a", "--task-queue", "b,c"]).unwrap(),
            ["a", "b", "c"]
        );
    }

    #[test]
    fn a_placement_must_be_a_plain_name_and_not_mixed_with_named_queues() {
        assert!(queues(&["--placement", "Acme@x"]).is_err());
        assert!(queues(&["--placement", "acme", "--task-queue", "a"]).is_err());
    }
}
