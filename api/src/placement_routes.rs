//! `/v1/placement/...`: the run backplane for placed workers. A placed worker holds no
//! database URL and no key-encryption key; what its activities need from the store comes
//! from here, with its placement credential, and only for runs of its organisation's
//! clusters placed at it (`Store::placed_run`): the organisation's payload keys, the
//! secrets a run was granted while it is unfinished, the step journal and log, the
//! deployment records and the run's outcome. Not in the OpenAPI document: these are the
//! workers' routes, not the product's.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use uuid::Uuid;
use windlass_core::crypto::to_hex;
use windlass_core::keys::TEMPORAL_PAYLOADS;
use windlass_core::live_logs::LiveLine;
use windlass_core::placement_wire::{
    GrantedSecret, PayloadKeyVersion, PayloadKeysResponse, RunSecretRequest, StepFinished,
    StepJournalled, StepLogAppend, StepStarted,
};
use windlass_core::placements::Placement;
use windlass_core::runs::RunStatus;
use windlass_core::secret_vault::resolve_sealed_for_run;
use windlass_core::secrets::SecretRef;
use windlass_workflows::deployment_contracts::{
    BeginDeployment, DeploymentStart, DropQueued, FinishDeployment,
};
use windlass_workflows::run_contracts::{OutcomeStatus, RunOutcome};

use crate::AppState;
use crate::authz::Authenticated;
use crate::caller::Caller;
use crate::extract::{Json, Path};
use crate::problem::Problem;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/placement/payload-keys", get(payload_keys))
        .route("/v1/placement/runs/{run_id}/secret", post(secret))
        .route(
            "/v1/placement/runs/{run_id}/steps/started",
            post(step_started),
        )
        .route(
            "/v1/placement/runs/{run_id}/steps/finished",
            post(step_finished),
        )
        .route("/v1/placement/runs/{run_id}/steps/log", post(step_log))
        .route(
            "/v1/placement/runs/{run_id}/deployment/begin",
            post(begin_deployment),
        )
        .route(
            "/v1/placement/runs/{run_id}/deployment/finish",
            post(finish_deployment),
        )
        .route(
            "/v1/placement/runs/{run_id}/deployment/drop",
            post(drop_queued),
        )
        .route("/v1/placement/runs/{run_id}/outcome", post(outcome))
}

/// The placement calling and the run, if it is the placement's (`unfinished`: and has not
/// ended). A refusal is audited in the placement's organisation.
async fn placed_run(
    state: &AppState,
    authn: &Authenticated,
    run_id: Uuid,
    unfinished: bool,
    action: &str,
) -> Result<(Caller, Placement), Problem> {
    let (caller, placement) = authn.placement()?;
    let checked = state
        .store
        .placed_run(&placement, run_id, unfinished)
        .await
        .map_err(Problem::from);
    if checked.is_err() {
        caller
            .record(
                state,
                Some(placement.organization_id),
                action,
                format!("run:{run_id}"),
                &checked,
                serde_json::json!({"placement": placement.name}),
            )
            .await;
    }
    checked?;
    Ok((caller, placement))
}

fn same_run(path: Uuid, body: Uuid) -> Result<(), Problem> {
    if path != body {
        return Err(Problem::unprocessable("the body names another run"));
    }
    Ok(())
}

async fn payload_keys(
    State(state): State<AppState>,
    authn: Authenticated,
) -> Result<axum::Json<PayloadKeysResponse>, Problem> {
    let (_, placement) = authn.placement()?;
    let versions = state
        .keys
        .all_versions(TEMPORAL_PAYLOADS, &placement.organization_id.to_string())
        .await?;
    Ok(axum::Json(PayloadKeysResponse {
        organization_id: placement.organization_id,
        versions: versions
            .into_iter()
            .map(|(version, key)| PayloadKeyVersion {
                version,
                key: to_hex(key.expose_bytes()),
            })
            .collect(),
    }))
}

async fn secret(
    State(state): State<AppState>,
    Path(run_id): Path<Uuid>,
    authn: Authenticated,
    Json(request): Json<RunSecretRequest>,
) -> Result<axum::Json<GrantedSecret>, Problem> {
    let action = "placement.secret_read";
    let (caller, placement) = placed_run(&state, &authn, run_id, true, action).await?;
    let resolved = resolve_sealed_for_run(
        &state.store,
        &state.keys,
        run_id,
        &SecretRef {
            organization_id: placement.organization_id,
            name: request.name.clone(),
        },
    )
    .await
    .map_err(Problem::from);
    caller
        .record(
            &state,
            Some(placement.organization_id),
            action,
            format!("run:{run_id}"),
            &resolved,
            serde_json::json!({"placement": placement.name, "secret": request.name}),
        )
        .await;
    let (sealed, value) = resolved?;
    Ok(axum::Json(GrantedSecret {
        name: request.name,
        value: value.to_string(),
        sealed_tag: format!("{}:{}", sealed.key_version, sealed.ciphertext),
    }))
}

async fn step_started(
    State(state): State<AppState>,
    Path(run_id): Path<Uuid>,
    authn: Authenticated,
    Json(step): Json<StepStarted>,
) -> Result<axum::Json<Option<StepJournalled>>, Problem> {
    placed_run(&state, &authn, run_id, false, "placement.step_started").await?;
    let first_started_at = state.store.record_reported_start(run_id, &step).await?;
    announce_step(&state, run_id, &step.step_key, step.attempt).await;
    Ok(axum::Json(first_started_at.map(|first_started_at| {
        StepJournalled { first_started_at }
    })))
}

async fn step_finished(
    State(state): State<AppState>,
    Path(run_id): Path<Uuid>,
    authn: Authenticated,
    Json(step): Json<StepFinished>,
) -> Result<StatusCode, Problem> {
    placed_run(&state, &authn, run_id, false, "placement.step_finished").await?;
    state.store.record_reported_end(run_id, &step).await?;
    announce_step(&state, run_id, &step.step_key, step.attempt).await;
    Ok(StatusCode::NO_CONTENT)
}

/// A placed worker's step changes reach the run's followers as a shared worker's do.
async fn announce_step(state: &AppState, run_id: Uuid, step: &str, attempt: u32) {
    state
        .live_logs
        .publish(run_id, &LiveLine::step_changed(step, attempt))
        .await;
}

async fn step_log(
    State(state): State<AppState>,
    Path(run_id): Path<Uuid>,
    authn: Authenticated,
    Json(log): Json<StepLogAppend>,
) -> Result<StatusCode, Problem> {
    placed_run(&state, &authn, run_id, false, "placement.step_log").await?;
    // Lines arrive masked: the worker's writer masks before anything leaves it.
    state
        .store
        .append_step_log(run_id, &log.step_key, &log.lines)
        .await?;
    // And to the run's live followers, as a shared worker's writer would.
    let live: Vec<LiveLine> = log
        .lines
        .iter()
        .map(|l| LiveLine {
            step: log.step_key.clone(),
            attempt: l.attempt,
            seq: l.seq,
            at: l.at,
            level: l.level.clone(),
            line: l.line.clone(),
            kind: windlass_core::live_logs::LiveKind::Line,
        })
        .collect();
    state.live_logs.publish_all(run_id, &live).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn begin_deployment(
    State(state): State<AppState>,
    Path(run_id): Path<Uuid>,
    authn: Authenticated,
    Json(request): Json<BeginDeployment>,
) -> Result<axum::Json<DeploymentStart>, Problem> {
    same_run(run_id, request.run_id)?;
    let (caller, placement) =
        placed_run(&state, &authn, run_id, true, "placement.deployment_begin").await?;
    let begun = state
        .store
        .begin_deployment_run(run_id, request.environment_id, request.revision)
        .await
        .map_err(Problem::from);
    caller
        .record(
            &state,
            Some(placement.organization_id),
            "placement.deployment_begin",
            format!("run:{run_id}"),
            &begun,
            serde_json::json!({"placement": placement.name}),
        )
        .await;
    let (proceed, last_good) = begun?;
    Ok(axum::Json(DeploymentStart { proceed, last_good }))
}

async fn finish_deployment(
    State(state): State<AppState>,
    Path(run_id): Path<Uuid>,
    authn: Authenticated,
    Json(request): Json<FinishDeployment>,
) -> Result<StatusCode, Problem> {
    same_run(run_id, request.run_id)?;
    let (caller, placement) =
        placed_run(&state, &authn, run_id, false, "placement.deployment_finish").await?;
    let finished = state
        .store
        .finish_deployment(
            run_id,
            request.state,
            &request.releases,
            request.detail.as_deref(),
        )
        .await
        .map_err(Problem::from);
    caller
        .record(
            &state,
            Some(placement.organization_id),
            "placement.deployment_finish",
            format!("run:{run_id}"),
            &finished,
            serde_json::json!({"placement": placement.name, "state": request.state}),
        )
        .await;
    finished?;
    Ok(StatusCode::NO_CONTENT)
}

async fn drop_queued(
    State(state): State<AppState>,
    Path(run_id): Path<Uuid>,
    authn: Authenticated,
    Json(request): Json<DropQueued>,
) -> Result<StatusCode, Problem> {
    same_run(run_id, request.run_id)?;
    let (caller, placement) =
        placed_run(&state, &authn, run_id, false, "placement.deployment_drop").await?;
    let dropped = state
        .store
        .drop_queued_run(run_id, request.state, &request.detail)
        .await
        .map_err(Problem::from);
    caller
        .record(
            &state,
            Some(placement.organization_id),
            "placement.deployment_drop",
            format!("run:{run_id}"),
            &dropped,
            serde_json::json!({"placement": placement.name}),
        )
        .await;
    dropped?;
    Ok(StatusCode::NO_CONTENT)
}

async fn outcome(
    State(state): State<AppState>,
    Path(run_id): Path<Uuid>,
    authn: Authenticated,
    Json(outcome): Json<RunOutcome>,
) -> Result<StatusCode, Problem> {
    if windlass_core::runs::Run::id_from_workflow_id(&outcome.workflow_id) != Some(run_id) {
        return Err(Problem::unprocessable("the outcome names another run"));
    }
    let (_, placement) = placed_run(&state, &authn, run_id, false, "placement.outcome").await?;
    let status = match outcome.status {
        OutcomeStatus::Succeeded => RunStatus::Succeeded,
        OutcomeStatus::Failed => RunStatus::Failed,
        OutcomeStatus::Cancelled => RunStatus::Cancelled,
    };
    // Appends `workflow.finished` itself, as for a shared worker's run.
    state
        .store
        .record_run_end(
            run_id,
            status,
            outcome.output.as_ref(),
            outcome.error.as_deref(),
            &format!("windlass-worker@{}", placement.name),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
