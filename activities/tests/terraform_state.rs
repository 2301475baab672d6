//! Terraform state in the cluster's own storage account: a storage account made through
//! the ARM stand-in, backed by Azurite (the real Blob protocol), reached by real terraform
//! through the worker's `http` backend relay.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use windlass_activities::azure::*;
use windlass_activities::terraform::{
    Plan, PlanGuard, RemoteState, StaleLockPolicy, Terraform, TerraformError, is_stale,
};
use windlass_standins::azure::StandInOptions;
use windlass_standins::azurite::Azurite;
use windlass_standins::{AzureStandIn, OidcIssuerStandIn};

const TENANT: &str = "8e1f0c6a-3b7d-4a51-9c2e-5f6a7b8c9d0e";
const CLIENT: &str = "2b7c4e19-6d3a-4f80-a1b2-c3d4e5f60718";
const SUB: &str = "0f9e8d7c-6b5a-4c3d-2e1f-0a9b8c7d6e5f";
const SUBJECT: &str = "windlass:organization:test";

struct Bed {
    _azurite: Azurite,
    _arm_standin: AzureStandIn,
    container: BlobContainer,
}

/// A resource group and a storage account through ARM, then the state container through
/// the Blob API with the SAS ARM issued: the bootstrap a cluster's provisioning does.
async fn bed() -> Bed {
    let azurite = Azurite::start()
        .await
        .expect("Azurite (scripts/setup.sh installs it)");
    let standin = AzureStandIn::start_with(StandInOptions {
        blob: Some(azurite.backend()),
        ..StandInOptions::default()
    })
    .await
    .unwrap();
    // An identity of the tenant, Owner of the subscription, trusting a local issuer.
    let issuer: &'static OidcIssuerStandIn = Box::leak(Box::new(
        OidcIssuerStandIn::start(0, "unused").await.unwrap(),
    ));
    standin.seed_customer_tenant(TENANT, SUB, CLIENT, &issuer.issuer, SUBJECT);
    let mut config = AzureClientConfig::new(
        AzureEndpoints::single_origin(&standin.base_url).unwrap(),
        TENANT,
        CLIENT,
        ClientAssertionSource::callback(move || async move {
            Ok(issuer.assertion(SUBJECT, "api://AzureADTokenExchange", 600))
        }),
    );
    config.extra_root_ca_pem = Some(standin.ca_cert_pem.clone());
    config.lro_default_poll_interval = Duration::from_millis(20);
    let arm = ArmClient::new(&config).unwrap();
    let tags = BTreeMap::from([("cluster_id".to_string(), "c1".to_string())]);
    arm.put_resource_group(SUB, "windlass-c1", "westeurope", &tags)
        .await
        .unwrap();
    let account = arm
        .put_storage_account(SUB, "windlass-c1", "wlc1state", "westeurope", &tags)
        .await
        .unwrap();
    assert_eq!(account.provisioning_state, "Succeeded");
    let again = arm
        .put_storage_account(SUB, "windlass-c1", "wlc1state", "westeurope", &tags)
        .await
        .unwrap();
    assert_eq!(again, account, "a second PUT converges on the same account");
    let id = account.id.to_ascii_lowercase();
    assert_eq!(standin.creations_of(&id), 1);
    let expiry = chrono::Utc::now() + chrono::Duration::hours(1);
    let sas = arm
        .blob_account_sas(SUB, "windlass-c1", "wlc1state", expiry)
        .await
        .unwrap();
    let container =
        BlobContainer::with_sas(&account.blob_endpoint, "windlass-tfstate-c1", &sas).unwrap();
    container.ensure_exists().await.unwrap();
    container
        .ensure_exists()
        .await
        .expect("creating it again is a no-op");
    Bed {
        _azurite: azurite,
        _arm_standin: standin,
        container,
    }
}

/// A working directory holding the blueprint as exported: its own azurerm backend, which
/// the runner's override replaces.
fn workspace(resources: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let main = format!(
        "terraform {{\n  backend \"azurerm\" {{\n    key = \"cluster.tfstate\"\n  }}\n}}\n{resources}"
    );
    std::fs::write(dir.path().join("main.tf"), main).unwrap();
    dir
}

fn terraform() -> Terraform {
    Terraform::locate().with_interrupt_grace(Duration::from_secs(20))
}

/// Locks, checks out, inits, applies, releases: what the apply activity does.
async fn apply(remote: &RemoteState, dir: &Path, holder: &str) -> Result<Plan, TerraformError> {
    let tf = terraform();
    let lease = remote.lock("OperationTypeApply", holder).await?;
    lease.check_out(dir).await?;
    let result = lease
        .synced(dir, async {
            tf.init(dir, &mut |_| {}, std::future::pending()).await?;
            tf.plan_and_apply(
                dir,
                false,
                &PlanGuard::default(),
                &mut |_| {},
                std::future::pending(),
            )
            .await
        })
        .await;
    lease.release(dir).await?;
    result
}

const TWO: &str = r#"
resource "terraform_data" "network" { input = "10.0.0.0/16" }
resource "terraform_data" "cluster" { input = terraform_data.network.output }
"#;

fn resource_names(state: &[u8]) -> Vec<String> {
    let state: serde_json::Value = serde_json::from_slice(state).unwrap();
    state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn state_lives_in_the_clusters_storage_account() {
    let bed = bed().await;
    let remote = RemoteState::new(
        std::sync::Arc::new(bed.container.clone()),
        "cluster.tfstate",
    );
    let ws = workspace(TWO);
    let plan = apply(&remote, ws.path(), "worker-1").await.unwrap();
    assert_eq!(plan.summary.add, 2);

    let state = remote.read().await.unwrap().expect("state blob");
    assert_eq!(resource_names(&state), ["cluster", "network"]);
    assert!(
        remote.holder().await.unwrap().is_none(),
        "the apply released its lock"
    );

    // Another working directory (another worker) sees the same state.
    let elsewhere = workspace(TWO);
    let plan = apply(&remote, elsewhere.path(), "worker-2").await.unwrap();
    assert!(!plan.has_changes);
}

#[tokio::test]
async fn a_held_lock_names_its_holder_and_is_not_taken_twice() {
    let bed = bed().await;
    let remote = RemoteState::new(
        std::sync::Arc::new(bed.container.clone()),
        "cluster.tfstate",
    );
    let held = remote
        .lock("OperationTypeApply", "worker-1/attempt-1")
        .await
        .unwrap();
    let refused = remote
        .lock("OperationTypeApply", "worker-2/attempt-1")
        .await;
    let Err(TerraformError::Locked(lock)) = refused else {
        panic!("a second lock was granted");
    };
    assert_eq!(lock.id, held.lock_id());
    assert_eq!(lock.who, "worker-1/attempt-1");
    assert!(TerraformError::Locked(lock.clone()).is_retryable());
    assert!(
        !remote.break_lock("another-id").await.unwrap(),
        "only the named lock is broken"
    );
    let ws = tempfile::tempdir().unwrap();
    held.release(ws.path()).await.unwrap();
    assert!(remote.holder().await.unwrap().is_none());
}

/// The apply's terraform, found through the unique sleep its provisioner runs.
fn terraform_running(marker: &str) -> Option<i32> {
    let sleep = std::process::Command::new("pgrep")
        .args(["-f", &format!("^{marker}$")])
        .output()
        .ok()?;
    let sleep_pid = String::from_utf8_lossy(&sleep.stdout)
        .lines()
        .next()?
        .trim()
        .parse::<i32>()
        .ok()?;
    let parent = |pid: i32| -> Option<i32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit(')')
            .next()?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    // sleep <- /bin/sh (local-exec) <- terraform
    let terraform = parent(parent(sleep_pid)?)?;
    let cmdline = std::fs::read_to_string(format!("/proc/{terraform}/cmdline")).ok()?;
    cmdline.contains("terraform").then_some(terraform)
}

#[tokio::test]
async fn a_killed_apply_resumes_elsewhere_without_making_anything_twice() {
    let bed = bed().await;
    let remote = RemoteState::new(
        std::sync::Arc::new(bed.container.clone()),
        "cluster.tfstate",
    );
    let marker = "sleep 47.25";
    let config = format!(
        "{TWO}\nresource \"terraform_data\" \"slow\" {{\n  input = terraform_data.cluster.output\n  provisioner \"local-exec\" {{ command = \"{marker}\" }}\n}}\n"
    );
    let ws = workspace(&config);

    let dir = ws.path().to_path_buf();
    let first = {
        let remote = remote.clone();
        tokio::spawn(async move { apply(&remote, &dir, "worker-1/attempt-1").await })
    };
    let pid = loop {
        if let Some(pid) = terraform_running(marker) {
            break pid;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // While terraform still runs the slow resource, what it finished reaches the blob
    // (a remote backend would hold it back for up to 20 s).
    let mut synced = false;
    for _ in 0..40 {
        if let Some(state) = remote.read().await.unwrap()
            && resource_names(&state).len() == 2
        {
            synced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(synced, "finished resources are uploaded during the apply");
    assert!(
        terraform_running(marker).is_some(),
        "terraform is still applying"
    );

    // A worker crash: terraform dies, and so does its supervisor (the task, aborted before
    // it can release anything).
    first.abort();
    // SAFETY: killing the terraform this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let _ = first.await;
    let killed_at = SystemTime::now();

    let state = remote
        .read()
        .await
        .unwrap()
        .expect("state reached the blob before the crash");
    assert_eq!(
        resource_names(&state),
        ["cluster", "network"],
        "what terraform finished before the crash is in the remote state"
    );
    let lock = remote
        .holder()
        .await
        .unwrap()
        .expect("the dead apply's lock is still held");
    assert_eq!(lock.who, "worker-1/attempt-1");

    let policy = StaleLockPolicy {
        grace: Duration::from_millis(0),
    };
    assert!(!is_stale(&lock, 1, killed_at, SystemTime::now(), policy));
    assert!(is_stale(&lock, 2, killed_at, SystemTime::now(), policy));
    assert!(remote.break_lock(&lock.id).await.unwrap());

    // The retry runs on another worker: a fresh directory, state from the blob.
    let elsewhere = workspace(&config.replace(marker, "true"));
    let plan = apply(&remote, elsewhere.path(), "worker-2/attempt-2")
        .await
        .unwrap();
    assert_eq!(
        plan.report
            .changes
            .iter()
            .map(|c| c.address.as_str())
            .collect::<Vec<_>>(),
        ["terraform_data.slow"],
        "only the unfinished resource is made"
    );
    let state = remote.read().await.unwrap().unwrap();
    assert_eq!(resource_names(&state), ["cluster", "network", "slow"]);
}

#[tokio::test]
async fn an_attempt_whose_lock_was_broken_no_longer_writes_the_state() {
    let bed = bed().await;
    let remote = RemoteState::new(
        std::sync::Arc::new(bed.container.clone()),
        "cluster.tfstate",
    );
    let zombie = remote
        .lock("OperationTypeApply", "worker-1/attempt-1")
        .await
        .unwrap();
    let zombie_dir = tempfile::tempdir().unwrap();
    zombie.check_out(zombie_dir.path()).await.unwrap();

    // Taken for dead: the retry breaks its lock and takes its own.
    assert!(remote.break_lock(zombie.lock_id()).await.unwrap());
    let retry = remote
        .lock("OperationTypeApply", "worker-2/attempt-2")
        .await
        .unwrap();
    let retry_dir = tempfile::tempdir().unwrap();
    retry.check_out(retry_dir.path()).await.unwrap();
    std::fs::write(
        retry_dir.path().join("terraform.tfstate"),
        r#"{"serial": 2}"#,
    )
    .unwrap();
    retry.sync(retry_dir.path()).await.unwrap();

    // The zombie, still running, has something to write: it is refused, the state stays.
    std::fs::write(
        zombie_dir.path().join("terraform.tfstate"),
        r#"{"serial": 1}"#,
    )
    .unwrap();
    let refused = zombie.sync(zombie_dir.path()).await.unwrap_err();
    assert!(matches!(refused, TerraformError::LockLost(_)), "{refused}");
    assert!(!refused.is_retryable());
    assert_eq!(remote.read().await.unwrap().unwrap(), br#"{"serial": 2}"#);

    // And its supervised work is stopped at the next sync instead of running on.
    let stopped = zombie
        .synced(
            zombie_dir.path(),
            std::future::pending::<Result<(), TerraformError>>(),
        )
        .await;
    assert!(matches!(stopped, Err(TerraformError::LockLost(_))));
}
