//! Azurite, Microsoft's Blob storage emulator (the real protocol, not a stand-in), started
//! as a child process for tests and `windlass dev`. `scripts/setup.sh` installs it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::azure::BlobBackend;

/// Azurite's documented development account and key.
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
pub const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A running Azurite blob service; stopped (with every process it started) when dropped.
pub struct Azurite {
    child: tokio::process::Child,
    port: u16,
    _dir: Option<tempfile_dir::TempDir>,
}

mod tempfile_dir {
    /// A directory removed on drop (Azurite's data for one test).
    pub struct TempDir(pub std::path::PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Azurite {
    /// `.tools/bin/azurite-blob` in this directory or a parent, or `azurite-blob` on PATH.
    pub fn locate() -> PathBuf {
        if let Ok(path) = std::env::var("WINDLASS_AZURITE") {
            return PathBuf::from(path);
        }
        let mut dir = std::env::current_dir().ok();
        while let Some(d) = dir {
            let candidate = d.join(".tools/bin/azurite-blob");
            if candidate.exists() {
                return candidate;
            }
            dir = d.parent().map(Path::to_path_buf);
        }
        PathBuf::from("azurite-blob")
    }

    /// Starts Azurite on a free loopback port with its data in a fresh directory.
    pub async fn start() -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!("windlass-azurite-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let mut azurite = Self::start_in(&dir, 0).await?;
        azurite._dir = Some(tempfile_dir::TempDir(dir));
        Ok(azurite)
    }

    /// Starts Azurite keeping its data in `dir` (port 0 picks a free one).
    pub async fn start_in(dir: &Path, port: u16) -> std::io::Result<Self> {
        let port = if port == 0 {
            TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()
        } else {
            port
        };
        let child = tokio::process::Command::new(Self::locate())
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(dir)
            .args([
                "--loose",
                "--skipApiVersionCheck",
                "--silent",
                "--disableTelemetry",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            // Its own process group: Azurite's launcher starts node children, and stopping
            // it must stop them all.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()?;
        let mut azurite = Self {
            child,
            port,
            _dir: None,
        };
        // Node starts slowly on a loaded machine; what counts is that it listens.
        for _ in 0..600 {
            // It exits at once if another process took the port meanwhile.
            if let Ok(Some(status)) = azurite.child.try_wait() {
                return Err(std::io::Error::other(format!(
                    "Azurite exited before listening on port {port} ({status})"
                )));
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(azurite);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(std::io::Error::other(
            "Azurite did not start listening within 30 s",
        ))
    }

    /// The development account's path-style URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{DEV_ACCOUNT}", self.port)
    }

    /// What the ARM stand-in needs to back its storage accounts with this Azurite.
    pub fn backend(&self) -> BlobBackend {
        BlobBackend {
            endpoint: self.endpoint(),
            account: DEV_ACCOUNT.into(),
            key: DEV_KEY.into(),
        }
    }

    pub async fn stop(mut self) {
        self.kill_group();
        let _ = self.child.kill().await;
    }

    fn kill_group(&self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: signalling the process group this handle started.
            unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
        }
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        self.kill_group();
    }
}
