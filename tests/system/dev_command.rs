//! `windlass dev` as a user runs it: one command brings the system up and prints where to
//! look; Ctrl-C takes all of it down, Temporal included.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::repo_root;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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
    assert!(banner.contains("Authorization: Bearer"), "{banner}");
    assert!(data.path().join("developer-token").exists());
    for port in [api, temporal, azure] {
        assert!(!port_open(port), "port {port} still open after Ctrl-C");
    }
    assert!(data.path().join("windlass.db").exists());
}
