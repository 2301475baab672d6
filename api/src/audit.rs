//! Who called, from where, and the audit trail of every state-changing call.
//!

use axum::extract::State;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use windlass_core::audit::{
    ActorKind, AuditEntry, AuditFilter, AuditResult, Environment, ExportedAuditEntry, NewAuditEntry,
};
use windlass_core::audit_digests::{AuditDigest, AuditDigests};

use windlass_core::rbac::Permission;
use windlass_core::store::AuditedError;

use crate::AppState;
use crate::authz::Authenticated;
use crate::extract::{Path, Query};
use crate::pagination::{Page, PageQuery};
use crate::problem::Problem;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_audit_entries))
        .routes(routes!(export_audit))
}

/// The caller of a request, authenticated and authorised (see `authz`).
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: String,
    pub actor_kind: ActorKind,
    pub client: Option<String>,
    pub ip: Option<String>,
}

impl Caller {
    /// An audit entry of something this caller did.
    pub fn entry(
        &self,
        organization_id: Option<Uuid>,
        action: &str,
        resource: String,
        result: AuditResult,
        details: serde_json::Value,
    ) -> NewAuditEntry {
        NewAuditEntry {
            client: self.client.clone(),
            ip: self.ip.clone(),
            ..NewAuditEntry::new(
                organization_id,
                self.actor.clone(),
                self.actor_kind,
                action,
                resource,
                result,
                details,
            )
        }
    }

    /// Appends what this caller did. The change has already happened, so a failure to
    /// record is logged loudly rather than turned into an error the caller would retry.
    pub async fn record<T>(
        &self,
        state: &AppState,
        organization_id: Option<Uuid>,
        action: &str,
        resource: String,
        outcome: &Result<T, Problem>,
        details: serde_json::Value,
    ) {
        let (result, details) = match outcome {
            Ok(_) => (AuditResult::Success, details),
            Err(problem) => refusal(problem, details),
        };
        let mut entry = self.entry(organization_id, action, resource, result, details);
        crate::audit_scope::fill(state, &mut entry).await;
        if let Err(error) = state.store.append_audit(entry).await {
            tracing::error!(%error, action, "could not append to the audit log");
        }
    }
}

impl Caller {
    /// Makes a change of Windlass's own records and its audit entry in one transaction:
    /// if the entry cannot be written, the change does not happen (503, nothing to undo).
    /// A change that fails is recorded as a failed attempt, as with [`Caller::record`].
    ///
    /// `resource` names what the entry is about: with the change's result on success,
    /// with `None` for a failed attempt (and for finding the entry's scope beforehand).
    pub async fn audited<T, C>(
        &self,
        state: &AppState,
        organization_id: Option<Uuid>,
        action: &str,
        resource: impl Fn(Option<&T>) -> String,
        details: serde_json::Value,
        change: C,
    ) -> Result<T, Problem>
    where
        C: for<'c> FnOnce(
            &'c mut windlass_core::store::Connection,
        ) -> futures::future::BoxFuture<'c, windlass_core::Result<T>>,
    {
        // The scope (cluster, project, environment, service) is looked up before the
        // transaction: the change's own rows are not visible outside it yet, and the
        // lookup must not hold the audit lock.
        let mut scoped = self.entry(
            organization_id,
            action,
            resource(None),
            AuditResult::Success,
            details.clone(),
        );
        crate::audit_scope::fill(state, &mut scoped).await;
        let made = state
            .store
            .audited(change, |value| {
                let mut entry = self.entry(
                    organization_id,
                    action,
                    resource(Some(value)),
                    AuditResult::Success,
                    details.clone(),
                );
                crate::audit_scope::fill_named(&mut entry);
                entry.cluster_id = entry.cluster_id.or(scoped.cluster_id);
                entry.project_id = entry.project_id.or(scoped.project_id);
                entry.environment = entry.environment.or(scoped.environment);
                entry.service = entry.service.take().or(scoped.service.clone());
                Some(entry)
            })
            .await;
        match made {
            Ok((value, _)) => Ok(value),
            Err(AuditedError::Change(error)) => {
                self.refused(
                    state,
                    organization_id,
                    action,
                    resource(None),
                    details,
                    error.into(),
                )
                .await
            }
            Err(AuditedError::Audit(error)) => Err(unwritable(error, action)),
        }
    }

    /// A change outside Windlass's records (Temporal: a cancel, a schedule's pause) made
    /// only once its entry is written, in one transaction with it (see
    /// [`windlass_core::Store::audited_ahead`]); a change that fails is recorded as a
    /// failed attempt instead.
    pub async fn audited_call<T>(
        &self,
        state: &AppState,
        organization_id: Option<Uuid>,
        action: &str,
        resource: String,
        details: serde_json::Value,
        change: impl std::future::Future<Output = Result<T, Problem>>,
    ) -> Result<T, Problem> {
        let mut entry = self.entry(
            organization_id,
            action,
            resource.clone(),
            AuditResult::Success,
            details.clone(),
        );
        crate::audit_scope::fill(state, &mut entry).await;
        match state.store.audited_ahead(entry, change).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(problem)) => {
                self.refused(state, organization_id, action, resource, details, problem)
                    .await
            }
            Err(error) => Err(unwritable(error, action)),
        }
    }

    /// Records a refused or failed attempt (nothing changed) and hands the problem back,
    /// for the checks a route makes before its change.
    pub async fn refused<T>(
        &self,
        state: &AppState,
        organization_id: Option<Uuid>,
        action: &str,
        resource: String,
        details: serde_json::Value,
        problem: Problem,
    ) -> Result<T, Problem> {
        // Recorded as a `()` result: `T` (a response) need not be shareable across the await.
        let failed: Result<(), Problem> = Err(problem);
        self.record(state, organization_id, action, resource, &failed, details)
            .await;
        failed.map(|()| unreachable!("recorded as a failure"))
    }
}

/// How a refused or failed attempt reads: denied for a 403, failed otherwise, with the
/// answer's status in its details.
fn refusal(problem: &Problem, mut details: serde_json::Value) -> (AuditResult, serde_json::Value) {
    if let Some(map) = details.as_object_mut() {
        map.insert("status".into(), problem.status.into());
    }
    let result = if problem.status == 403 {
        AuditResult::Denied
    } else {
        AuditResult::Failed
    };
    (result, details)
}

/// The answer to a change refused because its entry could not be written.
pub(crate) fn unwritable(error: windlass_core::Error, action: &str) -> Problem {
    tracing::error!(%error, action, "audit log unwritable: change refused");
    Problem::unavailable(
        "the audit log could not be written, so nothing was changed; try again",
        5,
    )
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    cluster_id: Option<Uuid>,
    project_id: Option<Uuid>,
    environment: Option<Environment>,
    service: Option<String>,
    action: Option<String>,
    /// Entries after this sequence number (for paging).
    after_seq: Option<i64>,
    /// The `Windlass-Next-Cursor` of the page before (instead of `after_seq`).
    after: Option<String>,
    /// 1 to 1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// The organisation's audit trail, oldest first.
#[utoipa::path(get, path = "/v1/organizations/{organization_id}/audit", tag = "audit",
    params(("organization_id" = Uuid, Path), AuditQuery),
    responses((status = OK, body = Vec<AuditEntry>,
            headers(("Windlass-Next-Cursor" = String, description = "`after` of the next page, when there may be one"))),
        (status = NOT_FOUND, body = Problem), (status = BAD_REQUEST, body = Problem)))]
async fn list_audit_entries(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    request: Authenticated,
    Query(query): Query<AuditQuery>,
) -> Result<Page<AuditEntry>, Problem> {
    request
        .authorize(&state, organization_id, Permission::AuditRead)
        .await?;
    let page = PageQuery {
        after: query.after,
        limit: query.limit,
    };
    let limit = page.limit(100, 1000)?;
    let after_seq = page.position_as::<i64>()?.or(query.after_seq);
    let entries = state
        .store
        .audit_entries(
            organization_id,
            &AuditFilter {
                cluster_id: query.cluster_id,
                project_id: query.project_id,
                environment: query.environment,
                service: query.service,
                action: query.action,
                after_seq,
                limit: Some(limit),
            },
        )
        .await?;
    Ok(Page::of(entries, limit, |entry| entry.seq.to_string()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// Entries after this position in the organisation's chain (for paging).
    after_chain_seq: Option<i64>,
    /// 1 to 1000, default 1000.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// The organisation's audit chain as stored, its signed digests and the keys that signed
/// them: everything needed to verify the trail without Windlass.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AuditExport {
    /// Oldest first; each entry's `chain_hash` is `organization_chain_hash` of its fields.
    pub entries: Vec<ExportedAuditEntry>,
    /// Every digest of the chain (signed heads), oldest first.
    pub digests: Vec<AuditDigest>,
    /// `{"keys": [JWK, ...]}`: ES256 public keys of the digests.
    #[schema(value_type = Object)]
    pub public_keys: serde_json::Value,
    /// How to recompute the hashes and check the signatures.
    pub verification: &'static str,
}

const VERIFICATION: &str = "chain_hash = sha256(\"windlass.audit.organization.v1\" || chain_prev_hash || \
fields), each field in the order chain_seq, id, organization_id, occurred_at, actor, actor_kind, action, \
resource, cluster_id, project_id, environment, service, client, ip, result, details as 0x00 when null, \
else 0x01 || u64 big-endian byte length || UTF-8 text; hex lowercase. The first entry links to 64 zeros. \
A digest's signature is ES256 (r || s, base64url) over \"windlass.audit.digest.v1\\n<organization id>\\n\
<chain_seq>\\n<chain_hash>\\n<signed_at>\". scripts/verify_audit_export.py does both.";

/// Export the organisation's audit chain for verification outside Windlass.
#[utoipa::path(get, path = "/v1/organizations/{organization_id}/audit/export", tag = "audit",
    params(("organization_id" = Uuid, Path), ExportQuery),
    responses((status = OK, body = AuditExport), (status = NOT_FOUND, body = Problem),
        (status = BAD_REQUEST, body = Problem)))]
async fn export_audit(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    request: Authenticated,
    Query(query): Query<ExportQuery>,
) -> Result<axum::Json<AuditExport>, Problem> {
    let caller = request
        .authorize(&state, organization_id, Permission::AuditRead)
        .await?;
    if query.limit.is_some_and(|l| !(1..=1000).contains(&l)) {
        return Err(Problem::bad_request("limit must be between 1 and 1000"));
    }
    let exported = async {
        let digests = AuditDigests::new(state.keys.clone());
        Ok::<_, Problem>(AuditExport {
            entries: state
                .store
                .audit_export(
                    organization_id,
                    query.after_chain_seq.unwrap_or(0),
                    query.limit.unwrap_or(1000),
                )
                .await?,
            digests: state.store.audit_digests(Some(organization_id)).await?,
            public_keys: digests.public_keys().await?,
            verification: VERIFICATION,
        })
    }
    .await;
    // Reading the trail is on the trail too (after the read, so the export ends before it).
    caller
        .record(
            &state,
            Some(organization_id),
            "audit.export",
            format!("organization:{organization_id}"),
            &exported,
            serde_json::json!({"after_chain_seq": query.after_chain_seq}),
        )
        .await;
    Ok(axum::Json(exported?))
}
