//! Step logs read a page at a time: a long run's log is never loaded whole for one reader.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::Store;
use crate::Result;
use crate::clock;
use crate::live_logs::LiveLine;
use crate::step_logs::LogLine;

/// Where a page of a run's log ends, in print order: (time, step, attempt, seq).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLogCursor {
    pub at: DateTime<Utc>,
    pub step: String,
    pub attempt: u32,
    pub seq: u32,
}

impl RunLogCursor {
    pub fn after(line: &LiveLine) -> Self {
        Self {
            at: line.at,
            step: line.step.clone(),
            attempt: line.attempt,
            seq: line.seq,
        }
    }
}

impl Store {
    /// Up to `limit` lines of a run, all steps, in print order, after `after` (from the
    /// start without one).
    pub async fn run_log_page(
        &self,
        run_id: Uuid,
        after: Option<&RunLogCursor>,
        limit: u32,
    ) -> Result<Vec<LiveLine>> {
        // Before every line there is: the epoch sorts first as stored text.
        let start = RunLogCursor {
            at: DateTime::<Utc>::UNIX_EPOCH,
            step: String::new(),
            attempt: 0,
            seq: 0,
        };
        let (cursor, inclusive) = match after {
            Some(cursor) => (cursor, false),
            None => (&start, true),
        };
        let rows = sqlx::query(
            "SELECT step_key, attempt, seq, at, level, line FROM step_log_lines \
             WHERE run_id = $1 AND (at > $2 OR (at = $2 AND (step_key > $3 OR (step_key = $3 \
               AND (attempt > $4 OR (attempt = $4 AND (seq > $5 OR ($6 = 1 AND seq = $5)))))))) \
             ORDER BY at, step_key, attempt, seq LIMIT $7",
        )
        .bind(run_id.to_string())
        .bind(clock::to_db(cursor.at))
        .bind(&cursor.step)
        .bind(i64::from(cursor.attempt))
        .bind(i64::from(cursor.seq))
        .bind(i64::from(inclusive))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(live_line).collect()
    }

    /// When a line of a run was printed; `None` if the store does not have it (yet).
    pub async fn run_log_line_at(
        &self,
        run_id: Uuid,
        step: &str,
        attempt: u32,
        seq: u32,
    ) -> Result<Option<DateTime<Utc>>> {
        let row = sqlx::query(
            "SELECT at FROM step_log_lines \
             WHERE run_id = $1 AND step_key = $2 AND attempt = $3 AND seq = $4",
        )
        .bind(run_id.to_string())
        .bind(step)
        .bind(i64::from(attempt))
        .bind(i64::from(seq))
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| Ok(clock::from_db(&row.try_get::<String, _>("at")?)))
            .transpose()
    }

    /// Up to `limit` lines of one step, every attempt in order, after (attempt, seq).
    pub async fn step_log_page(
        &self,
        run_id: Uuid,
        step_key: &str,
        after: Option<(u32, u32)>,
        limit: u32,
    ) -> Result<Vec<LogLine>> {
        let (attempt, seq, inclusive) = match after {
            Some((attempt, seq)) => (attempt, seq, false),
            None => (0, 0, true),
        };
        let rows = sqlx::query(
            "SELECT attempt, seq, at, level, line FROM step_log_lines \
             WHERE run_id = $1 AND step_key = $2 \
               AND (attempt > $3 OR (attempt = $3 AND (seq > $4 OR ($5 = 1 AND seq = $4)))) \
             ORDER BY attempt, seq LIMIT $6",
        )
        .bind(run_id.to_string())
        .bind(step_key)
        .bind(i64::from(attempt))
        .bind(i64::from(seq))
        .bind(i64::from(inclusive))
        .bind(i64::from(limit))
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
}

fn live_line(row: &AnyRow) -> Result<LiveLine> {
    Ok(LiveLine {
        step: row.try_get("step_key")?,
        attempt: row.try_get::<i64, _>("attempt")? as u32,
        seq: row.try_get::<i64, _>("seq")? as u32,
        at: clock::from_db(&row.try_get::<String, _>("at")?),
        level: row.try_get("level")?,
        line: row.try_get("line")?,
        kind: crate::live_logs::LiveKind::Line,
    })
}
