//! One Temporal schedule per cluster, firing the maintenance workflow when the cluster's
//! maintenance window opens. Overlap policy Skip: a maintenance still running (or waiting
//! for a window) makes the next firing a no-op instead of a second concurrent run.

use std::time::SystemTime;

use chrono::{DateTime, Timelike, Utc};
use temporalio_client::schedules::{
    CreateScheduleOptions, ScheduleAction, ScheduleBackfill, ScheduleCalendarSpec, ScheduleError,
    ScheduleOverlapPolicy, ScheduleSpec,
};
use windlass_core::maintenance::MaintenanceWindow;

use super::{Engine, EngineError};
use crate::ClusterMaintenance;
use crate::cluster_contracts::MaintenanceInput;

/// What an operator sees of a cluster's maintenance schedule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct MaintenanceSchedule {
    pub schedule_id: String,
    pub paused: bool,
    pub note: Option<String>,
    /// The next firings, UTC.
    pub next_runs: Vec<DateTime<Utc>>,
    /// Maintenance runs started so far (most recent last), by workflow id.
    pub recent_runs: Vec<ScheduledRun>,
    /// Firings skipped because the previous maintenance was still going.
    pub skipped_overlaps: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ScheduledRun {
    pub workflow_id: String,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
}

pub fn maintenance_schedule_id(cluster_id: uuid::Uuid) -> String {
    format!("cluster-maintenance-{cluster_id}")
}

/// The window's opening as a Temporal calendar (UTC).
pub fn window_calendar(window: &MaintenanceWindow) -> ScheduleCalendarSpec {
    ScheduleCalendarSpec::builder()
        .second("0")
        .minute(window.start.minute().to_string())
        .hour(window.start.hour().to_string())
        .day_of_week(window.weekday.num_days_from_sunday().to_string())
        .comment(format!(
            "maintenance window opens ({} {} UTC, {} min)",
            window.weekday,
            window.start.format("%H:%M"),
            window.duration_minutes
        ))
        .build()
}

fn schedule_error(e: ScheduleError) -> EngineError {
    match e {
        ScheduleError::Rpc(status) => super::error::from_status(&status),
        other => EngineError::Other(other.to_string()),
    }
}

fn utc(t: SystemTime) -> DateTime<Utc> {
    t.into()
}

impl Engine {
    /// Creates the cluster's schedule, or brings an existing one up to date with the
    /// cluster (its window and spec), keeping whether it is paused.
    pub async fn ensure_maintenance_schedule(
        &self,
        input: MaintenanceInput,
    ) -> Result<String, EngineError> {
        let id = maintenance_schedule_id(input.cluster.id);
        let spec = ScheduleSpec::builder()
            .calendars(vec![window_calendar(&input.cluster.maintenance_window)])
            .build();
        let action = ScheduleAction::start_workflow(
            ClusterMaintenance::run,
            input,
            self.task_queue.clone(),
            format!("{id}-run"),
        );
        let options = CreateScheduleOptions::builder()
            .action(action.clone())
            .spec(spec.clone())
            .overlap_policy(ScheduleOverlapPolicy::Skip)
            .build();
        match self.client.create_schedule(id.clone(), options).await {
            Ok(_) => Ok(id),
            Err(ScheduleError::Rpc(status))
                if status.code() == temporalio_client::tonic::Code::AlreadyExists =>
            {
                self.client
                    .get_schedule_handle(id.clone())
                    .update(
                        move |update| {
                            update.set_spec(spec).set_action(action);
                        },
                        Default::default(),
                    )
                    .await
                    .map_err(schedule_error)?;
                Ok(id)
            }
            Err(e) => Err(schedule_error(e)),
        }
    }

    /// Removes the cluster's schedule (a deleted cluster has no maintenance) and cancels
    /// the maintenance it started that is still going (waiting for a window or for the
    /// cluster); an absent schedule counts as removed.
    pub async fn delete_maintenance_schedule(
        &self,
        cluster_id: uuid::Uuid,
    ) -> Result<(), EngineError> {
        let handle = self
            .client
            .get_schedule_handle(maintenance_schedule_id(cluster_id));
        match handle.describe(Default::default()).await {
            Ok(description) => {
                for running in description.running_actions() {
                    match self
                        .cancel(&running.workflow_id, "the cluster is being deleted")
                        .await
                    {
                        Ok(()) | Err(EngineError::NotFound(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(ScheduleError::Rpc(status))
                if status.code() == temporalio_client::tonic::Code::NotFound =>
            {
                return Ok(());
            }
            Err(e) => return Err(schedule_error(e)),
        }
        match handle.delete(Default::default()).await {
            Ok(()) => Ok(()),
            Err(ScheduleError::Rpc(status))
                if status.code() == temporalio_client::tonic::Code::NotFound =>
            {
                Ok(())
            }
            Err(e) => Err(schedule_error(e)),
        }
    }

    pub async fn maintenance_schedule(
        &self,
        cluster_id: uuid::Uuid,
    ) -> Result<MaintenanceSchedule, EngineError> {
        let id = maintenance_schedule_id(cluster_id);
        let description = self
            .client
            .get_schedule_handle(id.clone())
            .describe(Default::default())
            .await
            .map_err(schedule_error)?;
        Ok(MaintenanceSchedule {
            schedule_id: id,
            paused: description.paused(),
            note: description.note().map(str::to_owned),
            next_runs: description
                .future_action_times()
                .into_iter()
                .map(utc)
                .collect(),
            recent_runs: description
                .recent_actions()
                .into_iter()
                .map(|a| ScheduledRun {
                    workflow_id: a.workflow_id,
                    scheduled_at: a.schedule_time.map(utc),
                    started_at: a.actual_time.map(utc),
                })
                .collect(),
            skipped_overlaps: description.overlap_skipped(),
        })
    }

    pub async fn pause_maintenance(
        &self,
        cluster_id: uuid::Uuid,
        pause: bool,
        note: &str,
    ) -> Result<(), EngineError> {
        let handle = self
            .client
            .get_schedule_handle(maintenance_schedule_id(cluster_id));
        if pause {
            handle.pause(Some(note), Default::default()).await
        } else {
            handle.unpause(Some(note), Default::default()).await
        }
        .map_err(schedule_error)
    }

    /// Starts a maintenance now (skipped if one is running).
    pub async fn trigger_maintenance(&self, cluster_id: uuid::Uuid) -> Result<(), EngineError> {
        self.client
            .get_schedule_handle(maintenance_schedule_id(cluster_id))
            .trigger(ScheduleOverlapPolicy::Skip, Default::default())
            .await
            .map_err(schedule_error)
    }

    /// Runs the firings the schedule would have made between `start` and `end` (after a
    /// pause or an outage), one after another.
    pub async fn backfill_maintenance(
        &self,
        cluster_id: uuid::Uuid,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let backfill = ScheduleBackfill::new(start.into(), end.into())
            .overlap_policy(ScheduleOverlapPolicy::BufferAll)
            .build();
        self.client
            .get_schedule_handle(maintenance_schedule_id(cluster_id))
            .backfill([backfill], Default::default())
            .await
            .map_err(schedule_error)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveTime, Weekday};

    use super::*;

    #[test]
    fn the_default_window_fires_tuesdays_at_21_utc() {
        let calendar = window_calendar(&MaintenanceWindow::default());
        assert_eq!(calendar.day_of_week, "2");
        assert_eq!(calendar.hour, "21");
        assert_eq!(calendar.minute, "0");
        let custom = window_calendar(&MaintenanceWindow {
            weekday: Weekday::Sun,
            start: NaiveTime::from_hms_opt(3, 30, 0).unwrap(),
            duration_minutes: 90,
        });
        assert_eq!(
            (
                custom.day_of_week.as_str(),
                custom.hour.as_str(),
                custom.minute.as_str()
            ),
            ("0", "3", "30")
        );
    }
}
