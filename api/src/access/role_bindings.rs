//! Role bindings: a person (by pseudonymous id) gets a role in the organisation.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;
use windlass_core::Store;
use windlass_core::identity_connections::RoleBinding;
use windlass_core::rbac::{Permission, Role};

use crate::AppState;
use crate::authz::Authenticated;
use crate::extract::{Json, Path, Query};
use crate::oidc::organization_subject;
use crate::pagination::{Page, PageQuery};
use crate::problem::Problem;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindRole {
    /// The person's pseudonymous id (`user:…`), as the audit log shows it. Or, instead,
    /// `connection_id` and `idp_subject`: the `sub` of someone who signs in through one of
    /// the organisation's connections.
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    connection_id: Option<Uuid>,
    #[serde(default)]
    idp_subject: Option<String>,
    role: Role,
}

fn is_pseudonym(subject: &str) -> bool {
    subject.len() == 37
        && subject
            .strip_prefix("user:")
            .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
}

async fn subject_of(
    state: &AppState,
    organization_id: Uuid,
    body: &BindRole,
) -> Result<String, Problem> {
    match (&body.subject, body.connection_id, &body.idp_subject) {
        (Some(subject), None, None) if is_pseudonym(subject) => Ok(subject.clone()),
        (Some(_), None, None) => Err(Problem::unprocessable(
            "subject: a pseudonymous id `user:<32 hex digits>`",
        )),
        (None, Some(connection_id), Some(sub)) if (1..=256).contains(&sub.len()) => {
            let connection = state
                .store
                .identity_connection(organization_id, connection_id)
                .await?;
            Ok(organization_subject(
                organization_id,
                &connection.issuer,
                sub,
            ))
        }
        _ => Err(Problem::unprocessable(
            "either subject, or connection_id with idp_subject (1 to 256 characters)",
        )),
    }
}

/// Give a person a role in the organisation (at most what the caller holds).
#[utoipa::path(post, path = "/v1/organizations/{organization_id}/role-bindings", tag = "access",
    params(("organization_id" = Uuid, Path)), request_body = BindRole,
    responses((status = CREATED, body = RoleBinding), (status = FORBIDDEN, body = Problem),
        (status = NOT_FOUND, body = Problem), (status = UNPROCESSABLE_ENTITY, body = Problem)))]
pub(super) async fn bind_role(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    authn: Authenticated,
    Json(body): Json<BindRole>,
) -> Result<(StatusCode, axum::Json<RoleBinding>), Problem> {
    let caller = authn
        .authorize_grant(
            &state,
            organization_id,
            "access.bind_role",
            std::slice::from_ref(&body.role),
        )
        .await?;
    let subject = match subject_of(&state, organization_id, &body).await {
        Ok(subject) => subject,
        Err(problem) => {
            let failed: Result<(), Problem> = Err(problem.clone());
            caller
                .record(
                    &state,
                    Some(organization_id),
                    "access.bind_role",
                    format!("organization:{organization_id}"),
                    &failed,
                    serde_json::json!({"role": body.role}),
                )
                .await;
            return Err(problem);
        }
    };
    let role = body.role.clone();
    let bound = caller
        .audited(
            &state,
            Some(organization_id),
            "access.bind_role",
            |binding: Option<&RoleBinding>| match binding {
                Some(binding) => format!("role_binding:{}", binding.id),
                None => format!("organization:{organization_id}"),
            },
            serde_json::json!({"role": body.role, "subject": subject}),
            move |conn| {
                Box::pin(async move {
                    Store::bind_role_on(conn, organization_id, &subject, &role).await
                })
            },
        )
        .await;
    Ok((StatusCode::CREATED, axum::Json(bound?)))
}

/// Who holds which role in the organisation.
#[utoipa::path(get, path = "/v1/organizations/{organization_id}/role-bindings", tag = "access",
    params(PageQuery, ("organization_id" = Uuid, Path)),
    responses((status = OK, body = Vec<RoleBinding>, headers(("Windlass-Next-Cursor" = String, description = "`after` of the next page, when there may be one"))), (status = FORBIDDEN, body = Problem)))]
pub(super) async fn list_role_bindings(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    authn: Authenticated,
    Query(page): Query<PageQuery>,
) -> Result<Page<RoleBinding>, Problem> {
    authn
        .authorize(&state, organization_id, Permission::MembersManage)
        .await?;
    Page::cut(
        state.store.role_bindings(organization_id).await?,
        &page,
        |x| format!("{}|{}", windlass_core::clock::to_db(x.created_at), x.id),
    )
}

/// Take one role binding away (only one the caller could have granted).
#[utoipa::path(delete, path = "/v1/organizations/{organization_id}/role-bindings/{binding_id}",
    tag = "access", params(("organization_id" = Uuid, Path), ("binding_id" = Uuid, Path)),
    responses((status = NO_CONTENT), (status = FORBIDDEN, body = Problem),
        (status = NOT_FOUND, body = Problem), (status = CONFLICT, body = Problem)))]
pub(super) async fn delete_role_binding(
    State(state): State<AppState>,
    Path((organization_id, binding_id)): Path<(Uuid, Uuid)>,
    authn: Authenticated,
) -> Result<StatusCode, Problem> {
    let found = state.store.role_binding(organization_id, binding_id).await;
    let binding = super::existing(&state, &authn, organization_id, found).await?;
    let caller = authn
        .authorize_removal(
            &state,
            organization_id,
            "access.delete_role_binding",
            std::slice::from_ref(&binding.role),
        )
        .await?;
    caller
        .audited(
            &state,
            Some(organization_id),
            "access.delete_role_binding",
            |_| format!("role_binding:{binding_id}"),
            serde_json::json!({"subject": binding.subject, "role": binding.role}),
            move |conn| {
                Box::pin(async move {
                    Store::delete_role_bindings_on(conn, organization_id, &[binding_id]).await
                })
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a person from the organisation: every role binding of theirs goes at once.
#[utoipa::path(delete, path = "/v1/organizations/{organization_id}/members/{subject}",
    tag = "access", params(("organization_id" = Uuid, Path),
        ("subject" = String, Path, description = "the pseudonymous id `user:…`")),
    responses((status = NO_CONTENT), (status = FORBIDDEN, body = Problem),
        (status = NOT_FOUND, body = Problem), (status = CONFLICT, body = Problem)))]
pub(super) async fn remove_member(
    State(state): State<AppState>,
    Path((organization_id, subject)): Path<(Uuid, String)>,
    authn: Authenticated,
) -> Result<StatusCode, Problem> {
    let bindings: Vec<RoleBinding> = state
        .store
        .role_bindings(organization_id)
        .await?
        .into_iter()
        .filter(|b| b.subject == subject)
        .collect();
    // Removing someone takes away all they hold: only for someone holding no more (and,
    // with nothing bound, for any member manager, who then learns it is not found).
    let held: Vec<Role> = bindings.iter().map(|b| b.role.clone()).collect();
    let caller = authn
        .authorize_removal(&state, organization_id, "access.remove_member", &held)
        .await?;
    let resource = if is_pseudonym(&subject) {
        subject.clone()
    } else {
        format!("organization:{organization_id}")
    };
    let details = serde_json::json!({"bindings": bindings.len()});
    if bindings.is_empty() {
        return caller
            .refused(
                &state,
                Some(organization_id),
                "access.remove_member",
                resource,
                details,
                Problem::not_found(format!("{subject} holds no role in this organization")),
            )
            .await;
    }
    let ids: Vec<Uuid> = bindings.iter().map(|b| b.id).collect();
    caller
        .audited(
            &state,
            Some(organization_id),
            "access.remove_member",
            |_| resource.clone(),
            details,
            move |conn| {
                Box::pin(async move {
                    Store::delete_role_bindings_on(conn, organization_id, &ids).await
                })
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
