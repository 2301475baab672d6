//! Flags shared by the subcommands. Every flag has an environment variable, so the same
//! binary is configured by a compose file, a Kubernetes manifest or a shell.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use windlass_activities::azure::{AzureClientConfig, AzureEndpoints, ClientAssertionSource};
use windlass_activities::azure_access::{AzureAccess, AzureConnector};
use windlass_core::Store;
use windlass_core::crypto::{AwsKmsKek, KeyEncryptionKey, LocalKeyFile};
use windlass_core::keys::KeyRing;
use windlass_core::live_logs::{LiveLogs, RedisConfig};
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
    /// gRPC address of the Temporal frontend.
    #[arg(
        long,
        env = "WINDLASS_TEMPORAL_ADDRESS",
        default_value = "http://127.0.0.1:7233"
    )]
    pub temporal_address: String,
    #[arg(long, env = "WINDLASS_TEMPORAL_NAMESPACE", default_value = "default")]
    pub temporal_namespace: String,
    /// Task queue runs are started on (API) or polled from (worker).
    #[arg(long, env = "WINDLASS_TASK_QUEUE", default_value = task_queues::INFRASTRUCTURE)]
    pub task_queue: String,
}

impl EngineArgs {
    /// With the payload codec's keys, so nothing reaches Temporal in clear.
    pub async fn config(&self, keys: &KeyRing) -> anyhow::Result<EngineConfig> {
        Ok(EngineConfig {
            address: self.temporal_address.clone(),
            namespace: self.temporal_namespace.clone(),
            task_queue: self.task_queue.clone(),
            environment_task_queue: task_queues::ENVIRONMENT.to_owned(),
            payload_keys: Some(payload_keys(keys).await?),
        })
    }
}

pub async fn payload_keys(keys: &KeyRing) -> anyhow::Result<PayloadKeys> {
    let versions = keys
        .all_versions(windlass_core::keys::TEMPORAL_PAYLOADS, "")
        .await
        .context("loading the payload codec keys")?;
    PayloadKeys::new(versions).context("no payload key")
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
    /// File holding the workload identity token Windlass presents to Entra ID (projected
    /// service-account token or similar). Re-read on every token request.
    #[arg(long, env = "AZURE_FEDERATED_TOKEN_FILE")]
    pub azure_federated_token_file: Option<PathBuf>,
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
}

impl AzureArgs {
    /// Azure activities, or none when no federated token is configured (such a worker
    /// does not take Azure work).
    pub fn activities(&self) -> anyhow::Result<Option<AzureAccess>> {
        Ok(self
            .client_template()?
            .map(|template| AzureAccess::new(AzureConnector::new(template))))
    }

    /// Endpoints, credential source and tuning shared by every Azure client of this worker;
    /// `None` when no federated token is configured.
    pub fn client_template(&self) -> anyhow::Result<Option<AzureClientConfig>> {
        let Some(token_file) = &self.azure_federated_token_file else {
            tracing::warn!("no AZURE_FEDERATED_TOKEN_FILE: this worker runs no Azure activities");
            return Ok(None);
        };
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
            ClientAssertionSource::File(token_file.clone()),
        );
        if let Some(ca) = &self.azure_extra_ca_file {
            template.extra_root_ca_pem = Some(
                std::fs::read_to_string(ca).with_context(|| format!("reading {}", ca.display()))?,
            );
        }
        template.lro_default_poll_interval = Duration::from_secs(self.azure_default_poll_seconds);
        template.provider_poll_initial = Duration::from_secs(self.azure_provider_poll_seconds);
        Ok(Some(template))
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct LiveLogArgs {
    /// Redis for live step logs (`redis://host:6379`), shared by the API and the workers.
    /// Unset: an in-process fan-out, which reaches only followers in the same process (the
    /// embedded default runs both in one).
    #[arg(long, env = "WINDLASS_REDIS_URL")]
    pub redis_url: Option<String>,
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
    pub fn live_logs(&self) -> anyhow::Result<LiveLogs> {
        let live = match &self.redis_url {
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
