//! The audit trail as an auditor reads it: every state-changing call and every workflow
//! end, with who, what, when, how and result; and `windlass audit verify` catching an
//! entry edited behind the database's back.

use std::process::Command;

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{Stack, setup_request};

#[tokio::test]
async fn state_changes_and_workflow_ends_are_audited_and_tampering_is_detected() {
    let stack = Stack::start().await;
    let (org, account) = stack.organization_with_azure_account().await;
    let (_, started) = stack.start_run(org, setup_request(account), None).await;
    let id = started["id"].as_str().unwrap().to_owned();
    stack.wait_until_finished(org, &id).await;
    // Cancelling a finished run is refused, and the refusal is on the record too.
    let (status, _, _) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/runs/{id}/cancel"),
            Value::Null,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    let (status, trail) = stack
        .api
        .get(&format!("/v1/organizations/{org}/audit"))
        .await;
    assert_eq!(status, StatusCode::OK, "{trail:#}");
    let entries = trail.as_array().unwrap();
    let actions: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["result"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("organizations.create", "success"),
            ("cloud_accounts.create", "success"),
            ("runs.start", "success"),
            // The setup proved the organisation controls the subscription.
            ("cloud_accounts.verify", "success"),
            ("workflow.finished", "success"),
            ("runs.cancel", "failed"),
        ],
        "{trail:#}"
    );
    let start = &entries[2];
    assert_eq!(start["resource"], format!("run:{id}"));
    assert_eq!(start["client"], "windlass-system-tests");
    assert_eq!(start["ip"], "127.0.0.1");
    assert_eq!(start["details"]["workflow"], "azure_access_setup");
    assert_eq!(entries[3]["actor_kind"], "system");
    assert_eq!(entries[4]["actor_kind"], "system");
    assert_eq!(entries[5]["details"]["status"], 409);
    let filtered = stack
        .api
        .get(&format!("/v1/organizations/{org}/audit?action=runs.start"))
        .await
        .1;
    assert_eq!(filtered.as_array().unwrap().len(), 1);

    let verify = |label: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_windlass"))
            .args(["audit", "verify", "--database-url", &stack.database_url])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        println!("{label}: {text}");
        (output.status.success(), text)
    };
    let (intact, report) = verify("before");
    assert!(intact, "{report}");
    assert!(report.contains("intact"), "{report}");

    // An attacker with the database file: drop the guard, rewrite who did something.
    let pool = stack.store.pool_for_tests();
    sqlx::query("DROP TRIGGER audit_log_no_update")
        .execute(pool)
        .await
        .unwrap();
    let seq = entries[2]["seq"].as_i64().unwrap();
    sqlx::query("UPDATE audit_log SET action = 'runs.list' WHERE seq = $1")
        .bind(seq)
        .execute(pool)
        .await
        .unwrap();
    let (intact, report) = verify("after");
    assert!(!intact, "{report}");
    assert!(report.contains(&format!("seq {seq}")), "{report}");
}
