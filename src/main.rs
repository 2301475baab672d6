//! `windlass`: one binary. `dev` runs everything on one machine; `serve`, `worker` and
//! `migrate` are the production pieces, configured by flags or environment; `standins`
//! runs the local stand-ins alone for test beds of separate processes.

mod admin;
mod audit_digest_task;
mod cluster_config;
mod config;
mod deploy_command;
mod dev;
mod heap_trim;
mod logging;
mod serve;
mod standins;
mod worker;
mod worker_probes;
mod workers_command;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "windlass",
    version,
    about = "Durable orchestration of cloud access, clusters and deployments"
)]
struct Cli {
    #[arg(
        long,
        env = "WINDLASS_LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    log_format: logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// Parsed once at start-up: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Run everything on this machine: Temporal's dev server, SQLite, the Azure stand-in,
    /// a worker and the API.
    Dev(dev::DevArgs),
    /// Run the HTTP API.
    Serve(serve::ServeArgs),
    /// Run a worker that polls its task queues (every kind of work by default).
    Worker(worker::WorkerArgs),
    /// Apply database migrations and exit.
    Migrate(config::StoreArgs),
    /// The audit log.
    #[command(subcommand)]
    Audit(admin::AuditCommand),
    /// Data keys and the key-encryption key.
    #[command(subcommand)]
    Keys(admin::KeysCommand),
    /// Deploy an environment through the API; `--follow` shows progress and the live log.
    Deploy(deploy_command::DeployArgs),
    /// List the workers polling a task queue (workflow and activity pollers).
    Workers(workers_command::WorkersArgs),
    /// Run the local stand-ins on their own (Azure ARM/Graph/Entra with Azurite, a
    /// Kubernetes API, an OIDC issuer; stand-ins, not the real services) for a test bed
    /// whose API and workers are separate processes.
    Standins(standins::StandInsArgs),
    /// The terraform provider stand-in (azurerm and aws against the local stand-ins; not
    /// the real providers), as terraform starts it from the mirror `windlass dev` and the
    /// tests install.
    #[command(hide = true)]
    ProviderStandin {
        #[arg(long)]
        schema: std::path::PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::ProviderStandin { schema } = &cli.command {
        // A terraform plugin: its stdout carries the handshake, so nothing else may log
        // there; its own logs go to stderr, which terraform keeps.
        logging::init_stderr();
        return windlass_provider_standin::run_plugin(schema);
    }
    logging::init(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Dev(args) => dev::run(args).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Worker(args) => worker::run(args).await,
            Command::Audit(command) => admin::audit(command).await,
            Command::Keys(command) => admin::keys(command).await,
            Command::Workers(args) => workers_command::run(args).await,
            Command::Standins(args) => standins::run(args).await,
            Command::ProviderStandin { .. } => unreachable!("run before the runtime starts"),
            Command::Deploy(args) => {
                let code = deploy_command::run(args).await?;
                if code != std::process::ExitCode::SUCCESS {
                    std::process::exit(1);
                }
                Ok(())
            }
            Command::Migrate(args) => {
                let store = args.connect().await?;
                store.migrate().await?;
                tracing::info!(backend = ?store.backend(), "migrations applied");
                Ok(())
            }
        }
    })
}
