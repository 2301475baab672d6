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
use crate::cluster_contracts::{
    ClusterActivities, ClusterRecordActivities, ClusterRef, ClusterRequest, Deferral, DriftCheck,
    KeyActivities, KeyRotationRequest, KubeconfigRef, MaintenanceActivities, MaintenanceInput,
    MaintenanceReport, MaintenanceTask, PublishKubeconfig,
};
use crate::outcome::{ended, long_step, step};

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
            step("read-spec", Duration::from_secs(10 * 60)),
        )
        .await,
    )?;
    let Some(current) = current else {
        // Deleted since the schedule fired: nothing to maintain.
        return Ok(MaintenanceReport::default());
    };
    input.cluster = current;
    let window = input.cluster.maintenance_window;
    let request = ClusterRequest {
        cluster: input.cluster.clone(),
        target: input.target.clone(),
    };
    let mut report = MaintenanceReport::default();
    let mut storage = None;
    for task in input.tasks.iter().copied() {
        // A safe point: nothing is half done between tasks.
        loop {
            let now: DateTime<Utc> = ctx.workflow_time().unwrap_or(SystemTime::UNIX_EPOCH).into();
            match next_step(&window, task, now) {
                Next::Run(_) => break,
                Next::WaitUntil(task, until) => {
                    report.deferrals.push(Deferral {
                        task,
                        until: until.to_rfc3339(),
                    });
                    let wait = (until - now).to_std().unwrap_or(Duration::ZERO);
                    ctx.timer(wait).await;
                    if ctx.cancellation_token().is_cancelled() {
                        return Err(WorkflowTermination::cancelled());
                    }
                }
            }
        }
        match task {
            MaintenanceTask::KeyRotation => {
                report.key_rotation = Some(ended(
                    ctx,
                    ctx.execute_activity(
                        KeyActivities::rotate_organization_key,
                        KeyRotationRequest {
                            organization_id: input.cluster.organization_id,
                            max_age_days: KEY_MAX_AGE_DAYS,
                        },
                        step("rotate-organization-key", Duration::from_secs(10 * 60)),
                    )
                    .await,
                )?);
            }
            MaintenanceTask::UpgradeCheck => {
                report.upgrade = Some(ended(
                    ctx,
                    ctx.execute_activity(
                        MaintenanceActivities::check_upgrades,
                        request.clone(),
                        step("check-upgrades", Duration::from_secs(10 * 60)),
                    )
                    .await,
                )?);
            }
            other => {
                // The storage location is needed from here on; the bootstrap converges
                // without changing anything that exists.
                if storage.is_none() {
                    storage = Some(ended(
                        ctx,
                        ctx.execute_activity(
                            ClusterActivities::bootstrap_storage,
                            request.clone(),
                            step("locate-storage", Duration::from_secs(10 * 60)),
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
                                MaintenanceActivities::detect_drift,
                                DriftCheck {
                                    cluster: input.cluster.clone(),
                                    target: input.target.clone(),
                                    storage,
                                },
                                long_step("detect-drift", Duration::from_secs(30 * 60)),
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
                                    cluster: input.cluster.clone(),
                                    target: input.target.clone(),
                                    storage,
                                },
                                step("rotate-kubeconfig", Duration::from_secs(10 * 60)),
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
                                cluster: &input.cluster,
                                target: &input.target,
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
    }
    Ok(report)
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
