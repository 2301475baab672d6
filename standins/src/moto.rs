//! moto, the AWS emulator (the real S3, STS, IAM, EC2 and EKS protocols; not a stand-in
//! written here), started as a child process for tests. `scripts/setup.sh` installs it.
//! It runs through `moto_launcher.py`, which adds the EKS version updates moto lacks and
//! points EKS clusters' endpoints at the Kubernetes stand-in: those parts are stand-ins.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// The account moto answers for.
pub const ACCOUNT_ID: &str = "123456789012";

/// The launcher adding what moto lacks (EKS version updates, a cluster endpoint that
/// is the Kubernetes stand-in); see the file's docstring.
const LAUNCHER: &str = include_str!("moto_launcher.py");

/// How moto is started.
#[derive(Debug, Clone, Default)]
pub struct MotoOptions {
    /// Load AWS's managed policies (`AmazonEKSClusterPolicy`, ...) into IAM, as every
    /// real account has them: moto loads their documents only when asked, which slows
    /// IAM's first call.
    pub aws_managed_policies: bool,
    /// `127.0.0.1:port`; `None`: any free port.
    pub port: Option<u16>,
    /// The API server every EKS cluster answers with, and its CA certificate (PEM): the
    /// Kubernetes stand-in, so a kubeconfig made from DescribeCluster works.
    pub eks_cluster_endpoint: Option<(String, String)>,
    /// How long an EKS version update takes (`None`: 1 s).
    pub eks_update_seconds: Option<f64>,
    /// How long EKS clusters and node groups are CREATING and NAT gateways `pending`
    /// (`None`: ready at once).
    pub create_seconds: Option<f64>,
}

/// A running moto server; stopped when dropped.
pub struct Moto {
    // Held for kill_on_drop: the server lives as long as this handle.
    _child: tokio::process::Child,
    /// The launcher script, removed when moto stops.
    launcher: PathBuf,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.launcher);
    }
}

impl Moto {
    /// `.venv/bin/moto_server` in this directory or a parent, or `moto_server` on PATH.
    pub fn locate() -> PathBuf {
        let mut dir = std::env::current_dir().ok();
        while let Some(d) = dir {
            let candidate = d.join(".venv/bin/moto_server");
            if candidate.exists() {
                return candidate;
            }
            dir = d.parent().map(Path::to_path_buf);
        }
        PathBuf::from("moto_server")
    }

    /// The Python moto is installed in: next to `moto_server`.
    fn python() -> PathBuf {
        let server = Self::locate();
        match server.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join("python"),
            _ => PathBuf::from("python3"),
        }
    }

    /// moto without AWS's managed policies (whatever the environment says).
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(MotoOptions::default()).await
    }

    /// As [`Moto::start`], on `127.0.0.1:port` (`0`: any free port), as `windlass dev`
    /// runs it.
    pub async fn start_on(port: u16) -> std::io::Result<Self> {
        Self::start_with(MotoOptions {
            port: (port != 0).then_some(port),
            ..MotoOptions::default()
        })
        .await
    }

    /// As [`Moto::start`], with AWS's managed policies in IAM.
    pub async fn start_with_aws_managed_policies() -> std::io::Result<Self> {
        Self::start_with(MotoOptions {
            aws_managed_policies: true,
            ..MotoOptions::default()
        })
        .await
    }

    pub async fn start_with(options: MotoOptions) -> std::io::Result<Self> {
        let launcher = std::env::temp_dir().join(format!(
            "windlass-moto-{}-{}.py",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&launcher, LAUNCHER)?;
        let started = Self::spawn(&options, &launcher).await;
        if started.is_err() {
            let _ = std::fs::remove_file(&launcher);
        }
        let (child, port) = started?;
        Ok(Self {
            _child: child,
            launcher,
            port,
        })
    }

    async fn spawn(
        options: &MotoOptions,
        launcher: &Path,
    ) -> std::io::Result<(tokio::process::Child, u16)> {
        use base64::Engine as _;
        let fixed_port = options.port;
        // The port is picked by binding and releasing it, so another process can take it
        // before moto binds; moto then exits while the other listener answers the probe.
        // A moto that is not alive after answering is started again on another port.
        // A fixed port is tried once: if it is taken, another port would surprise its user.
        let attempts = if fixed_port.is_some() { 1 } else { 3 };
        for _ in 0..attempts {
            let port = match fixed_port {
                Some(port) => port,
                None => TcpListener::bind("127.0.0.1:0")?.local_addr()?.port(),
            };
            let mut command = tokio::process::Command::new(Self::python());
            command
                .arg(launcher)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env(
                    "MOTO_IAM_LOAD_MANAGED_POLICIES",
                    if options.aws_managed_policies {
                        "true"
                    } else {
                        "false"
                    },
                );
            if let Some((endpoint, ca_pem)) = &options.eks_cluster_endpoint {
                command.env("WINDLASS_MOTO_EKS_ENDPOINT", endpoint).env(
                    "WINDLASS_MOTO_EKS_CA_DATA",
                    base64::engine::general_purpose::STANDARD.encode(ca_pem),
                );
            }
            if let Some(seconds) = options.eks_update_seconds {
                command.env("WINDLASS_MOTO_EKS_UPDATE_SECONDS", seconds.to_string());
            }
            if let Some(seconds) = options.create_seconds {
                command.env("WINDLASS_MOTO_CREATE_SECONDS", seconds.to_string());
            }
            // moto's request log, for debugging a test: `WINDLASS_MOTO_LOG=<file>`.
            let log = || -> Stdio {
                std::env::var_os("WINDLASS_MOTO_LOG")
                    .and_then(|path| {
                        std::fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(path)
                            .ok()
                    })
                    .map_or_else(Stdio::null, Stdio::from)
            };
            let mut child = command
                .stdin(Stdio::null())
                .stdout(log())
                .stderr(log())
                .kill_on_drop(true)
                .spawn()?;
            let mut answered = false;
            for _ in 0..600 {
                if child.try_wait()?.is_some() {
                    break;
                }
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    answered = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if !answered {
                continue;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            if child.try_wait()?.is_none() {
                return Ok((child, port));
            }
        }
        Err(std::io::Error::other(match fixed_port {
            Some(port) => format!("moto_server did not start on port {port} (is it taken?)"),
            None => "moto_server did not start (three ports tried, 60 s each)".to_owned(),
        }))
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates an IAM role trusting the account's principals when they present
    /// `external_id`, through moto's IAM query API; returns its ARN. (moto itself does not
    /// enforce it: `StsTrustStandIn` in front of moto does.)
    pub async fn create_role(&self, name: &str, external_id: &str) -> std::io::Result<String> {
        self.create_role_trusting(name, &[external_id]).await
    }

    /// As [`Moto::create_role`], presenting any of `external_ids`.
    pub async fn create_role_trusting(
        &self,
        name: &str,
        external_ids: &[&str],
    ) -> std::io::Result<String> {
        let trust_policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": { "AWS": format!("arn:aws:iam::{ACCOUNT_ID}:root") },
                "Action": "sts:AssumeRole",
                "Condition": { "StringEquals": { "sts:ExternalId": external_ids } }
            }]
        })
        .to_string();
        let form: Vec<(&str, &str)> = vec![
            ("Action", "CreateRole"),
            ("Version", "2010-05-08"),
            ("RoleName", name),
            ("AssumeRolePolicyDocument", &trust_policy),
        ];
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        let request = format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        );
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = stream;
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        if !response.starts_with("HTTP/1.1 200") {
            return Err(std::io::Error::other(format!(
                "moto CreateRole: {}",
                response.lines().next().unwrap_or_default()
            )));
        }
        Ok(format!("arn:aws:iam::{ACCOUNT_ID}:role/{name}"))
    }
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
