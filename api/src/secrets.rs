//! Organisation secrets: written here, sealed under the organisation's key, read back only
//! by the runs granted them (never through the API).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use windlass_core::rbac::{Permission, Target};
use windlass_core::secret_vault::seal_secret;
use windlass_core::secrets::{RESERVED_PREFIX, SecretListing, SecretScope};
use windlass_core::store::Store;
use zeroize::Zeroizing;

use crate::AppState;
use crate::authz::Authenticated;
use crate::extract::{Json, Path, Query};
use crate::pagination::{Page, PageQuery};
use crate::problem::Problem;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(put, list))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSecret {
    /// Letters, digits, `- _ . /`; names under `windlass.` are reserved.
    pub name: String,
    pub value: String,
    /// Where the secret may be used (default: the whole organisation). A service can name
    /// it only if its environment is inside this scope.
    #[serde(default)]
    pub scope: SecretScope,
}

/// What writing a secret of `scope` needs: secrets_write covering that scope.
async fn scope_target(
    state: &AppState,
    organization_id: Uuid,
    scope: &SecretScope,
) -> Result<Target, Problem> {
    Ok(match scope {
        SecretScope::Organization => Target::default(),
        SecretScope::Project { id } => Target {
            project_id: Some(*id),
            ..Target::default()
        },
        SecretScope::EnvironmentType {
            project_id,
            environment,
        } => Target {
            project_id: Some(*project_id),
            environment: Some(*environment),
            ..Target::default()
        },
        SecretScope::Environment { id } => {
            let environment = state.store.environment(organization_id, *id).await?;
            Target::environment(
                environment.project_id,
                environment.environment_type,
                environment.cluster_id,
            )
        }
    })
}

/// Create or replace a secret. The value is never returned by any route.
#[utoipa::path(post, path = "/v1/organizations/{organization_id}/secrets", tag = "secrets",
    params(("organization_id" = Uuid, Path)), request_body = PutSecret,
    responses((status = NO_CONTENT, description = "stored"), (status = UNPROCESSABLE_ENTITY, body = Problem)))]
async fn put(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    authn: Authenticated,
    Json(request): Json<PutSecret>,
) -> Result<StatusCode, Problem> {
    let (name, value, scope) = (request.name, Zeroizing::new(request.value), request.scope);
    let target = match scope_target(&state, organization_id, &scope).await {
        Ok(target) => target,
        Err(problem) => {
            // A scope naming an environment: reveal nothing to a caller without the
            // organisation-wide permission.
            authn
                .authorize(&state, organization_id, Permission::SecretsWrite)
                .await?;
            return Err(problem);
        }
    };
    let caller = authn
        .authorize_on(&state, organization_id, Permission::SecretsWrite, target)
        .await?;
    let resource = format!("secret:{}", name.chars().take(128).collect::<String>());
    let details = serde_json::json!({"scope": scope});
    let sealed = async {
        if name.starts_with(RESERVED_PREFIX) {
            return Err(Problem::unprocessable(format!(
                "secret names starting with {RESERVED_PREFIX} are Windlass's own"
            )));
        }
        if let Some(project) = scope.project() {
            state.store.project(organization_id, project).await?;
        }
        // A rewrite must not move a secret out of the reach of what its writer holds:
        // the existing scope must be one the caller may write too.
        if let Some(existing) = state.store.secret_listing(organization_id, &name).await?
            && existing.scope != scope
        {
            let old_target = scope_target(&state, organization_id, &existing.scope).await?;
            authn
                .authorize_on(
                    &state,
                    organization_id,
                    Permission::SecretsWrite,
                    old_target,
                )
                .await?;
        }
        Ok(seal_secret(&state.keys, organization_id, &name, &value).await?)
    }
    .await;
    let sealed = match sealed {
        Ok(sealed) => sealed,
        Err(problem) => {
            return caller
                .refused(
                    &state,
                    Some(organization_id),
                    "secrets.put",
                    resource,
                    details,
                    problem,
                )
                .await;
        }
    };
    caller
        .audited(
            &state,
            Some(organization_id),
            "secrets.put",
            |_| resource.clone(),
            details,
            move |conn| {
                Box::pin(async move { Store::upsert_sealed_secret_on(conn, &sealed, &scope).await })
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The organisation's secrets: names and scopes, never values.
#[utoipa::path(get, path = "/v1/organizations/{organization_id}/secrets", tag = "secrets",
    params(PageQuery, ("organization_id" = Uuid, Path)),
    responses((status = OK, body = Vec<SecretListing>, headers(("Windlass-Next-Cursor" = String, description = "`after` of the next page, when there may be one")))))]
async fn list(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    authn: Authenticated,
    Query(page): Query<PageQuery>,
) -> Result<Page<SecretListing>, Problem> {
    let caller = authn
        .authorize(&state, organization_id, Permission::ProjectsRead)
        .await?;
    let listed = state
        .store
        .secret_listings(organization_id)
        .await
        .map_err(Problem::from);
    // Secret names tell an attacker what to go after: reading them is on the record.
    caller
        .record(
            &state,
            Some(organization_id),
            "secrets.list",
            format!("organization:{organization_id}"),
            &listed,
            serde_json::json!({"count": listed.as_ref().map(Vec::len).unwrap_or(0)}),
        )
        .await;
    Page::cut(
        listed?
            .into_iter()
            .filter(|s| !s.name.starts_with(RESERVED_PREFIX))
            .collect(),
        &page,
        |x| x.name.clone(),
    )
}
