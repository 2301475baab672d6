//! The ARM stand-in checked by clients nobody here wrote: the official Azure SDK for
//! Python (azure-identity, azure-mgmt-authorization, -resource, -storage; pinned in
//! scripts/setup.sh) runs `azure_sdk/check_arm_standin.py` against it, with the stand-in's
//! real-world delays on (role replication, assignment propagation, operations on their
//! own clock). What the SDK did is then read back from the stand-in's own journal.

use std::path::PathBuf;
use std::process::Command;

use windlass_standins::azure::{
    Application, AzureStandIn, FederatedCredential, OWNER_ROLE_ID, StandInOptions,
    TOKEN_EXCHANGE_AUDIENCE,
};
use windlass_standins::azurite::Azurite;
use windlass_standins::oidc::OidcIssuerStandIn;

const TENANT: &str = "0d2f3a51-7c1e-4c55-9a3b-5e1f2d3c4b5a";
const SUBSCRIPTION: &str = "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const ADMIN_APP: &str = "11111111-2222-4333-8444-555555555555";
const WORKER_APP: &str = "66666666-7777-4888-8999-aaaaaaaaaaaa";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn application(app_id: &str, issuer: &str, subject: &str) -> Application {
    Application {
        app_id: app_id.to_owned(),
        home_tenant: TENANT.to_owned(),
        display_name: subject.to_owned(),
        multi_tenant: false,
        federated_credentials: vec![FederatedCredential {
            name: subject.to_owned(),
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
            audiences: vec![TOKEN_EXCHANGE_AUDIENCE.to_owned()],
        }],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_azure_sdk_for_python_agrees_with_the_arm_standin() {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh (it installs the Azure SDK)",
        python.display()
    );
    let azurite = Azurite::start().await.expect("Azurite starts");
    // Default faults: the delays real Azure always has are on.
    let standin = AzureStandIn::start_with(StandInOptions {
        blob: Some(azurite.backend()),
        ..StandInOptions::default()
    })
    .await
    .unwrap();
    let issuer = OidcIssuerStandIn::start(0, "unused").await.unwrap();
    let admin =
        standin.register_application(application(ADMIN_APP, &issuer.issuer, "sdk-admin"), &[]);
    standin.assign_role(
        &format!("/subscriptions/{SUBSCRIPTION}"),
        &format!(
            "/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{OWNER_ROLE_ID}"
        ),
        &admin,
    );
    let worker =
        standin.register_application(application(WORKER_APP, &issuer.issuer, "sdk-worker"), &[]);
    let dir = std::env::temp_dir().join(format!("windlass-sdk-check-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("standin-ca.pem");
    std::fs::write(&ca, &standin.ca_cert_pem).unwrap();

    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/azure_sdk/check_arm_standin.py");
    let assertion = |subject| issuer.assertion(subject, TOKEN_EXCHANGE_AUDIENCE, 600);
    let (admin_assertion, worker_assertion) = (assertion("sdk-admin"), assertion("sdk-worker"));
    let base_url = standin.base_url.clone();
    let (ca_path, worker_id) = (ca.clone(), worker.clone());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .env("STANDIN_URL", base_url)
            .env("STANDIN_CA", &ca_path)
            .env("REQUESTS_CA_BUNDLE", &ca_path)
            .env("TENANT_ID", TENANT)
            .env("SUBSCRIPTION_ID", SUBSCRIPTION)
            .env("ADMIN_CLIENT_ID", ADMIN_APP)
            .env("ADMIN_ASSERTION", admin_assertion)
            .env("WORKER_CLIENT_ID", WORKER_APP)
            .env("WORKER_ASSERTION", worker_assertion)
            .env("WORKER_OBJECT_ID", worker_id)
            // Loopback only, whatever the machine's proxy settings.
            .env("NO_PROXY", "127.0.0.1,localhost")
            .output()
            .expect("run the Azure SDK check")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Azure SDK disagreed with the stand-in:\n{stderr}\n{stdout}"
    );
    let observed: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    println!("Azure SDK check: {observed}");

    // The delays were real to the SDK: it saw the role missing and the worker refused.
    assert!(
        observed["worker_refusals_before_propagation"]
            .as_u64()
            .unwrap()
            >= 1,
        "{observed}"
    );
    assert!(
        observed["assignment_refusals"].as_array().unwrap().len()
            + observed["role_read_misses"].as_u64().unwrap() as usize
            >= 1,
        "{observed}"
    );
    assert!(
        observed["policy_message"]
            .as_str()
            .unwrap()
            .contains("Deny new storage accounts"),
        "{observed}"
    );

    // What the stand-in recorded of it.
    let state = standin.state();
    let accounts: Vec<_> = state
        .resources
        .keys()
        .filter(|k| k.contains("/storageaccounts/sdkcheck"))
        .collect();
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    assert_eq!(standin.creations_of(accounts[0]), 1);
    assert!(
        state.role_definitions.is_empty(),
        "the SDK deleted its role"
    );
    assert_eq!(
        state.role_assignments.len(),
        1,
        "only the admin's Owner assignment is left"
    );
    // The SDK's poller followed the creation's Location monitor and honoured its
    // Retry-After (1 s): no two polls of one operation closer than that.
    let polls: Vec<_> = state
        .requests
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/operationresults/"))
        .collect();
    assert!(!polls.is_empty(), "the SDK polled the operation monitors");
    for pair in polls.windows(2) {
        if pair[0].path == pair[1].path {
            let gap = pair[1].at - pair[0].at;
            assert!(gap.num_milliseconds() >= 900, "polled too soon: {gap:?}");
        }
    }
    // The SDK met AnotherOperationInProgress and came back after its Retry-After.
    let busy: Vec<u16> = state
        .requests
        .iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/rg-busy"))
        .map(|r| r.status)
        .collect();
    assert_eq!(busy, [409, 201]);
    assert!(
        state
            .token_requests
            .iter()
            .filter(|t| t.granted)
            .any(|t| t.client_id == WORKER_APP)
    );
    let _ = std::fs::remove_dir_all(dir);
    azurite.stop().await;
}
