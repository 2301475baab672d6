use sqlx::Row;
use uuid::Uuid;

use super::Store;
use crate::Result;
use crate::clock;
use crate::live_logs::LiveLine;
use crate::step_logs::LogLine;

impl Store {
    /// Appends lines of one attempt of a step; a line already written (same sequence
    /// number, e.g. from a retried flush) is kept as it was.
    pub async fn append_step_log(
        &self,
        run_id: Uuid,
        step_key: &str,
        lines: &[LogLine],
    ) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for line in lines {
            sqlx::query(
                "INSERT INTO step_log_lines (run_id, step_key, attempt, seq, at, level, line) \
                 SELECT $1, $2, $3, $4, $5, $6, $7 \
                 WHERE EXISTS (SELECT 1 FROM workflow_runs WHERE id = $1) \
                 ON CONFLICT (run_id, step_key, attempt, seq) DO NOTHING",
            )
            .bind(run_id.to_string())
            .bind(step_key)
            .bind(i64::from(line.attempt))
            .bind(i64::from(line.seq))
            .bind(clock::to_db(line.at))
            .bind(&line.level)
            .bind(&line.line)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A step's lines, every attempt, in order.
    pub async fn step_log(&self, run_id: Uuid, step_key: &str) -> Result<Vec<LogLine>> {
        let rows = sqlx::query(
            "SELECT attempt, seq, at, level, line FROM step_log_lines \
             WHERE run_id = $1 AND step_key = $2 ORDER BY attempt, seq",
        )
        .bind(run_id.to_string())
        .bind(step_key)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(LogLine {
                    attempt: row.try_get::<i64, _>("attempt")? as u32,
                    seq: row.try_get::<i64, _>("seq")? as u32,
                    at: clock::from_db(&row.try_get::<String, _>("at")?),
                    level: row.try_get("level")?,
                    line: row.try_get("line")?,
                })
            })
            .collect()
    }

    /// Every line of a run, all steps, in the order they were printed (then by step,
    /// attempt and sequence for lines of the same microsecond): what a live follower
    /// missed before it subscribed, or everything, once the run is over.
    pub async fn run_log(&self, run_id: Uuid) -> Result<Vec<LiveLine>> {
        let rows = sqlx::query(
            "SELECT step_key, attempt, seq, at, level, line FROM step_log_lines \
             WHERE run_id = $1 ORDER BY at, step_key, attempt, seq",
        )
        .bind(run_id.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(LiveLine {
                    step: row.try_get("step_key")?,
                    attempt: row.try_get::<i64, _>("attempt")? as u32,
                    seq: row.try_get::<i64, _>("seq")? as u32,
                    at: clock::from_db(&row.try_get::<String, _>("at")?),
                    level: row.try_get("level")?,
                    line: row.try_get("line")?,
                    kind: crate::live_logs::LiveKind::Line,
                })
            })
            .collect()
    }
}
