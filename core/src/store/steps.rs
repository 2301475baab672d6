use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::Store;
use crate::clock;
use crate::runs::{Step, StepOutcome, StepStatus};
use crate::{Error, Result};

impl Store {
    /// [`Store::record_step_started`] of an attempt's start as workers report it (directly,
    /// or through the placement routes).
    pub async fn record_reported_start(
        &self,
        run_id: Uuid,
        step: &crate::placement_wire::StepStarted,
    ) -> Result<Option<DateTime<Utc>>> {
        self.record_step_started(
            run_id,
            &step.step_key,
            &step.activity_type,
            step.attempt,
            step.at,
            step.waited_ms,
        )
        .await
    }

    /// [`Store::record_step_finished`] of an attempt's end as workers report it.
    pub async fn record_reported_end(
        &self,
        run_id: Uuid,
        step: &crate::placement_wire::StepFinished,
    ) -> Result<()> {
        self.record_step_finished(
            run_id,
            &step.step_key,
            step.attempt,
            &step.end.clone().into(),
            step.at,
        )
        .await
    }

    /// An activity attempt began, having waited `waited_ms` for a worker since it was
    /// scheduled (where known). Attempts only move forward: a stale report from a worker
    /// that lost its task (a zombie attempt) changes nothing. Returns when the step's first
    /// attempt started, as journalled (`None` if the run is not one being recorded).
    pub async fn record_step_started(
        &self,
        run_id: Uuid,
        step_key: &str,
        activity_type: &str,
        attempt: u32,
        at: DateTime<Utc>,
        waited_ms: Option<u64>,
    ) -> Result<Option<DateTime<Utc>>> {
        let at = clock::to_db(at);
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO run_steps (run_id, step_key, activity_type, status, attempts, \
             first_started_at, last_started_at, finished_at, last_error, longest_wait_ms) \
             SELECT $1, $2, $3, 'running', $4, $5, $5, NULL, NULL, $6 \
             WHERE EXISTS (SELECT 1 FROM workflow_runs WHERE id = $1 AND finished_at IS NULL) \
             ON CONFLICT (run_id, step_key) DO UPDATE SET status = 'running', \
             attempts = excluded.attempts, \
             last_started_at = excluded.last_started_at, finished_at = NULL, \
             longest_wait_ms = CASE \
                 WHEN run_steps.longest_wait_ms IS NULL THEN excluded.longest_wait_ms \
                 WHEN excluded.longest_wait_ms > run_steps.longest_wait_ms \
                     THEN excluded.longest_wait_ms \
                 ELSE run_steps.longest_wait_ms END \
             WHERE excluded.attempts >= run_steps.attempts",
        )
        .bind(run_id.to_string())
        .bind(step_key)
        .bind(activity_type)
        .bind(i64::from(attempt))
        .bind(&at)
        .bind(waited_ms.map(|ms| i64::try_from(ms).unwrap_or(i64::MAX)))
        .execute(&mut *tx)
        .await?;
        // The API may have died between Temporal accepting the run and recording it.
        sqlx::query(
            "UPDATE workflow_runs SET status = 'running', updated_at = $2 \
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(run_id.to_string())
        .bind(&at)
        .execute(&mut *tx)
        .await?;
        let first: Option<String> = sqlx::query_scalar(
            "SELECT first_started_at FROM run_steps WHERE run_id = $1 AND step_key = $2",
        )
        .bind(run_id.to_string())
        .bind(step_key)
        .fetch_optional(&mut *tx)
        .await?
        .flatten();
        tx.commit().await?;
        Ok(first.as_deref().map(clock::from_db))
    }

    /// Attempt `attempt` ended. Only the newest attempt's end counts: an older attempt that
    /// ends late (a worker frozen past its heartbeat timeout, then resumed) cannot overwrite
    /// what a newer attempt reported.
    pub async fn record_step_finished(
        &self,
        run_id: Uuid,
        step_key: &str,
        attempt: u32,
        outcome: &StepOutcome,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let (status, error, finished) = match outcome {
            StepOutcome::Succeeded => (StepStatus::Succeeded, None, true),
            StepOutcome::Failed {
                error,
                will_retry: true,
            } => (StepStatus::Retrying, Some(error.as_str()), false),
            StepOutcome::Failed {
                error,
                will_retry: false,
            } => (StepStatus::Failed, Some(error.as_str()), true),
            StepOutcome::Cancelled => (StepStatus::Cancelled, None, true),
        };
        let at = clock::to_db(at);
        sqlx::query(
            "UPDATE run_steps SET status = $3, last_error = COALESCE($4, last_error), \
             finished_at = $5 WHERE run_id = $1 AND step_key = $2 AND attempts <= $6",
        )
        .bind(run_id.to_string())
        .bind(step_key)
        .bind(status.as_str())
        .bind(error)
        .bind(finished.then_some(at))
        .bind(i64::from(attempt))
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// In the order they first started.
    pub async fn steps(&self, run_id: Uuid) -> Result<Vec<Step>> {
        let rows = sqlx::query(
            "SELECT step_key, activity_type, status, attempts, first_started_at, last_started_at, \
             finished_at, last_error, longest_wait_ms FROM run_steps WHERE run_id = $1 \
             ORDER BY first_started_at, step_key",
        )
        .bind(run_id.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(step_from_row).collect()
    }
}

fn step_from_row(row: &AnyRow) -> Result<Step> {
    let status: String = row.try_get("status")?;
    Ok(Step {
        key: row.try_get("step_key")?,
        activity_type: row.try_get("activity_type")?,
        status: StepStatus::parse(&status)
            .ok_or_else(|| Error::InvalidInput(format!("corrupt run_steps.status {status:?}")))?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
        first_started_at: clock::from_db(&row.try_get::<String, _>("first_started_at")?),
        last_started_at: clock::from_db(&row.try_get::<String, _>("last_started_at")?),
        finished_at: row
            .try_get::<Option<String>, _>("finished_at")?
            .map(|t| clock::from_db(&t)),
        last_error: row.try_get("last_error")?,
        longest_wait_ms: row
            .try_get::<Option<i64>, _>("longest_wait_ms")?
            .map(|ms| u64::try_from(ms).unwrap_or_default()),
    })
}
