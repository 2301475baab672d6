//! Deploying an environment: the request becomes a run and a numbered deployment, and goes
//! to the environment's queue workflow, which runs one deployment at a time.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use windlass_core::deployments::{Deployment, DeploymentState, DeploymentTrigger};
use windlass_core::environments::EnvironmentSpec;
use windlass_core::rbac::Permission;
use windlass_core::runs::{InsertedRun, NewRun, Run, RunStatus, WorkflowKind};
use windlass_workflows::cluster_contracts::CloudTarget;
use windlass_workflows::deployment_contracts::{DeployEnvironmentInput, DeploymentRequest};

use crate::AppState;
use crate::authz::Authenticated;
use crate::caller::Caller;
use crate::environments::{check_services, environment_for};
use crate::extract::{Json, Path, Query};
use crate::launch::{fingerprint, idempotency_key};
use crate::pagination::{Page, PageQuery};
use crate::problem::Problem;
use windlass_core::store::Store;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(deploy, list_deployments))
}

/// What to deploy: the environment's services as they are, with new images for some.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// Service name → image, for the services whose image changes (what a CI pipeline
    /// sends). The environment keeps these images for later deployments.
    #[serde(default)]
    pub images: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeploymentStarted {
    pub deployment: Deployment,
    pub run: Run,
}

/// Deploy the environment. The deployment waits for any running one (or, with the
/// environment's `supersede` policy, replaces the one waiting); follow it as a run.
#[utoipa::path(post, path = "/v1/organizations/{organization_id}/environments/{environment_id}/deployments",
    tag = "environments",
    params(("organization_id" = Uuid, Path), ("environment_id" = Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "repeat-safe request key")),
    request_body = DeployRequest,
    responses((status = ACCEPTED, body = DeploymentStarted),
        (status = OK, body = DeploymentStarted, description = "the deployment this Idempotency-Key already started"),
        (status = NOT_FOUND, body = Problem), (status = UNPROCESSABLE_ENTITY, body = Problem),
        (status = SERVICE_UNAVAILABLE, body = Problem)))]
async fn deploy(
    State(state): State<AppState>,
    Path((organization_id, environment_id)): Path<(Uuid, Uuid)>,
    authn: Authenticated,
    headers: HeaderMap,
    Json(request): Json<DeployRequest>,
) -> Result<(StatusCode, axum::Json<DeploymentStarted>), Problem> {
    let (caller, environment) = environment_for(
        &state,
        &authn,
        organization_id,
        environment_id,
        Permission::EnvironmentsDeploy,
    )
    .await?;
    let key = idempotency_key(&headers)?;
    let (status, started) = request_deployment(
        &state,
        &caller,
        environment,
        DeploymentTrigger::Api,
        &request,
        key,
    )
    .await?;
    Ok((status, axum::Json(started)))
}

/// Records, audits and queues a deployment; shared by the API route and the webhook.
pub(crate) async fn request_deployment(
    state: &AppState,
    caller: &Caller,
    environment: EnvironmentSpec,
    trigger: DeploymentTrigger,
    request: &DeployRequest,
    idempotency_key: Option<String>,
) -> Result<(StatusCode, DeploymentStarted), Problem> {
    let organization_id = environment.organization_id;
    let environment_id = environment.id;
    let details = serde_json::json!({
        "environment_id": environment_id,
        "trigger": trigger.as_str(),
        "images": request.images,
    });
    // From reading the services to queueing, one request of the environment at a time:
    // each sees the images the one before it set, and revisions follow that order.
    let _one_at_a_time = state.store.lock_environment_deploys(environment_id).await?;
    let prepared = async {
        let environment = state
            .store
            .environment(organization_id, environment.id)
            .await?;
        let environment = with_images(state, environment, &request.images).await?;
        let cluster = state
            .store
            .cluster(organization_id, environment.cluster_id)
            .await?;
        let account = state
            .store
            .cloud_account(organization_id, cluster.cloud_account_id)
            .await?;
        Ok::<_, Problem>((environment, cluster, account))
    }
    .await;
    let (environment, cluster, account) = match prepared {
        Ok(prepared) => prepared,
        Err(problem) => {
            return caller
                .refused(
                    state,
                    Some(organization_id),
                    "environments.deploy",
                    format!("environment:{environment_id}"),
                    details,
                    problem,
                )
                .await;
        }
    };
    let target = CloudTarget::acting_for(&account, &state.config.azure_application_id);
    let new_run = NewRun {
        organization_id,
        kind: WorkflowKind::DeployEnvironment,
        // Runs of one environment queue in its workflow, not on this column.
        target: format!("deployment:{}", Uuid::new_v4()),
        idempotency_key,
        request_fingerprint: fingerprint(&(environment.id, request)),
        input: serde_json::json!({
            "environment_id": environment.id,
            "trigger": trigger.as_str(),
            "images": request.images,
        }),
    };
    let secrets: Vec<String> = environment
        .services
        .iter()
        .flat_map(|s| s.secrets().into_values())
        .collect();
    let in_flight_limit = state.config.runs_in_flight_per_organization;
    let images_set = !request.images.is_empty();
    // What this deployment runs, kept as the environment's own when it set images.
    let recorded = environment.clone();
    // The run, its secret grants, the numbered deployment and the entry: one commit.
    let (inserted, deployment) = caller
        .audited(
            state,
            Some(organization_id),
            "environments.deploy",
            |recorded: Option<&(InsertedRun, Deployment)>| match recorded {
                Some((InsertedRun::Created(run) | InsertedRun::Existing(run), _)) => {
                    format!("run:{}", run.id)
                }
                None => format!("environment:{environment_id}"),
            },
            details,
            move |conn| {
                Box::pin(async move {
                    let inserted = Store::insert_run_on(conn, new_run, in_flight_limit).await?;
                    let run_id = match &inserted {
                        // A repeat of a request already handed over: nothing more to write.
                        InsertedRun::Existing(run) if run.status != RunStatus::Pending => {
                            let deployment = Store::deployment_on(conn, run.id).await?;
                            return Ok((inserted, deployment));
                        }
                        InsertedRun::Created(run) | InsertedRun::Existing(run) => run.id,
                    };
                    if images_set {
                        Store::update_environment_on(conn, &recorded).await?;
                    }
                    Store::grant_secrets_on(conn, run_id, &secrets).await?;
                    let deployment = Store::insert_deployment_on(
                        conn,
                        run_id,
                        environment_id,
                        trigger,
                        &recorded.services,
                    )
                    .await?;
                    Ok((inserted, deployment))
                })
            },
        )
        .await?;
    let (run, status) = match inserted {
        InsertedRun::Existing(run) if run.status != RunStatus::Pending => {
            return Ok((StatusCode::OK, DeploymentStarted { deployment, run }));
        }
        InsertedRun::Existing(run) => (run, StatusCode::OK),
        InsertedRun::Created(run) => (run, StatusCode::ACCEPTED),
    };
    let request = DeploymentRequest {
        run_id: run.id,
        workflow_id: run.workflow_id.clone(),
        policy: environment.deploy_policy,
        input: DeployEnvironmentInput {
            run_id: run.id,
            organization_id,
            environment_id: environment.id,
            environment_name: environment.namespace.clone(),
            namespace: environment.namespace.clone(),
            revision: deployment.revision,
            services: deployment.services.clone(),
            max_parallel: environment.max_parallel,
            cluster,
            target,
        },
    };
    if let Err(error) = state.engine.request_deployment(request).await.map(|_| ()) {
        let detail = format!("could not queue: {error}");
        state
            .store
            .finish_deployment(
                run.id,
                DeploymentState::Failed,
                &BTreeMap::new(),
                Some(&detail),
            )
            .await?;
        state
            .store
            .record_run_end(run.id, RunStatus::Failed, None, Some(&detail), "api")
            .await?;
        return Err(error.into());
    }
    let run = state.store.mark_run_started(run.id, "").await?;
    tracing::info!(run_id = %run.id, environment_id = %environment.id,
        revision = deployment.revision, trigger = trigger.as_str(), "deployment queued");
    Ok((
        status,
        DeploymentStarted {
            deployment: state.store.deployment(run.id).await?,
            run,
        },
    ))
}

/// The environment with the requested images set (kept for later deployments by the
/// deployment's own commit).
async fn with_images(
    state: &AppState,
    mut environment: EnvironmentSpec,
    images: &BTreeMap<String, String>,
) -> Result<EnvironmentSpec, Problem> {
    if environment.services.is_empty() {
        return Err(Problem::unprocessable(
            "the environment has no services to deploy",
        ));
    }
    for (name, image) in images {
        let service = environment
            .services
            .iter_mut()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                Problem::unprocessable(format!("the environment has no service named {name}"))
            })?;
        let slot = service.image_mut().ok_or_else(|| {
            Problem::unprocessable(format!("service {name} is a helm chart: it has no image"))
        })?;
        *slot = image.clone();
    }
    check_services(state, None, &environment, &environment.services).await?;
    Ok(environment)
}

/// Deployments of the environment, newest revision first.
#[utoipa::path(get, path = "/v1/organizations/{organization_id}/environments/{environment_id}/deployments",
    tag = "environments",
    params(("organization_id" = Uuid, Path), ("environment_id" = Uuid, Path), PageQuery),
    responses((status = OK, body = Vec<Deployment>,
            headers(("Windlass-Next-Cursor" = String, description = "`after` of the next page, when there may be one"))),
        (status = NOT_FOUND, body = Problem), (status = BAD_REQUEST, body = Problem)))]
async fn list_deployments(
    State(state): State<AppState>,
    Path((organization_id, environment_id)): Path<(Uuid, Uuid)>,
    authn: Authenticated,
    Query(page): Query<PageQuery>,
) -> Result<Page<Deployment>, Problem> {
    environment_for(
        &state,
        &authn,
        organization_id,
        environment_id,
        Permission::ProjectsRead,
    )
    .await?;
    let limit = page.limit(50, crate::pagination::MAX_LIMIT)?;
    let before = page.position_as::<u32>()?;
    let deployments = state
        .store
        .deployments(environment_id, limit, before)
        .await?;
    Ok(Page::of(deployments, limit, |d| d.revision.to_string()))
}
