//! How a worker runs cluster work: where terraform works, the blueprint's tools and their
//! settings.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use windlass_activities::aws::{AwsAccessActivities, StandInCredentials};
use windlass_activities::azure_access::AzureConnector;
use windlass_activities::clusters::{AwsClients, ClusterActivities, ClusterWork};
use windlass_activities::helm::{ChartHosts, Helm};
use windlass_activities::memory_budget::MemoryBudget;
use windlass_activities::rate_limit::RateLimiter;
use windlass_activities::step_log::StepLogs;
use windlass_activities::terraform::Terraform;

#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// Terraform working directories (a cache: each cluster's state lives in its own
    /// storage account).
    #[arg(
        long,
        env = "WINDLASS_CLUSTER_WORKDIR",
        default_value = ".windlass/clusters"
    )]
    pub cluster_workdir: PathBuf,
    /// The cluster charts.
    #[arg(long, env = "WINDLASS_CHARTS_DIR", default_value = "charts")]
    pub charts_dir: PathBuf,
    /// Terraform's CLI configuration (`TF_CLI_CONFIG_FILE`), e.g. a provider mirror for
    /// workers without registry access; unset: terraform's own default.
    #[arg(long, env = "WINDLASS_TERRAFORM_CLI_CONFIG")]
    pub terraform_cli_config: Option<PathBuf>,
    /// How long an interrupted terraform may take to release its state lock before a retry
    /// of its step breaks the lock, when the lock's holder cannot be told dead (a lock of an
    /// earlier attempt of the step, or of a worker on this machine that is gone, is broken
    /// at once).
    #[arg(long, env = "WINDLASS_STALE_LOCK_GRACE_SECONDS", default_value_t = 60)]
    pub stale_lock_grace_seconds: u64,
    /// Memory, in MB, this worker's helm processes may hold together: each starts when what
    /// helm processes were seen to peak at fits, and otherwise waits (its step log says
    /// so). Unset: a quarter of the memory available at start, between 256 MB and 768 MB.
    #[arg(long, env = "WINDLASS_HELM_MEMORY_MB")]
    pub helm_memory_mb: Option<u32>,
    /// How long helm waits for a chart's workloads to become ready.
    #[arg(long, env = "WINDLASS_CHART_TIMEOUT_SECONDS", default_value_t = 600)]
    pub chart_timeout_seconds: u64,
    /// One endpoint for every AWS service (STS, S3), e.g. moto; unset: AWS itself.
    /// Windlass's own AWS credentials come from the standard chain.
    #[arg(long, env = "WINDLASS_AWS_ENDPOINT_URL")]
    pub aws_endpoint_url: Option<String>,
    /// Overrides the endpoint for EKS alone.
    #[arg(long, env = "WINDLASS_AWS_EKS_ENDPOINT_URL")]
    pub aws_eks_endpoint_url: Option<String>,
    /// Fetch user charts from any host, loopback and private ranges included. Off on
    /// shared workers (a chart URL must not reach Windlass's own network); meant for test
    /// beds and `windlass dev`, whose charts live on loopback. Placed workers always may
    /// (they run in the customer's network).
    #[arg(
        long,
        env = "WINDLASS_CHART_HOSTS_ALLOW_PRIVATE",
        default_value_t = false
    )]
    pub chart_hosts_allow_private: bool,
    /// Windlass's own AWS credentials when its AWS is a local stand-in (`windlass dev`'s
    /// moto); never a flag: a worker takes its own from the standard AWS chain.
    #[arg(skip)]
    pub aws_standin_credentials: Option<StandInCredentials>,
}

impl ClusterArgs {
    /// Verifying AWS accounts, on the same STS endpoint as the cluster work.
    pub async fn aws_access(&self) -> AwsAccessActivities {
        AwsAccessActivities::new(
            self.aws_endpoint_url.clone(),
            self.aws_standin_credentials.clone(),
        )
        .await
    }

    pub async fn activities(
        &self,
        azure: AzureConnector,
        step_logs: StepLogs,
        rate_limiter: Option<RateLimiter>,
    ) -> anyhow::Result<ClusterActivities> {
        let workdir = absolute(&self.cluster_workdir)?;
        std::fs::create_dir_all(&workdir)
            .with_context(|| format!("creating {}", workdir.display()))?;
        let mut terraform = Terraform::locate();
        if let Some(config) = &self.terraform_cli_config {
            terraform = terraform.with_env(
                "TF_CLI_CONFIG_FILE",
                absolute(config)?.display().to_string(),
            );
        }
        for (key, value) in azure
            .terraform_cloud_env(&workdir)
            .context("writing terraform's CA bundle")?
        {
            terraform = terraform.with_env(key, value);
        }
        Ok(ClusterActivities::new(ClusterWork {
            azure,
            aws: Some({
                let clients = AwsClients::new(
                    self.aws_endpoint_url.clone(),
                    self.aws_eks_endpoint_url.clone(),
                    self.aws_standin_credentials.clone(),
                )
                .await;
                match rate_limiter {
                    Some(limiter) => clients.with_rate_limiter(limiter),
                    None => clients,
                }
            }),
            terraform,
            helm: Helm::locate().with_memory_budget(MemoryBudget::for_helm(
                self.helm_memory_mb
                    .unwrap_or_else(windlass_activities::memory_budget::default_total_mb),
            )),
            workdir,
            charts_dir: absolute(&self.charts_dir)?,
            stale_lock_grace: Duration::from_secs(self.stale_lock_grace_seconds),
            chart_timeout: Duration::from_secs(self.chart_timeout_seconds),
            worker_name: worker_name(),
            step_logs,
            chart_hosts: if self.chart_hosts_allow_private {
                ChartHosts::Any
            } else {
                ChartHosts::PublicOnly
            },
        }))
    }
}

fn absolute(path: &std::path::Path) -> anyhow::Result<PathBuf> {
    Ok(if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    })
}

/// `host/pid`: who holds a state lock, for the operator reading it.
fn worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "worker".into());
    format!("{host}/{}", std::process::id())
}
