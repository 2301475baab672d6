use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Connection as _, Row};
use uuid::Uuid;

use super::{Store, is_unique_violation, parse_uuid};
use crate::clock;
use crate::runs::{InsertedRun, NewRun, Run, RunFilter, RunStatus, WorkflowKind};
use crate::{Error, Result};

const COLUMNS: &str = "id, organization_id, kind, target, workflow_id, temporal_run_id, status, \
     idempotency_key, request_fingerprint, input, output, error, created_at, updated_at, finished_at";

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

impl Store {
    /// Records a run before it is handed to Temporal.
    ///
    /// A repeated idempotency key with the same request returns the first run; with a
    /// different request it is refused. A target with an unfinished run is refused too, so
    /// a setup and a teardown of one account never overlap.
    pub async fn insert_run(&self, new: NewRun) -> Result<InsertedRun> {
        self.insert_run_as(new, Run::workflow_id_for).await
    }

    /// [`Store::insert_run`] on a given connection (for [`Store::audited`]: the run, its
    /// idempotency key and the entry of its start commit together), refused
    /// ([`Error::InFlightLimit`]) when the organisation already has `in_flight_limit`
    /// unfinished runs. A repeat of an accepted request is answered whatever the count.
    pub async fn insert_run_on(
        conn: &mut AnyConnection,
        new: NewRun,
        in_flight_limit: u32,
    ) -> Result<InsertedRun> {
        if Self::run_for_idempotency_key_on(conn, &new)
            .await?
            .is_none()
        {
            let in_flight = Self::runs_in_flight_on(conn, new.organization_id).await?;
            if in_flight >= i64::from(in_flight_limit) {
                return Err(Error::InFlightLimit(format!(
                    "the organization has {in_flight} runs in flight, its limit; \
                     try again once some have finished"
                )));
            }
        }
        Self::insert_run_as_on(conn, new, Run::workflow_id_for).await
    }

    /// Unfinished runs of the organisation that hold workers (maintenance holds wait for
    /// their cluster, not for a worker, and are not counted).
    async fn runs_in_flight_on(conn: &mut AnyConnection, organization_id: Uuid) -> Result<i64> {
        Ok(sqlx::query(
            "SELECT COUNT(*) AS n FROM workflow_runs WHERE organization_id = $1 \
             AND finished_at IS NULL AND kind <> $2",
        )
        .bind(organization_id.to_string())
        .bind(WorkflowKind::ClusterMaintenance.as_str())
        .fetch_one(&mut *conn)
        .await?
        .try_get("n")?)
    }

    /// As [`Store::insert_run`], for a run whose Temporal workflow id is not `run-<id>`.
    pub(super) async fn insert_run_as(
        &self,
        new: NewRun,
        workflow_id: impl FnOnce(Uuid) -> String,
    ) -> Result<InsertedRun> {
        let mut conn = self.pool().acquire().await?;
        Self::insert_run_as_on(&mut conn, new, workflow_id).await
    }

    /// [`Store::insert_run_as`] on a given connection.
    pub(super) async fn insert_run_as_on(
        conn: &mut AnyConnection,
        new: NewRun,
        workflow_id: impl FnOnce(Uuid) -> String,
    ) -> Result<InsertedRun> {
        if let Some(existing) = Self::run_for_idempotency_key_on(conn, &new).await? {
            return same_request(existing, &new).map(InsertedRun::Existing);
        }
        if let Some(active) = Self::unfinished_run_for_target_on(conn, &new.target).await? {
            return Err(target_busy(&active));
        }
        let id = Uuid::new_v4();
        let now = clock::now_db();
        // In a savepoint: a unique violation (a concurrent insert won) must not abort the
        // transaction around it, which then reads the winner.
        let mut savepoint = conn.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO workflow_runs (id, organization_id, kind, target, workflow_id, \
             temporal_run_id, status, idempotency_key, request_fingerprint, input, output, error, \
             created_at, updated_at, finished_at) \
             VALUES ($1, $2, $3, $4, $5, NULL, 'pending', $6, $7, $8, NULL, NULL, $9, $9, NULL)",
        )
        .bind(id.to_string())
        .bind(new.organization_id.to_string())
        .bind(new.kind.as_str())
        .bind(&new.target)
        .bind(workflow_id(id))
        .bind(new.idempotency_key.clone())
        .bind(&new.request_fingerprint)
        .bind(new.input.to_string())
        .bind(&now)
        .execute(&mut *savepoint)
        .await;
        match &inserted {
            Ok(_) => savepoint.commit().await?,
            Err(_) => savepoint.rollback().await?,
        }
        match inserted {
            Ok(_) => Ok(InsertedRun::Created(
                Self::run_on(conn, new.organization_id, id).await?,
            )),
            // Lost a race with a concurrent insert: answer as if we had come second.
            Err(e) if is_unique_violation(&e) => {
                if let Some(existing) = Self::run_for_idempotency_key_on(conn, &new).await? {
                    return same_request(existing, &new).map(InsertedRun::Existing);
                }
                match Self::unfinished_run_for_target_on(conn, &new.target).await? {
                    Some(active) => Err(target_busy(&active)),
                    None => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// [`Store::run_for_idempotency_key`] on a given connection (for [`Store::audited`]).
    async fn run_for_idempotency_key_on(
        conn: &mut AnyConnection,
        new: &NewRun,
    ) -> Result<Option<Run>> {
        let Some(key) = &new.idempotency_key else {
            return Ok(None);
        };
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM workflow_runs WHERE organization_id = $1 AND idempotency_key = $2"
        ))
        .bind(new.organization_id.to_string())
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    pub async fn unfinished_run_for_target(&self, target: &str) -> Result<Option<Run>> {
        let mut conn = self.pool().acquire().await?;
        Self::unfinished_run_for_target_on(&mut conn, target).await
    }

    /// [`Store::unfinished_run_for_target`] on a given connection (for [`Store::audited`]).
    pub async fn unfinished_run_for_target_on(
        conn: &mut AnyConnection,
        target: &str,
    ) -> Result<Option<Run>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM workflow_runs WHERE target = $1 AND finished_at IS NULL"
        ))
        .bind(target)
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// The newest run of `organization_id` on `target` (e.g. `cluster:<id>`), finished or
    /// not.
    pub async fn last_run_for_target(
        &self,
        organization_id: Uuid,
        target: &str,
    ) -> Result<Option<Run>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM workflow_runs WHERE organization_id = $1 AND target = $2 \
             ORDER BY created_at DESC, id DESC LIMIT 1"
        ))
        .bind(organization_id.to_string())
        .bind(target)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// Temporal accepted the run.
    pub async fn mark_run_started(&self, run_id: Uuid, temporal_run_id: &str) -> Result<Run> {
        // The run as it now is, in the same statement: the start path answers with it
        // without reading it again.
        let row = sqlx::query(&format!(
            "UPDATE workflow_runs SET temporal_run_id = $2, updated_at = $3, \
             status = CASE WHEN status = 'pending' THEN 'running' ELSE status END \
             WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(run_id.to_string())
        .bind(temporal_run_id)
        .bind(clock::now_db())
        .fetch_optional(self.writer())
        .await?
        .ok_or_else(|| Error::not_found("run", run_id))?;
        run_from_row(&row)
    }

    /// Records how a run ended. The first recorded end wins: a late duplicate (a retried
    /// activity, the API repairing from Temporal) changes nothing.
    pub async fn finish_run(
        &self,
        run_id: Uuid,
        status: RunStatus,
        output: Option<&serde_json::Value>,
        error: Option<&str>,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let recorded = Self::finish_run_on(&mut tx, run_id, status, output, error).await?;
        tx.commit().await?;
        Ok(recorded)
    }

    /// [`Store::finish_run`] on a connection inside a transaction (for [`Store::audited`]).
    pub async fn finish_run_on(
        conn: &mut AnyConnection,
        run_id: Uuid,
        status: RunStatus,
        output: Option<&serde_json::Value>,
        error: Option<&str>,
    ) -> Result<bool> {
        if !status.is_finished() {
            return Err(Error::InvalidInput(format!(
                "{} is not a final status",
                status.as_str()
            )));
        }
        let now = clock::now_db();
        let updated = sqlx::query(
            "UPDATE workflow_runs SET status = $2, output = $3, error = $4, finished_at = $5, \
             updated_at = $5 WHERE id = $1 AND finished_at IS NULL",
        )
        .bind(run_id.to_string())
        .bind(status.as_str())
        .bind(output.map(|o| o.to_string()))
        .bind(error)
        .bind(&now)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if updated > 0 && status != RunStatus::Succeeded {
            // Steps caught mid-flight will never report again.
            let step_status = if status == RunStatus::Failed {
                "failed"
            } else {
                "cancelled"
            };
            sqlx::query(
                "UPDATE run_steps SET status = $2, finished_at = $3 \
                 WHERE run_id = $1 AND status IN ('running', 'retrying')",
            )
            .bind(run_id.to_string())
            .bind(step_status)
            .bind(&now)
            .execute(&mut *conn)
            .await?;
        }
        Ok(updated > 0)
    }

    /// A run of one organisation: another organisation's run reads as not found.
    pub async fn run(&self, organization_id: Uuid, run_id: Uuid) -> Result<Run> {
        let mut conn = self.pool().acquire().await?;
        Self::run_on(&mut conn, organization_id, run_id).await
    }

    /// [`Store::run`] on a given connection (for [`Store::audited`]).
    pub async fn run_on(
        conn: &mut AnyConnection,
        organization_id: Uuid,
        run_id: Uuid,
    ) -> Result<Run> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM workflow_runs WHERE id = $1 AND organization_id = $2"
        ))
        .bind(run_id.to_string())
        .bind(organization_id.to_string())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found("run", run_id))?;
        run_from_row(&row)
    }

    /// For workers, which know a run only by its workflow id.
    pub async fn run_by_id(&self, run_id: Uuid) -> Result<Option<Run>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM workflow_runs WHERE id = $1"
        ))
        .bind(run_id.to_string())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// Newest first.
    pub async fn runs(&self, organization_id: Uuid, filter: &RunFilter) -> Result<Vec<Run>> {
        let limit = filter.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM workflow_runs WHERE organization_id = $1 \
             AND ($2 = '' OR status = $2) AND ($3 = '' OR kind = $3) \
             AND ($5 = '' OR created_at < $5 OR (created_at = $5 AND id < $6)) \
             ORDER BY created_at DESC, id DESC LIMIT $4"
        ))
        .bind(organization_id.to_string())
        .bind(filter.status.map(RunStatus::as_str).unwrap_or_default())
        .bind(filter.kind.map(WorkflowKind::as_str).unwrap_or_default())
        .bind(i64::from(limit))
        .bind(
            filter
                .before
                .as_ref()
                .map(|p| clock::to_db(p.created_at))
                .unwrap_or_default(),
        )
        .bind(
            filter
                .before
                .as_ref()
                .map(|p| p.id.to_string())
                .unwrap_or_default(),
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(run_from_row).collect()
    }
}

fn same_request(existing: Run, new: &NewRun) -> Result<Run> {
    if existing.request_fingerprint == new.request_fingerprint {
        Ok(existing)
    } else {
        Err(Error::Conflict(format!(
            "Idempotency-Key {:?} was already used for a different request (run {})",
            new.idempotency_key.as_deref().unwrap_or_default(),
            existing.id
        )))
    }
}

fn target_busy(active: &Run) -> Error {
    Error::Conflict(format!(
        "run {} ({}) is still {} on {}; wait for it to finish or cancel it",
        active.id,
        active.kind.as_str(),
        active.status.as_str(),
        active.target
    ))
}

fn run_from_row(row: &AnyRow) -> Result<Run> {
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    let json = |column: &str| -> Result<Option<serde_json::Value>> {
        row.try_get::<Option<String>, _>(column)?
            .map(|text| {
                serde_json::from_str(&text).map_err(|e| {
                    Error::InvalidInput(format!("corrupt workflow_runs.{column}: {e}"))
                })
            })
            .transpose()
    };
    Ok(Run {
        id: parse_uuid(&row.try_get::<String, _>("id")?, "workflow_runs.id")?,
        organization_id: parse_uuid(
            &row.try_get::<String, _>("organization_id")?,
            "workflow_runs.organization_id",
        )?,
        kind: WorkflowKind::parse(&kind)
            .ok_or_else(|| Error::InvalidInput(format!("corrupt workflow_runs.kind {kind:?}")))?,
        target: row.try_get("target")?,
        workflow_id: row.try_get("workflow_id")?,
        temporal_run_id: row.try_get("temporal_run_id")?,
        status: RunStatus::parse(&status).ok_or_else(|| {
            Error::InvalidInput(format!("corrupt workflow_runs.status {status:?}"))
        })?,
        idempotency_key: row.try_get("idempotency_key")?,
        request_fingerprint: row.try_get("request_fingerprint")?,
        input: json("input")?.unwrap_or_default(),
        output: json("output")?,
        error: row.try_get("error")?,
        created_at: clock::from_db(&row.try_get::<String, _>("created_at")?),
        updated_at: clock::from_db(&row.try_get::<String, _>("updated_at")?),
        finished_at: row
            .try_get::<Option<String>, _>("finished_at")?
            .map(|t| clock::from_db(&t)),
    })
}
