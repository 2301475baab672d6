//! Weekly maintenance of a cluster inside its maintenance window: upgrade check, drift
//! detection, chart updates, credential rotation. Before each task the run checks the
//! window (a safe point): a task that would overrun it waits, on a durable timer, for the
//! next window, and the run carries on from there.

#![allow(unreachable_pub)]

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{WorkflowContext, WorkflowResult, WorkflowTermination};
use windlass_core::maintenance::MaintenanceWindow;

use crate::chart_installs::{ChartInstalls, install_cluster_charts};
use uuid::Uuid;
use windlass_core::clusters::ClusterSpec;

use crate::cluster_contracts::{
    CloudTarget, ClusterActivities, ClusterMaintenanceActivities, ClusterRecordActivities,
    ClusterRef, ClusterRequest, ClusterStorage, Deferral, DriftCheck, HoldCluster, KubeconfigRef,
    MaintenanceInput, MaintenanceReport, MaintenanceTask, PublishKubeconfig, ReleaseCluster,
};
use crate::key_rotation_contracts::{KeyRotationActivities, KeyRotationRequest};
use crate::outcome::{bookkeeping, detached, ended, long_step, step};
use crate::run_contracts::OutcomeStatus;

/// How old an organisation's data key may grow before maintenance rotates it.
const KEY_MAX_AGE_DAYS: u32 = 90;

#[workflow]
#[derive(Default)]
pub struct ClusterMaintenance;

/// What to do next at a safe point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Run(MaintenanceTask),
    /// The task does not fit in what is left of the window: wait for the next opening.
    WaitUntil(MaintenanceTask, DateTime<Utc>),
}

/// The decision at a safe point, from the window and the (workflow's) clock only.
pub fn next_step(window: &MaintenanceWindow, task: MaintenanceTask, now: DateTime<Utc>) -> Next {
    let needs = chrono::Duration::from_std(task.needs()).unwrap_or(chrono::Duration::MAX);
    match window.remaining(now) {
        Some(left) if left >= needs => Next::Run(task),
        _ => Next::WaitUntil(task, window.next_start(now)),
    }
}

#[workflow_methods]
impl ClusterMaintenance {
    #[run(name = "cluster_maintenance")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: MaintenanceInput,
    ) -> WorkflowResult<MaintenanceReport> {
        maintain(ctx, input).await
    }
}

async fn maintain(
    ctx: &WorkflowContext<ClusterMaintenance>,
    input: MaintenanceInput,
) -> WorkflowResult<MaintenanceReport> {
    if ctx.patched(crate::patches::MAINTENANCE_HOLDS_ITS_CLUSTER) {
        maintain_holding_the_cluster(ctx, input).await
    } else {
        maintain_on_a_spec_read_once(ctx, input).await
    }
}

/// Before [`crate::patches::MAINTENANCE_HOLDS_ITS_CLUSTER`]: reads the spec once and works
/// whatever else runs on the cluster. Kept for executions that started that way.
async fn maintain_on_a_spec_read_once(
    ctx: &WorkflowContext<ClusterMaintenance>,
    mut input: MaintenanceInput,
) -> WorkflowResult<MaintenanceReport> {
    // The schedule's input is a snapshot of the cluster when the schedule was made; an
    // upgrade since then changed its version.
    let current = ended(
        ctx,
        ctx.execute_activity(
            ClusterRecordActivities::current_spec,
            ClusterRef {
                organization_id: input.cluster.organization_id,
                cluster_id: input.cluster.id,
            },
            step(ctx, "read-spec", Duration::from_secs(10 * 60)),
        )
        .await,
    )?;
    let Some(current) = current else {
        // Deleted since the schedule fired: nothing to maintain.
        return Ok(MaintenanceReport::default());
    };
    input.cluster = current;
    let window = input.cluster.maintenance_window;
    let mut report = MaintenanceReport::default();
    let mut storage = None;
    for task in input.tasks.iter().copied() {
        // A safe point: nothing is half done between tasks.
        loop {
            let now = workflow_now(ctx);
            match next_step(&window, task, now) {
                Next::Run(_) => break,
                Next::WaitUntil(task, until) => {
                    wait_for_window(ctx, &mut report, task, now, until).await?
                }
            }
        }
        run_task(
            ctx,
            task,
            &input.cluster,
            &input.target,
            &mut storage,
            &mut report,
        )
        .await?;
    }
    Ok(report)
}

/// Works only while it holds the cluster (as the cluster's one unfinished run), so it
/// never overlaps a provisioning, an upgrade or a delete; lets go while it waits for the
/// next window, and takes the cluster again, as it is then, before working on.
async fn maintain_holding_the_cluster(
    ctx: &WorkflowContext<ClusterMaintenance>,
    input: MaintenanceInput,
) -> WorkflowResult<MaintenanceReport> {
    let mut report = MaintenanceReport::default();
    let mut holding = None;
    let worked = work_while_holding(ctx, input, &mut report, &mut holding).await;
    if let Some(run_id) = holding {
        let (status, error) = match &worked {
            Ok(()) => (OutcomeStatus::Succeeded, None),
            Err(WorkflowTermination::Cancelled { .. }) => (
                OutcomeStatus::Cancelled,
                Some("cancelled on request".to_owned()),
            ),
            Err(WorkflowTermination::Failed(error)) => {
                (OutcomeStatus::Failed, Some(error.to_string()))
            }
            // Eviction and continue-as-new are not ends of the run.
            Err(_) => return worked.map(|()| report),
        };
        // However it ended, the cluster is let go; if even that fails, a read of the run
        // repairs it from Temporal once this workflow has ended.
        if let Err(error) = release(ctx, run_id, status, error).await {
            tracing::warn!(%error, %run_id, "the cluster could not be let go");
        }
    }
    worked.map(|()| report)
}

async fn work_while_holding(
    ctx: &WorkflowContext<ClusterMaintenance>,
    input: MaintenanceInput,
    report: &mut MaintenanceReport,
    holding: &mut Option<Uuid>,
) -> WorkflowResult<()> {
    let mut cluster = input.cluster;
    let mut storage = None;
    let mut holds = 0;
    for task in input.tasks.iter().copied() {
        // A safe point: nothing is half done between tasks.
        loop {
            let now = workflow_now(ctx);
            match next_step(&cluster.maintenance_window, task, now) {
                Next::Run(_) if holding.is_some() => break,
                Next::Run(_) => {
                    holds += 1;
                    let held = ended(
                        ctx,
                        ctx.execute_activity(
                            ClusterRecordActivities::hold_for_maintenance,
                            HoldCluster {
                                cluster: ClusterRef {
                                    organization_id: cluster.organization_id,
                                    cluster_id: cluster.id,
                                },
                                workflow_id: ctx.workflow_id().to_owned(),
                                hold: holds,
                            },
                            // Waits (retrying) as long as another run has the cluster.
                            step(ctx, format!("hold-cluster/{holds}"), HOLD_WAIT),
                        )
                        .await,
                    )?;
                    let Some(held) = held else {
                        // Deleted: nothing to maintain.
                        report.cluster_deleted = true;
                        return Ok(());
                    };
                    *holding = Some(held.run_id);
                    report.holds.push(held.run_id);
                    if held.cluster != cluster {
                        // Changed meanwhile (an upgrade, a new window): work on it as it is.
                        storage = None;
                        cluster = held.cluster;
                    }
                    // Waiting for the cluster took time: the window is looked at again.
                }
                Next::WaitUntil(task, until) => {
                    if let Some(run_id) = *holding {
                        release(ctx, run_id, OutcomeStatus::Succeeded, None).await?;
                        *holding = None;
                    }
                    wait_for_window(ctx, report, task, now, until).await?;
                }
            }
        }
        run_task(ctx, task, &cluster, &input.target, &mut storage, report).await?;
    }
    Ok(())
}

/// How long maintenance waits for a cluster another run holds before it gives up.
const HOLD_WAIT: Duration = Duration::from_secs(7 * 24 * 3600);

async fn release(
    ctx: &WorkflowContext<ClusterMaintenance>,
    run_id: Uuid,
    status: OutcomeStatus,
    error: Option<String>,
) -> WorkflowResult<()> {
    // Letting go after a cancellation must not be cancelled.
    ctx.execute_activity(
        ClusterRecordActivities::release_from_maintenance,
        ReleaseCluster {
            run_id,
            status,
            error,
        },
        detached(bookkeeping(format!("release-cluster/{run_id}"))),
    )
    .await?;
    Ok(())
}

fn workflow_now(ctx: &WorkflowContext<ClusterMaintenance>) -> DateTime<Utc> {
    ctx.workflow_time().unwrap_or(SystemTime::UNIX_EPOCH).into()
}

async fn wait_for_window(
    ctx: &WorkflowContext<ClusterMaintenance>,
    report: &mut MaintenanceReport,
    task: MaintenanceTask,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> WorkflowResult<()> {
    report.deferrals.push(Deferral {
        task,
        until: until.to_rfc3339(),
    });
    let wait = (until - now).to_std().unwrap_or(Duration::ZERO);
    ctx.timer(wait).await;
    if ctx.cancellation_token().is_cancelled() {
        return Err(WorkflowTermination::cancelled());
    }
    Ok(())
}

async fn run_task(
    ctx: &WorkflowContext<ClusterMaintenance>,
    task: MaintenanceTask,
    cluster: &ClusterSpec,
    target: &CloudTarget,
    storage: &mut Option<ClusterStorage>,
    report: &mut MaintenanceReport,
) -> WorkflowResult<()> {
    let request = ClusterRequest {
        cluster: cluster.clone(),
        target: target.clone(),
    };
    match task {
        MaintenanceTask::KeyRotation => {
            report.key_rotation = Some(ended(
                ctx,
                ctx.execute_activity(
                    KeyRotationActivities::rotate_organization_key,
                    KeyRotationRequest {
                        organization_id: cluster.organization_id,
                        max_age_days: KEY_MAX_AGE_DAYS,
                    },
                    step(ctx, "rotate-organization-key", Duration::from_secs(10 * 60)),
                )
                .await,
            )?);
        }
        MaintenanceTask::UpgradeCheck => {
            report.upgrade = Some(ended(
                ctx,
                ctx.execute_activity(
                    ClusterMaintenanceActivities::check_upgrades,
                    request,
                    step(ctx, "check-upgrades", Duration::from_secs(10 * 60)),
                )
                .await,
            )?);
        }
        other => {
            // The storage location is needed from here on; the bootstrap converges
            // without changing anything that exists.
            if storage.is_none() {
                *storage = Some(ended(
                    ctx,
                    ctx.execute_activity(
                        ClusterActivities::bootstrap_storage,
                        request.clone(),
                        step(ctx, "locate-storage", Duration::from_secs(10 * 60)),
                    )
                    .await,
                )?);
            }
            let storage = storage.clone().expect("set above");
            match other {
                MaintenanceTask::DriftDetection => {
                    report.drift = Some(ended(
                        ctx,
                        ctx.execute_activity(
                            ClusterMaintenanceActivities::detect_drift,
                            DriftCheck {
                                cluster: cluster.clone(),
                                target: target.clone(),
                                storage,
                            },
                            long_step(ctx, "detect-drift", Duration::from_secs(30 * 60)),
                        )
                        .await,
                    )?);
                }
                MaintenanceTask::CredentialRotation => {
                    report.kubeconfig = Some(ended(
                        ctx,
                        ctx.execute_activity(
                            ClusterActivities::publish_kubeconfig,
                            PublishKubeconfig {
                                cluster: cluster.clone(),
                                target: target.clone(),
                                storage,
                            },
                            step(ctx, "rotate-kubeconfig", Duration::from_secs(10 * 60)),
                        )
                        .await,
                    )?);
                }
                MaintenanceTask::ChartUpdates => {
                    let kubeconfig = KubeconfigRef {
                        container: storage.kubeconfigs_container.clone(),
                        blob: "kubeconfig".to_owned(),
                    };
                    report.charts = install_cluster_charts(
                        ctx,
                        ChartInstalls {
                            cluster,
                            target,
                            storage: &storage,
                            kubeconfig: &kubeconfig,
                            step_prefix: "update-chart",
                            sequential: false,
                        },
                    )
                    .await?;
                }
                MaintenanceTask::UpgradeCheck | MaintenanceTask::KeyRotation => {
                    unreachable!("handled above")
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn work_that_fits_runs_and_work_that_would_overrun_waits_for_next_week() {
        let window = MaintenanceWindow::default();
        // Tuesday 2026-11-24, 21:00-23:00 UTC.
        assert_eq!(
            next_step(
                &window,
                MaintenanceTask::ChartUpdates,
                at("2026-11-24T21:05:00Z")
            ),
            Next::Run(MaintenanceTask::ChartUpdates)
        );
        // 22:30: 30 minutes left, chart updates need 45.
        assert_eq!(
            next_step(
                &window,
                MaintenanceTask::ChartUpdates,
                at("2026-11-24T22:30:00Z")
            ),
            Next::WaitUntil(MaintenanceTask::ChartUpdates, at("2026-12-01T21:00:00Z"))
        );
        // ...but a quick check still fits.
        assert_eq!(
            next_step(
                &window,
                MaintenanceTask::UpgradeCheck,
                at("2026-11-24T22:30:00Z")
            ),
            Next::Run(MaintenanceTask::UpgradeCheck)
        );
        // Outside the window nothing runs.
        assert_eq!(
            next_step(
                &window,
                MaintenanceTask::UpgradeCheck,
                at("2026-11-25T09:00:00Z")
            ),
            Next::WaitUntil(MaintenanceTask::UpgradeCheck, at("2026-12-01T21:00:00Z"))
        );
    }
}
