//! A local **stand-in** for Azure Resource Manager, Microsoft Graph and the
//! Entra ID token endpoint. It is not Azure: it keeps state in memory,
//! follows the documented wire protocol for the few operations Windlass
//! uses, and can inject the failures real Azure produces (throttling,
//! directory replication lag, slow or failing long-running operations).
//!
//! Everything (token endpoint, ARM, Graph, control API) is served from one
//! HTTPS origin on loopback; see [`AzureStandIn`].

mod aks_versions;
mod arm;
mod arm_common;
mod auth;
pub mod authorization;
mod blob_containers;
mod conditions;
mod control;
mod federation;
mod generic;
mod graph;
mod reply;
pub mod state;
mod storage;
pub mod token;

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::{OriginalUri, State as AxState},
    http::{HeaderMap, Method, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};

pub use authorization::{
    CONTRIBUTOR_ROLE_ID, OWNER_ROLE_ID, READER_ROLE_ID, STORAGE_ACCOUNT_CONTRIBUTOR_ROLE_ID,
};
pub use state::{
    Application, BusyRule, DenyPolicy, Faults, FaultsPatch, FederatedCredential, IssuedToken, Lock,
    LroMode, Operation, Provider, RequestRecord, ServicePrincipal, State, TokenRequestRecord,
    WriteCounts,
};
pub use storage::BlobBackend;

/// The audience Entra ID requires of federated client assertions.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// Shared server context.
#[derive(Clone)]
pub(crate) struct Shared {
    state: Arc<Mutex<State>>,
    base_url: String,
    persist_path: Option<Arc<PathBuf>>,
    /// Woken by every change; the persister writes the state at most every
    /// [`PERSIST_EVERY`], not on each change (a long-used state rewritten per request made
    /// every request slower).
    changed: Arc<tokio::sync::Notify>,
    /// What storage accounts' blob endpoints point at (Azurite), if anything.
    blob: Option<Arc<BlobBackend>>,
}

impl Shared {
    /// Reads or tweaks state without persisting (bookkeeping only).
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Changes state and, when configured, has it written to disk soon.
    pub(crate) fn mutate<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let out = f(&mut guard);
        if self.persist_path.is_some() {
            self.changed.notify_one();
        }
        out
    }

    /// Writes the state now, if it is persisted.
    fn flush(&self) {
        if let Some(path) = &self.persist_path {
            persist(path, &self.snapshot());
        }
    }

    pub(crate) fn snapshot(&self) -> State {
        self.with_state(|s| s.clone())
    }
}

/// How often at most a persisted stand-in writes its state.
const PERSIST_EVERY: Duration = Duration::from_millis(250);

/// Writes the state after changes, at most every [`PERSIST_EVERY`].
fn spawn_persister(shared: Shared) -> Option<tokio::task::JoinHandle<()>> {
    let path = shared.persist_path.clone()?;
    Some(tokio::spawn(async move {
        loop {
            shared.changed.notified().await;
            tokio::time::sleep(PERSIST_EVERY).await;
            let state = shared.snapshot();
            let path = path.clone();
            let _ = tokio::task::spawn_blocking(move || persist(&path, &state)).await;
        }
    }))
}

fn persist(path: &PathBuf, state: &State) {
    let tmp = path.with_extension("tmp");
    let result = serde_json::to_vec_pretty(state)
        .map_err(std::io::Error::other)
        .and_then(|bytes| std::fs::write(&tmp, bytes))
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "stand-in could not persist its state");
    }
}

/// How to start the stand-in.
#[derive(Debug, Clone)]
pub struct StandInOptions {
    /// Must be a loopback address; port 0 picks a free one.
    pub addr: SocketAddr,
    /// Optional JSON file the state is loaded from and saved to.
    pub persist_path: Option<PathBuf>,
    pub faults: Faults,
    /// Blob storage behind the storage accounts this stand-in creates.
    pub blob: Option<BlobBackend>,
}

impl Default for StandInOptions {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            persist_path: None,
            faults: Faults::default(),
            blob: None,
        }
    }
}

/// Handle to a running stand-in. Dropping it stops the server.
pub struct AzureStandIn {
    /// `https://127.0.0.1:PORT` — use it as ARM base URL, Graph base URL and
    /// authority host alike.
    pub base_url: String,
    pub addr: SocketAddr,
    /// PEM of the throwaway CA that signed the stand-in's TLS certificate;
    /// clients must trust it explicitly.
    pub ca_cert_pem: String,
    shared: Shared,
    server: tokio::task::JoinHandle<()>,
    persister: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for AzureStandIn {
    fn drop(&mut self) {
        self.server.abort();
        if let Some(persister) = &self.persister {
            persister.abort();
            // What changed since the last write is not lost on a clean stop.
            self.shared.flush();
        }
    }
}

impl AzureStandIn {
    /// Starts on `127.0.0.1:0` on the current tokio runtime.
    ///
    /// # Panics
    /// If no loopback port can be bound or TLS material cannot be generated;
    /// tests cannot proceed without either.
    pub async fn start() -> AzureStandIn {
        Self::start_with(StandInOptions::default())
            .await
            .expect("start the Azure stand-in on loopback")
    }

    pub async fn start_with(options: StandInOptions) -> std::io::Result<AzureStandIn> {
        if !options.addr.ip().is_loopback() {
            return Err(std::io::Error::other(
                "the Azure stand-in only listens on loopback addresses",
            ));
        }
        let tcp = tokio::net::TcpListener::bind(options.addr).await?;
        let addr = tcp.local_addr()?;
        let base_url = format!("https://{addr}");
        let tls = crate::tls::generate(
            "Windlass Azure stand-in CA (not Azure)",
            "windlass-azure-standin",
        )?;

        let mut initial = match &options.persist_path {
            Some(p) if p.exists() => serde_json::from_slice(&std::fs::read(p)?).map_err(|e| {
                std::io::Error::other(format!("stand-in state file {}: {e}", p.display()))
            })?,
            _ => State::default(),
        };
        if options.persist_path.as_ref().is_none_or(|p| !p.exists()) {
            initial.faults = options.faults.clone();
        }
        let shared = Shared {
            state: Arc::new(Mutex::new(initial)),
            base_url: base_url.clone(),
            persist_path: options.persist_path.map(Arc::new),
            changed: Arc::new(tokio::sync::Notify::new()),
            blob: options.blob.map(Arc::new),
        };
        let persister = spawn_persister(shared.clone());
        let app = router(shared.clone());
        let listener = crate::tls::TlsListener::new(tcp, tls.config)?;
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "Azure stand-in stopped");
            }
        });
        tracing::info!(%base_url, "Azure stand-in (not Azure) listening");
        Ok(AzureStandIn {
            base_url,
            addr,
            ca_cert_pem: tls.ca_pem,
            shared,
            server,
            persister,
        })
    }

    /// A copy of the whole state.
    pub fn state(&self) -> State {
        self.shared.snapshot()
    }

    pub fn faults(&self) -> Faults {
        self.shared.with_state(|s| s.faults.clone())
    }

    pub fn set_faults(&self, patch: FaultsPatch) {
        self.shared.mutate(|s| s.faults.apply(patch));
    }

    /// A service principal younger than `delay` is unknown to ARM
    /// (`400 PrincipalNotFound`).
    pub fn set_replication_delay(&self, delay: Duration) {
        self.shared
            .mutate(|s| s.faults.replication_delay_ms = delay.as_millis() as u64);
    }

    /// How long a provider stays `Registering` after `register`.
    /// The Kubernetes versions AKS offers in `location` from now on.
    pub fn set_kubernetes_versions(&self, location: &str, versions: &[&str]) {
        let versions = versions.iter().map(|v| (*v).to_owned()).collect();
        self.shared.mutate(|s| {
            s.kubernetes_versions
                .insert(location.to_ascii_lowercase(), versions)
        });
    }

    pub fn set_provider_registration_delay(&self, delay: Duration) {
        self.shared
            .mutate(|s| s.faults.provider_registration_ms = delay.as_millis() as u64);
    }

    /// The next `n` ARM/Graph requests are answered `429` with
    /// `Retry-After: retry_after_secs`.
    pub fn throttle_next(&self, n: u32, retry_after_secs: u64) {
        self.throttle_after(0, n, retry_after_secs);
    }

    /// Lets `skip` requests through, then throttles `n`.
    pub fn throttle_after(&self, skip: u32, n: u32, retry_after_secs: u64) {
        self.shared.mutate(|s| {
            s.faults.throttle_skip = skip;
            s.faults.throttle_count = n;
            s.faults.throttle_retry_after_secs = retry_after_secs;
        });
    }

    /// Long-running operation behaviour for resource groups: `polls` status
    /// reads answer "in progress", then `outcome` (Succeeded, Failed or
    /// Canceled). `retry_after_secs: None` omits `Retry-After`.
    pub fn set_lro(&self, mode: LroMode, polls: u32, outcome: &str, retry_after_secs: Option<u64>) {
        self.shared.mutate(|s| {
            s.faults.lro_mode = mode;
            s.faults.lro_polls = polls;
            // Counted polls only: the test decides how long the operation runs.
            s.faults.lro_duration_ms = 0;
            s.faults.lro_outcome = outcome.to_string();
            s.faults.lro_retry_after_secs = retry_after_secs;
        });
    }

    /// A new custom role definition stays unknown (reads miss it, assigning it answers
    /// `400 RoleDefinitionDoesNotExist`) for `delay` after it was created.
    pub fn set_role_replication_delay(&self, delay: Duration) {
        self.shared
            .mutate(|s| s.faults.role_replication_ms = delay.as_millis() as u64);
    }

    /// A new role assignment authorises nothing (`403 AuthorizationFailed`) for `delay`.
    pub fn set_assignment_propagation_delay(&self, delay: Duration) {
        self.shared
            .mutate(|s| s.faults.assignment_propagation_ms = delay.as_millis() as u64);
    }

    /// Graph reads miss a new service principal for `delay` (read-after-write lag).
    pub fn set_graph_lag(&self, delay: Duration) {
        self.shared
            .mutate(|s| s.faults.graph_lag_ms = delay.as_millis() as u64);
    }

    /// Every long-running operation takes `duration` on the stand-in's clock and its
    /// monitors answer `Retry-After: retry_after_secs`.
    pub fn set_lro_clock(&self, duration: Duration, retry_after_secs: u64) {
        self.shared.mutate(|s| {
            s.faults.lro_duration_ms = duration.as_millis() as u64;
            s.faults.lro_polls = 0;
            s.faults.lro_retry_after_secs = Some(retry_after_secs);
        });
    }

    /// Turns the replication and propagation delays real Azure always has off: what
    /// the stand-in was before it simulated them.
    pub fn without_propagation_delays(&self) {
        self.shared.mutate(|s| {
            s.faults.replication_delay_ms = 0;
            s.faults.role_replication_ms = 0;
            s.faults.assignment_propagation_ms = 0;
            s.faults.graph_lag_ms = 0;
        });
    }

    /// A management lock (`CanNotDelete` or `ReadOnly`) on `scope`.
    pub fn add_lock(&self, scope: &str, name: &str, level: &str) {
        let lock = Lock {
            scope: scope.to_owned(),
            name: name.to_owned(),
            level: level.to_owned(),
        };
        self.shared.mutate(|s| s.locks.push(lock));
    }

    /// A policy assignment at `scope` denying requests whose action matches `action`.
    pub fn add_deny_policy(&self, scope: &str, assignment_name: &str, action: &str) {
        let policy = DenyPolicy {
            scope: scope.to_owned(),
            assignment_name: assignment_name.to_owned(),
            display_name: format!("Deny {action}"),
            action: action.to_owned(),
        };
        self.shared.mutate(|s| s.deny_policies.push(policy));
    }

    /// Another Azure customer owns a storage account named `name` (names are global).
    pub fn take_storage_account_name(&self, name: &str) {
        self.shared.mutate(|s| {
            s.taken_storage_account_names
                .push(name.to_ascii_lowercase())
        });
    }

    /// The next `count` `method` requests whose path contains `path_contains` answer
    /// `409 AnotherOperationInProgress` with `Retry-After: retry_after_secs`.
    pub fn busy_next(&self, method: &str, path_contains: &str, count: u32, retry_after_secs: u64) {
        let rule = BusyRule {
            method: method.to_ascii_uppercase(),
            path_contains: path_contains.to_ascii_lowercase(),
            count,
            retry_after_secs,
        };
        self.shared.mutate(|s| s.busy.push(rule));
    }

    /// The customer deletes the enterprise application (service principal) of `app_id`
    /// in `tenant`, as in the Entra admin centre: its role assignments stay behind,
    /// orphaned ("Identity not found"). Returns the deleted object id.
    pub fn delete_enterprise_application(&self, tenant: &str, app_id: &str) -> Option<String> {
        self.shared
            .mutate(|s| control::delete_enterprise_application_in(s, tenant, app_id))
    }

    /// Applied writes for a resource id (ARM id, or `/servicePrincipals/{id}`).
    pub fn writes_of(&self, resource_id: &str) -> WriteCounts {
        let key = resource_id.to_ascii_lowercase();
        self.shared
            .with_state(|s| s.writes.get(&key).copied().unwrap_or_default())
    }

    /// Times the resource was created.
    pub fn creations_of(&self, resource_id: &str) -> u32 {
        self.writes_of(resource_id).creations
    }

    /// ARM/Graph requests seen so far (method, path, status, time).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.with_state(|s| s.requests.clone())
    }

    pub fn token_requests(&self) -> Vec<TokenRequestRecord> {
        self.shared.with_state(|s| s.token_requests.clone())
    }

    /// Adds a service principal directly, as if created long ago (no
    /// replication delay applies). Returns its object id.
    pub fn seed_service_principal(&self, tenant: &str, app_id: &str) -> String {
        self.shared
            .mutate(|s| control::seed_service_principal(s, tenant, app_id, &[]))
    }

    /// Registers an application in its home tenant with its federated identity
    /// credentials, and its service principal there holding `graph_permissions`. Returns
    /// the service principal's object id. Idempotent.
    pub fn register_application(
        &self,
        application: Application,
        graph_permissions: &[&str],
    ) -> String {
        self.shared
            .mutate(|s| control::register_application(s, application, graph_permissions))
    }

    /// Windlass's multi-tenant application, registered in Windlass's own tenant with a
    /// federated credential trusting `issuer`'s `windlass:platform` subject. It acts in a
    /// customer's tenant once the access setup created its service principal there.
    pub fn register_platform_application(&self, home_tenant: &str, app_id: &str, issuer: &str) {
        self.register_application(
            Application {
                app_id: app_id.to_owned(),
                home_tenant: home_tenant.to_owned(),
                display_name: "Windlass".to_owned(),
                multi_tenant: true,
                federated_credentials: vec![FederatedCredential {
                    name: "windlass-platform".to_owned(),
                    issuer: issuer.to_owned(),
                    subject: "windlass:platform".to_owned(),
                    audiences: vec![TOKEN_EXCHANGE_AUDIENCE.to_owned()],
                }],
            },
            &[],
        );
    }

    /// What a customer sets up before the access setup: in `tenant`, a setup identity
    /// (app registration `setup_identity`) whose federated credential trusts `issuer`'s
    /// `subject` exactly, allowed to manage service principals (Graph
    /// `Application.ReadWrite.All`) and Owner of `subscription`. Returns its object id.
    pub fn seed_customer_tenant(
        &self,
        tenant: &str,
        subscription: &str,
        setup_identity: &str,
        issuer: &str,
        subject: &str,
    ) -> String {
        let object_id = self.register_application(
            Application {
                app_id: setup_identity.to_owned(),
                home_tenant: tenant.to_owned(),
                display_name: "Windlass setup".to_owned(),
                multi_tenant: false,
                federated_credentials: vec![FederatedCredential {
                    name: "windlass".to_owned(),
                    issuer: issuer.to_owned(),
                    subject: subject.to_owned(),
                    audiences: vec![TOKEN_EXCHANGE_AUDIENCE.to_owned()],
                }],
            },
            &["Application.ReadWrite.All"],
        );
        self.assign_role(
            &format!("/subscriptions/{subscription}"),
            &format!(
                "/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{OWNER_ROLE_ID}"
            ),
            &object_id,
        );
        object_id
    }

    /// Makes `kubeconfig` (the Kubernetes stand-in's) the credentials of every managed
    /// cluster, as AKS's `listClusterAdminCredential` returns them.
    pub fn set_managed_cluster_kubeconfig(&self, kubeconfig: &str) {
        self.shared
            .mutate(|s| s.managed_cluster_kubeconfig = Some(kubeconfig.to_owned()));
    }

    /// Assigns a role (a built-in like [`OWNER_ROLE_ID`] or a custom role's id) to a
    /// principal at `scope`, as a tenant's administrator would. Idempotent.
    pub fn assign_role(&self, scope: &str, role_definition_id: &str, principal_id: &str) {
        self.shared
            .mutate(|s| control::assign_role(s, scope, role_definition_id, principal_id));
    }
}

/// Runs the stand-in in the foreground until the process ends (for
/// `windlass dev`). The CA certificate is written next to the temp dir so
/// local clients can trust it.
pub async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let standin = AzureStandIn::start_with(StandInOptions {
        addr,
        ..StandInOptions::default()
    })
    .await?;
    let ca_path = std::env::temp_dir().join("windlass-azure-standin-ca.pem");
    std::fs::write(&ca_path, &standin.ca_cert_pem)?;
    tracing::info!(
        base_url = %standin.base_url,
        ca_cert = %ca_path.display(),
        "Azure stand-in (not Azure) serving; trust the CA file to talk to it"
    );
    std::future::pending::<()>().await;
    Ok(())
}

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token::token))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            axum::routing::get(token::openid_configuration),
        )
        .route("/metadata/endpoints", axum::routing::get(cloud_metadata))
        .nest("/_standin", control::routes())
        .fallback(dispatch)
        .with_state(shared)
}

/// ARM's cloud metadata (`GET /metadata/endpoints?api-version=2022-09-01`), which clients
/// of a custom cloud read to find its endpoints: the azurerm provider does when given
/// `metadata_host` (`ARM_METADATA_HOSTNAME`). Every endpoint is this origin; the
/// audiences stay Azure's, as tokens here are issued for them.
async fn cloud_metadata(headers: HeaderMap) -> Response {
    let origin = match headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
    {
        Some(host) => format!("https://{host}"),
        None => {
            return reply::arm_error(
                StatusCode::BAD_REQUEST,
                "MissingHost",
                "The request has no Host header.".to_owned(),
            );
        }
    };
    axum::Json(serde_json::json!([{
        "name": "AzureCloud",
        "portal": origin,
        "resourceManager": format!("{origin}/"),
        "microsoftGraphResourceId": "https://graph.microsoft.com/",
        "graph": format!("{origin}/"),
        "authentication": {
            "loginEndpoint": format!("{origin}/"),
            "audiences": ["https://management.core.windows.net/", "https://management.azure.com/"],
            "tenant": "common",
            "identityProvider": "AAD"
        },
        "suffixes": {
            "storage": "core.windows.net",
            "keyVaultDns": "vault.azure.net",
            "acrLoginServer": "azurecr.io"
        }
    }]))
    .into_response()
}

/// ARM and Graph share one origin here; the path prefix picks the API.
async fn dispatch(
    AxState(shared): AxState<Shared>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let api = if path.starts_with("/v1.0/") {
        Some(auth::Api::Graph)
    } else if path.to_ascii_lowercase().starts_with("/subscriptions/") {
        Some(auth::Api::Arm)
    } else {
        None
    };
    let mut principal = None;
    let response = match api {
        None => reply::arm_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("The Windlass Azure stand-in has nothing at {path}."),
        ),
        Some(api) => match auth::gate(&shared, api, &method, &headers) {
            Err(resp) => resp,
            Ok(caller) => {
                principal = Some(caller.object_id.clone());
                match api {
                    auth::Api::Graph => graph::handle(&shared, &caller, &method, &path, &body),
                    auth::Api::Arm => {
                        if let Err(refused) = shared.with_state(|s| {
                            authorization::authorize_arm(s, &caller, &method, &path)
                        }) {
                            return record_request(&shared, &method, &uri, principal, refused);
                        }
                        // Locks, deny policies and operations in flight, which ARM checks
                        // after RBAC and before the resource provider sees the request.
                        if let Some(refused) =
                            shared.mutate(|s| conditions::refuse(s, &method, &path))
                        {
                            return record_request(&shared, &method, &uri, principal, refused);
                        }
                        let api_version = uri.query().and_then(|q| {
                            q.split('&')
                                .filter_map(|kv| kv.split_once('='))
                                .find(|(k, _)| *k == "api-version")
                                .map(|(_, v)| v.to_string())
                        });
                        if let Some(read) =
                            blob_containers::read_through(&shared, &method, &path).await
                        {
                            return record_request(&shared, &method, &uri, principal, read);
                        }
                        let response =
                            arm::handle(&shared, &method, &path, api_version.as_deref(), &body);
                        blob_containers::after_arm_write(
                            &shared,
                            &method,
                            &path,
                            response.status(),
                        )
                        .await;
                        response
                    }
                }
            }
        },
    };
    record_request(&shared, &method, &uri, principal, response)
}

fn record_request(
    shared: &Shared,
    method: &Method,
    uri: &axum::http::Uri,
    principal: Option<String>,
    response: Response,
) -> Response {
    let status = response.status().as_u16();
    tracing::debug!(%method, path = uri.path(), status, "stand-in request");
    shared.with_state(|s| {
        state::keep_last(&mut s.requests, state::REQUEST_RECORDS);
        s.requests.push(RequestRecord {
            at: chrono::Utc::now(),
            method: method.to_string(),
            path: uri.to_string(),
            status,
            principal,
        })
    });
    response
}
