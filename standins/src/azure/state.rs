//! In-memory state of the stand-in, serialisable so tests can inspect it
//! and so it can optionally survive a restart through a JSON file.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Everything the stand-in knows. Keys of resource maps are lower-cased
/// resource ids because ARM ids are case-insensitive.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    pub providers: BTreeMap<String, Provider>,
    pub role_definitions: BTreeMap<String, Value>,
    pub role_assignments: BTreeMap<String, Value>,
    pub service_principals: BTreeMap<String, ServicePrincipal>,
    pub resource_groups: BTreeMap<String, Value>,
    /// Resources inside resource groups (storage accounts), by lower-cased id.
    pub resources: BTreeMap<String, Value>,
    /// Kubernetes `major.minor` versions AKS offers, by lower-cased location; locations
    /// not listed offer the stand-in's defaults.
    pub kubernetes_versions: BTreeMap<String, Vec<String>>,
    pub operations: BTreeMap<String, Operation>,
    /// Applied writes per resource id (lower-cased): what a test asserts to
    /// prove no step was applied twice.
    pub writes: BTreeMap<String, WriteCounts>,
    pub requests: Vec<RequestRecord>,
    pub token_requests: Vec<TokenRequestRecord>,
    pub faults: Faults,
    /// SHA-256 of each issued access token → who it was issued to. Only hashes are kept
    /// so dumping the state never reveals a usable token.
    pub issued_tokens: BTreeMap<String, IssuedToken>,
    /// App registrations by `<home tenant>/<app id>` (lower-cased), with their federated
    /// identity credentials. Seeded through the control API.
    pub applications: BTreeMap<String, Application>,
    /// When a just-written object becomes visible everywhere (lower-cased id of a role
    /// definition or role assignment, or `/serviceprincipals/{id}` for Graph reads): until
    /// then ARM's replicas do not know it (see [`Faults::role_replication_ms`],
    /// [`Faults::assignment_propagation_ms`], [`Faults::graph_lag_ms`]).
    pub settles_at: BTreeMap<String, DateTime<Utc>>,
    /// Management locks (`Microsoft.Authorization/locks`), seeded by tests.
    pub locks: Vec<Lock>,
    /// Azure Policy assignments with a `deny` effect, seeded by tests.
    pub deny_policies: Vec<DenyPolicy>,
    /// Storage account names taken by other Azure customers (the names are global).
    pub taken_storage_account_names: Vec<String>,
    /// Requests to answer `409 AnotherOperationInProgress`, as ARM does while an earlier
    /// operation on the resource is still running.
    pub busy: Vec<BusyRule>,
    /// The kubeconfig every managed cluster's credentials are (`listClusterAdminCredential`):
    /// the Kubernetes stand-in's, when the test bed runs one.
    pub managed_cluster_kubeconfig: Option<String>,
}

/// A management lock on a scope: `CanNotDelete` refuses deletes at and below it,
/// `ReadOnly` refuses writes too (`409 ScopeLocked`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lock {
    pub scope: String,
    pub name: String,
    /// "CanNotDelete" | "ReadOnly"
    pub level: String,
}

/// A policy assignment whose definition denies requests whose action matches `action`
/// (ARM wildcards) at or below `scope` (`403 RequestDisallowedByPolicy`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DenyPolicy {
    pub scope: String,
    /// The policy assignment's name, e.g. `deny-public-storage`.
    pub assignment_name: String,
    pub display_name: String,
    pub action: String,
}

/// The next `count` requests whose path contains `path_contains` (case-insensitive) and
/// whose method is `method` answer `409 AnotherOperationInProgress` with `Retry-After`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BusyRule {
    pub method: String,
    pub path_contains: String,
    pub count: u32,
    #[serde(default = "default_busy_retry_after")]
    pub retry_after_secs: u64,
}

fn default_busy_retry_after() -> u64 {
    1
}

/// What an access token stands for: ARM and Graph authorise its principal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedToken {
    /// The resource it was issued for (`https://management.azure.com`).
    pub audience: String,
    pub tenant_id: String,
    pub app_id: String,
    /// The service principal's object id in `tenant_id`: what role assignments name.
    pub object_id: String,
}

/// An app registration. A multi-tenant one acts in another tenant once it has a service
/// principal there; a single-tenant one only in its home tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Application {
    pub app_id: String,
    pub home_tenant: String,
    pub display_name: String,
    #[serde(default)]
    pub multi_tenant: bool,
    #[serde(default)]
    pub federated_credentials: Vec<FederatedCredential>,
}

/// Entra ID's federated identity credential: an assertion is accepted for the application
/// when its issuer and subject equal these exactly and its audience is listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FederatedCredential {
    pub name: String,
    pub issuer: String,
    pub subject: String,
    pub audiences: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteCounts {
    /// Times the resource came into existence.
    pub creations: u32,
    /// Writes that changed an existing resource (identical re-PUTs excluded).
    pub changes: u32,
    pub deletions: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Provider {
    pub subscription_id: String,
    pub namespace: String,
    /// "NotRegistered" | "Registering" | "Registered" | "Unregistering"
    pub registration_state: String,
    /// When a pending transition completes; read lazily.
    pub settles_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServicePrincipal {
    pub id: String,
    /// The directory it lives in.
    #[serde(default)]
    pub tenant_id: String,
    pub app_id: String,
    pub display_name: String,
    pub created_at: DateTime<Utc>,
    /// Microsoft Graph application permissions granted to it (e.g.
    /// `Application.ReadWrite.All`, which creating and deleting service principals needs).
    #[serde(default)]
    pub graph_permissions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Operation {
    pub id: String,
    pub subscription_id: String,
    /// "PUT" or "DELETE"
    pub method: String,
    pub resource_key: String,
    pub polls_remaining: u32,
    /// Before this the operation is in progress, however often it is polled.
    #[serde(default)]
    pub runs_until: Option<DateTime<Utc>>,
    /// Terminal status once polls run out: Succeeded | Failed | Canceled.
    pub outcome: String,
    pub status: String,
    pub started_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestRecord {
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// Object id of the caller's service principal, once its token was accepted.
    #[serde(default)]
    pub principal: Option<String>,
}

/// What reached the token endpoint. The assertion itself is never stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRequestRecord {
    pub at: DateTime<Utc>,
    pub tenant: String,
    pub client_id: String,
    pub scope: String,
    pub grant_type: String,
    pub client_assertion_type: String,
    pub had_client_assertion: bool,
    pub granted: bool,
    /// The assertion's `iss` and `sub` (not secret; the assertion itself is never kept).
    #[serde(default)]
    pub assertion_issuer: Option<String>,
    #[serde(default)]
    pub assertion_subject: Option<String>,
    /// The AADSTS code of a refusal, e.g. 70021.
    #[serde(default)]
    pub error_code: Option<u32>,
}

/// How LROs answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LroMode {
    /// Resource-group PUT is synchronous (201/200); DELETE answers 202 with
    /// `Location` only — what ARM does for resource groups.
    #[default]
    Location,
    /// PUT answers 201 and DELETE 202, both with `Azure-AsyncOperation`
    /// (DELETE also carries `Location`, which clients must ignore).
    AzureAsyncOperation,
}

/// Injected behaviour. All durations are milliseconds so JSON stays simple.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Requests to let through before throttling starts.
    pub throttle_skip: u32,
    /// Number of ARM/Graph requests answered 429 after the skip.
    pub throttle_count: u32,
    pub throttle_retry_after_secs: u64,
    /// A service principal younger than this is unknown to ARM.
    pub replication_delay_ms: u64,
    /// A custom role definition younger than this is unknown to reads and to role
    /// assignments (`RoleDefinitionDoesNotExist`): role definitions replicate slowly.
    pub role_replication_ms: u64,
    /// A role assignment younger than this does not authorise anything yet (ARM caches
    /// assignments; real Azure takes up to about ten minutes).
    pub assignment_propagation_ms: u64,
    /// A service principal younger than this is not returned by Graph reads (Graph's
    /// read-after-write lag across its replicas).
    pub graph_lag_ms: u64,
    /// A long-running operation runs at least this long on the stand-in's clock, however
    /// often it is polled.
    pub lro_duration_ms: u64,
    /// Time a provider stays "Registering".
    pub provider_registration_ms: u64,
    pub lro_mode: LroMode,
    /// Status polls answered "in progress" before the terminal state.
    pub lro_polls: u32,
    /// Succeeded | Failed | Canceled
    pub lro_outcome: String,
    /// `Retry-After` on LRO responses; `None` omits the header.
    pub lro_retry_after_secs: Option<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            throttle_skip: 0,
            throttle_count: 0,
            throttle_retry_after_secs: 1,
            // Real Azure always behaves so: on by default, short enough for tests.
            replication_delay_ms: 1000,
            role_replication_ms: 2000,
            assignment_propagation_ms: 2000,
            graph_lag_ms: 1000,
            provider_registration_ms: 0,
            lro_mode: LroMode::Location,
            lro_polls: 0,
            lro_duration_ms: 1000,
            lro_outcome: "Succeeded".to_string(),
            lro_retry_after_secs: Some(1),
        }
    }
}

/// Partial update of [`Faults`] for `POST /_standin/faults`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultsPatch {
    pub throttle_skip: Option<u32>,
    pub throttle_count: Option<u32>,
    pub throttle_retry_after_secs: Option<u64>,
    pub replication_delay_ms: Option<u64>,
    pub role_replication_ms: Option<u64>,
    pub assignment_propagation_ms: Option<u64>,
    pub graph_lag_ms: Option<u64>,
    pub lro_duration_ms: Option<u64>,
    pub provider_registration_ms: Option<u64>,
    pub lro_mode: Option<LroMode>,
    pub lro_polls: Option<u32>,
    pub lro_outcome: Option<String>,
    /// `Some(None)` cannot be expressed in JSON; use `omit_lro_retry_after`.
    pub lro_retry_after_secs: Option<u64>,
    pub omit_lro_retry_after: Option<bool>,
}

impl Faults {
    pub fn apply(&mut self, p: FaultsPatch) {
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = p.$f { self.$f = v; } )* };
        }
        set!(
            throttle_skip,
            throttle_count,
            throttle_retry_after_secs,
            replication_delay_ms,
            role_replication_ms,
            assignment_propagation_ms,
            graph_lag_ms,
            lro_duration_ms,
            provider_registration_ms,
            lro_mode,
            lro_polls,
            lro_outcome
        );
        if let Some(v) = p.lro_retry_after_secs {
            self.lro_retry_after_secs = Some(v);
        }
        if p.omit_lro_retry_after == Some(true) {
            self.lro_retry_after_secs = None;
        }
    }
}

impl State {
    /// The service principal of `app_id` in `tenant`.
    pub fn service_principal_in(&self, tenant: &str, app_id: &str) -> Option<&ServicePrincipal> {
        self.service_principals.values().find(|sp| {
            sp.tenant_id.eq_ignore_ascii_case(tenant) && sp.app_id.eq_ignore_ascii_case(app_id)
        })
    }

    /// Whether `key` was written long enough ago to be seen (see [`State::settles_at`]).
    pub fn settled(&self, key: &str) -> bool {
        self.settles_at
            .get(&key.to_ascii_lowercase())
            .is_none_or(|at| *at <= Utc::now())
    }

    /// `key` becomes visible `delay_ms` from now.
    pub fn settle_after(&mut self, key: &str, delay_ms: u64) {
        if delay_ms > 0 {
            let at = Utc::now() + chrono::Duration::milliseconds(delay_ms as i64);
            self.settles_at.insert(key.to_ascii_lowercase(), at);
        }
    }

    pub fn record_creation(&mut self, key: &str) {
        self.writes.entry(key.to_string()).or_default().creations += 1;
    }
    pub fn record_change(&mut self, key: &str) {
        self.writes.entry(key.to_string()).or_default().changes += 1;
    }
    pub fn record_deletion(&mut self, key: &str) {
        self.writes.entry(key.to_string()).or_default().deletions += 1;
    }

    /// Consumes one unit of the throttle budget; `Some(retry_after)` means
    /// this request must be answered 429.
    pub fn take_throttle(&mut self) -> Option<u64> {
        if self.faults.throttle_skip > 0 {
            self.faults.throttle_skip -= 1;
            return None;
        }
        if self.faults.throttle_count > 0 {
            self.faults.throttle_count -= 1;
            return Some(self.faults.throttle_retry_after_secs);
        }
        None
    }
}

/// Requests (and token requests) the stand-in remembers for tests and its control
/// routes: the latest ones, so a long-used stand-in does not grow without end.
pub const REQUEST_RECORDS: usize = 10_000;

/// Drops the oldest records so that one more leaves at most `limit`.
pub(crate) fn keep_last<T>(records: &mut Vec<T>, limit: usize) {
    if records.len() >= limit {
        let excess = records.len() + 1 - limit;
        records.drain(..excess);
    }
}

#[cfg(test)]
mod record_tests {
    use super::keep_last;

    #[test]
    fn records_keep_the_latest() {
        let mut records: Vec<u32> = (0..5).collect();
        keep_last(&mut records, 3);
        records.push(5);
        assert_eq!(records, vec![3, 4, 5]);
    }
}
