//! Terraform for a cluster: the blueprint rendered into the cluster's working directory,
//! its state checked out of the cluster's storage account under the state lock, applied,
//! and synced back as terraform writes it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use temporalio_sdk::activities::{ActivityContext, ActivityError};
use windlass_core::blueprint::{Blueprint, Origin, ResourceKind};
use windlass_core::clusters::ClusterSpec;
use windlass_workflows::cluster_contracts::{
    CloudTarget, ClusterRequest, DriftCheck, DriftReport, PlannedChange, TerraformAction,
    TerraformRun, TerraformSummary,
};

use super::ClusterWork;
use super::clouds::{ClusterCloud, cloud_of};
use super::storage::remote_state;
use super::terraform_credentials::TerraformCredentials;
use super::terraform_progress::{StepCounts, TerraformProgress};
use crate::error::{FailureCode, failure, retryable, terminal};
use crate::heartbeat::{supervised, supervised_with};
use crate::step_log::StepLogWriter;
use crate::terraform::{
    ADOPTED_IMPORTS_FILE, Diagnostic, ExistingResource, LOCAL_STATE_FILE, LockHolder, LockVerdict,
    Plan, PlanGuard, RemoteState, StaleLockPolicy, StateLease, Terraform, TerraformError,
    TerraformMessage, forget, judge, state_addresses, write_backend_override, write_imports,
    write_imports_to,
};

pub(super) async fn apply(
    work: &ClusterWork,
    ctx: &ActivityContext,
    run: &TerraformRun,
) -> Result<TerraformSummary, ActivityError> {
    let (blueprint, terraform_dir) = cluster_workspace(work, &run.cluster, &run.target)?;
    let remote = remote_state(work, &run.target, &run.storage).await?;
    let operation = match run.action {
        TerraformAction::Apply => "OperationTypeApply",
        TerraformAction::Destroy => "OperationTypeDestroy",
    };
    // Before the lock, so a credential that cannot be had leaves no lock to release.
    let cloud = cloud_of(work, &run.target)?;
    let credentials = cloud.terraform_credentials(&terraform_dir).await?;
    // What exists in the cloud is asked before the lock too; nothing can create the
    // cluster's resources meanwhile but a holder of that lock, whose work the apply's own
    // refresh and adoption then see.
    let record = match run.action {
        TerraformAction::Apply => cloud.existing_resources(&blueprint, &run.cluster).await?,
        TerraformAction::Destroy => None,
    };
    let (lease, broken) = take_lock(work, ctx, &remote, operation).await?;
    let guard = PlanGuard {
        protected: cluster_addresses(&blueprint),
        allow_removal: run.allow_cluster_removal || run.action == TerraformAction::Destroy,
    };
    let terraform = with_env(&work.terraform, &credentials);
    let cluster_id = run.cluster.id;
    let mut writer = work
        .step_logs
        .writer(ctx, windlass_core::step_logs::Masker::new());
    if let Some(broken) = &broken {
        writer.line("warn", broken);
    }
    // Checked out and reconciled before the first heartbeat, which then carries where the
    // step began.
    let checked_out = lease.check_out(&terraform_dir).await;
    let reconciled = match (&checked_out, run.action) {
        (Ok(()), TerraformAction::Apply) => {
            reconcile(record.as_deref(), &run.cluster, &terraform_dir)
        }
        (Ok(()), TerraformAction::Destroy) => leave_bootstrap(&blueprint, &terraform_dir),
        _ => Ok(Reconciled::default()),
    };
    let reconciled = match reconciled {
        Ok(reconciled) => reconciled,
        Err(e) => {
            writer.finish().await;
            release(lease, &terraform_dir, cluster_id).await;
            return Err(retryable(e, FailureCode::Workspace, None));
        }
    };
    for address in &reconciled.imported {
        writer.line(
            "warn",
            &format!("{address} exists but is not in the state (an earlier attempt died creating it): importing it"),
        );
    }
    // What the blueprint's own import blocks adopt (the bootstrap's resources) was not
    // created by any attempt, so it is left out of the counts.
    let bootstrapped = bootstrapped_addresses(&blueprint);
    let at_start: BTreeSet<String> = recorded_addresses(&terraform_dir)
        .difference(&bootstrapped)
        .cloned()
        .collect();
    let progress = TerraformProgress::resume(ctx, &at_start);
    let mut imported = reconciled.imported;
    let mut adoption = Adoption {
        bootstrapped,
        refusals: Refusals {
            cloud: cloud.as_ref(),
            blueprint: &blueprint,
        },
        adopted: Vec::new(),
        created_by_earlier_rounds: 0,
    };
    let mut log = |m: &TerraformMessage| log_line(cluster_id, m, &mut writer);
    let outcome = supervised_with(ctx, progress.clone(), async {
        checked_out?;
        lease
            .synced(&terraform_dir, async {
                terraform
                    .init(&terraform_dir, &mut log, ctx.cancelled())
                    .await?;
                apply_adopting(
                    &terraform,
                    &terraform_dir,
                    run.action,
                    &guard,
                    &mut log,
                    ctx,
                    &mut adoption,
                )
                .await
            })
            .await
    })
    .await;
    drop(credentials);
    writer.finish().await;
    release(lease, &terraform_dir, cluster_id).await;
    let plan = outcome.map_err(failure)?;
    imported.extend(adoption.adopted);
    let mut summary = summary(&plan);
    summary.add += adoption.created_by_earlier_rounds;
    let counts = progress.counts(
        StepCounts {
            add: summary.add,
            change: summary.change,
            remove: summary.remove,
        },
        &at_start,
        imported.len(),
    );
    (summary.add, summary.change, summary.remove) = (counts.add, counts.change, counts.remove);
    tracing::info!(cluster = %cluster_id, add = summary.add, change = summary.change, remove = summary.remove, imported = imported.len(), attempt = ctx.info().attempt, "terraform applied");
    Ok(summary)
}

/// The addresses in the state a check-out left in `dir`.
fn recorded_addresses(dir: &Path) -> BTreeSet<String> {
    std::fs::read(dir.join(LOCAL_STATE_FILE))
        .map(|state| state_addresses(&state))
        .unwrap_or_default()
}

/// How many times one attempt imports what an apply found already existing and applies
/// again: each round adopts every resource that round refused, so more than a few means
/// something else is wrong.
const ADOPTION_ROUNDS: usize = 3;

/// How the cloud's provider says it refused to create what already exists.
struct Refusals<'a> {
    cloud: &'a dyn ClusterCloud,
    blueprint: &'a Blueprint,
}

impl Refusals<'_> {
    fn existing(&self, diagnostics: &[Diagnostic]) -> Vec<ExistingResource> {
        self.cloud.refused_as_existing(diagnostics, self.blueprint)
    }
}

/// What the rounds of [`apply_adopting`] before the last one did.
struct Adoption<'a> {
    /// Addresses the blueprint's own import blocks adopt: never counted as created.
    bootstrapped: BTreeSet<String>,
    refusals: Refusals<'a>,
    /// Addresses imported because the cloud already had them.
    adopted: Vec<String>,
    /// Resources created by rounds that then failed on an existing one (the last
    /// round's plan does not count them: they are in the state by then).
    created_by_earlier_rounds: u32,
}

/// Plans and applies; when the provider refuses to create resources because they already
/// exist (an earlier attempt died after the cloud made them and before terraform recorded
/// them), imports them and applies again.
async fn apply_adopting(
    terraform: &Terraform,
    dir: &Path,
    action: TerraformAction,
    guard: &PlanGuard,
    log: &mut (dyn FnMut(&TerraformMessage) + Send),
    ctx: &ActivityContext,
    adoption: &mut Adoption<'_>,
) -> Result<Plan, TerraformError> {
    let destroy = action == TerraformAction::Destroy;
    let mut existing = Vec::new();
    let mut rounds = 0;
    loop {
        let before = recorded_addresses(dir);
        let error = match terraform
            .plan_and_apply(dir, destroy, guard, log, ctx.cancelled())
            .await
        {
            Err(error @ TerraformError::Failed { .. }) if !destroy && rounds < ADOPTION_ROUNDS => {
                error
            }
            other => return other,
        };
        let TerraformError::Failed { diagnostics, .. } = &error else {
            unreachable!("matched above")
        };
        let found = adoption.refusals.existing(diagnostics);
        if found.is_empty() {
            return Err(error);
        }
        let after = recorded_addresses(dir);
        let created = after
            .difference(&before)
            .filter(|a| !adoption.adopted.contains(a) && !adoption.bootstrapped.contains(*a))
            .count();
        existing.extend(found);
        let new = write_imports_to(dir, ADOPTED_IMPORTS_FILE, &after, &existing)
            .map_err(TerraformError::Workspace)?;
        if new.is_empty() {
            // Already imported and still refused: importing again will not help.
            return Err(error);
        }
        for address in &new {
            log(&TerraformMessage::line(
                "warn",
                format!(
                    "{address} exists but is not in the state (an earlier attempt died creating it): importing it"
                ),
            ));
        }
        adoption.created_by_earlier_rounds += created as u32;
        adoption.adopted.extend(new);
        rounds += 1;
    }
}

/// What a reconciliation changed before the apply.
#[derive(Debug, Default)]
struct Reconciled {
    /// In the cloud, not in the state: imported.
    imported: Vec<String>,
}

/// Writes import blocks for what exists in the cloud and the checked-out state in `dir`
/// lacks. (What the state has and the cloud lost is the provider's refresh to find: a
/// lookup that missed something must never make terraform forget it.)
fn reconcile(
    existing: Option<&[ExistingResource]>,
    spec: &ClusterSpec,
    dir: &Path,
) -> std::io::Result<Reconciled> {
    let cluster = spec.id;
    let Some(existing) = existing else {
        return Ok(Reconciled::default());
    };
    let imported = write_imports(dir, &recorded_addresses(dir), existing)?;
    if !imported.is_empty() {
        tracing::warn!(%cluster, imported = imported.len(), "importing what exists before applying");
    }
    Ok(Reconciled { imported })
}

/// Before a destroy: takes what the bootstrap made (the resource group, and the storage
/// account and container holding this very state) out of terraform's hands, as
/// `terraform state rm` would, and drops the import blocks that adopt them. Terraform
/// cannot destroy the backend it writes to; the deletion removes the resource group
/// itself once terraform is done.
fn leave_bootstrap(blueprint: &Blueprint, dir: &Path) -> std::io::Result<Reconciled> {
    let bootstrapped = bootstrapped_addresses(blueprint);
    match std::fs::remove_file(dir.join("imports.tf")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let state = dir.join(LOCAL_STATE_FILE);
    if state.exists() {
        forget(&state, &bootstrapped)?;
    }
    Ok(Reconciled::default())
}

/// `plan -detailed-exitcode` against the cluster's state, under its lock, applying
/// nothing: exit code 2 means the cloud no longer matches what terraform recorded.
pub(super) async fn detect_drift(
    work: &ClusterWork,
    ctx: &ActivityContext,
    check: &DriftCheck,
) -> Result<DriftReport, ActivityError> {
    let (_, terraform_dir) = cluster_workspace(work, &check.cluster, &check.target)?;
    let remote = remote_state(work, &check.target, &check.storage).await?;
    let credentials = cloud_of(work, &check.target)?
        .terraform_credentials(&terraform_dir)
        .await?;
    let (lease, broken) = take_lock(work, ctx, &remote, "OperationTypePlan").await?;
    let terraform = with_env(&work.terraform, &credentials);
    let cluster_id = check.cluster.id;
    let mut writer = work
        .step_logs
        .writer(ctx, windlass_core::step_logs::Masker::new());
    if let Some(broken) = &broken {
        writer.line("warn", broken);
    }
    let mut log = |m: &TerraformMessage| log_line(cluster_id, m, &mut writer);
    let outcome = supervised(ctx, async {
        lease.check_out(&terraform_dir).await?;
        terraform
            .init(&terraform_dir, &mut log, ctx.cancelled())
            .await?;
        terraform
            .plan(&terraform_dir, false, &mut log, ctx.cancelled())
            .await
    })
    .await;
    drop(credentials);
    writer.finish().await;
    release(lease, &terraform_dir, cluster_id).await;
    let plan = outcome.map_err(failure)?;
    let summary = summary(&plan);
    if plan.has_changes {
        tracing::warn!(cluster = %cluster_id, changes = summary.changes.len(), "drift detected");
    }
    Ok(DriftReport {
        drifted: plan.has_changes,
        changes: summary.changes,
    })
}

/// A plan against an empty state in a throwaway directory: what provisioning would create.
/// It takes no lock and writes no state, so it touches nothing of the cluster's.
pub(super) async fn plan_only(
    work: &ClusterWork,
    ctx: &ActivityContext,
    request: &ClusterRequest,
) -> Result<TerraformSummary, ActivityError> {
    let mut blueprint = render(&request.cluster, &request.target)?;
    // A dry run comes before the bootstrap: nothing the import blocks adopt exists yet,
    // so those resources are planned as creations, as they will be made.
    blueprint.files.remove("terraform/imports.tf");
    let scratch = tempfile_dir(work)?;
    write_blueprint(&blueprint, &scratch)?;
    let terraform_dir = scratch.join("terraform");
    write_backend_override(&terraform_dir)
        .map_err(|e| retryable(e, FailureCode::Workspace, None))?;
    let credentials = cloud_of(work, &request.target)?
        .terraform_credentials(&terraform_dir)
        .await?;
    let terraform = with_env(&work.terraform, &credentials);
    let cluster_id = request.cluster.id;
    let mut writer = work
        .step_logs
        .writer(ctx, windlass_core::step_logs::Masker::new());
    let mut log = |m: &TerraformMessage| log_line(cluster_id, m, &mut writer);
    let outcome = supervised(ctx, async {
        terraform
            .init(&terraform_dir, &mut log, ctx.cancelled())
            .await?;
        terraform
            .plan(&terraform_dir, false, &mut log, ctx.cancelled())
            .await
    })
    .await;
    drop(credentials);
    writer.finish().await;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(summary(&outcome.map_err(failure)?))
}

/// The cluster's working directory with the blueprint rendered into it; returns the
/// blueprint and its terraform directory.
fn cluster_workspace(
    work: &ClusterWork,
    cluster: &ClusterSpec,
    target: &CloudTarget,
) -> Result<(Blueprint, PathBuf), ActivityError> {
    let blueprint = render(cluster, target)?;
    let dir = working_directory(work, cluster)?;
    write_blueprint(&blueprint, &dir)?;
    Ok((blueprint, dir.join("terraform")))
}

/// Uploads the last state and releases the lock, whatever happened to the run: a failed
/// or cancelled terraform has stopped writing.
async fn release(lease: StateLease, terraform_dir: &Path, cluster_id: uuid::Uuid) {
    if let Err(e) = lease.release(terraform_dir).await {
        tracing::warn!(cluster = %cluster_id, error = %e, "state lock not released; a retry will find it stale");
    }
}

fn render(cluster: &ClusterSpec, target: &CloudTarget) -> Result<Blueprint, ActivityError> {
    super::rendering::blueprint(cluster, target).map_err(|e| terminal(e, FailureCode::InvalidInput))
}

fn with_env(terraform: &Terraform, credentials: &TerraformCredentials) -> Terraform {
    credentials
        .env()
        .iter()
        .cloned()
        .fold(terraform.clone(), |tf, (k, v)| tf.with_env(k, v))
}

/// Takes the state lock, breaking it first if an earlier attempt of this step, or a worker
/// that is gone, left it behind; returns the lease and, if a lock was broken, why (for the
/// step's log).
async fn take_lock(
    work: &ClusterWork,
    ctx: &ActivityContext,
    remote: &RemoteState,
    operation: &str,
) -> Result<(StateLease, Option<String>), ActivityError> {
    let info = ctx.info();
    let me = LockHolder::this_process(
        &work.worker_name,
        info.workflow_id.as_deref().unwrap_or("-"),
        info.workflow_run_id.as_deref().unwrap_or("-"),
        &info.activity_id,
        info.attempt,
    );
    let who = format!(
        "{} {}/{} attempt {}",
        work.worker_name, me.workflow_id, me.activity_id, me.attempt
    );
    let lock = match remote.lock_with_info(operation, &who, &me.to_info()).await {
        Ok(lease) => return Ok((lease, None)),
        Err(TerraformError::Locked(lock)) => lock,
        Err(other) => return Err(failure(other)),
    };
    let scheduled = info
        .current_attempt_scheduled_time
        .unwrap_or_else(SystemTime::now);
    let policy = StaleLockPolicy {
        grace: work.stale_lock_grace,
    };
    let verdict = judge(&lock, &me, scheduled, SystemTime::now(), policy);
    if !verdict.is_dead() {
        return Err(failure(TerraformError::Locked(lock)));
    }
    let at_once = !matches!(verdict, LockVerdict::StaleAfterGrace);
    tracing::warn!(lock = %lock.id, holder = %lock.who, created = %lock.created, %verdict, at_once, "breaking a state lock left by a dead attempt");
    remote.break_lock(&lock.id).await.map_err(failure)?;
    let lease = remote
        .lock_with_info(operation, &who, &me.to_info())
        .await
        .map_err(failure)?;
    let when = if at_once {
        "at once"
    } else {
        "after the grace"
    };
    let line = format!("state lock held by {} broken {when}: {verdict}", lock.who);
    Ok((lease, Some(line)))
}

/// The addresses of what the bootstrap makes before terraform and the blueprint's import
/// blocks adopt: the resource group, and the storage holding the state.
fn bootstrapped_addresses(blueprint: &Blueprint) -> BTreeSet<String> {
    blueprint
        .inventory
        .resources
        .iter()
        .filter(|r| r.origin == Origin::Bootstrap)
        .map(|r| r.terraform_address.clone())
        .collect()
}

/// The addresses of the cluster resource itself, which a plan may not remove by accident.
fn cluster_addresses(blueprint: &Blueprint) -> Vec<String> {
    blueprint
        .inventory
        .resources
        .iter()
        .filter(|r| r.kind == ResourceKind::KubernetesCluster)
        .map(|r| r.terraform_address.clone())
        .collect()
}

fn working_directory(work: &ClusterWork, cluster: &ClusterSpec) -> Result<PathBuf, ActivityError> {
    let dir = work.workdir.join(cluster.id.to_string());
    std::fs::create_dir_all(&dir).map_err(|e| retryable(e, FailureCode::Workspace, None))?;
    Ok(dir)
}

fn tempfile_dir(work: &ClusterWork) -> Result<PathBuf, ActivityError> {
    let dir = work
        .workdir
        .join("plans")
        .join(uuid::Uuid::new_v4().to_string());
    std::fs::create_dir_all(&dir).map_err(|e| retryable(e, FailureCode::Workspace, None))?;
    Ok(dir)
}

/// Writes the rendered files, replacing what a previous render left (but not terraform's
/// `.terraform/` cache or the local state file, which `check_out` replaces).
fn write_blueprint(blueprint: &Blueprint, root: &Path) -> Result<(), ActivityError> {
    let io = |e: std::io::Error| retryable(e, FailureCode::Workspace, None);
    let terraform_dir = root.join("terraform");
    if terraform_dir.exists() {
        for entry in std::fs::read_dir(&terraform_dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().is_some_and(|e| e == "tf" || e == "json") && path.is_file() {
                std::fs::remove_file(&path).map_err(io)?;
            }
        }
    }
    for (relative, content) in &blueprint.files {
        let path = root.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, content).map_err(io)?;
    }
    Ok(())
}

fn log_line(cluster: uuid::Uuid, message: &TerraformMessage, writer: &mut StepLogWriter) {
    if message.message.is_empty() {
        return;
    }
    let level = match message.level.as_str() {
        "error" => "error",
        "warn" => "warn",
        _ => "info",
    };
    writer.line(level, message.message.trim_end());
    // An error's summary says what failed; its detail says why, which the reader needs.
    if let Some(diagnostic) = message
        .diagnostic
        .as_ref()
        .filter(|d| d.severity == "error")
    {
        for line in diagnostic.detail.lines().filter(|l| !l.trim().is_empty()) {
            writer.line("error", line.trim_end());
        }
    }
    if message.is_error() {
        tracing::warn!(target: "windlass::terraform", %cluster, kind = %message.kind, "{}", message.message);
    } else {
        tracing::info!(target: "windlass::terraform", %cluster, kind = %message.kind, "{}", message.message);
    }
}

fn summary(plan: &Plan) -> TerraformSummary {
    TerraformSummary {
        add: plan.summary.add,
        change: plan.summary.change,
        remove: plan.summary.remove,
        changes: plan
            .report
            .changes
            .iter()
            .map(|c| PlannedChange {
                address: c.address.clone(),
                action: c.action().to_owned(),
            })
            .collect(),
    }
}
