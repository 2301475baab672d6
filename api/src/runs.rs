//! Starting, listing, reading and cancelling workflow runs.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use windlass_core::cloud_accounts::{CloudAccount, CloudProvider};
use windlass_core::runs::{Run, RunFilter, RunPosition, RunStatus, Step, StepStatus, WorkflowKind};
use windlass_core::step_logs::LogLine;
use windlass_workflows::aws_access_contracts::AwsAccessVerifyInput;
use windlass_workflows::cluster_contracts::CloudTarget;
use windlass_workflows::contracts::{AzureAccessSetupInput, AzureAccessTeardownInput, AzureTarget};
use windlass_workflows::deployment_contracts::CancelledDeployment;
use windlass_workflows::engine::{Accepted, EngineError, WorkflowInput};

use windlass_core::rbac::Permission;

use crate::AppState;

use crate::authz::Authenticated;
use crate::extract::{Json, Path, Query};
use crate::launch::{LaunchAudit, RunToStart, fingerprint, idempotency_key, launch};
use crate::pagination::{Page, PageQuery};
use crate::problem::Problem;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_run, list_runs))
        .routes(routes!(get_run))
        .routes(routes!(cancel_run))
        .routes(routes!(step_log))
}

/// Which workflow to run, and on what.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "workflow", rename_all = "snake_case", deny_unknown_fields)]
pub enum StartRun {
    /// Give Windlass access to an Azure subscription: resource providers, custom role,
    /// service principal, role assignment.
    AzureAccessSetup {
        cloud_account_id: Uuid,
        /// Client id of the customer's setup identity (federated, no secret).
        setup_identity_client_id: Uuid,
    },
    /// Revoke what the setup granted.
    AzureAccessTeardown {
        cloud_account_id: Uuid,
        setup_identity_client_id: Uuid,
        /// Keep Windlass's service principal in the customer's tenant (default false: the
        /// teardown deletes it).
        #[serde(default)]
        keep_service_principal: bool,
    },
    /// Prove this organisation controls an AWS account: Windlass assumes
    /// `arn:aws:iam::<account>:role/windlass-access` with the organisation's ExternalId
    /// (`windlass-<organisation id>`) and checks the session is in that account. Success
    /// verifies the account.
    AwsAccessVerify { cloud_account_id: Uuid },
}

impl StartRun {
    fn kind(&self) -> WorkflowKind {
        match self {
            Self::AzureAccessSetup { .. } => WorkflowKind::AzureAccessSetup,
            Self::AzureAccessTeardown { .. } => WorkflowKind::AzureAccessTeardown,
            Self::AwsAccessVerify { .. } => WorkflowKind::AwsAccessVerify,
        }
    }

    fn cloud_account_id(&self) -> Uuid {
        match self {
            Self::AzureAccessSetup {
                cloud_account_id, ..
            }
            | Self::AzureAccessTeardown {
                cloud_account_id, ..
            }
            | Self::AwsAccessVerify { cloud_account_id } => *cloud_account_id,
        }
    }

    fn workflow_input(
        &self,
        account: &CloudAccount,
        application_id: &str,
    ) -> Result<WorkflowInput, Problem> {
        let provider = match self {
            Self::AwsAccessVerify { .. } => CloudProvider::Aws,
            Self::AzureAccessSetup { .. } | Self::AzureAccessTeardown { .. } => {
                CloudProvider::Azure
            }
        };
        if account.provider != provider {
            return Err(Problem::unprocessable(format!(
                "{} needs an {} cloud account; {} is {}",
                self.kind().as_str(),
                provider.display_name(),
                account.id,
                account.provider.as_str()
            )));
        }
        let target = |client_id: &Uuid| AzureTarget {
            organization_id: account.organization_id,
            cloud_account_id: account.id,
            tenant_id: account.tenant_id.clone(),
            subscription_id: account.external_id.clone(),
            setup_identity_client_id: client_id.to_string(),
        };
        Ok(match self {
            Self::AzureAccessSetup {
                setup_identity_client_id,
                ..
            } => WorkflowInput::AzureAccessSetup(AzureAccessSetupInput {
                target: target(setup_identity_client_id),
                application_id: application_id.to_owned(),
            }),
            Self::AzureAccessTeardown {
                setup_identity_client_id,
                keep_service_principal,
                ..
            } => WorkflowInput::AzureAccessTeardown(AzureAccessTeardownInput {
                target: target(setup_identity_client_id),
                application_id: application_id.to_owned(),
                delete_service_principal: !keep_service_principal,
            }),
            Self::AwsAccessVerify { .. } => {
                match CloudTarget::acting_for(account, application_id) {
                    CloudTarget::Aws(target) => {
                        WorkflowInput::AwsAccessVerify(AwsAccessVerifyInput { target })
                    }
                    CloudTarget::Azure(_) => unreachable!("the provider was checked above"),
                }
            }
        })
    }
}

/// A run with its steps, as a person following it wants to see it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: Run,
    /// Key of the step in progress (running or waiting to retry), if any.
    pub current_step: Option<String>,
    pub steps: Vec<Step>,
    /// Present when steps waited for a worker: the run was held back by the workers'
    /// activity slots, not by its own work (e.g. a deployment's `max_parallel` above what
    /// the workers polling its queue run at once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_capacity: Option<WorkerCapacity>,
}

/// A run detail is the run (its fields are flattened into the same object), with more.
impl std::ops::Deref for RunDetail {
    type Target = Run;

    fn deref(&self) -> &Run {
        &self.run
    }
}

/// A step that waited this long for a worker to take it says the workers were the limit
/// (a worker takes a task within milliseconds when it has a free slot).
pub const WAITED_FOR_WORKERS_MS: u64 = 2_000;

/// How the workers' capacity held a run back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerCapacity {
    /// Steps that waited at least 2 s for a worker with a free activity slot.
    pub waiting_steps: u32,
    /// The longest such wait, in milliseconds.
    pub longest_wait_ms: u64,
    /// What it means, for a person reading the run.
    pub note: String,
}

impl RunDetail {
    pub(crate) fn new(run: Run, steps: Vec<Step>) -> Self {
        let current_step = steps
            .iter()
            .filter(|s| matches!(s.status, StepStatus::Running | StepStatus::Retrying))
            .max_by_key(|s| s.last_started_at)
            .map(|s| s.key.clone());
        let waits: Vec<u64> = steps
            .iter()
            .filter_map(|s| s.longest_wait_ms)
            .filter(|ms| *ms >= WAITED_FOR_WORKERS_MS)
            .collect();
        let worker_capacity = waits.iter().max().map(|longest| WorkerCapacity {
            waiting_steps: waits.len() as u32,
            longest_wait_ms: *longest,
            note: format!(
                "{} step(s) waited for a worker with a free slot (longest {:.1} s): the workers \
                 polling this run's queue ran fewer steps at once than were ready (their \
                 --max-concurrent-activities), which capped this run's parallelism",
                waits.len(),
                *longest as f64 / 1000.0
            ),
        });
        Self {
            run,
            current_step,
            steps,
            worker_capacity,
        }
    }
}

/// Start a workflow run. With an `Idempotency-Key`, repeating the request returns the run
/// it started the first time (200) instead of starting another (202).
#[utoipa::path(post, path = "/v1/organizations/{organization_id}/runs", tag = "runs",
    params(("organization_id" = Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "repeat-safe request key")),
    request_body = StartRun,
    responses(
        (status = ACCEPTED, body = Run, description = "started"),
        (status = OK, body = Run, description = "the run this Idempotency-Key already started"),
        (status = NOT_FOUND, body = Problem), (status = CONFLICT, body = Problem),
        (status = UNPROCESSABLE_ENTITY, body = Problem),
        (status = SERVICE_UNAVAILABLE, body = Problem)))]
async fn start_run(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    authn: Authenticated,
    headers: HeaderMap,
    Json(request): Json<StartRun>,
) -> Result<Response, Problem> {
    let caller = authn
        .authorize(&state, organization_id, Permission::RunsStart)
        .await?;
    let kind = request.kind();
    let account_id = request.cloud_account_id();
    let details = serde_json::json!({
        "workflow": kind.as_str(),
        "cloud_account_id": account_id,
    });
    let audit = LaunchAudit {
        caller: &caller,
        action: "runs.start",
        refused_resource: format!("cloud_account:{account_id}"),
        details,
    };
    let new = match prepare_start(&state, organization_id, &headers, request).await {
        Ok(new) => new,
        Err(problem) => return audit.refused(&state, organization_id, problem).await,
    };
    let (status, run) = launch(&state, audit, new, |run| format!("run:{}", run.id)).await?;
    Ok(run_response(status, run))
}

async fn prepare_start(
    state: &AppState,
    organization_id: Uuid,
    headers: &HeaderMap,
    request: StartRun,
) -> Result<RunToStart, Problem> {
    let key = idempotency_key(headers)?;
    let account = state
        .store
        .cloud_account(organization_id, request.cloud_account_id())
        .await?;
    // A setup is what verifies an account; a teardown deletes what a verified one holds.
    if request.kind() == WorkflowKind::AzureAccessTeardown {
        crate::cloud_accounts::require_verified(&account)?;
    }
    let input = request.workflow_input(&account, &state.config.azure_application_id)?;
    Ok(RunToStart {
        organization_id,
        target: format!("cloud_account:{}", account.id),
        idempotency_key: key,
        request_fingerprint: fingerprint(&request),
        input,
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StepLogQuery {
    /// The step's key, e.g. `terraform-apply` or `install-chart/cert-manager`.
    step: String,
    /// Lines after this one (`<attempt>:<seq>`, the `Windlass-Next-Cursor` of the page
    /// before); from the first line without it.
    after: Option<String>,
    /// Lines per page, 1 to 5000 (default 1000).
    #[param(minimum = 1, maximum = 5000)]
    limit: Option<u32>,
}

const STEP_LOG_PAGE: u32 = 1000;
const STEP_LOG_PAGE_MAX: u32 = 5000;
pub use crate::pagination::NEXT_CURSOR_HEADER;

/// What a step printed (terraform's messages, helm's output), every attempt, in order;
/// secrets masked. A page at a time: when more lines follow, `Windlass-Next-Cursor` names
/// the `after` of the next page.
#[utoipa::path(get, path = "/v1/organizations/{organization_id}/runs/{run_id}/log", tag = "runs",
    params(("organization_id" = Uuid, Path), ("run_id" = Uuid, Path), StepLogQuery),
    responses((status = OK, body = Vec<LogLine>,
            headers(("Windlass-Next-Cursor" = String, description = "`after` of the next page, if there may be one"))),
        (status = BAD_REQUEST, body = Problem), (status = NOT_FOUND, body = Problem)))]
async fn step_log(
    State(state): State<AppState>,
    Path((organization_id, run_id)): Path<(Uuid, Uuid)>,
    authn: Authenticated,
    Query(query): Query<StepLogQuery>,
) -> Result<Response, Problem> {
    let caller = authn
        .authorize(&state, organization_id, Permission::RunsRead)
        .await?;
    let limit = query.limit.unwrap_or(STEP_LOG_PAGE);
    if !(1..=STEP_LOG_PAGE_MAX).contains(&limit) {
        return Err(Problem::bad_request(format!(
            "limit must be between 1 and {STEP_LOG_PAGE_MAX}"
        )));
    }
    let after = query.after.as_deref().map(parse_log_cursor).transpose()?;
    let page = async {
        // The run must be this organisation's.
        state.store.run(organization_id, run_id).await?;
        Ok::<_, Problem>(
            state
                .store
                .step_log_page(run_id, &query.step, after, limit)
                .await?,
        )
    }
    .await;
    caller
        .record(
            &state,
            Some(organization_id),
            "runs.log_read",
            format!("run:{run_id}"),
            &page,
            serde_json::json!({"step": query.step, "after": query.after}),
        )
        .await;
    let page = page?;
    let next = (page.len() == limit as usize)
        .then(|| page.last().map(|l| format!("{}:{}", l.attempt, l.seq)))
        .flatten();
    let mut response = axum::Json(page).into_response();
    if let Some(next) = next.and_then(|n| HeaderValue::from_str(&n).ok()) {
        response.headers_mut().insert(NEXT_CURSOR_HEADER, next);
    }
    Ok(response)
}

fn parse_log_cursor(text: &str) -> Result<(u32, u32), Problem> {
    let invalid = || Problem::bad_request("after must be `<attempt>:<seq>`");
    let (attempt, seq) = text.split_once(':').ok_or_else(invalid)?;
    Ok((
        attempt.parse().map_err(|_| invalid())?,
        seq.parse().map_err(|_| invalid())?,
    ))
}

fn run_response(status: StatusCode, run: Run) -> Response {
    let location = format!("/v1/organizations/{}/runs/{}", run.organization_id, run.id);
    let mut response = (status, axum::Json(run)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListRuns {
    status: Option<RunStatus>,
    workflow: Option<WorkflowKind>,
    /// 1 to 500, default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The `Windlass-Next-Cursor` of the page before (older runs after it).
    after: Option<String>,
}

/// Runs of an organisation, newest first.
#[utoipa::path(get, path = "/v1/organizations/{organization_id}/runs", tag = "runs",
    params(("organization_id" = Uuid, Path), ListRuns),
    responses((status = OK, body = Vec<Run>,
            headers(("Windlass-Next-Cursor" = String, description = "`after` of the next page, when there may be one"))),
        (status = NOT_FOUND, body = Problem), (status = BAD_REQUEST, body = Problem)))]
async fn list_runs(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    authn: Authenticated,
    Query(query): Query<ListRuns>,
) -> Result<Page<Run>, Problem> {
    authn
        .authorize(&state, organization_id, Permission::RunsRead)
        .await?;
    let page = PageQuery {
        after: query.after,
        limit: query.limit,
    };
    let limit = page.limit(50, 500)?;
    let before = page.position_as::<RunPosition>()?;
    let runs = state
        .store
        .runs(
            organization_id,
            &RunFilter {
                status: query.status,
                kind: query.workflow,
                limit: Some(limit),
                before,
            },
        )
        .await?;
    Ok(Page::of(runs, limit, |run| {
        RunPosition::of(run).to_string()
    }))
}

/// One run: status, current step, and every step with attempts, timings and last error.
#[utoipa::path(get, path = "/v1/organizations/{organization_id}/runs/{run_id}", tag = "runs",
    params(("organization_id" = Uuid, Path), ("run_id" = Uuid, Path)),
    responses((status = OK, body = RunDetail), (status = NOT_FOUND, body = Problem)))]
async fn get_run(
    State(state): State<AppState>,
    Path((organization_id, run_id)): Path<(Uuid, Uuid)>,
    authn: Authenticated,
) -> Result<axum::Json<RunDetail>, Problem> {
    authn
        .authorize(&state, organization_id, Permission::RunsRead)
        .await?;
    let mut run = state.store.run(organization_id, run_id).await?;
    let mut steps = state.store.steps(run_id).await?;
    if repair_is_due(&run, &steps) {
        run = repair_from_engine(&state, run).await?;
        if run.status.is_finished() {
            steps = state.store.steps(run_id).await?;
        }
    }
    Ok(axum::Json(RunDetail::new(run, steps)))
}

/// How long an unfinished run may show no progress (its record or a step changing) before
/// a read asks Temporal whether it ended unrecorded; and how often, at most, per run.
const QUIET_BEFORE_REPAIR: std::time::Duration = std::time::Duration::from_secs(20);
const REPAIR_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether a read of this run should check it with Temporal: only an unfinished run that
/// has been quiet for a while (workers record every step's start and end, so a moving run
/// never needs Temporal on the read path), and at most once per interval per run in this
/// process however many clients read it.
pub(crate) fn repair_is_due<'a>(run: &Run, steps: impl IntoIterator<Item = &'a Step>) -> bool {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};
    use std::time::Instant;
    static LAST_CHECKED: LazyLock<Mutex<HashMap<Uuid, Instant>>> =
        LazyLock::new(|| Mutex::new(HashMap::new()));
    if run.status.is_finished() {
        return false;
    }
    let last_progress = steps
        .into_iter()
        .flat_map(|s| [Some(s.last_started_at), s.finished_at])
        .flatten()
        .chain([run.updated_at])
        .max()
        .unwrap_or(run.updated_at);
    let quiet = (chrono::Utc::now() - last_progress)
        .to_std()
        .unwrap_or_default();
    if quiet < QUIET_BEFORE_REPAIR {
        return false;
    }
    let now = Instant::now();
    let mut checked = LAST_CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    if checked
        .get(&run.id)
        .is_some_and(|at| now.duration_since(*at) < REPAIR_INTERVAL)
    {
        return false;
    }
    // Bounded: entries older than the interval decide nothing any more.
    if checked.len() > 10_000 {
        checked.retain(|_, at| now.duration_since(*at) < REPAIR_INTERVAL);
    }
    checked.insert(run.id, now);
    true
}

/// A run the workflow could not record the end of (terminated, timed out, or its worker
/// lost its database) still shows how it ended.
pub(crate) async fn repair_from_engine(state: &AppState, run: Run) -> Result<Run, Problem> {
    match state.engine.describe(run.engine_workflow_id()).await {
        Ok(workflow) if workflow.status.is_finished() => {
            let error = (workflow.status != RunStatus::Succeeded)
                .then(|| format!("workflow {}", workflow.status.as_str()));
            state
                .store
                .finish_run(run.id, workflow.status, None, error.as_deref())
                .await?;
            Ok(state.store.run(run.organization_id, run.id).await?)
        }
        Ok(_) | Err(EngineError::NotFound(_)) => Ok(run),
        Err(error) => {
            tracing::debug!(run_id = %run.id, %error, "could not check the run with Temporal");
            Ok(run)
        }
    }
}

/// Ask a run to stop. Its activities are cancelled and awaited, then it ends as cancelled;
/// what it had created stays until a teardown removes it.
#[utoipa::path(post, path = "/v1/organizations/{organization_id}/runs/{run_id}/cancel",
    tag = "runs", params(("organization_id" = Uuid, Path), ("run_id" = Uuid, Path)),
    responses((status = ACCEPTED, body = Run), (status = NOT_FOUND, body = Problem),
        (status = CONFLICT, body = Problem)))]
async fn cancel_run(
    State(state): State<AppState>,
    Path((organization_id, run_id)): Path<(Uuid, Uuid)>,
    authn: Authenticated,
) -> Result<(StatusCode, axum::Json<Run>), Problem> {
    let caller = authn
        .authorize(&state, organization_id, Permission::RunsCancel)
        .await?;
    let reached_temporal = caller
        .audited_call(
            &state,
            Some(organization_id),
            "runs.cancel",
            format!("run:{run_id}"),
            serde_json::json!({}),
            cancel(&state, organization_id, run_id),
        )
        .await?;
    if !reached_temporal {
        // Never reached Temporal: nothing runs, so it is cancelled now (outside the
        // audited transaction, which holds the store's write lock on SQLite).
        state
            .store
            .finish_run(
                run_id,
                RunStatus::Cancelled,
                None,
                Some("cancelled before it started"),
            )
            .await?;
    }
    tracing::info!(%run_id, %organization_id, "run cancellation requested");
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(state.store.run(organization_id, run_id).await?),
    ))
}

/// Asks Temporal to cancel the run; false when Temporal never had it.
async fn cancel(state: &AppState, organization_id: Uuid, run_id: Uuid) -> Result<bool, Problem> {
    let run = state.store.run(organization_id, run_id).await?;
    if run.status.is_finished() {
        return Err(Problem::conflict(format!(
            "run {run_id} already ended as {}",
            run.status.as_str()
        )));
    }
    let cancelled = if run.kind == WorkflowKind::DeployEnvironment {
        // Its environment's queue decides: drop it if waiting, cancel it if running; a
        // deployment the queue already let go of is not cancelled, and the caller is told.
        let deployment = state.store.deployment(run_id).await?;
        match state
            .engine
            .cancel_deployment(run.organization_id, deployment.environment_id, run_id)
            .await
        {
            Ok(Accepted::Confirmed(
                CancelledDeployment::DroppedWhileWaiting | CancelledDeployment::CancellingRunning,
            )) => Ok(()),
            // Its queue's workers are away: the cancel waits for them, durably, and is
            // settled before anything else of the queue runs.
            Ok(Accepted::Pending) => Ok(()),
            Ok(Accepted::Confirmed(CancelledDeployment::AlreadySettled)) => {
                return Err(Problem::conflict(format!(
                    "deployment {run_id} already left its environment's queue: nothing to cancel"
                )));
            }
            // The queue never had it: it was recorded but never queued.
            Ok(Accepted::Confirmed(CancelledDeployment::Unknown)) => {
                Err(EngineError::NotFound(run_id.to_string()))
            }
            Err(error) => Err(error),
        }
    } else {
        state
            .engine
            .cancel(run.engine_workflow_id(), "cancelled through the API")
            .await
    };
    match cancelled {
        Ok(()) => Ok(true),
        Err(EngineError::NotFound(_)) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_request_names_its_workflow_and_nothing_else() {
        let ok: StartRun = serde_json::from_str(
            r#"{"workflow":"azure_access_setup","cloud_account_id":"8d3c4a4e-64a4-4d5e-9e36-1c2b3a4d5e6f","setup_identity_client_id":"1d3c4a4e-64a4-4d5e-9e36-1c2b3a4d5e6f"}"#,
        )
        .unwrap();
        assert_eq!(ok.kind(), WorkflowKind::AzureAccessSetup);
        let unknown_field = serde_json::from_str::<StartRun>(
            r#"{"workflow":"azure_access_setup","cloud_account_id":"8d3c4a4e-64a4-4d5e-9e36-1c2b3a4d5e6f","setup_identity_client_id":"1d3c4a4e-64a4-4d5e-9e36-1c2b3a4d5e6f","colour":"blue"}"#,
        )
        .unwrap_err();
        assert!(
            unknown_field.to_string().contains("colour"),
            "{unknown_field}"
        );
        let unknown_workflow =
            serde_json::from_str::<StartRun>(r#"{"workflow":"mine_bitcoin"}"#).unwrap_err();
        assert!(unknown_workflow.to_string().contains("mine_bitcoin"));
    }

    #[test]
    fn the_fingerprint_changes_with_the_request() {
        let a = StartRun::AzureAccessSetup {
            cloud_account_id: Uuid::nil(),
            setup_identity_client_id: Uuid::nil(),
        };
        let b = StartRun::AzureAccessSetup {
            cloud_account_id: Uuid::max(),
            setup_identity_client_id: Uuid::nil(),
        };
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }
}
