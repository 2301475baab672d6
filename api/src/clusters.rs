//! Clusters: create (which provisions), plan without creating, read, and export the
//! blueprint that reproduces a cluster without Windlass.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use windlass_core::blueprint::{Blueprint, Inventory, render, render_values};
use windlass_core::cloud_accounts::CloudAccount;
use windlass_core::clusters::parse_minor_version;
use windlass_core::clusters::{ClusterSpec, NetworkSpec, NodePoolSpec};
use windlass_core::maintenance::MaintenanceWindow;
use windlass_core::rbac::{Permission, Target};
use windlass_core::runs::{Run, RunStatus, WorkflowKind};
use windlass_workflows::cluster_contracts::{
    CloudTarget, DeleteClusterInput, MaintenanceInput, MaintenanceTask, ProvisionClusterInput,
    UpgradeClusterInput,
};
use windlass_workflows::engine::{EngineError, WorkflowInput};

use crate::AppState;
use crate::authz::Authenticated;
use crate::cloud_accounts::require_verified;
use crate::extract::{Json, Path, Query};
use crate::launch::{LaunchAudit, RunToStart, fingerprint, idempotency_key, launch, launch_with};
use crate::pagination::{Page, PageQuery};
use crate::problem::Problem;
use windlass_core::store::{Connection, Store};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_cluster, list_clusters))
        .routes(routes!(get_cluster, delete_cluster))
        .routes(routes!(upgrade_cluster))
        .routes(routes!(get_blueprint))
}

/// A cluster to provision. Everything but the name, account, region and version has the
/// seed's defaults: a 10.0.0.0/16 network over zones 1-3, an autoscaling system pool, and
/// the Tuesday 21:00-23:00 UTC maintenance window.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCluster {
    pub name: String,
    pub cloud_account_id: Uuid,
    pub region: String,
    /// `major.minor`, e.g. `1.33`.
    pub kubernetes_version: String,
    pub network: Option<NetworkSpec>,
    pub node_pools: Option<Vec<NodePoolSpec>>,
    pub maintenance_window: Option<MaintenanceWindow>,
    /// A region or a customer's own worker pool whose workers (`windlass worker
    /// --placement <it>`) alone deploy to this cluster.
    pub placement: Option<String>,
    /// The environment types it hosts (default: every type); environments of other types
    /// are refused.
    pub environment_types: Option<Vec<windlass_core::audit::Environment>>,
    /// Plan only: nothing is created or recorded as a cluster; the run's output is the
    /// plan, and the response carries the inventory it would create.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClusterStarted {
    pub cluster: ClusterSpec,
    /// The provisioning (or planning) run.
    pub run: Run,
    /// What the run creates, resource by resource.
    pub inventory: Inventory,
    /// For a dry run, the rendered blueprint (terraform and helm values) the plan is of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClusterDetail {
    #[serde(flatten)]
    pub spec: ClusterSpec,
    /// The latest run acting on the cluster.
    pub last_run: Option<Run>,
}

/// Create a cluster and provision it (or, with `dry_run`, plan it). With an
/// `Idempotency-Key`, repeating the request returns the first answer (200).
#[utoipa::path(post, path = "/v1/organizations/{organization_id}/clusters", tag = "clusters",
    params(("organization_id" = Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "repeat-safe request key")),
    request_body = CreateCluster,
    responses(
        (status = ACCEPTED, body = ClusterStarted, description = "provisioning (or planning) started"),
        (status = OK, body = ClusterStarted, description = "what this Idempotency-Key already started"),
        (status = NOT_FOUND, body = Problem), (status = CONFLICT, body = Problem),
        (status = UNPROCESSABLE_ENTITY, body = Problem)))]
async fn create_cluster(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    authn: Authenticated,
    headers: HeaderMap,
    Json(request): Json<CreateCluster>,
) -> Result<Response, Problem> {
    let caller = authn
        .authorize(&state, organization_id, Permission::ClustersWrite)
        .await?;
    let details = serde_json::json!({
        "name": request.name,
        "region": request.region,
        "kubernetes_version": request.kubernetes_version,
        "dry_run": request.dry_run,
    });
    let action = if request.dry_run {
        "clusters.plan"
    } else {
        "clusters.create"
    };
    let audit = LaunchAudit {
        caller: &caller,
        action,
        refused_resource: format!("cloud_account:{}", request.cloud_account_id),
        details,
    };
    let (status, started) = create(&state, organization_id, &headers, &request, audit).await?;
    Ok((status, axum::Json(started)).into_response())
}

async fn create(
    state: &AppState,
    organization_id: Uuid,
    headers: &HeaderMap,
    request: &CreateCluster,
    audit: LaunchAudit<'_>,
) -> Result<(StatusCode, ClusterStarted), Problem> {
    let prepared = prepare_create(state, organization_id, headers, request).await;
    let PreparedCluster {
        spec,
        blueprint,
        target,
        new_spec,
        new_run,
    } = match prepared {
        Ok(prepared) => prepared,
        Err(problem) => return audit.refused(state, organization_id, problem).await,
    };
    // The cluster's row (a real, new one), its provisioning run and the entry: one commit.
    let (status, run) = launch_with(
        state,
        audit,
        new_run,
        |_| format!("cluster:{}", spec.id),
        move |conn| {
            Box::pin(async move {
                if let Some(spec) = new_spec {
                    Store::create_cluster_on(conn, &spec).await?;
                }
                Ok(())
            })
        },
    )
    .await?;
    if !request.dry_run {
        // Repeated requests come here too, so a schedule whose creation failed once is
        // made by the retry.
        state
            .engine
            .ensure_maintenance_schedule(MaintenanceInput {
                cluster: spec.clone(),
                target,
                tasks: MaintenanceTask::all(),
            })
            .await?;
    }
    Ok((
        status,
        ClusterStarted {
            cluster: spec,
            run,
            inventory: blueprint.inventory,
            files: request.dry_run.then_some(blueprint.files),
        },
    ))
}

/// A cluster request, checked and rendered before anything is written.
struct PreparedCluster {
    /// The cluster the request describes, or the one its Idempotency-Key made.
    spec: ClusterSpec,
    blueprint: Blueprint,
    target: CloudTarget,
    /// The spec to record: none for a dry run, or when already recorded.
    new_spec: Option<ClusterSpec>,
    /// Its provisioning run.
    new_run: RunToStart,
}

async fn prepare_create(
    state: &AppState,
    organization_id: Uuid,
    headers: &HeaderMap,
    request: &CreateCluster,
) -> Result<PreparedCluster, Problem> {
    let key = idempotency_key(headers)?;
    let account = state
        .store
        .cloud_account(organization_id, request.cloud_account_id)
        .await?;
    require_verified(&account)?;
    // A repeated request names the same cluster, so it cannot create a second one.
    let id = match &key {
        Some(k) => Uuid::new_v5(&organization_id, format!("clusters:{k}").as_bytes()),
        None => Uuid::new_v4(),
    };
    let existing = match state.store.cluster(organization_id, id).await {
        Ok(spec) => Some(spec),
        Err(windlass_core::Error::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let mut new_spec = None;
    let spec = match existing {
        Some(spec) => spec,
        None => {
            let provider = account.provider;
            let spec = ClusterSpec {
                id,
                organization_id,
                cloud_account_id: account.id,
                provider,
                name: request.name.clone(),
                region: request.region.clone(),
                kubernetes_version: request.kubernetes_version.clone(),
                node_pool_version: None,
                network: request.network.clone().unwrap_or_default(),
                node_pools: request
                    .node_pools
                    .clone()
                    .unwrap_or_else(|| vec![NodePoolSpec::default_system_pool(provider)]),
                maintenance_window: request.maintenance_window.unwrap_or_default(),
                placement: request.placement.clone(),
                environment_types: request
                    .environment_types
                    .clone()
                    .unwrap_or_else(windlass_core::clusters::every_environment_type),
                created_at: Utc::now(),
            };
            spec.validate()?;
            if let Some(placement) = &spec.placement {
                crate::placements::check_owned(state, organization_id, placement).await?;
            }
            if !request.dry_run {
                new_spec = Some(spec.clone());
            }
            spec
        }
    };
    // Rendered (and refused) now, rather than after the cluster is recorded.
    let blueprint = cloud_blueprint(&spec, &account)?;
    let target = CloudTarget::acting_for(&account, &state.config.azure_application_id);
    let input = ProvisionClusterInput {
        cluster: spec.clone(),
        target: target.clone(),
        dry_run: request.dry_run,
        allow_cluster_replacement: false,
        sequential_charts: false,
    };
    let new_run = RunToStart {
        organization_id,
        target: format!("cluster:{}", spec.id),
        idempotency_key: key,
        request_fingerprint: fingerprint(request),
        input: WorkflowInput::ProvisionCluster(input),
    };
    Ok(PreparedCluster {
        spec,
        blueprint,
        target,
        new_spec,
        new_run,
    })
}

/// A delete does not wait for maintenance: the maintenance holding the cluster is asked
/// to stop and its hold ends now (as cancelled), so the delete can take the cluster. What
/// the maintenance was doing stops when its activities see the cancellation; terraform's
/// state lock keeps the two apart meanwhile.
async fn maintenance_hold(state: &AppState, cluster_id: Uuid) -> Result<Option<Run>, Problem> {
    let target = windlass_core::store::cluster_target(cluster_id);
    Ok(state
        .store
        .unfinished_run_for_target(&target)
        .await?
        // Another operation: the delete answers 409 naming it.
        .filter(|run| run.kind == WorkflowKind::ClusterMaintenance))
}

/// Stops the maintenance holding the cluster (its workflow cancelled, its hold ended as
/// cancelled), inside the delete's transaction.
async fn take_back_from_maintenance(
    engine: &dyn windlass_workflows::engine::WorkflowEngine,
    conn: &mut Connection,
    hold: &Run,
) -> windlass_core::Result<()> {
    match engine
        .cancel(hold.engine_workflow_id(), "the cluster is being deleted")
        .await
    {
        Ok(()) | Err(EngineError::NotFound(_)) => {}
        Err(e) => return Err(windlass_core::Error::Unavailable(format!("Temporal: {e}"))),
    }
    Store::finish_run_on(
        conn,
        hold.id,
        RunStatus::Cancelled,
        None,
        Some("taken back: the cluster is being deleted"),
    )
    .await?;
    tracing::info!(run_id = %hold.id, "maintenance stopped for a delete");
    Ok(())
}

/// The terraform (azurerm) and helm values that reproduce the cluster.
fn cloud_blueprint(spec: &ClusterSpec, account: &CloudAccount) -> Result<Blueprint, Problem> {
    let mut blueprint = render(spec, account)?;
    blueprint
        .files
        .extend(render_values(spec, account)?.files());
    Ok(blueprint)
}

/// Clusters of an organisation.
#[utoipa::path(get, path = "/v1/organizations/{organization_id}/clusters", tag = "clusters",
    params(PageQuery, ("organization_id" = Uuid, Path)),
    responses((status = OK, body = Vec<ClusterSpec>, headers(("Windlass-Next-Cursor" = String, description = "`after` of the next page, when there may be one"))), (status = NOT_FOUND, body = Problem)))]
async fn list_clusters(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    authn: Authenticated,
    Query(page): Query<PageQuery>,
) -> Result<Page<ClusterSpec>, Problem> {
    authn
        .authorize(&state, organization_id, Permission::ClustersRead)
        .await?;
    Page::cut(state.store.clusters(organization_id).await?, &page, |x| {
        format!("{}|{}", windlass_core::clock::to_db(x.created_at), x.id)
    })
}

/// One cluster: its spec and the latest run acting on it.
#[utoipa::path(get, path = "/v1/organizations/{organization_id}/clusters/{cluster_id}", tag = "clusters",
    params(("organization_id" = Uuid, Path), ("cluster_id" = Uuid, Path)),
    responses((status = OK, body = ClusterDetail), (status = NOT_FOUND, body = Problem)))]
async fn get_cluster(
    State(state): State<AppState>,
    Path((organization_id, cluster_id)): Path<(Uuid, Uuid)>,
    authn: Authenticated,
) -> Result<axum::Json<ClusterDetail>, Problem> {
    authn
        .authorize_on(
            &state,
            organization_id,
            Permission::ClustersRead,
            Target::cluster(cluster_id),
        )
        .await?;
    let spec = state.store.cluster(organization_id, cluster_id).await?;
    let last_run = state
        .store
        .last_run_for_target(organization_id, &format!("cluster:{cluster_id}"))
        .await?;
    Ok(axum::Json(ClusterDetail { spec, last_run }))
}

/// The blueprint that reproduces the cluster without Windlass: terraform for the
/// azurerm provider (state in the cluster's own storage account), helm values for its
/// charts, and a README. It holds no secret.
#[utoipa::path(get, path = "/v1/organizations/{organization_id}/clusters/{cluster_id}/blueprint", tag = "clusters",
    params(("organization_id" = Uuid, Path), ("cluster_id" = Uuid, Path)),
    responses((status = OK, body = Blueprint), (status = NOT_FOUND, body = Problem)))]
async fn get_blueprint(
    State(state): State<AppState>,
    Path((organization_id, cluster_id)): Path<(Uuid, Uuid)>,
    authn: Authenticated,
) -> Result<axum::Json<Blueprint>, Problem> {
    let caller = authn
        .authorize_on(
            &state,
            organization_id,
            Permission::ClustersRead,
            Target::cluster(cluster_id),
        )
        .await?;
    let exported = async {
        let spec = state.store.cluster(organization_id, cluster_id).await?;
        let account = state
            .store
            .cloud_account(organization_id, spec.cloud_account_id)
            .await?;
        cloud_blueprint(&spec, &account)
    }
    .await;
    // A blueprint maps the customer's infrastructure: who took one is on the record.
    caller
        .record(
            &state,
            Some(organization_id),
            "clusters.blueprint_export",
            format!("cluster:{cluster_id}"),
            &exported,
            serde_json::json!({}),
        )
        .await;
    Ok(axum::Json(exported?))
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpgradeRequest {
    /// `major.minor`: the next minor version after the cluster's.
    pub kubernetes_version: String,
}

/// Upgrade the cluster to the next minor Kubernetes version: the run checks that the
/// region offers it, then upgrades the control plane, then the node pools. The cluster's
/// spec takes the new version when the run succeeds.
#[utoipa::path(post, path = "/v1/organizations/{organization_id}/clusters/{cluster_id}/upgrade", tag = "clusters",
    params(("organization_id" = Uuid, Path), ("cluster_id" = Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "repeat-safe request key")),
    request_body = UpgradeRequest,
    responses((status = ACCEPTED, body = Run), (status = OK, body = Run),
        (status = NOT_FOUND, body = Problem), (status = CONFLICT, body = Problem),
        (status = UNPROCESSABLE_ENTITY, body = Problem)))]
async fn upgrade_cluster(
    State(state): State<AppState>,
    Path((organization_id, cluster_id)): Path<(Uuid, Uuid)>,
    authn: Authenticated,
    headers: HeaderMap,
    Json(request): Json<UpgradeRequest>,
) -> Result<Response, Problem> {
    let caller = authn
        .authorize_on(
            &state,
            organization_id,
            Permission::ClustersWrite,
            Target::cluster(cluster_id),
        )
        .await?;
    let audit = LaunchAudit {
        caller: &caller,
        action: "clusters.upgrade",
        refused_resource: format!("cluster:{cluster_id}"),
        details: serde_json::json!({"kubernetes_version": request.kubernetes_version}),
    };
    let new_run =
        match prepare_upgrade(&state, organization_id, cluster_id, &headers, &request).await {
            Ok(new_run) => new_run,
            Err(problem) => return audit.refused(&state, organization_id, problem).await,
        };
    let (status, run) = launch(&state, audit, new_run, |_| format!("cluster:{cluster_id}")).await?;
    Ok((status, axum::Json(run)).into_response())
}

async fn prepare_upgrade(
    state: &AppState,
    organization_id: Uuid,
    cluster_id: Uuid,
    headers: &HeaderMap,
    request: &UpgradeRequest,
) -> Result<RunToStart, Problem> {
    let key = idempotency_key(headers)?;
    let spec = state.store.cluster(organization_id, cluster_id).await?;
    let account = state
        .store
        .cloud_account(organization_id, spec.cloud_account_id)
        .await?;
    require_verified(&account)?;
    let current = parse_minor_version(&spec.kubernetes_version);
    let wanted = parse_minor_version(&request.kubernetes_version).ok_or_else(|| {
        Problem::unprocessable(format!(
            "kubernetes_version {:?} must be major.minor, like 1.34",
            request.kubernetes_version
        ))
    })?;
    // A repeat of an upgrade that already succeeded finds the spec moved on: the
    // idempotency key then answers with the first run.
    let repeat = key.is_some() && Some(wanted) == current;
    if !repeat && current.map(|(major, minor)| (major, minor + 1)) != Some(wanted) {
        return Err(Problem::unprocessable(format!(
            "Kubernetes clusters upgrade one minor version at a time: {} can go to {}.{} next, not {}",
            spec.kubernetes_version,
            current.map(|c| c.0).unwrap_or_default(),
            current.map(|c| c.1 + 1).unwrap_or_default(),
            request.kubernetes_version
        )));
    }
    let input = UpgradeClusterInput {
        cluster: spec,
        target: CloudTarget::acting_for(&account, &state.config.azure_application_id),
        to_version: request.kubernetes_version.clone(),
    };
    Ok(RunToStart {
        organization_id,
        target: format!("cluster:{cluster_id}"),
        idempotency_key: key,
        request_fingerprint: fingerprint(request),
        input: WorkflowInput::UpgradeCluster(input),
    })
}

/// Delete the cluster: terraform destroy, then its resource group. Safe to repeat after
/// a delete that stopped halfway. Its maintenance schedule is removed.
#[utoipa::path(delete, path = "/v1/organizations/{organization_id}/clusters/{cluster_id}", tag = "clusters",
    params(("organization_id" = Uuid, Path), ("cluster_id" = Uuid, Path)),
    responses((status = ACCEPTED, body = Run), (status = NOT_FOUND, body = Problem),
        (status = CONFLICT, body = Problem)))]
async fn delete_cluster(
    State(state): State<AppState>,
    Path((organization_id, cluster_id)): Path<(Uuid, Uuid)>,
    authn: Authenticated,
) -> Result<Response, Problem> {
    let caller = authn
        .authorize_on(
            &state,
            organization_id,
            Permission::ClustersWrite,
            Target::cluster(cluster_id),
        )
        .await?;
    let prepared = async {
        let spec = state.store.cluster(organization_id, cluster_id).await?;
        let account = state
            .store
            .cloud_account(organization_id, spec.cloud_account_id)
            .await?;
        require_verified(&account)?;
        let input = DeleteClusterInput {
            cluster: spec,
            target: CloudTarget::acting_for(&account, &state.config.azure_application_id),
        };
        let hold = maintenance_hold(&state, cluster_id).await?;
        Ok::<_, Problem>((input, hold))
    }
    .await;
    let mut audit = LaunchAudit {
        caller: &caller,
        action: "clusters.delete",
        refused_resource: format!("cluster:{cluster_id}"),
        details: serde_json::json!({}),
    };
    let (input, hold) = match prepared {
        Ok(prepared) => prepared,
        Err(problem) => return audit.refused(&state, organization_id, problem).await,
    };
    audit.details = serde_json::json!({"maintenance_taken_back": hold.as_ref().map(|h| h.id)});
    let new_run = RunToStart {
        organization_id,
        target: format!("cluster:{cluster_id}"),
        idempotency_key: None,
        request_fingerprint: String::new(),
        input: WorkflowInput::DeleteCluster(input),
    };
    let engine = state.engine.clone();
    // A maintenance holding the cluster is taken back in the same commit as the delete
    // run (the hold is the cluster's one unfinished run until then).
    let (_, run) = launch_with(
        &state,
        audit,
        new_run,
        |_| format!("cluster:{cluster_id}"),
        move |conn| {
            Box::pin(async move {
                if let Some(hold) = hold {
                    take_back_from_maintenance(engine.as_ref(), conn, &hold).await?;
                }
                Ok(())
            })
        },
    )
    .await?;
    state.engine.delete_maintenance_schedule(cluster_id).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(run)).into_response())
}
