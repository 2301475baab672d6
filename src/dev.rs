//! `windlass dev`: the whole system on one machine, nothing to install beyond the README's
//! setup. Azure calls go to the local Azure stand-in (not Azure) unless endpoints are given;
//! AWS calls go to moto (the AWS emulator, not AWS) behind the STS trust-policy stand-in,
//! on static stand-in credentials, never the developer's own AWS credentials.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use windlass_activities::ActivitySet;
use windlass_api::Authentication;
use windlass_api::oidc::{OidcVerifier, TrustedIssuer, pseudonymous_subject};
use windlass_core::Store;
use windlass_core::cloud_accounts::{
    AWS_ROLE_NAME, CloudAccount, CloudProvider, NewCloudAccount, aws_external_id,
};
use windlass_core::rbac::{BuiltInRole, Role};
use windlass_standins::azurite::Azurite;
use windlass_standins::eks_versions::EksVersionsStandIn;
use windlass_standins::kube::{KubeStandIn, KubeStandInConfig};
use windlass_standins::moto::{ACCOUNT_ID as MOTO_ACCOUNT_ID, Moto, MotoOptions};
use windlass_standins::sts_trust::StsTrustStandIn;
use windlass_standins::{AzureStandIn, OidcIssuerStandIn, StandInOptions};
use windlass_workers::{Fleet, WorkerConfig, WorkerMetrics};
use windlass_workflows::engine::dev_server::{DevServer, DevServerOptions, find_temporal_cli};
use windlass_workflows::engine::{Engine, EngineConfig};
use windlass_workflows::task_queues;

use crate::cluster_config::ClusterArgs;
use crate::config::{AzureArgs, StoreArgs};

/// Placeholder id of Windlass's multi-tenant application in the embedded default.
const DEV_APPLICATION_ID: &str = "5c2a7e1d-8b3f-4d6a-9e0c-1f2a3b4c5d6e";
const DEMO_TENANT_ID: &str = "7f3c1a52-2d1e-4a8e-9d6b-0a1b2c3d4e5f";
const DEMO_SUBSCRIPTION_ID: &str = "3b6f7c9e-1a2b-4c3d-8e9f-0a1b2c3d4e5f";
const DEMO_SETUP_IDENTITY: &str = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a";
/// The Kubernetes versions the EKS versions stand-in offers.
const DEMO_EKS_VERSIONS: &[&str] = &["1.32", "1.33"];
/// The stand-in tenant Windlass's multi-tenant application is registered in.
const DEV_HOME_TENANT: &str = "0c0ffee0-0000-4000-8000-000000000001";

#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// Where SQLite, Temporal's history and the stand-in's state live.
    #[arg(long, env = "WINDLASS_DATA_DIR", default_value = ".windlass")]
    data_dir: PathBuf,
    #[arg(long, env = "WINDLASS_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[arg(long, default_value_t = 7233)]
    temporal_port: u16,
    #[arg(long, default_value_t = 8233)]
    temporal_ui_port: u16,
    #[arg(long, default_value_t = 8443)]
    azure_standin_port: u16,
    #[arg(long, default_value_t = 8444)]
    oidc_standin_port: u16,
    #[arg(long, default_value_t = 8445)]
    kube_standin_port: u16,
    #[arg(long, default_value_t = 10000)]
    azurite_port: u16,
    /// The local chart repository (a stand-in for public ones such as Bitnami's, serving
    /// `charts/examples/`), which the README's example environment takes its chart from.
    #[arg(long, default_value_t = 8091)]
    chart_repository_port: u16,
    /// moto, the AWS emulator (S3, STS, IAM), `0`: any free port.
    #[arg(long, default_value_t = 8446)]
    moto_port: u16,
    /// The STS trust-policy stand-in in front of moto, where Windlass's AWS clients go.
    #[arg(long, default_value_t = 8447)]
    sts_standin_port: u16,
    /// The stand-in for EKS's version listing (moto does not serve it).
    #[arg(long, default_value_t = 8448)]
    eks_versions_standin_port: u16,
    #[arg(long, env = "WINDLASS_AZURE_APPLICATION_ID", default_value = DEV_APPLICATION_ID)]
    azure_application_id: String,
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;

    let cli = find_temporal_cli(&std::env::current_dir()?).context(
        "no `temporal` CLI found: run the README's setup (scripts/setup.sh) or put it on PATH",
    )?;
    let temporal = DevServer::start(
        &cli,
        DevServerOptions {
            port: args.temporal_port,
            ui_port: Some(args.temporal_ui_port),
            db_file: Some(data_dir.join("temporal.db")),
        },
    )
    .await?;

    let store = StoreArgs {
        database_url: format!("sqlite://{}", data_dir.join("windlass.db").display()),
    }
    .connect()
    .await?;
    store.migrate().await?;

    // Clusters' storage accounts are backed by Azurite (the Blob emulator); their
    // Kubernetes API by the Kubernetes stand-in.
    let azurite_dir = data_dir.join("azurite");
    std::fs::create_dir_all(&azurite_dir)?;
    let azurite = Azurite::start_in(&azurite_dir, args.azurite_port)
        .await
        .context("starting Azurite (scripts/setup.sh installs it)")?;
    let kube = KubeStandIn::start(KubeStandInConfig {
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, args.kube_standin_port)),
        ..KubeStandInConfig::default()
    })
    .await
    .context("starting the Kubernetes stand-in")?;

    let standin = AzureStandIn::start_with(StandInOptions {
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, args.azure_standin_port)),
        persist_path: Some(data_dir.join("azure-standin.json")),
        blob: Some(azurite.backend()),
        ..StandInOptions::default()
    })
    .await
    .context("starting the Azure stand-in")?;
    let ca_file = data_dir.join("azure-standin-ca.pem");
    std::fs::write(&ca_file, &standin.ca_cert_pem)?;
    // An AKS cluster's admin credentials are the Kubernetes stand-in's, a client
    // certificate as AKS issues them.
    standin.set_managed_cluster_kubeconfig(
        &kube
            .client_certificate_kubeconfig("clusterAdmin")
            .context("issuing the clusters' admin certificate")?,
    );
    let cwd = std::env::current_dir()?;
    let examples = cwd.join("charts/examples");
    let example_charts: Vec<std::path::PathBuf> = std::fs::read_dir(&examples)
        .with_context(|| format!("reading {}", examples.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.join("Chart.yaml").is_file())
        .collect();
    let chart_repository = windlass_standins::chart_repository::ChartRepository::start(
        windlass_activities::helm::Helm::locate().program(),
        &example_charts,
        &data_dir.join("chart-repository"),
        args.chart_repository_port,
    )
    .await
    .context("starting the local chart repository (scripts/setup.sh installs helm)")?;
    // AWS is moto (in memory: its state starts empty on every start), behind the stand-in
    // that enforces roles' trust policies on AssumeRole as STS does; EKS's version listing,
    // which moto does not serve, comes from its own stand-in.
    // Its EKS clusters' API servers are the Kubernetes stand-in, which takes EKS tokens as
    // EKS does: verified by STS (the trust-policy stand-in, in front of moto).
    // AWS's managed policies (AmazonEKSClusterPolicy, ...) exist in it, as in every real
    // account: the blueprint attaches them.
    let moto = Moto::start_with(MotoOptions {
        port: (args.moto_port != 0).then_some(args.moto_port),
        aws_managed_policies: true,
        eks_cluster_endpoint: Some((kube.url().to_owned(), kube.ca_cert_pem().to_owned())),
        ..MotoOptions::default()
    })
    .await
    .context("starting moto, the AWS emulator (scripts/setup.sh installs it)")?;
    let sts = StsTrustStandIn::start_on(&moto.endpoint(), args.sts_standin_port)
        .await
        .context("starting the STS trust-policy stand-in")?;
    kube.accept_eks_tokens_from(&sts.endpoint())?;
    let eks_versions =
        EksVersionsStandIn::start_on(DEMO_EKS_VERSIONS, args.eks_versions_standin_port)
            .await
            .context("starting the EKS versions stand-in")?;
    // Terraform applies the blueprints users export, through the provider stand-in
    // (`windlass provider-standin`) that a mirror offers as azurerm and aws.
    let terraform_cli_config = windlass_provider_standin::mirror::install_for_windlass(
        &data_dir.join("terraform"),
        &std::env::current_exe()?,
        &std::env::current_dir()?,
    )
    .context("installing the terraform provider stand-in (scripts/setup.sh installs the providers' schemas)")?;
    // Workers mint their assertions as the API's issuer; the stand-in verifies them
    // against its keys, as Entra ID would.
    let api = format!("http://{}", args.listen);
    let (organization_id, account) = demo_account(&store).await?;
    let aws_account = demo_aws_account(&store, organization_id).await?;
    // The customer's side of the AWS access set-up, done for them: the role Windlass
    // assumes, trusting the demo organisation's ExternalId. moto forgets it on every stop.
    moto.create_role(AWS_ROLE_NAME, &aws_external_id(organization_id))
        .await
        .context("creating the demo role in moto")?;
    standin.register_platform_application(DEV_HOME_TENANT, &args.azure_application_id, &api);
    standin.seed_customer_tenant(
        DEMO_TENANT_ID,
        DEMO_SUBSCRIPTION_ID,
        DEMO_SETUP_IDENTITY,
        &api,
        &windlass_core::workload_identity::WorkloadSubject::Organization(organization_id)
            .to_string(),
    );

    let keys = crate::config::KeyArgs {
        kek_file: data_dir.join("kek"),
        previous_kek_file: None,
        kms_key_id: None,
        kms_endpoint_url: None,
    }
    .key_ring(&store)
    .await?;
    let keys = std::sync::Arc::new(keys);
    crate::audit_digest_task::spawn(
        store.clone(),
        keys.clone(),
        std::time::Duration::from_secs(3600),
    );
    let engine_config = EngineConfig {
        payload_keys: Some(crate::config::payload_keys(&keys).await?),
        ..EngineConfig::new(temporal.address.clone())
    };
    let azure = AzureArgs {
        azure_arm_endpoint: standin.base_url.clone(),
        azure_graph_endpoint: standin.base_url.clone(),
        azure_authority_host: standin.base_url.clone(),
        workload_identity_issuer: Some(api.clone()),
        azure_extra_ca_file: Some(ca_file),
        azure_default_poll_seconds: 1,
        azure_provider_poll_seconds: 1,
        azure_settle_window_seconds: None,
    };
    let clusters = ClusterArgs {
        cluster_workdir: data_dir.join("clusters"),
        charts_dir: std::env::current_dir()?.join("charts"),
        terraform_cli_config: Some(terraform_cli_config),
        stale_lock_grace_seconds: 30,
        chart_timeout_seconds: 300,
        helm_memory_mb: None,
        aws_endpoint_url: Some(sts.endpoint()),
        aws_eks_endpoint_url: Some(eks_versions.endpoint()),
        // Static credentials moto accepts: never the developer's own AWS ones.
        aws_standin_credentials: Some(windlass_activities::aws::StandInCredentials::moto()),
        // One machine, one developer: charts served on loopback are the point.
        chart_hosts_allow_private: true,
    };
    // One fan-out for the worker and the API: lines published by the worker's steps reach
    // the API's followers in this same process.
    let live_logs = windlass_core::live_logs::LiveLogs::in_process();
    let issuer = azure
        .workload_identity(keys.clone())
        .context("the embedded default always has an issuer")?;
    let template = azure.client_template()?;
    // No cloud rate limit: the stand-ins are not shared with anyone.
    let cluster_activities = Some(
        clusters
            .activities(
                windlass_activities::azure_access::AzureConnector::new(
                    template.clone(),
                    issuer.clone(),
                ),
                windlass_activities::step_log::StepLogs::new(store.clone())
                    .with_live(live_logs.clone()),
                None,
            )
            .await?,
    );
    let activities = ActivitySet {
        azure: Some(AzureArgs::access(template, issuer)),
        // moto through the STS trust-policy stand-in, on stand-in credentials.
        aws_access: Some(clusters.aws_access().await),
        deployments: cluster_activities
            .as_ref()
            .map(|c| c.deployments(store.clone(), keys.clone())),
        clusters: cluster_activities,
        keys: Some(windlass_activities::key_rotation::KeyRotationActivities::new(keys.clone())),
        step_events: Some(live_logs.clone()),
    };
    let worker_config = WorkerConfig {
        engine: engine_config.clone(),
        max_concurrent_activities: 20,
        max_concurrent_workflow_tasks: 10,
        graceful_shutdown: Duration::from_secs(10),
        step_timing: Default::default(),
    };
    let worker_store = store.clone();
    // Every kind of work, as one production worker with no placement would.
    let queues: Vec<String> = task_queues::KINDS.map(str::to_owned).to_vec();
    let worker = tokio::task::spawn_blocking(move || {
        Fleet::spawn(
            &worker_config,
            &queues,
            &worker_store.clone().into(),
            &activities,
            Arc::new(WorkerMetrics::new()),
        )
    })
    .await??;

    // People sign in through an IdP; here a local stand-in plays it, and the developer is
    // the demo organisation's admin.
    let idp = OidcIssuerStandIn::start(args.oidc_standin_port, "windlass-dev")
        .await
        .context("starting the OIDC issuer stand-in")?;
    let developer = "developer";
    store
        .bind_role(
            organization_id,
            &pseudonymous_subject(&idp.issuer, developer),
            &Role::BuiltIn {
                role: BuiltInRole::Admin,
            },
        )
        .await?;
    let token = idp.token(developer, &[], 12 * 3600);
    let auth = Authentication {
        oidc: OidcVerifier::new(vec![TrustedIssuer {
            issuer: idp.issuer.clone(),
            audience: idp.audience.clone(),
            jwks_uri: idp.jwks_uri.clone(),
        }]),
    };
    std::fs::write(data_dir.join("developer-token"), &token)?;
    let engine = Engine::connect(&engine_config).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    println!(
        "\nWindlass is running (embedded default).\n\
         \n  API            {api}   (OpenAPI: {api}/openapi.json)\
         \n  Temporal UI    {}\
         \n  Temporal gRPC  {}\
         \n  Azure          {} — a local stand-in, not Azure (storage: Azurite)\
         \n  AWS            {} — moto, the AWS emulator, not AWS (STS via a trust-policy stand-in {}, EKS versions {})\
         \n  Kubernetes     {} — a local stand-in, not a cluster\
         \n  Charts         {} — a local chart repository (stand-in charts of charts/examples)\
         \n  Sign-in        {} — a local OIDC stand-in; your token (12 h) is in {}\
         \n  Data           {}\
         \n\nTry the Azure access setup on the demo account:\n\
         \n  export TOKEN=$(cat {})\
         \n  curl -s -X POST {api}/v1/organizations/{organization_id}/runs \\\
         \n    -H \"Authorization: Bearer $TOKEN\" \\\
         \n    -H 'content-type: application/json' -H 'Idempotency-Key: demo-1' \\\
         \n    -d '{{\"workflow\":\"azure_access_setup\",\"cloud_account_id\":\"{}\",\"setup_identity_client_id\":\"{DEMO_SETUP_IDENTITY}\"}}'\
         \n  curl -s -H \"Authorization: Bearer $TOKEN\" {api}/v1/organizations/{organization_id}/runs\n\
         \nOnce the setup succeeded (it verifies the account), provision an AKS cluster (terraform\n  and helm are real; ARM and Kubernetes are stand-ins):\n\
         \n  curl -s -X POST {api}/v1/organizations/{organization_id}/clusters \\\
         \n    -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' \\\
         \n    -d '{{\"name\":\"demo\",\"cloud_account_id\":\"{}\",\"region\":\"westeurope\",\"kubernetes_version\":\"1.33\"}}'\n\
         \nOr EKS: the demo AWS account ({MOTO_ACCOUNT_ID}, in moto) has its role {AWS_ROLE_NAME} trusting the\n  demo organisation; verify it, then provision (terraform and helm are real; AWS is moto):\n\
         \n  curl -s -X POST {api}/v1/organizations/{organization_id}/runs \\\
         \n    -H \"Authorization: Bearer $TOKEN\" \\\
         \n    -H 'content-type: application/json' -H 'Idempotency-Key: demo-aws-1' \\\
         \n    -d '{{\"workflow\":\"aws_access_verify\",\"cloud_account_id\":\"{}\"}}'\
         \n  curl -s -X POST {api}/v1/organizations/{organization_id}/clusters \\\
         \n    -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' \\\
         \n    -d '{{\"name\":\"demo-eks\",\"cloud_account_id\":\"{}\",\"region\":\"eu-west-3\",\"kubernetes_version\":\"1.33\"}}'\n\
         \nCtrl-C stops everything.\n",
        temporal.ui_url.clone().unwrap_or_default(),
        temporal.address,
        standin.base_url,
        moto.endpoint(),
        sts.endpoint(),
        eks_versions.endpoint(),
        kube.url(),
        chart_repository.url,
        idp.issuer,
        data_dir.join("developer-token").display(),
        data_dir.display(),
        data_dir.join("developer-token").display(),
        account.id,
        account.id,
        aws_account.id,
        aws_account.id,
    );

    let state = windlass_api::AppState {
        store,
        engine: std::sync::Arc::new(engine),
        config: std::sync::Arc::new(windlass_api::ApiConfig {
            azure_application_id: args.azure_application_id,
            workload_identity_issuer: api.clone(),
            trusted_proxies: Default::default(),
            runs_in_flight_per_organization: windlass_api::DEFAULT_RUNS_IN_FLIGHT_PER_ORGANIZATION,
        }),
        auth: std::sync::Arc::new(auth),
        keys,
        live_logs,
    };
    crate::serve::serve(listener, state, crate::serve::shutdown_signal()).await?;
    println!("stopping: worker (finishing in-flight work), then Temporal");
    tokio::task::spawn_blocking(move || worker.drain()).await??;
    drop(standin);
    drop(eks_versions);
    drop(sts);
    drop(moto);
    kube.shutdown().await;
    azurite.stop().await;
    temporal.stop().await;
    Ok(())
}

/// An organisation and Azure account to try things on, created once.
async fn demo_account(store: &Store) -> anyhow::Result<(uuid::Uuid, CloudAccount)> {
    let organization = match store.organization_by_name("demo").await? {
        Some(org) => org,
        None => store.create_organization("demo").await?,
    };
    let accounts = store.cloud_accounts(organization.id).await?;
    let account = match accounts
        .into_iter()
        .find(|a| a.external_id == DEMO_SUBSCRIPTION_ID)
    {
        Some(account) => account,
        None => {
            store
                .create_cloud_account(NewCloudAccount {
                    organization_id: organization.id,
                    provider: CloudProvider::Azure,
                    tenant_id: DEMO_TENANT_ID.into(),
                    external_id: DEMO_SUBSCRIPTION_ID.into(),
                    display_name: "demo subscription (stand-in)".into(),
                })
                .await?
        }
    };
    if !organization.allow_plain_http_charts {
        // The example environment's chart comes from the local chart repository, which is
        // plain HTTP on loopback.
        let id = organization.id;
        store
            .audited(
                |conn| Box::pin(Store::set_allow_plain_http_charts_on(conn, id, true)),
                |_| {
                    Some(windlass_core::audit::NewAuditEntry::new(
                        Some(id),
                        "windlass dev",
                        windlass_core::audit::ActorKind::System,
                        "organizations.chart_policy",
                        format!("organization:{id}"),
                        windlass_core::audit::AuditResult::Success,
                        serde_json::json!({"allow_plain_http": true, "why": "the local chart repository of windlass dev"}),
                    ))
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("allowing the local chart repository: {e}"))?;
    }
    Ok((organization.id, account))
}

/// The demo organisation's AWS account (moto's), created once.
async fn demo_aws_account(
    store: &Store,
    organization_id: uuid::Uuid,
) -> anyhow::Result<CloudAccount> {
    let existing = store
        .cloud_accounts(organization_id)
        .await?
        .into_iter()
        .find(|a| a.provider == CloudProvider::Aws && a.external_id == MOTO_ACCOUNT_ID);
    Ok(match existing {
        Some(account) => account,
        None => {
            store
                .create_cloud_account(NewCloudAccount {
                    organization_id,
                    provider: CloudProvider::Aws,
                    tenant_id: String::new(),
                    external_id: MOTO_ACCOUNT_ID.into(),
                    display_name: "demo AWS account (moto)".into(),
                })
                .await?
        }
    })
}

/// Writes a credential readable by this user only.
pub(crate) fn write_private(path: &std::path::Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(content.as_bytes())?;
    Ok(())
}
