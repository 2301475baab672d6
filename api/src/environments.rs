//! Projects and their environments: what each environment runs, on which cluster, and how
//! its deployments queue.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use windlass_core::audit::Environment as EnvironmentType;
use windlass_core::environments::{
    DEFAULT_MAX_PARALLEL, DeployPolicy, EnvironmentSpec, Project, ServiceSpec,
};
use windlass_core::rbac::{Permission, Target};
use windlass_core::secrets::SecretScope;
use windlass_core::store::Store;

use crate::AppState;
use crate::authz::Authenticated;
use crate::extract::{Json, Path, Query};
use crate::pagination::{Page, PageQuery};
use crate::problem::Problem;
use crate::webhook_signature::new_webhook_secret;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_project, list_projects))
        .routes(routes!(create_environment, list_environments))
        .routes(routes!(get_environment))
        .routes(routes!(replace_services))
        .routes(routes!(rotate_webhook_secret))
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    pub name: String,
}

/// Create a project.
#[utoipa::path(post, path = "/v1/organizations/{organization_id}/projects", tag = "environments",
    params(("organization_id" = Uuid, Path)), request_body = CreateProject,
    responses((status = CREATED, body = Project), (status = CONFLICT, body = Problem),
        (status = UNPROCESSABLE_ENTITY, body = Problem)))]
async fn create_project(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    authn: Authenticated,
    Json(request): Json<CreateProject>,
) -> Result<(StatusCode, axum::Json<Project>), Problem> {
    let caller = authn
        .authorize(&state, organization_id, Permission::ProjectsWrite)
        .await?;
    let name = request.name.clone();
    let created = caller
        .audited(
            &state,
            Some(organization_id),
            "projects.create",
            |project: Option<&Project>| match project {
                Some(p) => format!("project:{}", p.id),
                None => format!("organization:{organization_id}"),
            },
            serde_json::json!({"name": request.name}),
            move |conn| {
                Box::pin(
                    async move { Store::create_project_on(conn, organization_id, &name).await },
                )
            },
        )
        .await;
    Ok((StatusCode::CREATED, axum::Json(created?)))
}

/// Projects of an organisation.
#[utoipa::path(get, path = "/v1/organizations/{organization_id}/projects", tag = "environments",
    params(PageQuery, ("organization_id" = Uuid, Path)),
    responses((status = OK, body = Vec<Project>, headers(("Windlass-Next-Cursor" = String, description = "`after` of the next page, when there may be one")))))]
async fn list_projects(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    authn: Authenticated,
    Query(page): Query<PageQuery>,
) -> Result<Page<Project>, Problem> {
    authn
        .authorize(&state, organization_id, Permission::ProjectsRead)
        .await?;
    Page::cut(state.store.projects(organization_id).await?, &page, |x| {
        x.name.clone()
    })
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnvironment {
    pub name: String,
    #[serde(rename = "type")]
    pub environment_type: EnvironmentType,
    pub cluster_id: Uuid,
    /// Default: `<project>-<environment>`.
    pub namespace: Option<String>,
    #[serde(default)]
    pub deploy_policy: DeployPolicy,
    /// Services deployed at once (default 10).
    pub max_parallel: Option<u32>,
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
}

/// An environment as created: the webhook signing secret is shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EnvironmentCreated {
    pub environment: EnvironmentSpec,
    /// Signs calls to `POST /v1/webhooks/environments/{id}/deployments` (HMAC-SHA256);
    /// shown once, rotate it to get a new one.
    pub webhook_secret: String,
}

/// Create an environment of a project on one of the organisation's clusters.
#[utoipa::path(post, path = "/v1/organizations/{organization_id}/projects/{project_id}/environments",
    tag = "environments", params(("organization_id" = Uuid, Path), ("project_id" = Uuid, Path)),
    request_body = CreateEnvironment,
    responses((status = CREATED, body = EnvironmentCreated), (status = NOT_FOUND, body = Problem),
        (status = CONFLICT, body = Problem), (status = UNPROCESSABLE_ENTITY, body = Problem)))]
async fn create_environment(
    State(state): State<AppState>,
    Path((organization_id, project_id)): Path<(Uuid, Uuid)>,
    authn: Authenticated,
    Json(request): Json<CreateEnvironment>,
) -> Result<(StatusCode, axum::Json<EnvironmentCreated>), Problem> {
    let target = Target::environment(project_id, request.environment_type, request.cluster_id);
    let caller = authn
        .authorize_on(&state, organization_id, Permission::ProjectsWrite, target)
        .await?;
    let details = serde_json::json!({"name": request.name, "cluster_id": request.cluster_id,
        "services": request.services.len()});
    let spec = match prepare(&state, &authn, organization_id, project_id, &request).await {
        Ok(spec) => spec,
        Err(problem) => {
            return caller
                .refused(
                    &state,
                    Some(organization_id),
                    "environments.create",
                    format!("project:{project_id}"),
                    details,
                    problem,
                )
                .await;
        }
    };
    // The environment and its first webhook secret are one change with one entry.
    let (webhook_secret, sealed) = new_webhook_secret(&state, &spec).await?;
    let environment = caller
        .audited(
            &state,
            Some(organization_id),
            "environments.create",
            |created: Option<&EnvironmentSpec>| match created {
                Some(environment) => format!("environment:{}", environment.id),
                None => format!("project:{project_id}"),
            },
            details,
            move |conn| {
                Box::pin(async move {
                    let environment = Store::create_environment_on(conn, &spec).await?;
                    Store::upsert_sealed_secret_on(conn, &sealed, &SecretScope::Organization)
                        .await?;
                    Ok(environment)
                })
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(EnvironmentCreated {
            environment,
            webhook_secret: webhook_secret.to_string(),
        }),
    ))
}

/// The environment a request describes, checked: its project, cluster (which the caller
/// may use, and which hosts its type) and services.
async fn prepare(
    state: &AppState,
    authn: &Authenticated,
    organization_id: Uuid,
    project_id: Uuid,
    request: &CreateEnvironment,
) -> Result<EnvironmentSpec, Problem> {
    let project = state.store.project(organization_id, project_id).await?;
    let cluster = state
        .store
        .cluster(organization_id, request.cluster_id)
        .await?;
    // Placing an environment on a cluster is a grant of its own: a team allowed its
    // previews is not thereby allowed onto every cluster.
    authn
        .authorize_on(
            state,
            organization_id,
            Permission::ClustersUse,
            Target::cluster(cluster.id),
        )
        .await?;
    if !cluster
        .environment_types
        .contains(&request.environment_type)
    {
        let hosted: Vec<&str> = cluster
            .environment_types
            .iter()
            .map(|t| t.as_str())
            .collect();
        return Err(Problem::unprocessable(format!(
            "cluster {} hosts {} environments only, not {}",
            cluster.name,
            hosted.join(", "),
            request.environment_type.as_str()
        )));
    }
    let spec = EnvironmentSpec {
        id: Uuid::new_v4(),
        organization_id,
        project_id,
        cluster_id: request.cluster_id,
        name: request.name.clone(),
        environment_type: request.environment_type,
        namespace: request
            .namespace
            .clone()
            .unwrap_or_else(|| format!("{}-{}", project.name, request.name)),
        deploy_policy: request.deploy_policy,
        max_parallel: request.max_parallel.unwrap_or(DEFAULT_MAX_PARALLEL),
        services: request.services.clone(),
        created_at: Utc::now(),
    };
    spec.validate()?;
    check_services(state, Some(authn), &spec, &spec.services).await?;
    Ok(spec)
}

/// Every secret the services name must exist and be in scope for the environment (a
/// deployment should not find out). When a caller changes what the environment runs,
/// naming secrets also needs secrets_use there: their values reach the services' pods.
pub(crate) async fn check_services(
    state: &AppState,
    changed_by: Option<&Authenticated>,
    environment: &EnvironmentSpec,
    services: &[ServiceSpec],
) -> Result<(), Problem> {
    windlass_core::environments::validate_services(services)?;
    let policy = state
        .store
        .organization(environment.organization_id)
        .await?
        .chart_policy();
    for service in services {
        if let ServiceSpec::HelmChart(chart) = service {
            windlass_core::chart_references::check_policy(&chart.name, &chart.chart, policy)?;
        }
    }
    let known = state
        .store
        .secret_listings(environment.organization_id)
        .await?;
    let mut names_secrets = false;
    for service in services {
        for secret in service.secrets().values() {
            names_secrets = true;
            let usable = !secret.starts_with(windlass_core::secrets::RESERVED_PREFIX)
                && known
                    .iter()
                    .any(|s| &s.name == secret && environment.may_use_secret_of(&s.scope));
            if !usable {
                return Err(Problem::unprocessable(format!(
                    "service {} names secret {secret:?}, which environment {} cannot use \
                     (no such secret in its scope)",
                    service.name(),
                    environment.name
                )));
            }
        }
    }
    if let Some(authn) = changed_by
        && names_secrets
    {
        authn
            .authorize_on(
                state,
                environment.organization_id,
                Permission::SecretsUse,
                Target::environment(
                    environment.project_id,
                    environment.environment_type,
                    environment.cluster_id,
                ),
            )
            .await?;
    }
    Ok(())
}

/// Environments of a project.
#[utoipa::path(get, path = "/v1/organizations/{organization_id}/projects/{project_id}/environments",
    tag = "environments", params(PageQuery, ("organization_id" = Uuid, Path), ("project_id" = Uuid, Path)),
    responses((status = OK, body = Vec<EnvironmentSpec>, headers(("Windlass-Next-Cursor" = String, description = "`after` of the next page, when there may be one"))), (status = NOT_FOUND, body = Problem)))]
async fn list_environments(
    State(state): State<AppState>,
    Path((organization_id, project_id)): Path<(Uuid, Uuid)>,
    authn: Authenticated,
    Query(page): Query<PageQuery>,
) -> Result<Page<EnvironmentSpec>, Problem> {
    authn
        .authorize(&state, organization_id, Permission::ProjectsRead)
        .await?;
    state.store.project(organization_id, project_id).await?;
    Page::cut(
        state
            .store
            .environments(organization_id, project_id)
            .await?,
        &page,
        |x| x.name.clone(),
    )
}

/// An environment the caller may read, with the target its grants are checked on.
pub(crate) async fn environment_for(
    state: &AppState,
    authn: &Authenticated,
    organization_id: Uuid,
    environment_id: Uuid,
    permission: Permission,
) -> Result<(crate::caller::Caller, EnvironmentSpec), Problem> {
    // Organisation-wide permission first, so a stranger learns nothing of the environment.
    let environment = match state
        .store
        .environment(organization_id, environment_id)
        .await
    {
        Ok(environment) => environment,
        Err(error) => {
            authn.authorize(state, organization_id, permission).await?;
            return Err(error.into());
        }
    };
    let target = Target::environment(
        environment.project_id,
        environment.environment_type,
        environment.cluster_id,
    );
    let caller = authn
        .authorize_on(state, organization_id, permission, target)
        .await?;
    Ok((caller, environment))
}

/// One environment.
#[utoipa::path(get, path = "/v1/organizations/{organization_id}/environments/{environment_id}",
    tag = "environments", params(("organization_id" = Uuid, Path), ("environment_id" = Uuid, Path)),
    responses((status = OK, body = EnvironmentSpec), (status = NOT_FOUND, body = Problem)))]
async fn get_environment(
    State(state): State<AppState>,
    Path((organization_id, environment_id)): Path<(Uuid, Uuid)>,
    authn: Authenticated,
) -> Result<axum::Json<EnvironmentSpec>, Problem> {
    let (_, environment) = environment_for(
        &state,
        &authn,
        organization_id,
        environment_id,
        Permission::ProjectsRead,
    )
    .await?;
    Ok(axum::Json(environment))
}

/// Replace what the environment runs; deployed at its next deployment.
#[utoipa::path(put, path = "/v1/organizations/{organization_id}/environments/{environment_id}/services",
    tag = "environments", params(("organization_id" = Uuid, Path), ("environment_id" = Uuid, Path)),
    request_body = Vec<ServiceSpec>,
    responses((status = OK, body = EnvironmentSpec), (status = NOT_FOUND, body = Problem),
        (status = UNPROCESSABLE_ENTITY, body = Problem)))]
async fn replace_services(
    State(state): State<AppState>,
    Path((organization_id, environment_id)): Path<(Uuid, Uuid)>,
    authn: Authenticated,
    Json(services): Json<Vec<ServiceSpec>>,
) -> Result<axum::Json<EnvironmentSpec>, Problem> {
    let (caller, environment) = environment_for(
        &state,
        &authn,
        organization_id,
        environment_id,
        Permission::ProjectsWrite,
    )
    .await?;
    let details = serde_json::json!({"services": services.len()});
    let resource = format!("environment:{environment_id}");
    if let Err(problem) = check_services(&state, Some(&authn), &environment, &services).await {
        return caller
            .refused(
                &state,
                Some(organization_id),
                "environments.update",
                resource,
                details,
                problem,
            )
            .await;
    }
    let changed = EnvironmentSpec {
        services,
        ..environment
    };
    let updated = caller
        .audited(
            &state,
            Some(organization_id),
            "environments.update",
            |_| resource.clone(),
            details,
            move |conn| Box::pin(async move { Store::update_environment_on(conn, &changed).await }),
        )
        .await;
    Ok(axum::Json(updated?))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookSecret {
    pub webhook_secret: String,
}

/// Issue a new webhook signing secret; the old one stops working at once.
#[utoipa::path(post, path = "/v1/organizations/{organization_id}/environments/{environment_id}/webhook-secret",
    tag = "environments", params(("organization_id" = Uuid, Path), ("environment_id" = Uuid, Path)),
    responses((status = OK, body = WebhookSecret), (status = NOT_FOUND, body = Problem)))]
async fn rotate_webhook_secret(
    State(state): State<AppState>,
    Path((organization_id, environment_id)): Path<(Uuid, Uuid)>,
    authn: Authenticated,
) -> Result<axum::Json<WebhookSecret>, Problem> {
    let (caller, environment) = environment_for(
        &state,
        &authn,
        organization_id,
        environment_id,
        Permission::ProjectsWrite,
    )
    .await?;
    let (secret, sealed) = new_webhook_secret(&state, &environment).await?;
    caller
        .audited(
            &state,
            Some(organization_id),
            "environments.webhook_secret.rotate",
            |_| format!("environment:{environment_id}"),
            serde_json::json!({}),
            move |conn| {
                Box::pin(async move {
                    Store::upsert_sealed_secret_on(conn, &sealed, &SecretScope::Organization).await
                })
            },
        )
        .await?;
    Ok(axum::Json(WebhookSecret {
        webhook_secret: secret.to_string(),
    }))
}
