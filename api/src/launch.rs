//! Launching a run, shared by every route that starts one (runs, clusters, deployments,
//! webhooks): the idempotency key and its request fingerprint, the run recorded with its
//! audit entry in one commit, then handed to Temporal. (The identity a cloud run acts as
//! is `CloudTarget::acting_for`.)

use axum::http::{HeaderMap, StatusCode};
use futures::future::BoxFuture;
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use windlass_core::runs::{InsertedRun, NewRun, Run, RunStatus};
use windlass_core::store::{Connection, Store};
use windlass_workflows::engine::WorkflowInput;

use crate::AppState;
use crate::caller::Caller;
use crate::problem::Problem;

/// A hash of a request body, so a reused idempotency key with a different body is refused.
pub(crate) fn fingerprint(request: &impl Serialize) -> String {
    let canonical = serde_json::to_vec(request).unwrap_or_default();
    format!("{:x}", Sha256::digest(canonical))
}

pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            Problem::bad_request("Idempotency-Key must be 1 to 255 visible ASCII characters")
        })?;
    Ok(Some(key.to_owned()))
}

/// A run to record and start: its kind and stored input follow from the typed workflow
/// input, which goes to Temporal as it is.
pub(crate) struct RunToStart {
    pub organization_id: Uuid,
    /// What the run is about (`cluster:<id>`, `cloud_account:<id>`): one unfinished run
    /// per target.
    pub target: String,
    pub idempotency_key: Option<String>,
    pub request_fingerprint: String,
    pub input: WorkflowInput,
}

impl RunToStart {
    /// The run to record, and the input to start its workflow with.
    fn into_parts(self) -> Result<(NewRun, WorkflowInput), Problem> {
        let stored = self.input.to_json().map_err(|e| {
            tracing::error!(error = %e, "serialising workflow input");
            Problem::internal()
        })?;
        let run = NewRun {
            organization_id: self.organization_id,
            kind: self.input.kind(),
            target: self.target,
            idempotency_key: self.idempotency_key,
            request_fingerprint: self.request_fingerprint,
            input: stored,
        };
        Ok((run, self.input))
    }
}

/// Who starts a run and how its entry reads: `refused_resource` names what a refused
/// start was about (no run exists then).
pub(crate) struct LaunchAudit<'a> {
    pub caller: &'a Caller,
    pub action: &'a str,
    pub refused_resource: String,
    pub details: serde_json::Value,
}

impl LaunchAudit<'_> {
    /// Records a start refused before anything was written.
    pub async fn refused<T>(
        self,
        state: &AppState,
        organization_id: Uuid,
        problem: Problem,
    ) -> Result<T, Problem> {
        self.caller
            .refused(
                state,
                Some(organization_id),
                self.action,
                self.refused_resource,
                self.details,
                problem,
            )
            .await
    }
}

/// Records a run and starts its workflow; with an idempotency key already used for the
/// same request, returns that run instead (200). A run whose start was interrupted is
/// started now.
///
/// The run, its idempotency key and the start's audit entry (`resource` names what the
/// entry is about) commit together; Temporal is asked after, so a start the API could not
/// hand over stays pending and is handed over by the repeat.
pub(crate) async fn launch(
    state: &AppState,
    audit: LaunchAudit<'_>,
    start: RunToStart,
    resource: impl Fn(&Run) -> String,
) -> Result<(StatusCode, Run), Problem> {
    launch_with(state, audit, start, resource, |_| {
        Box::pin(async { Ok(()) })
    })
    .await
}

/// [`launch`], with `before` made in the same transaction before the run is recorded (a
/// cluster's row, a deployment's).
pub(crate) async fn launch_with<B>(
    state: &AppState,
    audit: LaunchAudit<'_>,
    start: RunToStart,
    resource: impl Fn(&Run) -> String,
    before: B,
) -> Result<(StatusCode, Run), Problem>
where
    B: for<'c> FnOnce(&'c mut Connection) -> BoxFuture<'c, windlass_core::Result<()>>
        + Send
        + 'static,
{
    let organization_id = start.organization_id;
    let (new, input) = start.into_parts()?;
    let in_flight_limit = state.config.runs_in_flight_per_organization;
    let LaunchAudit {
        caller,
        action,
        refused_resource,
        mut details,
    } = audit;
    if let Some(map) = details.as_object_mut() {
        map.insert(
            "idempotency_key".into(),
            new.idempotency_key.is_some().into(),
        );
    }
    let inserted = caller
        .audited(
            state,
            Some(organization_id),
            action,
            |inserted: Option<&InsertedRun>| match inserted {
                Some(InsertedRun::Created(run) | InsertedRun::Existing(run)) => resource(run),
                None => refused_resource.clone(),
            },
            details,
            move |conn| {
                Box::pin(async move {
                    before(conn).await?;
                    Store::insert_run_on(conn, new, in_flight_limit).await
                })
            },
        )
        .await?;
    let (run, status) = match inserted {
        InsertedRun::Existing(run) if run.status != RunStatus::Pending => {
            return Ok((StatusCode::OK, run));
        }
        // A first attempt that died before Temporal answered: finish starting it.
        InsertedRun::Existing(run) => (run, StatusCode::OK),
        InsertedRun::Created(run) => (run, StatusCode::ACCEPTED),
    };
    let run = match state
        .engine
        .start(organization_id, &run.workflow_id, input)
        .await
    {
        Ok(temporal_run_id) => {
            state
                .store
                .mark_run_started(run.id, &temporal_run_id)
                .await?
        }
        Err(error) => {
            // If Temporal did start it and only the answer was lost, the run is real.
            if state
                .engine
                .describe(run.engine_workflow_id())
                .await
                .is_ok()
            {
                tracing::warn!(run_id = %run.id, %error, "start answer lost; workflow exists");
                state.store.mark_run_started(run.id, "").await?
            } else {
                // The run's end is on the record with its start.
                state
                    .store
                    .record_run_end(
                        run.id,
                        RunStatus::Failed,
                        None,
                        Some(&format!("could not start: {error}")),
                        "api",
                    )
                    .await?;
                return Err(error.into());
            }
        }
    };
    tracing::info!(run_id = %run.id, kind = run.kind.as_str(), %organization_id, "run started");
    Ok((status, run))
}
