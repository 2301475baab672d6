//! A helm chart repository on loopback (the HTTP protocol helm's `--repo` speaks: an
//! `index.yaml` and the packaged charts it lists), serving charts packaged from local
//! directories by the real helm (`helm package`, `helm repo index`). It stands in for a
//! public repository such as Bitnami's, so the README's example environment deploys in
//! `windlass dev` and the tests without the internet. Plain HTTP, as a repository on the
//! developer's own machine is; the organisation's chart policy must allow it.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// A running repository; stops when dropped.
pub struct ChartRepository {
    /// `http://127.0.0.1:PORT`, the repository URL helm is given.
    pub url: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for ChartRepository {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl ChartRepository {
    /// Packages each chart directory of `charts` with `helm` into `dir`, indexes them and
    /// serves `dir` on `127.0.0.1:port` (0 picks a free port).
    pub async fn start(
        helm: &Path,
        charts: &[PathBuf],
        dir: &Path,
        port: u16,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
        let url = format!("http://{}", listener.local_addr()?);
        for chart in charts {
            run(Command::new(helm)
                .arg("package")
                .arg(chart)
                .arg("-d")
                .arg(dir))?;
        }
        run(Command::new(helm)
            .args(["repo", "index"])
            .arg(dir)
            .arg("--url")
            .arg(&url))?;
        let router = Router::new()
            .route("/{file}", get(file))
            .with_state(dir.to_path_buf());
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::warn!(%error, "the chart repository stand-in stopped");
            }
        });
        Ok(Self { url, server })
    }
}

fn run(command: &mut Command) -> std::io::Result<()> {
    let output = command.output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "{command:?}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// `index.yaml` or a packaged chart; nothing else, and nothing outside the directory.
async fn file(State(dir): State<PathBuf>, UrlPath(name): UrlPath<String>) -> Response {
    let servable = name == "index.yaml"
        || (name.ends_with(".tgz") && !name.contains("..") && !name.starts_with('.'));
    if !servable {
        return StatusCode::NOT_FOUND.into_response();
    }
    match tokio::fs::read(dir.join(&name)).await {
        Ok(bytes) => {
            let kind = if name.ends_with(".tgz") {
                "application/gzip"
            } else {
                "application/x-yaml"
            };
            ([(header::CONTENT_TYPE, kind)], bytes).into_response()
        }
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}
