//! The Azure access activities declared in `windlass_workflows::contracts`.
//!
//! Each one derives the ids it writes (role definition, role assignment) from the target,
//! so running it twice, or after a crash halfway, converges on one set of resources.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use uuid::Uuid;
use windlass_workflows::contracts::{
    AZURE_RESOURCE_PROVIDERS, ApplicationAccess, AssignRole, AzureTarget, CustomRole,
    ProviderRegistered, RegisterProvider, Removal, RoleAssigned, ServicePrincipal, VerifyAccess,
    activity_names,
};

use windlass_core::workload_identity::{
    AZURE_TOKEN_EXCHANGE_AUDIENCE, WorkloadIdentityIssuer, WorkloadSubject,
};

use crate::azure::{
    ArmClient, AzureClientConfig, AzureError, ClientAssertionSource, GraphClient, Lag, Retry,
    SettleWindows, role_assignment_id, role_definition_id, role_definition_resource_id,
    windlass_custom_role,
};
use crate::bounded_cache::BoundedCache;
use crate::error::{FailureCode, failure, retryable, terminal};
use crate::heartbeat::heartbeating;

/// Builds Azure clients per customer tenant and identity. Tokens are cached inside each
/// credential until shortly before they expire; clients are kept per (tenant, client id,
/// workload-identity subject): the subject decides which federated credential Entra ID
/// matches, so one organisation's clients are never another's.
pub struct AzureConnector {
    /// Endpoints and tuning; tenant, client id and assertions are filled per identity.
    template: AzureClientConfig,
    identities: Identities,
    clients: Mutex<BoundedCache<(String, String, WorkloadSubject), Arc<TenantClients>>>,
}

/// Clients kept at once: the tenants a worker is serving now, not every one it ever served
/// (each holds its credential and cached tokens; the HTTP client is the connector's one).
/// A worker runs 20 activities per queue polled by default, so 64 hold every tenant it can
/// serve at once with room; one let go costs a token request when its tenant comes back.
/// (256 held 3.6 MB more at 1,000 tenants served, `benches/worker_memory.rs`.)
const CACHED_TENANT_CLIENTS: usize = 64;
/// A tenant's clients unused this long are rebuilt when next needed.
const TENANT_CLIENTS_IDLE: Duration = Duration::from_secs(30 * 60);

fn client_cache() -> Mutex<BoundedCache<(String, String, WorkloadSubject), Arc<TenantClients>>> {
    Mutex::new(BoundedCache::new(
        CACHED_TENANT_CLIENTS,
        TENANT_CLIENTS_IDLE,
    ))
}

/// Whose identity the clients act as.
enum Identities {
    /// Shared workers: assertions minted by Windlass's issuer, per subject.
    Minted(Arc<WorkloadIdentityIssuer>),
    /// A placed worker: the customer's own federated identity in its own tenant (e.g. AKS
    /// workload identity's projected token file). It never holds Windlass's signing keys,
    /// so it cannot act as the platform application (which reaches every customer's
    /// tenant) nor as any organisation's setup identity.
    Own(OwnIdentity),
}

/// A customer's own Entra ID workload identity, as Azure's SDKs read it from
/// `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_FEDERATED_TOKEN_FILE`.
#[derive(Debug, Clone)]
pub struct OwnIdentity {
    pub tenant_id: String,
    pub client_id: String,
    /// Re-read on every token request: Kubernetes rotates projected tokens.
    pub federated_token_file: std::path::PathBuf,
}

/// Terraform's federated credential in a customer's tenant.
pub(crate) struct TerraformFederation {
    pub(crate) tenant_id: String,
    pub(crate) client_id: String,
    pub(crate) token: FederatedToken,
}

/// Where terraform's federated token comes from.
pub(crate) enum FederatedToken {
    /// Minted by Windlass's issuer: short-lived, so written to a file and renewed while
    /// terraform runs (`crate::clusters::terraform_credentials`).
    Minted(ClientAssertionSource),
    /// A placed worker's own projected token file, which Kubernetes renews.
    File(std::path::PathBuf),
}

pub(crate) struct TenantClients {
    pub(crate) arm: ArmClient,
    pub(crate) graph: GraphClient,
}

impl AzureConnector {
    pub fn new(template: AzureClientConfig, issuer: Arc<WorkloadIdentityIssuer>) -> Self {
        Self {
            template: template.sharing_one_transport(),
            identities: Identities::Minted(issuer),
            clients: client_cache(),
        }
    }

    /// A placed worker's connector: every client acts as `identity`, and only in its
    /// tenant; access setup and teardown (the organisation's setup identity) are refused.
    pub fn own_identity(template: AzureClientConfig, identity: OwnIdentity) -> Self {
        Self {
            template: template.sharing_one_transport(),
            identities: Identities::Own(identity),
            clients: client_cache(),
        }
    }

    /// Clients acting as the organisation's setup identity in its tenant (access setup
    /// and teardown): assertions with subject `windlass:organization:<id>`, which only
    /// that organisation's own federated credential accepts.
    pub(crate) fn setup_clients(
        &self,
        target: &AzureTarget,
    ) -> Result<Arc<TenantClients>, ActivityError> {
        self.clients_as(
            target,
            WorkloadSubject::Organization(target.organization_id),
        )
    }

    /// Clients acting as Windlass's multi-tenant application in the customer's tenant
    /// (cluster work): subject `windlass:platform`. Cluster targets name the application
    /// in `setup_identity_client_id`.
    pub(crate) fn platform_clients(
        &self,
        target: &AzureTarget,
    ) -> Result<Arc<TenantClients>, ActivityError> {
        self.clients_as(target, WorkloadSubject::Platform)
    }

    /// How terraform's azurerm provider authenticates for cluster work: as the clients of
    /// [`Self::platform_clients`] do, by workload identity federation, never a secret.
    pub(crate) fn platform_federation(
        &self,
        target: &AzureTarget,
    ) -> Result<TerraformFederation, ActivityError> {
        match &self.identities {
            Identities::Minted(issuer) => {
                let issuer = issuer.clone();
                Ok(TerraformFederation {
                    tenant_id: target.tenant_id.clone(),
                    client_id: target.setup_identity_client_id.clone(),
                    token: FederatedToken::Minted(ClientAssertionSource::callback(move || {
                        let issuer = issuer.clone();
                        async move {
                            issuer
                                .mint(WorkloadSubject::Platform, AZURE_TOKEN_EXCHANGE_AUDIENCE)
                                .await
                                .map_err(|e| format!("minting a workload-identity assertion: {e}"))
                        }
                    })),
                })
            }
            Identities::Own(own) => {
                // The same checks as for its ARM clients.
                self.clients_as(target, WorkloadSubject::Platform)?;
                Ok(TerraformFederation {
                    tenant_id: own.tenant_id.clone(),
                    client_id: own.client_id.clone(),
                    token: FederatedToken::File(own.federated_token_file.clone()),
                })
            }
        }
    }

    /// What terraform's azurerm provider needs to reach the cloud this connector reaches,
    /// when it is not Azure's public cloud: the metadata host of a custom cloud
    /// (`ARM_METADATA_HOSTNAME`, where the provider reads the cloud's endpoints) and the
    /// CAs to trust (`SSL_CERT_FILE`, which the provider reads; the bundle is written
    /// under `dir`).
    pub fn terraform_cloud_env(
        &self,
        dir: &std::path::Path,
    ) -> std::io::Result<Vec<(String, String)>> {
        let mut env = Vec::new();
        let arm = &self.template.endpoints.arm;
        if arm.host_str() != Some("management.azure.com") {
            let host = match (arm.host_str(), arm.port()) {
                (Some(host), Some(port)) => format!("{host}:{port}"),
                (Some(host), None) => host.to_owned(),
                (None, _) => return Ok(env),
            };
            env.push(("ARM_METADATA_HOSTNAME".to_owned(), host));
        }
        if let Some(extra) = &self.template.extra_root_ca_pem {
            // The system's roots and the extra CA: SSL_CERT_FILE replaces the roots.
            let system = std::env::var_os("SSL_CERT_FILE")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| "/etc/ssl/certs/ca-certificates.crt".into());
            let mut bundle = std::fs::read_to_string(&system).unwrap_or_default();
            if !bundle.ends_with('\n') && !bundle.is_empty() {
                bundle.push('\n');
            }
            bundle.push_str(extra);
            std::fs::create_dir_all(dir)?;
            let path = dir.join("terraform-ca-bundle.pem");
            std::fs::write(&path, bundle)?;
            env.push(("SSL_CERT_FILE".to_owned(), path.display().to_string()));
        }
        Ok(env)
    }

    fn clients_as(
        &self,
        target: &AzureTarget,
        subject: WorkloadSubject,
    ) -> Result<Arc<TenantClients>, ActivityError> {
        let key = (
            target.tenant_id.clone(),
            target.setup_identity_client_id.clone(),
            subject,
        );
        let mut cache = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        if let Some(clients) = cache.get(&key, now) {
            return Ok(clients);
        }
        let mut config = self.template.clone();
        match &self.identities {
            Identities::Minted(issuer) => {
                config.tenant_id = target.tenant_id.clone();
                config.client_id = target.setup_identity_client_id.clone();
                let issuer = issuer.clone();
                config.assertion = ClientAssertionSource::callback(move || {
                    let issuer = issuer.clone();
                    async move {
                        issuer
                            .mint(subject, AZURE_TOKEN_EXCHANGE_AUDIENCE)
                            .await
                            .map_err(|e| format!("minting a workload-identity assertion: {e}"))
                    }
                });
            }
            Identities::Own(own) => {
                if subject != WorkloadSubject::Platform {
                    return Err(terminal(
                        invalid(
                            "a placed worker does not act as an organisation's setup identity: \
                             access setup and teardown run on the shared workers"
                                .to_owned(),
                        ),
                        FailureCode::PlacedWorkerScope,
                    ));
                }
                if !own.tenant_id.eq_ignore_ascii_case(&target.tenant_id) {
                    return Err(terminal(
                        invalid(format!(
                            "this placed worker's identity is in tenant {}, the cluster's \
                             account is in tenant {}",
                            own.tenant_id, target.tenant_id
                        )),
                        FailureCode::PlacedWorkerScope,
                    ));
                }
                config.tenant_id = own.tenant_id.clone();
                config.client_id = own.client_id.clone();
                let file = own.federated_token_file.clone();
                config.assertion = ClientAssertionSource::callback(move || {
                    let file = file.clone();
                    async move {
                        tokio::fs::read_to_string(&file)
                            .await
                            .map(|token| token.trim().to_owned())
                            .map_err(|e| format!("reading {}: {e}", file.display()))
                    }
                });
            }
        }
        let clients = Arc::new(TenantClients {
            arm: ArmClient::new(&config).map_err(failure)?,
            graph: GraphClient::new(&config).map_err(failure)?,
        });
        cache.insert(key, clients.clone(), now);
        Ok(clients)
    }
}

/// Cheap to clone: a worker polling several task queues shares one connector (and its
/// cached per-tenant clients) between them.
#[derive(Clone)]
pub struct AzureAccessActivities {
    connector: Arc<AzureConnector>,
}

impl AzureAccessActivities {
    pub fn new(connector: AzureConnector) -> Self {
        Self {
            connector: Arc::new(connector),
        }
    }
}

fn subscription_scope(target: &AzureTarget) -> String {
    format!("/subscriptions/{}", target.subscription_id)
}

fn custom_role_id(target: &AzureTarget) -> Uuid {
    role_definition_id(target.organization_id, &target.subscription_id)
}

/// ARM keys an assignment by (scope, role, principal). The principal is named here by the
/// application id, which identifies the service principal in a tenant and, unlike its
/// object id, is known to a teardown even after the principal is gone.
fn assignment_id(target: &AzureTarget, application_id: &str) -> Uuid {
    role_assignment_id(
        &subscription_scope(target),
        custom_role_id(target),
        application_id,
    )
}

#[activities]
impl AzureAccessActivities {
    #[activity(name = activity_names::REGISTER_PROVIDER)]
    pub async fn register_provider(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: RegisterProvider,
    ) -> Result<ProviderRegistered, ActivityError> {
        if !AZURE_RESOURCE_PROVIDERS.contains(&input.namespace.as_str()) {
            return Err(terminal(
                invalid(format!(
                    "{} is not a resource provider Windlass registers",
                    input.namespace
                )),
                FailureCode::InvalidInput,
            ));
        }
        let clients = self.connector.setup_clients(&input.target)?;
        heartbeating(
            &ctx,
            clients
                .arm
                .register_provider(&input.target.subscription_id, &input.namespace),
        )
        .await?
        .map_err(self.connector.failure(&ctx))?;
        tracing::info!(namespace = %input.namespace, subscription = %input.target.subscription_id, "provider registered");
        Ok(ProviderRegistered {
            namespace: input.namespace,
        })
    }

    #[activity(name = activity_names::ENSURE_CUSTOM_ROLE)]
    pub async fn ensure_custom_role(
        self: Arc<Self>,
        ctx: ActivityContext,
        target: AzureTarget,
    ) -> Result<CustomRole, ActivityError> {
        let clients = self.connector.setup_clients(&target)?;
        let id = custom_role_id(&target);
        let role = windlass_custom_role(&target.subscription_id);
        // PUT with a fixed id is an upsert: a second run finds and rewrites the same role.
        let created = heartbeating(
            &ctx,
            clients
                .arm
                .put_role_definition(&target.subscription_id, id, &role),
        )
        .await?
        .map_err(self.connector.failure(&ctx))?;
        Ok(CustomRole { id: created.id })
    }

    #[activity(name = activity_names::ENSURE_SERVICE_PRINCIPAL)]
    pub async fn ensure_service_principal(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: ApplicationAccess,
    ) -> Result<ServicePrincipal, ActivityError> {
        let clients = self.connector.setup_clients(&input.target)?;
        let principal = heartbeating(
            &ctx,
            clients
                .graph
                .ensure_service_principal(&input.application_id),
        )
        .await?
        .map_err(self.connector.failure(&ctx))?;
        Ok(ServicePrincipal {
            object_id: principal.id,
        })
    }

    #[activity(name = activity_names::ASSIGN_ROLE)]
    pub async fn assign_role(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: AssignRole,
    ) -> Result<RoleAssigned, ActivityError> {
        let target = &input.target;
        let expected_role =
            role_definition_resource_id(&target.subscription_id, custom_role_id(target));
        if !input
            .role_definition_id
            .eq_ignore_ascii_case(&expected_role)
        {
            return Err(terminal(
                invalid(format!(
                    "role {} is not the Windlass role of this subscription",
                    input.role_definition_id
                )),
                FailureCode::InvalidInput,
            ));
        }
        let clients = self.connector.setup_clients(target)?;
        let scope = subscription_scope(target);
        let id = assignment_id(target, &input.application_id);
        let assign = async {
            let put = || {
                clients.arm.put_role_assignment(
                    &scope,
                    id,
                    &input.role_definition_id,
                    &input.principal_object_id,
                )
            };
            match put().await {
                Err(error) if error.code() == Some("RoleAssignmentUpdateNotPermitted") => {
                    if replace_orphaned_assignment(&clients.arm, &scope, id, &input).await? {
                        put().await
                    } else {
                        Err(error)
                    }
                }
                other => other,
            }
        };
        let assigned = heartbeating(&ctx, assign).await?;
        match assigned {
            Ok(assignment) => Ok(RoleAssigned { id: assignment.id }),
            // Someone already granted exactly this role to this principal under another id:
            // access is in place, and a teardown must not remove an assignment it did not make.
            Err(error) if error.code() == Some("RoleAssignmentExists") => {
                tracing::info!(%scope, "role already assigned under another id");
                Ok(RoleAssigned {
                    id: format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{id}"),
                })
            }
            Err(error) => Err(self.connector.failure(&ctx)(error)),
        }
    }

    #[activity(name = activity_names::VERIFY_ACCESS)]
    pub async fn verify_access(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: VerifyAccess,
    ) -> Result<(), ActivityError> {
        let target = &input.target;
        let clients = self.connector.setup_clients(target)?;
        let verify = async {
            let mut problems = Vec::new();
            for namespace in AZURE_RESOURCE_PROVIDERS {
                let state = clients
                    .arm
                    .provider_state(&target.subscription_id, namespace)
                    .await?;
                if state != "Registered" {
                    problems.push(format!("{namespace} is {state}"));
                }
            }
            match clients
                .arm
                .get_role_definition(&target.subscription_id, custom_role_id(target))
                .await?
            {
                // Right after its creation the role may not have replicated to the
                // replica this read reaches: waited out within the replication window.
                None => {
                    return Err(AzureError::RoleDefinitionDoesNotExist {
                        message: "the custom role is not readable (yet)".to_owned(),
                    });
                }
                Some(found) => {
                    let wanted = windlass_custom_role(&target.subscription_id);
                    let actions = |r: &crate::azure::RoleDefinition| {
                        r.permissions
                            .iter()
                            .flat_map(|p| p.actions.iter().cloned())
                            .collect::<BTreeSet<_>>()
                    };
                    let data_actions = |r: &crate::azure::RoleDefinition| {
                        r.permissions
                            .iter()
                            .flat_map(|p| p.data_actions.iter().cloned())
                            .collect::<BTreeSet<_>>()
                    };
                    if actions(&found.properties) != actions(&wanted)
                        || data_actions(&found.properties) != data_actions(&wanted)
                    {
                        problems.push(
                            "the custom role's permissions differ from the Windlass role"
                                .to_owned(),
                        );
                    }
                    if found.properties.assignable_scopes != wanted.assignable_scopes {
                        problems.push(format!(
                            "the custom role is assignable at {:?}, not only the subscription",
                            found.properties.assignable_scopes
                        ));
                    }
                }
            }
            Ok::<_, AzureError>(problems)
        };
        let problems = heartbeating(&ctx, verify)
            .await?
            .map_err(self.connector.failure(&ctx))?;
        if !problems.is_empty() {
            return Err(terminal(
                invalid(format!("access is not as set up: {}", problems.join("; "))),
                FailureCode::VerificationFailed,
            ));
        }
        Ok(())
    }

    #[activity(name = activity_names::REMOVE_ROLE_ASSIGNMENT)]
    pub async fn remove_role_assignment(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: ApplicationAccess,
    ) -> Result<Removal, ActivityError> {
        let clients = self.connector.setup_clients(&input.target)?;
        let scope = subscription_scope(&input.target);
        let id = assignment_id(&input.target, &input.application_id);
        let existed = heartbeating(&ctx, clients.arm.delete_role_assignment(&scope, id))
            .await?
            .map_err(self.connector.failure(&ctx))?;
        Ok(Removal {
            removed: existed
                .then(|| format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{id}")),
        })
    }

    #[activity(name = activity_names::REMOVE_CUSTOM_ROLE)]
    pub async fn remove_custom_role(
        self: Arc<Self>,
        ctx: ActivityContext,
        target: AzureTarget,
    ) -> Result<Removal, ActivityError> {
        let clients = self.connector.setup_clients(&target)?;
        let id = custom_role_id(&target);
        let deleted = heartbeating(
            &ctx,
            clients
                .arm
                .delete_role_definition(&target.subscription_id, id),
        )
        .await?;
        match deleted {
            Ok(existed) => Ok(Removal {
                removed: existed.then(|| role_definition_resource_id(&target.subscription_id, id)),
            }),
            // Right after the assignment is deleted ARM may still count it; someone else's
            // assignment of our role blocks for good, and the step's budget bounds the wait.
            Err(error) if error.code() == Some("RoleDefinitionHasAssignments") => Err(retryable(
                error,
                FailureCode::RoleDefinitionHasAssignments,
                Some(Duration::from_secs(5)),
            )),
            Err(error) => Err(self.connector.failure(&ctx)(error)),
        }
    }

    #[activity(name = activity_names::REMOVE_SERVICE_PRINCIPAL)]
    pub async fn remove_service_principal(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: ApplicationAccess,
    ) -> Result<Removal, ActivityError> {
        let clients = self.connector.setup_clients(&input.target)?;
        let remove = async {
            match clients
                .graph
                .get_service_principal_by_app_id(&input.application_id)
                .await?
            {
                None => Ok(None),
                Some(principal) => {
                    let existed = clients
                        .graph
                        .delete_service_principal(&principal.id)
                        .await?;
                    Ok::<_, AzureError>(existed.then_some(principal.id))
                }
            }
        };
        let removed = heartbeating(&ctx, remove)
            .await?
            .map_err(self.connector.failure(&ctx))?;
        Ok(Removal {
            removed: removed.map(|id| format!("servicePrincipals/{id}")),
        })
    }
}

/// Our assignment id names a principal that is not the one being assigned: the
/// assignment of an earlier service principal of the same application, which the
/// customer deleted (deleting an enterprise application leaves its role assignments
/// behind, "Identity not found"). ARM refuses to repoint it
/// (`RoleAssignmentUpdateNotPermitted`); the documented fix is to delete the orphan and
/// assign again. Returns whether it was deleted.
async fn replace_orphaned_assignment(
    arm: &ArmClient,
    scope: &str,
    id: Uuid,
    input: &AssignRole,
) -> Result<bool, AzureError> {
    let Some(existing) = arm.get_role_assignment(scope, id).await? else {
        return Ok(false);
    };
    let ours = existing
        .properties
        .role_definition_id
        .eq_ignore_ascii_case(&input.role_definition_id);
    let orphaned = !existing
        .properties
        .principal_id
        .eq_ignore_ascii_case(&input.principal_object_id);
    if !(ours && orphaned) {
        return Ok(false);
    }
    tracing::warn!(
        assignment = %existing.id,
        orphaned_principal = %existing.properties.principal_id,
        principal = %input.principal_object_id,
        "replacing the Windlass role assignment of a deleted service principal"
    );
    arm.delete_role_assignment(scope, id).await?;
    Ok(true)
}

/// [`failure`] of an Azure error, with Azure's replication and propagation lags waited out for a
/// bounded time: such an error is retried while the step, counted from its first
/// attempt, is younger than the lag's window, and is terminal after, saying what was
/// waited for and what to check.
pub(crate) fn azure_failure_in(
    ctx: &ActivityContext,
    windows: &SettleWindows,
    error: AzureError,
) -> ActivityError {
    azure_failure_after(step_age(ctx), windows, error)
}

/// [`azure_failure_in`] for a step that has been running for `waited`.
fn azure_failure_after(
    waited: Duration,
    windows: &SettleWindows,
    error: AzureError,
) -> ActivityError {
    let Retry::Settling { lag } = error.retry() else {
        return failure(error);
    };
    let window = windows.of(lag);
    if waited < window {
        tracing::info!(?lag, ?waited, ?window, error = %error, "Azure has not caught up yet; retrying");
        // The step's backoff (soon at first, then up to 30 s) paces the checks.
        return failure(error);
    }
    terminal(
        NotSettled { lag, window, error },
        FailureCode::AzureNotSettled,
    )
}

/// A lag that outlasted its window.
#[derive(Debug, thiserror::Error)]
#[error(
    "waited {window:?} for {}; Azure still answers: {error} To fix: {}.",
    lag.waited_for(),
    lag.remedy()
)]
struct NotSettled {
    lag: Lag,
    window: Duration,
    error: AzureError,
}

/// How long the step has been running: the window counts every attempt, but not the time
/// the step waited for a worker (a burst that queues steps must not spend their windows).
fn step_age(ctx: &ActivityContext) -> Duration {
    crate::step_time::running_time_of(ctx.info())
}

impl AzureConnector {
    /// The verdict for an error of a step running `ctx` (see [`azure_failure_in`]).
    pub(crate) fn failure<'a>(
        &'a self,
        ctx: &'a ActivityContext,
    ) -> impl Fn(AzureError) -> ActivityError + 'a {
        move |error| azure_failure_in(ctx, &self.template.settle_windows, error)
    }

    /// The verdict for an error of a step that has been running for `age`.
    pub(crate) fn failure_after(&self, age: Duration) -> impl Fn(AzureError) -> ActivityError + '_ {
        move |error| azure_failure_after(age, &self.template.settle_windows, error)
    }
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, message)
}
