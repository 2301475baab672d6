//! `windlass dev` as a user runs it: one command brings the system up and prints where to
//! look; Ctrl-C takes all of it down, Temporal included.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use windlass_test_support::free_port;

use reqwest::StatusCode;

use uuid::Uuid;
use windlass_api::{CreateCluster, RunDetail, StartRun};
use windlass_core::runs::{RunStatus, StepStatus};
use windlass_test_support::OrganizationClient;

use crate::support::{Api, KillOnDrop, repo_root, step};

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[tokio::test]
async fn dev_starts_everything_and_ctrl_c_stops_everything() {
    let data = tempfile::tempdir().unwrap();
    let (api, temporal, ui, azure, idp) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_windlass"))
        .current_dir(repo_root())
        .args(["dev", "--data-dir"])
        .arg(data.path())
        .args(["--listen", &format!("127.0.0.1:{api}")])
        .args(["--temporal-port", &temporal.to_string()])
        .args(["--temporal-ui-port", &ui.to_string()])
        .args(["--azure-standin-port", &azure.to_string()])
        .args(["--oidc-standin-port", &idp.to_string()])
        .args(["--kube-standin-port", &free_port().to_string()])
        .args(["--azurite-port", &free_port().to_string()])
        .args(["--chart-repository-port", &free_port().to_string()])
        .args(["--moto-port", &free_port().to_string()])
        .args(["--sts-standin-port", &free_port().to_string()])
        .args(["--eks-versions-standin-port", &free_port().to_string()])
        .env("WINDLASS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();

    let started = Instant::now();
    let health = format!("http://127.0.0.1:{api}/healthz");
    loop {
        if let Ok(response) = reqwest::get(&health).await
            && response.status().is_success()
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "API never came up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(port_open(temporal), "Temporal gRPC is up");
    assert!(port_open(azure), "the Azure stand-in is up");
    let openapi = reqwest::get(format!("http://127.0.0.1:{api}/openapi.json"))
        .await
        .unwrap();
    assert!(openapi.status().is_success());

    Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(output.status.success(), "exit status {:?}", output.status);
    let banner = String::from_utf8_lossy(&output.stdout);
    assert!(
        banner.contains(&format!("http://127.0.0.1:{api}")),
        "{banner}"
    );
    assert!(
        banner.contains(&format!("http://127.0.0.1:{ui}")),
        "{banner}"
    );
    assert!(banner.contains("stand-in, not Azure"), "{banner}");
    assert!(
        banner.contains("moto, the AWS emulator, not AWS"),
        "{banner}"
    );
    assert!(banner.contains("aws_access_verify"), "{banner}");
    assert!(banner.contains("Authorization: Bearer"), "{banner}");
    assert!(data.path().join("developer-token").exists());
    for port in [api, temporal, azure] {
        assert!(!port_open(port), "port {port} still open after Ctrl-C");
    }
    assert!(data.path().join("windlass.db").exists());
}

/// The newcomer's EKS path: the banner's demo AWS account (moto's) verifies through the API
/// and an EKS cluster provisions on it, with nothing read from the machine's AWS
/// configuration (the process is given none that works).
#[tokio::test]
async fn dev_verifies_the_demo_aws_account_and_provisions_an_eks_cluster() {
    let data = tempfile::tempdir().unwrap();
    let (api_port, moto, sts, eks) = (free_port(), free_port(), free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_windlass"))
        .current_dir(repo_root())
        .args(["dev", "--data-dir"])
        .arg(data.path())
        .args(["--listen", &format!("127.0.0.1:{api_port}")])
        .args(["--temporal-port", &free_port().to_string()])
        .args(["--temporal-ui-port", &free_port().to_string()])
        .args(["--azure-standin-port", &free_port().to_string()])
        .args(["--oidc-standin-port", &free_port().to_string()])
        .args(["--kube-standin-port", &free_port().to_string()])
        .args(["--azurite-port", &free_port().to_string()])
        .args(["--chart-repository-port", &free_port().to_string()])
        .args(["--moto-port", &moto.to_string()])
        .args(["--sts-standin-port", &sts.to_string()])
        .args(["--eks-versions-standin-port", &eks.to_string()])
        .env("WINDLASS_LOG", "warn")
        // No AWS credentials anywhere the standard chain looks, and a web identity that
        // fails if read: only dev's own stand-in credentials can verify the account.
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/windlass-dev-test/config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/windlass-dev-test/credentials",
        )
        .env(
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "/nonexistent/windlass-dev-test/token",
        )
        .env("AWS_ROLE_ARN", "arn:aws:iam::999999999999:role/developer")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let banner = Arc::new(Mutex::new(String::new()));
    let reader = {
        let banner = banner.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut banner = banner.lock().unwrap();
                banner.push_str(&line);
                banner.push('\n');
            }
        })
    };
    let child = KillOnDrop(child);

    // The banner is printed once everything is up; the organisation is in its curls.
    let started = Instant::now();
    let organization = loop {
        let text = banner.lock().unwrap().clone();
        if text.contains("Ctrl-C stops everything")
            && let Some(org) = text
                .split("/v1/organizations/")
                .nth(1)
                .and_then(|rest| rest.split('/').next())
        {
            break org.to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no banner: {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let text = banner.lock().unwrap().clone();
    assert!(text.contains("moto, the AWS emulator, not AWS"), "{text}");
    assert!(text.contains("aws_access_verify"), "{text}");
    assert!(text.contains("eu-west-3"), "{text}");
    let token = std::fs::read_to_string(data.path().join("developer-token")).unwrap();
    let api = Api {
        base: format!("http://127.0.0.1:{api_port}"),
        http: reqwest::Client::new(),
        token: Some(token.trim().to_owned()),
    };
    let org = format!("/v1/organizations/{organization}");
    let client = OrganizationClient::new(&api, organization.parse().unwrap());

    let (status, accounts) = api.get(&format!("{org}/cloud-accounts")).await;
    assert_eq!(status, StatusCode::OK, "{accounts}");
    let items = accounts["items"]
        .as_array()
        .or_else(|| accounts.as_array())
        .unwrap_or_else(|| panic!("{accounts:#}"));
    let aws = items
        .iter()
        .find(|a| a["provider"] == "aws")
        .unwrap_or_else(|| panic!("no demo AWS account: {accounts:#}"));
    assert_eq!(aws["external_id"], windlass_standins::moto::ACCOUNT_ID);
    let account = aws["id"].as_str().unwrap().to_owned();
    assert!(
        text.contains(&account),
        "the banner names the account: {text}"
    );
    let account: Uuid = account.parse().unwrap();

    // As the banner's curl does.
    let (status, verify) = client
        .start_run_answered(
            &StartRun::AwsAccessVerify {
                cloud_account_id: account,
            },
            Some("dev-aws-verify"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{verify:?}");
    let run = client
        .wait_for_run(verify.unwrap().id, Duration::from_secs(120), finished)
        .await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");

    let created = client
        .create_cluster(&CreateCluster {
            name: "demo-eks".into(),
            cloud_account_id: account,
            region: "eu-west-3".into(),
            kubernetes_version: "1.33".into(),
            network: None,
            node_pools: None,
            maintenance_window: None,
            placement: None,
            environment_types: None,
            dry_run: false,
        })
        .await
        .unwrap();
    let run = client
        .wait_for_run(created.run.id, Duration::from_secs(300), finished)
        .await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    for key in ["bootstrap-storage", "terraform-apply", "publish-kubeconfig"] {
        assert_eq!(
            step(&run, key).status,
            StepStatus::Succeeded,
            "{key}: {run:#?}"
        );
    }
    let detail = client.cluster(created.cluster.id).await;
    assert_eq!(detail.spec.kubernetes_version, "1.33", "{detail:#?}");

    Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    let mut child = child;
    let status = tokio::task::spawn_blocking(move || child.0.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    reader.join().unwrap();
    for port in [api_port, moto, sts, eks] {
        assert!(!port_open(port), "port {port} still open after Ctrl-C");
    }
}

/// The run has finished, however it ended.
fn finished(run: &RunDetail) -> bool {
    run.finished_at.is_some()
}
