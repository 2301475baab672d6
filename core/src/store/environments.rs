use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Connection as _, Row};
use uuid::Uuid;

use super::{Store, is_unique_violation, parse_uuid};
use crate::audit::Environment as EnvironmentType;
use crate::clock;
use crate::deployments::{Deployment, DeploymentState, DeploymentTrigger, GoodRevision};
use crate::environments::{
    DeployPolicy, EnvironmentSpec, Project, ServiceSpec, validate_label, validate_services,
};
use crate::{Error, Result};

const ENVIRONMENT_COLUMNS: &str = "id, organization_id, project_id, cluster_id, name, \
     environment_type, namespace, deploy_policy, max_parallel, services, created_at";

const DEPLOYMENT_COLUMNS: &str = "run_id, environment_id, revision, state, trigger_source, \
     services, releases, detail, created_at, finished_at";

impl Store {
    /// Records a project, on the connection of an audited change ([`Store::audited`]); the
    /// organisation is the caller's, already checked.
    pub async fn create_project_on(
        conn: &mut AnyConnection,
        organization_id: Uuid,
        name: &str,
    ) -> Result<Project> {
        validate_label("project name", name)?;
        let project = Project {
            id: Uuid::new_v4(),
            organization_id,
            name: name.to_owned(),
            created_at: clock::from_db(&clock::now_db()),
        };
        sqlx::query(
            "INSERT INTO projects (id, organization_id, name, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(project.id.to_string())
        .bind(organization_id.to_string())
        .bind(name)
        .bind(clock::to_db(project.created_at))
        .execute(&mut *conn)
        .await
        .map_err(|e| conflict_or(e, format!("a project named {name} already exists")))?;
        Ok(project)
    }

    pub async fn project(&self, organization_id: Uuid, id: Uuid) -> Result<Project> {
        let row = sqlx::query(
            "SELECT id, organization_id, name, created_at FROM projects \
             WHERE id = $1 AND organization_id = $2",
        )
        .bind(id.to_string())
        .bind(organization_id.to_string())
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| Error::not_found("project", id))?;
        project_from_row(&row)
    }

    pub async fn projects(&self, organization_id: Uuid) -> Result<Vec<Project>> {
        let rows = sqlx::query(
            "SELECT id, organization_id, name, created_at FROM projects \
             WHERE organization_id = $1 ORDER BY name",
        )
        .bind(organization_id.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(project_from_row).collect()
    }

    /// Records an environment, on the connection of an audited change. Its project and
    /// cluster are already checked to be the organisation's; a cluster namespace holds one
    /// environment.
    pub async fn create_environment_on(
        conn: &mut AnyConnection,
        spec: &EnvironmentSpec,
    ) -> Result<EnvironmentSpec> {
        spec.validate()?;
        sqlx::query(&format!(
            "INSERT INTO environments ({ENVIRONMENT_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(spec.id.to_string())
        .bind(spec.organization_id.to_string())
        .bind(spec.project_id.to_string())
        .bind(spec.cluster_id.to_string())
        .bind(&spec.name)
        .bind(spec.environment_type.as_str())
        .bind(&spec.namespace)
        .bind(spec.deploy_policy.as_str())
        .bind(spec.max_parallel as i64)
        .bind(services_json(&spec.services)?)
        .bind(clock::to_db(spec.created_at))
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            conflict_or(
                e,
                format!(
                    "the project already has an environment {} or the cluster's namespace {} is taken",
                    spec.name, spec.namespace
                ),
            )
        })?;
        Self::environment_on(conn, spec.organization_id, spec.id).await
    }

    async fn environment_on(
        conn: &mut AnyConnection,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<EnvironmentSpec> {
        let row = sqlx::query(&format!(
            "SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE id = $1 AND organization_id = $2"
        ))
        .bind(id.to_string())
        .bind(organization_id.to_string())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found("environment", id))?;
        environment_from_row(&row)
    }

    pub async fn environment(&self, organization_id: Uuid, id: Uuid) -> Result<EnvironmentSpec> {
        let environment = self.environment_by_id(id).await?;
        if environment.organization_id != organization_id {
            return Err(Error::not_found("environment", id));
        }
        Ok(environment)
    }

    /// An environment whatever its organisation: for a signed webhook, which names only
    /// the environment.
    pub async fn environment_by_id(&self, id: Uuid) -> Result<EnvironmentSpec> {
        let row = sqlx::query(&format!(
            "SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| Error::not_found("environment", id))?;
        environment_from_row(&row)
    }

    pub async fn environments(
        &self,
        organization_id: Uuid,
        project_id: Uuid,
    ) -> Result<Vec<EnvironmentSpec>> {
        let rows = sqlx::query(&format!(
            "SELECT {ENVIRONMENT_COLUMNS} FROM environments \
             WHERE organization_id = $1 AND project_id = $2 ORDER BY name"
        ))
        .bind(organization_id.to_string())
        .bind(project_id.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(environment_from_row).collect()
    }

    /// Replaces what the environment should run (and how it deploys), on the connection of
    /// an audited change; takes effect at its next deployment.
    pub async fn update_environment_on(
        conn: &mut AnyConnection,
        spec: &EnvironmentSpec,
    ) -> Result<EnvironmentSpec> {
        spec.validate()?;
        let updated = sqlx::query(
            "UPDATE environments SET services = $1, deploy_policy = $2, max_parallel = $3 \
             WHERE id = $4 AND organization_id = $5",
        )
        .bind(services_json(&spec.services)?)
        .bind(spec.deploy_policy.as_str())
        .bind(spec.max_parallel as i64)
        .bind(spec.id.to_string())
        .bind(spec.organization_id.to_string())
        .execute(&mut *conn)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(Error::not_found("environment", spec.id));
        }
        Self::environment_on(conn, spec.organization_id, spec.id).await
    }

    /// Numbers a new deployment of the environment (one more than the newest) for the run
    /// `run_id`, queued, on the connection of an audited change.
    pub async fn insert_deployment_on(
        conn: &mut AnyConnection,
        run_id: Uuid,
        environment_id: Uuid,
        trigger: DeploymentTrigger,
        services: &[ServiceSpec],
    ) -> Result<Deployment> {
        validate_services(services)?;
        let services = services_json(services)?;
        // Two requests at once may pick the same number; the unique index decides, the
        // loser takes the next one.
        for _ in 0..5 {
            let now = clock::now_db();
            // In a savepoint: losing the race must not abort the transaction around it.
            let mut savepoint = conn.begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO deployments (run_id, environment_id, revision, state, trigger_source, \
                 services, releases, detail, created_at, updated_at, finished_at) \
                 SELECT $1, $2, COALESCE(MAX(revision), 0) + 1, 'queued', $3, $4, '{}', NULL, $5, $5, NULL \
                 FROM deployments WHERE environment_id = $2",
            )
            .bind(run_id.to_string())
            .bind(environment_id.to_string())
            .bind(trigger.as_str())
            .bind(&services)
            .bind(&now)
            .execute(&mut *savepoint)
            .await;
            match &inserted {
                Ok(_) => savepoint.commit().await?,
                Err(_) => savepoint.rollback().await?,
            }
            match inserted {
                Ok(_) => return Self::deployment_on(conn, run_id).await,
                Err(e) if is_unique_violation(&e) => {
                    if let Ok(existing) = Self::deployment_on(conn, run_id).await {
                        return Ok(existing);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Conflict(
            "too many deployments of this environment at once; try again".into(),
        ))
    }

    pub async fn deployment(&self, run_id: Uuid) -> Result<Deployment> {
        let mut conn = self.pool().acquire().await?;
        Self::deployment_on(&mut conn, run_id).await
    }

    /// [`Store::deployment`] on a given connection (for [`Store::audited`]).
    pub async fn deployment_on(conn: &mut AnyConnection, run_id: Uuid) -> Result<Deployment> {
        let row = sqlx::query(&format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE run_id = $1"
        ))
        .bind(run_id.to_string())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found("deployment", run_id))?;
        deployment_from_row(&row)
    }

    /// The environment's deployments, newest first.
    /// Newest revision first; with `before`, the revisions older than it only.
    pub async fn deployments(
        &self,
        environment_id: Uuid,
        limit: u32,
        before: Option<u32>,
    ) -> Result<Vec<Deployment>> {
        let rows = sqlx::query(&format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE environment_id = $1 \
             AND revision < $3 ORDER BY revision DESC LIMIT $2"
        ))
        .bind(environment_id.to_string())
        .bind(limit.clamp(1, 1000) as i64)
        .bind(before.map_or(i64::MAX, i64::from))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(deployment_from_row).collect()
    }

    /// Marks a queued deployment as deploying. False if it is no longer queued (cancelled
    /// or superseded meanwhile, or already started by an earlier attempt).
    pub async fn start_deployment(&self, run_id: Uuid) -> Result<bool> {
        let updated = sqlx::query(
            "UPDATE deployments SET state = 'deploying', updated_at = $2 \
             WHERE run_id = $1 AND state = 'queued'",
        )
        .bind(run_id.to_string())
        .bind(clock::now_db())
        .execute(self.writer())
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Records how a deployment ended. An ended deployment keeps its first end.
    pub async fn finish_deployment(
        &self,
        run_id: Uuid,
        state: DeploymentState,
        releases: &BTreeMap<String, u32>,
        detail: Option<&str>,
    ) -> Result<Deployment> {
        if !state.is_finished() {
            return Err(Error::InvalidInput(format!(
                "{} is not how a deployment ends",
                state.as_str()
            )));
        }
        let now = clock::now_db();
        sqlx::query(
            "UPDATE deployments SET state = $2, releases = $3, detail = $4, updated_at = $5, \
             finished_at = $5 WHERE run_id = $1 AND finished_at IS NULL",
        )
        .bind(run_id.to_string())
        .bind(state.as_str())
        .bind(serde_json::to_string(releases).unwrap_or_else(|_| "{}".into()))
        .bind(detail)
        .bind(&now)
        .execute(self.writer())
        .await?;
        self.deployment(run_id).await
    }

    /// The newest deployed revision before `revision`: what a failed deployment of
    /// `revision` rolls the environment back to.
    pub async fn last_good_revision(
        &self,
        environment_id: Uuid,
        before_revision: u32,
    ) -> Result<Option<GoodRevision>> {
        let row = sqlx::query(&format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments \
             WHERE environment_id = $1 AND state = 'deployed' AND revision < $2 \
             ORDER BY revision DESC LIMIT 1"
        ))
        .bind(environment_id.to_string())
        .bind(before_revision as i64)
        .fetch_optional(self.pool())
        .await?;
        Ok(row
            .as_ref()
            .map(deployment_from_row)
            .transpose()?
            .map(|d| GoodRevision {
                revision: d.revision,
                services: d.services,
                releases: d.releases,
            }))
    }
}

fn conflict_or(error: sqlx::Error, conflict: String) -> Error {
    if is_unique_violation(&error) {
        Error::Conflict(conflict)
    } else {
        error.into()
    }
}

fn services_json(services: &[ServiceSpec]) -> Result<String> {
    serde_json::to_string(services).map_err(|e| Error::InvalidInput(format!("services: {e}")))
}

fn corrupt(column: &str, detail: impl std::fmt::Display) -> Error {
    Error::InvalidInput(format!("corrupt {column}: {detail}"))
}

fn project_from_row(row: &AnyRow) -> Result<Project> {
    Ok(Project {
        id: parse_uuid(&row.try_get::<String, _>("id")?, "projects.id")?,
        organization_id: parse_uuid(
            &row.try_get::<String, _>("organization_id")?,
            "projects.organization_id",
        )?,
        name: row.try_get("name")?,
        created_at: clock::from_db(&row.try_get::<String, _>("created_at")?),
    })
}

fn environment_from_row(row: &AnyRow) -> Result<EnvironmentSpec> {
    let kind: String = row.try_get("environment_type")?;
    let policy: String = row.try_get("deploy_policy")?;
    let services: String = row.try_get("services")?;
    Ok(EnvironmentSpec {
        id: parse_uuid(&row.try_get::<String, _>("id")?, "environments.id")?,
        organization_id: parse_uuid(
            &row.try_get::<String, _>("organization_id")?,
            "environments.organization_id",
        )?,
        project_id: parse_uuid(
            &row.try_get::<String, _>("project_id")?,
            "environments.project_id",
        )?,
        cluster_id: parse_uuid(
            &row.try_get::<String, _>("cluster_id")?,
            "environments.cluster_id",
        )?,
        name: row.try_get("name")?,
        environment_type: EnvironmentType::parse(&kind)
            .ok_or_else(|| corrupt("environments.environment_type", &kind))?,
        namespace: row.try_get("namespace")?,
        deploy_policy: DeployPolicy::parse(&policy)
            .ok_or_else(|| corrupt("environments.deploy_policy", &policy))?,
        max_parallel: row.try_get::<i64, _>("max_parallel")? as u32,
        services: serde_json::from_str(&services)
            .map_err(|e| corrupt("environments.services", e))?,
        created_at: clock::from_db(&row.try_get::<String, _>("created_at")?),
    })
}

fn deployment_from_row(row: &AnyRow) -> Result<Deployment> {
    let state: String = row.try_get("state")?;
    let trigger: String = row.try_get("trigger_source")?;
    let services: String = row.try_get("services")?;
    let releases: String = row.try_get("releases")?;
    Ok(Deployment {
        run_id: parse_uuid(&row.try_get::<String, _>("run_id")?, "deployments.run_id")?,
        environment_id: parse_uuid(
            &row.try_get::<String, _>("environment_id")?,
            "deployments.environment_id",
        )?,
        revision: row.try_get::<i64, _>("revision")? as u32,
        state: DeploymentState::parse(&state)
            .ok_or_else(|| corrupt("deployments.state", &state))?,
        trigger: DeploymentTrigger::parse(&trigger)
            .ok_or_else(|| corrupt("deployments.trigger_source", &trigger))?,
        services: serde_json::from_str(&services)
            .map_err(|e| corrupt("deployments.services", e))?,
        releases: serde_json::from_str(&releases)
            .map_err(|e| corrupt("deployments.releases", e))?,
        detail: row.try_get("detail")?,
        created_at: clock::from_db(&row.try_get::<String, _>("created_at")?),
        finished_at: row
            .try_get::<Option<String>, _>("finished_at")?
            .map(|t| clock::from_db(&t)),
    })
}
