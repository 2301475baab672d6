//! The audit trail of every state-changing call: reading and exporting it.
//!

use axum::extract::State;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use windlass_core::audit::{AuditEntry, AuditFilter, Environment, ExportedAuditEntry};
use windlass_core::audit_digests::{AuditDigest, AuditDigests};

use windlass_core::rbac::Permission;

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
