//! Every route but the health checks and the OpenAPI document needs a caller: a person with
//! an OIDC bearer token from a trusted issuer, or a machine with an organisation's API
//! token. Each route names the permission it needs; a caller without it gets 403, and the
//! refusal is audited. There are no passwords anywhere.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;
use windlass_core::api_tokens::ApiToken;
use windlass_core::audit::{ActorKind, AuditResult};
use windlass_core::placements::{self, Placement};
use windlass_core::rbac::{self, Permission, Role, Target};

use crate::AppState;
use crate::caller::Caller;
use crate::oidc::{Identity, OrganizationConnection, TokenError, TrustedIssuer, claimed_issuer};
use crate::problem::Problem;

/// Who is calling, established by [`authenticate`] before any body is read.
#[derive(Clone)]
enum Principal {
    User(Identity),
    ApiToken(ApiToken),
    /// A placed worker: it may call the placement routes (`/v1/placement/...`) only, and
    /// holds no role anywhere.
    Placement(Placement),
}

/// Routes anyone may call.
/// `/metrics` is for the operator's scraper: counts by route template, nothing about callers.
/// The workload-identity issuer's discovery document and keys are public by design: Entra
/// ID reads them to verify the assertions workers present.
const PUBLIC: [&str; 6] = [
    "/healthz",
    "/readyz",
    "/openapi.json",
    "/metrics",
    windlass_core::workload_identity::DISCOVERY_PATH,
    windlass_core::workload_identity::JWKS_PATH,
];

/// Middleware: every request but the public ones must carry a valid bearer token, checked
/// before the body is parsed, so a caller without one learns nothing about the route.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = crate::client_address::peer(request.extensions());
    let client = state.config.trusted_proxies.client(peer, request.headers());
    request
        .extensions_mut()
        .insert(crate::client_address::ClientAddress(client));
    if PUBLIC.contains(&request.uri().path())
        || request
            .uri()
            .path()
            .starts_with(crate::webhook_signature::PREFIX)
    {
        return next.run(request).await;
    }
    let Some(token) = bearer_token(request.headers()) else {
        return unauthenticated("send `Authorization: Bearer <token>`").into_response();
    };
    let principal = match principal_for(&state, &token, request.uri().path()).await {
        Ok(principal) => principal,
        Err(problem) => return problem.into_response(),
    };
    request.extensions_mut().insert(principal);
    next.run(request).await
}

pub(crate) fn bearer_token(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned())
}

/// Who `token` stands for on `path`, as of now (a revoked token or an expired one no
/// longer stands for anyone).
async fn principal_for(state: &AppState, token: &str, path: &str) -> Result<Principal, Problem> {
    if token.starts_with(placements::CREDENTIAL_PREFIX) {
        match state.store.authenticate_placement(token).await {
            Ok(placement) => Ok(Principal::Placement(placement)),
            Err(_) => Err(unauthenticated("the placement credential is not valid")),
        }
    } else if token.starts_with("wlt_") {
        match state.store.authenticate_api_token(token).await {
            Ok(api_token) => Ok(Principal::ApiToken(api_token)),
            Err(_) => Err(unauthenticated("the API token is not valid")),
        }
    } else {
        match verify_person(state, token, path).await {
            Ok(identity) => Ok(Principal::User(identity)),
            Err(error) => {
                tracing::info!(%error, "bearer token refused");
                Err(unauthenticated("the bearer token is not valid"))
            }
        }
    }
}

/// A person's token: from Windlass's own sign-in issuers, or, on an organisation's routes,
/// from one of that organisation's own connections (and then valid there only).
async fn verify_person(state: &AppState, token: &str, path: &str) -> Result<Identity, TokenError> {
    let verifier = &state.auth.oidc;
    let issuer = claimed_issuer(token)?;
    if verifier.is_platform_issuer(&issuer) {
        return verifier.verify(token).await;
    }
    let Some(organization_id) = organization_in_path(path) else {
        return Err(TokenError::UnknownIssuer);
    };
    let connections = state
        .store
        .identity_connections_for_issuer(organization_id, &issuer)
        .await
        .map_err(|e| TokenError::JwksUnavailable(e.to_string()))?;
    let mut refusal = TokenError::UnknownIssuer;
    for connection in connections {
        let trusted = TrustedIssuer {
            issuer: connection.issuer,
            audience: connection.audience,
            jwks_uri: connection.jwks_uri,
        };
        let scope = OrganizationConnection {
            organization_id,
            connection_id: connection.id,
        };
        match verifier
            .verify_for_organization(token, scope, &trusted)
            .await
        {
            Ok(identity) => return Ok(identity),
            // Another connection of the same issuer may be for another audience.
            Err(error) => refusal = error,
        }
    }
    Err(refusal)
}

/// The organisation an `/v1/organizations/{id}/…` path is about.
fn organization_in_path(path: &str) -> Option<Uuid> {
    let rest = path.strip_prefix("/v1/organizations/")?;
    rest.split('/').next()?.parse().ok()
}

/// An authenticated request whose permission is not checked yet.
pub struct Authenticated {
    principal: Principal,
    client: Option<String>,
    ip: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| unauthenticated("send `Authorization: Bearer <token>`"))?;
        let client = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(200).collect());
        let ip = match parts
            .extensions
            .get::<crate::client_address::ClientAddress>()
        {
            Some(crate::client_address::ClientAddress(client)) => *client,
            None => crate::client_address::peer(&parts.extensions),
        }
        .map(|ip| ip.to_string());
        Ok(Self {
            principal,
            client,
            ip,
        })
    }
}

fn unauthenticated(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail)
}

impl Authenticated {
    /// The same caller authenticated again with its token, for a long-lived response (a
    /// live log stream) that must stop once the token is revoked or expires.
    pub(crate) async fn renewed(
        &self,
        state: &AppState,
        token: &str,
        path: &str,
    ) -> Result<Authenticated, Problem> {
        Ok(Self {
            principal: principal_for(state, token, path).await?,
            client: self.client.clone(),
            ip: self.ip.clone(),
        })
    }

    fn caller(&self, actor: String, actor_kind: ActorKind) -> Caller {
        Caller {
            actor,
            actor_kind,
            client: self.client.clone(),
            ip: self.ip.clone(),
        }
    }

    /// A person signed in with the IdP (needed to create an organisation).
    pub fn user(&self) -> Result<(Caller, Identity), Problem> {
        match &self.principal {
            Principal::User(identity) => Ok((
                self.caller(identity.subject.clone(), ActorKind::User),
                identity.clone(),
            )),
            Principal::ApiToken(_) | Principal::Placement(_) => Err(unauthenticated(
                "this needs a person signed in with the identity provider, not an API token",
            )),
        }
    }

    /// The placed worker calling, for the placement routes; anyone else is refused.
    pub fn placement(&self) -> Result<(Caller, Placement), Problem> {
        match &self.principal {
            Principal::Placement(placement) => Ok((
                self.caller(format!("placement:{}", placement.id), ActorKind::System),
                placement.clone(),
            )),
            _ => Err(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "only a placed worker's credential may call this",
            )),
        }
    }

    /// The caller, if it holds `permission` in `organization_id`. Passing also proves the
    /// organisation exists: role bindings, group mappings and API tokens all reference it,
    /// so handlers need not look it up again.
    pub async fn authorize(
        &self,
        state: &AppState,
        organization_id: Uuid,
        permission: Permission,
    ) -> Result<Caller, Problem> {
        self.authorize_on(state, organization_id, permission, Target::default())
            .await
    }

    /// Like [`Self::authorize`], for a request that touches one cluster, project or
    /// environment type: scoped grants count only where they cover it.
    pub async fn authorize_on(
        &self,
        state: &AppState,
        organization_id: Uuid,
        permission: Permission,
        target: Target,
    ) -> Result<Caller, Problem> {
        let (caller, roles) = self.roles_in(state, organization_id).await?;
        if rbac::allows(&roles, permission, &target) {
            return Ok(caller);
        }
        deny(state, &caller, organization_id, permission, &roles).await
    }

    /// The caller, if it may hand out `handed` (the role of a binding, group mapping or
    /// API token) or take it away: it needs members_manage, and for each role a
    /// well-formed role whose scopes are this organisation's, every grant of which it holds
    /// itself at the same scope or wider. The caller's own roles are read once. Refusals
    /// are audited under `action`.
    pub async fn authorize_grant(
        &self,
        state: &AppState,
        organization_id: Uuid,
        action: &str,
        handed: &[Role],
    ) -> Result<Caller, Problem> {
        self.authorize_handing(state, organization_id, action, handed, true)
            .await
    }

    /// As [`Self::authorize_grant`] for taking roles away: only the ceiling applies, not
    /// the form of a new grant, so a role stored before today's rules (an environment-type
    /// grant without a project, a scope naming a deleted project) can still be removed.
    pub async fn authorize_removal(
        &self,
        state: &AppState,
        organization_id: Uuid,
        action: &str,
        taken: &[Role],
    ) -> Result<Caller, Problem> {
        self.authorize_handing(state, organization_id, action, taken, false)
            .await
    }

    async fn authorize_handing(
        &self,
        state: &AppState,
        organization_id: Uuid,
        action: &str,
        handed: &[Role],
        check_form: bool,
    ) -> Result<Caller, Problem> {
        let (caller, roles) = self.roles_in(state, organization_id).await?;
        if !rbac::allows(&roles, Permission::MembersManage, &Target::default()) {
            return deny(
                state,
                &caller,
                organization_id,
                Permission::MembersManage,
                &roles,
            )
            .await;
        }
        for role in handed {
            if check_form && let Err(problem) = well_formed(state, organization_id, role).await {
                let refused: Result<Caller, Problem> = Err(problem);
                caller
                    .record(
                        state,
                        Some(organization_id),
                        action,
                        format!("organization:{organization_id}"),
                        &refused,
                        // What was asked for, however large (the log cuts it with a digest).
                        serde_json::json!({"role": role}),
                    )
                    .await;
                return refused;
            }
            if let Some(exceeded) = rbac::exceeded_grant(&roles, role) {
                return refuse_grant(state, &caller, organization_id, action, &exceeded).await;
            }
        }
        Ok(caller)
    }

    /// Who the caller is and its roles in `organization_id` (none outside its own).
    async fn roles_in(
        &self,
        state: &AppState,
        organization_id: Uuid,
    ) -> Result<(Caller, Vec<Role>), Problem> {
        Ok(match &self.principal {
            Principal::ApiToken(api_token) => {
                let caller = self.caller(format!("token:{}", api_token.id), ActorKind::ApiToken);
                // A token acts only in the organisation that issued it.
                let roles = if api_token.organization_id == organization_id {
                    vec![api_token.role.clone()]
                } else {
                    Vec::new()
                };
                (caller, roles)
            }
            // A placed worker acts through the placement routes only.
            Principal::Placement(placement) => (
                self.caller(format!("placement:{}", placement.id), ActorKind::System),
                Vec::new(),
            ),
            Principal::User(identity) => {
                // A person from an organisation's own connection acts in it only.
                let roles = match identity.connection {
                    Some(c) if c.organization_id != organization_id => Vec::new(),
                    connection => {
                        state
                            .store
                            .roles_of(
                                organization_id,
                                &identity.subject,
                                connection.map(|c| c.connection_id),
                                &identity.groups,
                            )
                            .await?
                    }
                };
                (
                    self.caller(identity.subject.clone(), ActorKind::User),
                    roles,
                )
            }
        })
    }
}

/// The grant ceiling's refusal: 403, audited as `authz.denied` with the grant exceeded.
async fn refuse_grant(
    state: &AppState,
    caller: &Caller,
    organization_id: Uuid,
    action: &str,
    exceeded: &rbac::Grant,
) -> Result<Caller, Problem> {
    let permission = serde_json::to_value(exceeded.permission).unwrap_or_default();
    let scope = serde_json::to_value(&exceeded.scope).unwrap_or_default();
    let entry = caller.entry(
        Some(organization_id),
        "authz.denied",
        format!("organization:{organization_id}"),
        AuditResult::Denied,
        serde_json::json!({"permission": permission, "scope": scope,
            "reason": "grant_ceiling", "action": action}),
    );
    if let Err(error) = state.store.append_audit(entry).await {
        tracing::error!(%error, "could not audit a refused grant");
    }
    Err(Problem::new(
        StatusCode::FORBIDDEN,
        "grant-ceiling",
        format!(
            "the role grants {permission} at {scope}, which you do not hold there or wider; \
             nobody hands out more than they hold"
        ),
    ))
}

/// A role a caller may hand out at all: a short custom name, distinct grants, and scopes
/// that name this organisation's projects and clusters.
async fn well_formed(state: &AppState, organization_id: Uuid, role: &Role) -> Result<(), Problem> {
    role.validate().map_err(Problem::unprocessable)?;
    for grant in role.grants() {
        if let Some(project) = grant.scope.project()
            && state.store.project(organization_id, project).await.is_err()
        {
            return Err(Problem::unprocessable(format!(
                "role: scope names project {project}, which is not this organization's"
            )));
        }
        if let Some(cluster) = grant.scope.cluster()
            && state.store.cluster(organization_id, cluster).await.is_err()
        {
            return Err(Problem::unprocessable(format!(
                "role: scope names cluster {cluster}, which is not this organization's"
            )));
        }
    }
    Ok(())
}

async fn deny(
    state: &AppState,
    caller: &Caller,
    organization_id: Uuid,
    permission: Permission,
    roles: &[Role],
) -> Result<Caller, Problem> {
    let permission_name = serde_json::to_value(permission).unwrap_or_default();
    let entry = caller.entry(
        // Only an organisation the caller belongs to gets the entry in its trail.
        (!roles.is_empty()).then_some(organization_id),
        "authz.denied",
        format!("organization:{organization_id}"),
        AuditResult::Denied,
        serde_json::json!({"permission": permission_name}),
    );
    if let Err(error) = state.store.append_audit(entry).await {
        tracing::error!(%error, "could not audit a denied call");
    }
    Err(Problem::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("this needs the {permission_name} permission in organization {organization_id}"),
    ))
}
