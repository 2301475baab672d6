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
use windlass_workflows::deployment_contracts::{DeployEnvironmentInput, DeploymentRequest};

use crate::AppState;
use crate::audit::Caller;
use crate::authz::Authenticated;
use crate::environments::{check_services, environment_for};
use crate::extract::{Json, Path, Query};
use crate::problem::Problem;
use crate::runs::{fingerprint, idempotency_key};

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

#[derive(Debug, Serialize, utoipa::ToSchema)]
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
    let started = queue(state, environment, trigger, request, idempotency_key).await;
    let resource = match &started {
        Ok((_, s)) => format!("run:{}", s.run.id),
        Err(_) => format!("environment:{environment_id}"),
    };
    caller
        .record(
            state,
            Some(organization_id),
            "environments.deploy",
            resource,
            &started,
            serde_json::json!({
                "environment_id": environment_id,
                "trigger": trigger.as_str(),
                "images": request.images,
                "revision": started.as_ref().ok().map(|(_, s)| s.deployment.revision),
            }),
        )
        .await;
    started
}

async fn queue(
    state: &AppState,
    environment: EnvironmentSpec,
    trigger: DeploymentTrigger,
    request: &DeployRequest,
    idempotency_key: Option<String>,
) -> Result<(StatusCode, DeploymentStarted), Problem> {
    let organization_id = environment.organization_id;
    // From reading the services to queueing, one request of the environment at a time:
    // each sees the images the one before it set, and revisions follow that order.
    let _one_at_a_time = state.store.lock_environment_deploys(environment.id).await?;
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
    let target = crate::clusters::acting_target(&account, &state.config.azure_application_id);
    let inserted = state
        .store
        .insert_run(NewRun {
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
        })
        .await?;
    let (run, status) = match inserted {
        InsertedRun::Existing(run) if run.status != RunStatus::Pending => {
            let deployment = state.store.deployment(run.id).await?;
            return Ok((StatusCode::OK, DeploymentStarted { deployment, run }));
        }
        InsertedRun::Existing(run) => (run, StatusCode::OK),
        InsertedRun::Created(run) => (run, StatusCode::ACCEPTED),
    };
    let secrets: Vec<String> = environment
        .services
        .iter()
        .flat_map(|s| s.secrets().into_values())
        .collect();
    state.store.grant_secrets(run.id, &secrets).await?;
    let deployment = state
        .store
        .insert_deployment(run.id, environment.id, trigger, &environment.services)
        .await?;
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
            .finish_run(run.id, RunStatus::Failed, None, Some(&detail))
            .await?;
        return Err(error.into());
    }
    state.store.mark_run_started(run.id, "").await?;
    tracing::info!(run_id = %run.id, environment_id = %environment.id,
        revision = deployment.revision, trigger = trigger.as_str(), "deployment queued");
    Ok((
        status,
        DeploymentStarted {
            deployment: state.store.deployment(run.id).await?,
            run: state.store.run(organization_id, run.id).await?,
        },
    ))
}

/// The environment with the requested images set (and kept for later deployments).
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
    if images.is_empty() {
        return Ok(environment);
    }
    Ok(state.store.update_environment(&environment).await?)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListDeployments {
    /// 1 to 500, default 50.
    limit: Option<u32>,
}

/// Deployments of the environment, newest revision first.
#[utoipa::path(get, path = "/v1/organizations/{organization_id}/environments/{environment_id}/deployments",
    tag = "environments",
    params(("organization_id" = Uuid, Path), ("environment_id" = Uuid, Path), ListDeployments),
    responses((status = OK, body = Vec<Deployment>), (status = NOT_FOUND, body = Problem)))]
async fn list_deployments(
    State(state): State<AppState>,
    Path((organization_id, environment_id)): Path<(Uuid, Uuid)>,
    authn: Authenticated,
    Query(query): Query<ListDeployments>,
) -> Result<axum::Json<Vec<Deployment>>, Problem> {
    environment_for(
        &state,
        &authn,
        organization_id,
        environment_id,
        Permission::ProjectsRead,
    )
    .await?;
    if query.limit.is_some_and(|l| !(1..=500).contains(&l)) {
        return Err(Problem::bad_request("limit must be between 1 and 500"));
    }
    Ok(axum::Json(
        state
            .store
            .deployments(environment_id, query.limit.unwrap_or(50))
            .await?,
    ))
}
