//! A cluster's weekly maintenance schedule: read it, pause and resume it, run it now,
//! and backfill the firings a pause or an outage skipped.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use windlass_core::rbac::{Permission, Target};
use windlass_workflows::engine::schedules::MaintenanceSchedule;

use crate::AppState;
use crate::authz::Authenticated;
use crate::extract::{Json, Path, Query};
use crate::pagination::{Page, PageQuery};
use crate::problem::Problem;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_schedules))
        .routes(routes!(get_schedule))
        .routes(routes!(pause))
        .routes(routes!(unpause))
        .routes(routes!(trigger))
        .routes(routes!(backfill))
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleNote {
    /// Why (shown with the schedule).
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Backfill {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClusterMaintenance {
    pub cluster_id: Uuid,
    pub cluster_name: String,
    pub window: windlass_core::maintenance::MaintenanceWindow,
    /// None if the schedule could not be read (it is reported, not hidden).
    pub schedule: Option<MaintenanceSchedule>,
    pub error: Option<String>,
}

/// Every cluster's maintenance schedule in the organisation.
#[utoipa::path(get, path = "/v1/organizations/{organization_id}/maintenance-schedules", tag = "clusters",
    params(PageQuery, ("organization_id" = Uuid, Path)),
    responses((status = OK, body = Vec<ClusterMaintenance>, headers(("Windlass-Next-Cursor" = String, description = "`after` of the next page, when there may be one"))), (status = NOT_FOUND, body = Problem)))]
async fn list_schedules(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    authn: Authenticated,
    Query(page): Query<PageQuery>,
) -> Result<Page<ClusterMaintenance>, Problem> {
    authn
        .authorize(&state, organization_id, Permission::ClustersRead)
        .await?;
    // The page is cut from the clusters first: Temporal is asked for that page only.
    let clusters = Page::cut(state.store.clusters(organization_id).await?, &page, |c| {
        c.name.clone()
    })?;
    let mut listed = Vec::new();
    for cluster in clusters.items {
        let (schedule, error) = match state.engine.maintenance_schedule(cluster.id).await {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e.to_string())),
        };
        listed.push(ClusterMaintenance {
            cluster_id: cluster.id,
            cluster_name: cluster.name,
            window: cluster.maintenance_window,
            schedule,
            error,
        });
    }
    Ok(Page {
        items: listed,
        next: clusters.next,
    })
}

/// The cluster's maintenance schedule: paused or not, next firings, recent runs.
#[utoipa::path(get, path = "/v1/organizations/{organization_id}/clusters/{cluster_id}/maintenance", tag = "clusters",
    params(("organization_id" = Uuid, Path), ("cluster_id" = Uuid, Path)),
    responses((status = OK, body = MaintenanceSchedule), (status = NOT_FOUND, body = Problem)))]
async fn get_schedule(
    State(state): State<AppState>,
    Path((organization_id, cluster_id)): Path<(Uuid, Uuid)>,
    authn: Authenticated,
) -> Result<axum::Json<MaintenanceSchedule>, Problem> {
    authn
        .authorize_on(
            &state,
            organization_id,
            Permission::ClustersRead,
            Target::cluster(cluster_id),
        )
        .await?;
    state.store.cluster(organization_id, cluster_id).await?;
    Ok(axum::Json(
        state.engine.maintenance_schedule(cluster_id).await?,
    ))
}

async fn change(
    state: &AppState,
    authn: &Authenticated,
    organization_id: Uuid,
    cluster_id: Uuid,
    action: &str,
    details: serde_json::Value,
    operation: impl std::future::Future<Output = Result<(), Problem>>,
) -> Result<axum::Json<MaintenanceSchedule>, Problem> {
    let caller = authn
        .authorize_on(
            state,
            organization_id,
            Permission::ClustersWrite,
            Target::cluster(cluster_id),
        )
        .await?;
    let checked = async {
        let cluster = state.store.cluster(organization_id, cluster_id).await?;
        let account = state
            .store
            .cloud_account(organization_id, cluster.cloud_account_id)
            .await?;
        crate::cloud_accounts::require_verified(&account)?;
        Ok::<_, Problem>(())
    }
    .await;
    let resource = format!("cluster:{cluster_id}");
    if let Err(problem) = checked {
        return caller
            .refused(
                state,
                Some(organization_id),
                action,
                resource,
                details,
                problem,
            )
            .await;
    }
    // The schedule changes only once its entry is written.
    caller
        .audited_call(
            state,
            Some(organization_id),
            action,
            resource,
            details,
            operation,
        )
        .await?;
    Ok(axum::Json(
        state.engine.maintenance_schedule(cluster_id).await?,
    ))
}

/// Stop firing until resumed; a maintenance already running goes on.
#[utoipa::path(post, path = "/v1/organizations/{organization_id}/clusters/{cluster_id}/maintenance/pause", tag = "clusters",
    params(("organization_id" = Uuid, Path), ("cluster_id" = Uuid, Path)),
    request_body = ScheduleNote,
    responses((status = OK, body = MaintenanceSchedule), (status = NOT_FOUND, body = Problem)))]
async fn pause(
    State(state): State<AppState>,
    Path((organization_id, cluster_id)): Path<(Uuid, Uuid)>,
    authn: Authenticated,
    Json(body): Json<ScheduleNote>,
) -> Result<axum::Json<MaintenanceSchedule>, Problem> {
    let note = if body.note.is_empty() {
        "paused"
    } else {
        &body.note
    };
    change(
        &state,
        &authn,
        organization_id,
        cluster_id,
        "maintenance.pause",
        serde_json::json!({"note": note}),
        async {
            Ok(state
                .engine
                .pause_maintenance(cluster_id, true, note)
                .await?)
        },
    )
    .await
}

/// Resume firing at the next window.
#[utoipa::path(post, path = "/v1/organizations/{organization_id}/clusters/{cluster_id}/maintenance/unpause", tag = "clusters",
    params(("organization_id" = Uuid, Path), ("cluster_id" = Uuid, Path)),
    request_body = ScheduleNote,
    responses((status = OK, body = MaintenanceSchedule), (status = NOT_FOUND, body = Problem)))]
async fn unpause(
    State(state): State<AppState>,
    Path((organization_id, cluster_id)): Path<(Uuid, Uuid)>,
    authn: Authenticated,
    Json(body): Json<ScheduleNote>,
) -> Result<axum::Json<MaintenanceSchedule>, Problem> {
    let note = if body.note.is_empty() {
        "resumed"
    } else {
        &body.note
    };
    change(
        &state,
        &authn,
        organization_id,
        cluster_id,
        "maintenance.unpause",
        serde_json::json!({"note": note}),
        async {
            Ok(state
                .engine
                .pause_maintenance(cluster_id, false, note)
                .await?)
        },
    )
    .await
}

/// Start a maintenance now. It still only does what fits in the window: outside the
/// window its tasks wait for the next one. Skipped if a maintenance is running.
#[utoipa::path(post, path = "/v1/organizations/{organization_id}/clusters/{cluster_id}/maintenance/trigger", tag = "clusters",
    params(("organization_id" = Uuid, Path), ("cluster_id" = Uuid, Path)),
    responses((status = OK, body = MaintenanceSchedule), (status = NOT_FOUND, body = Problem)))]
async fn trigger(
    State(state): State<AppState>,
    Path((organization_id, cluster_id)): Path<(Uuid, Uuid)>,
    authn: Authenticated,
) -> Result<axum::Json<MaintenanceSchedule>, Problem> {
    change(
        &state,
        &authn,
        organization_id,
        cluster_id,
        "maintenance.trigger",
        serde_json::json!({}),
        async { Ok(state.engine.trigger_maintenance(cluster_id).await?) },
    )
    .await
}

/// Run the firings the schedule would have made in a past period, one after another.
#[utoipa::path(post, path = "/v1/organizations/{organization_id}/clusters/{cluster_id}/maintenance/backfill", tag = "clusters",
    params(("organization_id" = Uuid, Path), ("cluster_id" = Uuid, Path)),
    request_body = Backfill,
    responses((status = OK, body = MaintenanceSchedule), (status = NOT_FOUND, body = Problem),
        (status = UNPROCESSABLE_ENTITY, body = Problem)))]
async fn backfill(
    State(state): State<AppState>,
    Path((organization_id, cluster_id)): Path<(Uuid, Uuid)>,
    authn: Authenticated,
    Json(body): Json<Backfill>,
) -> Result<axum::Json<MaintenanceSchedule>, Problem> {
    if body.start >= body.end {
        return Err(Problem::unprocessable(
            "backfill start must be before its end",
        ));
    }
    if body.end - body.start > chrono::Duration::days(92) {
        return Err(Problem::unprocessable(
            "backfill at most 92 days (13 windows) at once",
        ));
    }
    if body.end > Utc::now() {
        return Err(Problem::unprocessable("backfill covers the past only"));
    }
    change(
        &state,
        &authn,
        organization_id,
        cluster_id,
        "maintenance.backfill",
        serde_json::json!({"start": body.start, "end": body.end}),
        async {
            Ok(state
                .engine
                .backfill_maintenance(cluster_id, body.start, body.end)
                .await?)
        },
    )
    .await
}
