//! moto, the AWS emulator (the real S3, STS and IAM protocols; not a stand-in written
//! here), started as a child process for tests. `scripts/setup.sh` installs it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// The account moto answers for.
pub const ACCOUNT_ID: &str = "123456789012";

/// A running moto server; stopped when dropped.
pub struct Moto {
    // Held for kill_on_drop: the server lives as long as this handle.
    _child: tokio::process::Child,
    port: u16,
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

    /// moto without AWS's managed policies (whatever the environment says).
    pub async fn start() -> std::io::Result<Self> {
        Self::spawn(false, None).await
    }

    /// As [`Moto::start`], on `127.0.0.1:port` (`0`: any free port), as `windlass dev`
    /// runs it.
    pub async fn start_on(port: u16) -> std::io::Result<Self> {
        Self::spawn(false, (port != 0).then_some(port)).await
    }

    /// As [`Moto::start`], with AWS's managed policies (`AmazonEKSClusterPolicy`, ...)
    /// in IAM, as every real account has them: moto loads their documents only when
    /// asked (`MOTO_IAM_LOAD_MANAGED_POLICIES`), which slows IAM's first call.
    pub async fn start_with_aws_managed_policies() -> std::io::Result<Self> {
        Self::spawn(true, None).await
    }

    async fn spawn(aws_managed_policies: bool, fixed_port: Option<u16>) -> std::io::Result<Self> {
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
            let mut child = tokio::process::Command::new(Self::locate())
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env(
                    "MOTO_IAM_LOAD_MANAGED_POLICIES",
                    if aws_managed_policies {
                        "true"
                    } else {
                        "false"
                    },
                )
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
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
                return Ok(Self {
                    _child: child,
                    port,
                });
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
