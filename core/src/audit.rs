//! The audit log: who did what, when, how, and with what result.
//!
//! Entries are immutable and hash-chained: each entry's hash covers the previous entry's hash
//! and every other field, so an edited, removed or reordered entry breaks the chain where it
//! happened. The database refuses UPDATE and DELETE on the table; the chain is what still
//! tells when someone with enough rights went around that.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{Error, Result};

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Bumped if the canonical encoding ever changes, so old and new hashes cannot be confused.
const ENCODING_TAG: &[u8] = b"windlass.audit.v1";
/// The organisation chains' encoding, distinct from the platform-wide chain's.
const ORGANIZATION_ENCODING_TAG: &[u8] = b"windlass.audit.organization.v1";

/// Upper bound on an entry's details: the log records facts, not payloads.
pub(crate) const MAX_DETAILS_BYTES: usize = 16 * 1024;

/// Keys that name a credential. Details carrying one are refused by `validate`, because an
/// immutable log cannot be cleaned up afterwards; the store renames them first
/// (`audit_sanitize.rs`), so an entry is never lost over a name.
pub(crate) const SECRET_KEYS: [&str; 10] = [
    "password",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "authorization",
    "api_key",
    "private_key",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    User,
    ApiToken,
    /// Windlass itself: workers, schedules, repairs.
    System,
    /// A platform operator acting on a customer's behalf.
    Support,
}

impl ActorKind {
    pub const ALL: [ActorKind; 4] = [Self::User, Self::ApiToken, Self::System, Self::Support];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::ApiToken => "api_token",
            Self::System => "system",
            Self::Support => "support",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditResult {
    Success,
    Denied,
    Failed,
}

impl AuditResult {
    pub const ALL: [AuditResult; 3] = [Self::Success, Self::Denied, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Denied => "denied",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    Production,
    Staging,
    Development,
    Preview,
}

impl Environment {
    pub const ALL: [Environment; 4] = [
        Self::Production,
        Self::Staging,
        Self::Development,
        Self::Preview,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Production => "production",
            Self::Staging => "staging",
            Self::Development => "development",
            Self::Preview => "preview",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Position in the chain, assigned by the store: 1, 2, 3, ... without gaps.
    pub seq: i64,
    pub id: Uuid,
    /// None for platform-wide events.
    pub organization_id: Option<Uuid>,
    /// When the store recorded the event; never decreases along `seq`.
    pub occurred_at: DateTime<Utc>,
    /// Pseudonymous subject id (never a name or an email).
    pub actor: String,
    pub actor_kind: ActorKind,
    /// `area.verb`, e.g. `runs.start`, `workflow.finished`, `authz.denied`.
    pub action: String,
    /// `kind:id`, e.g. `run:<uuid>`.
    pub resource: String,
    pub cluster_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub environment: Option<Environment>,
    pub service: Option<String>,
    /// User agent or client name (CLI, console, Terraform provider, ...).
    pub client: Option<String>,
    pub ip: Option<String>,
    pub result: AuditResult,
    pub details: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
    /// Position in the organisation's own chain (the platform's for platform events);
    /// none for entries written before organisation chains existed.
    pub chain_seq: Option<i64>,
    pub chain_prev_hash: Option<String>,
    /// [`organization_chain_hash`] of this entry: what a customer verifies its slice with.
    pub chain_hash: Option<String>,
}

/// An entry of an organisation's chain exactly as stored: every field is the text the
/// chain hash covers, so a customer can recompute it without Windlass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExportedAuditEntry {
    pub chain_seq: i64,
    pub id: String,
    pub organization_id: Option<String>,
    pub occurred_at: String,
    pub actor: String,
    pub actor_kind: String,
    pub action: String,
    pub resource: String,
    pub cluster_id: Option<String>,
    pub project_id: Option<String>,
    pub environment: Option<String>,
    pub service: Option<String>,
    pub client: Option<String>,
    pub ip: Option<String>,
    pub result: String,
    /// The details' JSON text as stored (hash it as is; do not re-serialise).
    pub details: String,
    pub chain_prev_hash: String,
    pub chain_hash: String,
}

/// An event to record; the store assigns `seq`, `id`, `occurred_at` and the hashes.
#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    pub organization_id: Option<Uuid>,
    pub actor: String,
    pub actor_kind: ActorKind,
    pub action: String,
    pub resource: String,
    pub cluster_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub environment: Option<Environment>,
    pub service: Option<String>,
    pub client: Option<String>,
    pub ip: Option<String>,
    pub result: AuditResult,
    /// A JSON object of non-secret facts (ids, names of what changed, error codes).
    pub details: serde_json::Value,
}

impl NewAuditEntry {
    /// An event not tied to a cluster, project, environment or service, with no client or
    /// address: set those on the result where they apply.
    pub fn new(
        organization_id: Option<Uuid>,
        actor: impl Into<String>,
        actor_kind: ActorKind,
        action: &str,
        resource: impl Into<String>,
        result: AuditResult,
        details: serde_json::Value,
    ) -> Self {
        Self {
            organization_id,
            actor: actor.into(),
            actor_kind,
            action: action.to_owned(),
            resource: resource.into(),
            cluster_id: None,
            project_id: None,
            environment: None,
            service: None,
            client: None,
            ip: None,
            result,
            details,
        }
    }

    /// Refuses what must never be written to a log nobody can clean up: names or emails as
    /// actors, credentials in details, and malformed values that would defeat filtering.
    pub fn validate(&self) -> Result<()> {
        let invalid = |message: String| Err(Error::InvalidInput(message));
        if self.actor.trim().is_empty() || self.actor.len() > 256 {
            return invalid("audit actor must be a subject id of 1 to 256 bytes".into());
        }
        if self.actor.contains('@') || self.actor.chars().any(char::is_whitespace) {
            return invalid(
                "audit actor must be a pseudonymous subject id, not a name or an email".into(),
            );
        }
        if !is_action(&self.action) {
            return invalid(format!(
                "audit action {:?} must look like `area.verb` (lowercase, digits, _)",
                self.action
            ));
        }
        if self.resource.trim().is_empty() || self.resource.len() > 512 {
            return invalid("audit resource must be 1 to 512 bytes, e.g. `run:<uuid>`".into());
        }
        if let Some(ip) = &self.ip
            && ip.parse::<IpAddr>().is_err()
        {
            return invalid(format!("audit ip {ip:?} is not an IP address"));
        }
        if !self.details.is_object() {
            return invalid("audit details must be a JSON object".into());
        }
        if let Some(key) = secret_key(&self.details) {
            return invalid(format!(
                "audit details must not carry secrets (found key {key:?})"
            ));
        }
        if self.details.to_string().len() > MAX_DETAILS_BYTES {
            return invalid(format!("audit details exceed {MAX_DETAILS_BYTES} bytes"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub cluster_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub environment: Option<Environment>,
    pub service: Option<String>,
    pub action: Option<String>,
    /// Keyset paging: entries with a larger `seq` than this.
    pub after_seq: Option<i64>,
    /// Default 100, at most 1000.
    pub limit: Option<u32>,
}

/// The outcome of walking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ChainVerification {
    pub entries_checked: u64,
    /// The last entry's seq and hash: publish them elsewhere to also detect a cut-off tail,
    /// which the chain alone cannot show.
    pub head_seq: Option<i64>,
    pub head_hash: Option<String>,
    pub first_break: Option<ChainBreak>,
}

impl ChainVerification {
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ChainBreak {
    /// The first entry that does not verify.
    pub seq: i64,
    pub reason: ChainBreakReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ChainBreakReason {
    /// The entry's fields no longer produce its hash: it was edited.
    HashMismatch,
    /// The seq jumps: entries before this one were removed.
    MissingEntries { expected_seq: i64 },
    /// The entry does not link to the one before it: removed or reordered entries.
    PrevHashMismatch,
}

impl std::fmt::Display for ChainBreakReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::HashMismatch => f.write_str("hash mismatch"),
            Self::MissingEntries { expected_seq } => {
                write!(f, "missing entries (expected seq {expected_seq})")
            }
            Self::PrevHashMismatch => f.write_str("prev_hash mismatch"),
        }
    }
}

/// `sha256(ENCODING_TAG || prev_hash || fields)` as lowercase hex, where each field is its
/// stored text, length-prefixed (or a single 0 byte when absent) so no two different entries
/// encode to the same bytes. `fields` must always be passed in the same order.
pub fn chain_hash(prev_hash: &str, fields: &[Option<&str>]) -> String {
    tagged_hash(ENCODING_TAG, prev_hash, fields)
}

/// The hash of an entry in its organisation's chain: as [`chain_hash`], under its own tag,
/// over `chain_prev_hash` and the fields in this order: chain_seq, id, organization_id,
/// occurred_at, actor, actor_kind, action, resource, cluster_id, project_id, environment,
/// service, client, ip, result, details (each as stored, i.e. as exported). A customer
/// recomputes it from an exported entry alone (`scripts/verify_audit_export.py`).
pub fn organization_chain_hash(chain_prev_hash: &str, fields: &[Option<&str>]) -> String {
    tagged_hash(ORGANIZATION_ENCODING_TAG, chain_prev_hash, fields)
}

fn tagged_hash(tag: &[u8], prev_hash: &str, fields: &[Option<&str>]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(tag);
    hasher.update(prev_hash.as_bytes());
    for field in fields {
        match field {
            None => hasher.update([0u8]),
            Some(text) => {
                hasher.update([1u8]);
                hasher.update((text.len() as u64).to_be_bytes());
                hasher.update(text.as_bytes());
            }
        }
    }
    format!("{:x}", hasher.finalize())
}

fn is_action(action: &str) -> bool {
    let mut parts = 0;
    for part in action.split('.') {
        if part.is_empty()
            || !part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return false;
        }
        parts += 1;
    }
    parts >= 2 && action.len() <= 128
}

fn secret_key(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Object(map) => map.iter().find_map(|(key, inner)| {
            if SECRET_KEYS.contains(&key.to_ascii_lowercase().as_str()) {
                Some(key.clone())
            } else {
                secret_key(inner)
            }
        }),
        serde_json::Value::Array(items) => items.iter().find_map(secret_key),
        _ => None,
    }
}

/// A signed digest of one audit chain's head: its position and hash when signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditDigest {
    pub id: Uuid,
    /// None: the platform chain.
    pub organization_id: Option<Uuid>,
    pub chain_seq: i64,
    pub chain_hash: String,
    /// As stored (and signed): the store's timestamp text.
    pub signed_at: String,
    pub key_id: String,
    /// ES256 (base64url of r || s) over the signed text: a version tag, the chain, its
    /// sequence number, its hash and the signing time, one per line.
    pub signature: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry() -> NewAuditEntry {
        NewAuditEntry {
            organization_id: None,
            actor: "sub-123".into(),
            actor_kind: ActorKind::User,
            action: "runs.start".into(),
            resource: "run:1".into(),
            cluster_id: None,
            project_id: None,
            environment: None,
            service: None,
            client: None,
            ip: Some("10.0.0.1".into()),
            result: AuditResult::Success,
            details: json!({"kind": "azure_access_setup"}),
        }
    }

    #[test]
    fn refuses_emails_secrets_and_malformed_actions() {
        entry().validate().unwrap();
        for bad in [
            NewAuditEntry {
                actor: "ada@example.com".into(),
                ..entry()
            },
            NewAuditEntry {
                action: "Runs Start".into(),
                ..entry()
            },
            NewAuditEntry {
                action: "runs".into(),
                ..entry()
            },
            NewAuditEntry {
                details: json!({"request": [{"client_secret": "x"}]}),
                ..entry()
            },
            NewAuditEntry {
                ip: Some("not-an-ip".into()),
                ..entry()
            },
        ] {
            assert!(
                matches!(bad.validate(), Err(Error::InvalidInput(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_encoding_separates_fields() {
        let a = chain_hash(GENESIS_HASH, &[Some("ab"), Some("c")]);
        let b = chain_hash(GENESIS_HASH, &[Some("a"), Some("bc")]);
        let c = chain_hash(GENESIS_HASH, &[Some(""), None]);
        let d = chain_hash(GENESIS_HASH, &[None, Some("")]);
        assert_ne!(a, b);
        assert_ne!(c, d);
        assert_eq!(a.len(), 64);
    }
}
