//! Nothing sensitive reaches Temporal's history or the worker's logs in clear: a full Azure
//! setup runs, then the raw history (as Temporal stores it, read with the temporal CLI) and
//! the worker's log are scanned for the credential and for the run's inputs.

use std::process::Stdio;

use base64::Engine as _;
use serde_json::Value;
use windlass_core::runs::RunStatus;
use windlass_test_support::client::output;

use crate::support::{ASSERTION_PREFIX, SETUP_IDENTITY, Stack, repo_root, setup_request};

/// Every string in the history, and what it decodes to if it is base64 (payload data and
/// metadata are base64 in the JSON form).
fn texts(value: &Value, out: &mut Vec<Vec<u8>>) {
    match value {
        Value::String(s) => {
            out.push(s.as_bytes().to_vec());
            if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(s) {
                out.push(decoded);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| texts(v, out)),
        Value::Object(map) => map.values().for_each(|v| texts(v, out)),
        _ => {}
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[tokio::test]
async fn a_full_setup_leaves_no_plaintext_in_history_or_logs() {
    let stack = Stack::without_worker().await;
    let log_path = tempfile::NamedTempFile::new().unwrap();
    let mut worker = stack
        .worker_process_command()
        .env("WINDLASS_LOG", "debug,h2=info,hyper=info,tonic=info")
        .stderr(Stdio::from(log_path.reopen().unwrap()))
        .spawn()
        .unwrap();
    let (org, account) = stack.organization_with_azure_account().await;
    let started = stack
        .start_run(org, setup_request(account), None)
        .await
        .unwrap();
    let id = started.id;
    let run = stack.wait_until_finished(org, id).await;
    worker.kill().unwrap();
    worker.wait().unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    let subscription = run.input["target"]["subscription_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let tenant = run.input["target"]["tenant_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let principal = output(&run)["service_principal_object_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let role = output(&run)["role_definition_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let cli = windlass_workflows::engine::dev_server::find_temporal_cli(&repo_root()).unwrap();
    let shown = std::process::Command::new(cli)
        .args(["workflow", "show", "--output", "json", "--workflow-id"])
        .arg(&run.workflow_id)
        .arg("--address")
        .arg(stack.temporal.address.trim_start_matches("http://"))
        .output()
        .unwrap();
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let history: Value = serde_json::from_slice(&shown.stdout).unwrap();
    let mut strings = Vec::new();
    texts(&history, &mut strings);
    assert!(
        strings
            .iter()
            .filter(|s| s.as_slice() == b"binary/encrypted")
            .count()
            >= 20,
        "the run's payloads went through the encrypting codec"
    );
    for (what, needle) in [
        ("a workload-identity assertion", ASSERTION_PREFIX),
        ("the subscription id", subscription.as_str()),
        ("the tenant id", tenant.as_str()),
        ("the setup identity", SETUP_IDENTITY),
        ("the service principal", principal.as_str()),
        ("the role definition id (an activity output)", role.as_str()),
    ] {
        assert!(
            !strings.iter().any(|s| contains(s, needle)),
            "{what} is in Temporal's history in clear"
        );
    }

    let log = std::fs::read(log_path.path()).unwrap();
    assert!(log.len() > 1000, "the worker logged at debug level");
    // Every assertion the worker minted begins with the same encoded header.
    assert!(
        !contains(&log, ASSERTION_PREFIX),
        "a workload-identity assertion is in the worker's log"
    );
}
