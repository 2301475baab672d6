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
    let started = stack
        .start_run(org, setup_request(account), None)
        .await
        .unwrap();
    let id = started.id;
    stack.wait_until_finished(org, id).await;
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

/// The database refuses this test's chosen entries, as a full disk, a revoked grant or a
/// lost connection would refuse any.
async fn refuse_entries(stack: &Stack, actions: &[&str]) {
    let list = actions
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(", ");
    sqlx::query(&format!(
        "CREATE TRIGGER refuse_entries BEFORE INSERT ON audit_log \
         WHEN NEW.action IN ({list}) BEGIN SELECT RAISE(ABORT, 'forced append failure'); END"
    ))
    .execute(stack.store.pool_for_tests())
    .await
    .unwrap();
}

#[tokio::test]
async fn a_grant_whose_audit_entry_cannot_be_written_does_not_happen() {
    let stack = Stack::without_worker().await;
    let org = stack.organization().await;
    let base = format!("/v1/organizations/{org}");
    let (_, bindings_before) = stack.api.get(&format!("{base}/role-bindings")).await;
    let (_, tokens_before) = stack.api.get(&format!("{base}/api-tokens")).await;
    refuse_entries(&stack, &["access.bind_role", "access.issue_api_token"]).await;

    let admin = serde_json::json!({"type": "built_in", "role": "admin"});
    let (status, _, refused) = stack
        .api
        .post(
            &format!("{base}/role-bindings"),
            serde_json::json!({"subject": format!("user:{}", uuid::Uuid::new_v4().simple()),
                "role": admin}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{refused}");
    let (status, _, refused) = stack
        .api
        .post(
            &format!("{base}/api-tokens"),
            serde_json::json!({"name": "backdoor", "role": admin, "expires_in_days": 30}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{refused}");
    // Nothing was granted: what an auditor would check.
    assert_eq!(
        stack.api.get(&format!("{base}/role-bindings")).await.1,
        bindings_before
    );
    assert_eq!(
        stack.api.get(&format!("{base}/api-tokens")).await.1,
        tokens_before
    );
    let (_, trail) = stack.api.get(&format!("{base}/audit")).await;
    assert!(!trail.to_string().contains("access.bind_role"), "{trail:#}");
}

#[tokio::test]
async fn oversized_and_credential_named_input_is_on_the_record_not_lost() {
    let stack = Stack::without_worker().await;
    let org = stack.organization().await;
    let base = format!("/v1/organizations/{org}");
    // A 17,000-character custom role name: refused, and the refusal is recorded.
    let name = "r".repeat(17_000);
    let (status, _, refused) = stack
        .api
        .post(
            &format!("{base}/role-bindings"),
            serde_json::json!({"subject": format!("user:{}", uuid::Uuid::new_v4().simple()),
                "role": {"type": "custom",
                "name": name, "grants": [{"permission": "runs_read",
                "scope": {"kind": "all_clusters"}}]}}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let (_, trail) = stack
        .api
        .get(&format!("{base}/audit?action=access.bind_role"))
        .await;
    let entries = trail.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{trail:#}");
    assert_eq!(entries[0]["result"], "failed");
    let kept = entries[0].to_string();
    assert!(kept.len() < 17_000 && kept.contains("sha256:"), "{kept}");

    let out = Command::new(env!("CARGO_BIN_EXE_windlass"))
        .args(["audit", "verify"])
        .env("WINDLASS_DATABASE_URL", &stack.database_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn windlass(stack: &Stack, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_windlass"))
        .args(args)
        .args(["--database-url", &stack.database_url])
        .arg("--kek-file")
        .arg(stack.dir.path().join("kek"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The customer's own check of the exported trail: Python and `cryptography`, no Windlass.
fn customer_verifies(export: &Value) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.json");
    std::fs::write(&path, export.to_string()).unwrap();
    let root = crate::support::repo_root();
    let out = Command::new(root.join(".venv/bin/python"))
        .arg(root.join("scripts/verify_audit_export.py"))
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn a_customer_verifies_its_exported_trail_without_windlass_and_sees_an_edit() {
    let stack = Stack::without_worker().await;
    let org = stack.organization().await;
    let base = format!("/v1/organizations/{org}");
    for name in ["ci", "deploy"] {
        let (status, _, issued) = stack
            .api
            .post(
                &format!("{base}/api-tokens"),
                serde_json::json!({"name": name, "expires_in_days": 7,
                    "role": {"type": "built_in", "role": "viewer"}}),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{issued}");
    }
    let (signed, said) = windlass(&stack, &["audit", "digest"]);
    assert!(signed && said.contains("signed"), "{said}");

    let (status, export) = stack.api.get(&format!("{base}/audit/export")).await;
    assert_eq!(status, StatusCode::OK, "{export}");
    assert_eq!(export["entries"][0]["chain_seq"], 1);
    assert!(
        !export["digests"].as_array().unwrap().is_empty(),
        "{export:#}"
    );
    let (intact, said) = customer_verifies(&export);
    assert!(intact, "{said}");
    let (intact, said) = windlass(&stack, &["audit", "verify"]);
    assert!(intact && said.contains("signed digests match"), "{said}");

    // Someone with the database file edits what a token was issued as.
    let pool = stack.store.pool_for_tests();
    sqlx::query("DROP TRIGGER audit_log_no_update")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE audit_log SET details = '{\"name\":\"ci\",\"role\":\"admin\"}' \
         WHERE organization_id = $1 AND chain_seq = 2",
    )
    .bind(org.to_string())
    .execute(pool)
    .await
    .unwrap();
    let (_, export) = stack.api.get(&format!("{base}/audit/export")).await;
    let (intact, said) = customer_verifies(&export);
    assert!(!intact && said.contains("chain_seq 2"), "{said}");
    let (intact, said) = windlass(&stack, &["audit", "verify"]);
    assert!(!intact, "{said}");
    assert!(
        said.contains(&format!("organization {org}: chain BROKEN")),
        "{said}"
    );
}
