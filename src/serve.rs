use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use windlass_api::client_address::TrustedProxies;
use windlass_api::oidc::{OidcVerifier, TrustedIssuer};
use windlass_api::{ApiConfig, ApiMetrics, AppState, Authentication, MetricsExposure};
use windlass_workflows::engine::Engine;

use crate::config::{EngineArgs, KeyArgs, LiveLogArgs, RedisArgs, StoreArgs};

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub live_logs: LiveLogArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    #[arg(long, env = "WINDLASS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Application (client) id of Windlass's multi-tenant Entra application.
    #[arg(long, env = "WINDLASS_AZURE_APPLICATION_ID")]
    pub azure_application_id: String,
    /// Windlass's workload-identity issuer URL: the API's public base URL (HTTPS in
    /// production), which customers' federated credentials name. Default:
    /// `http://<listen>`.
    #[arg(long, env = "WINDLASS_WORKLOAD_IDENTITY_ISSUER")]
    pub workload_identity_issuer: Option<String>,
    /// Proxies in front of the API (addresses or CIDRs, comma-separated) whose
    /// `X-Forwarded-For` names the client in audit entries. Default: none (the peer).
    #[arg(long, env = "WINDLASS_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// Unfinished runs one organisation may have at once; starts beyond it answer 429
    /// with Retry-After.
    #[arg(long, env = "WINDLASS_RUNS_IN_FLIGHT_PER_ORGANIZATION",
        default_value_t = windlass_api::DEFAULT_RUNS_IN_FLIGHT_PER_ORGANIZATION)]
    pub runs_in_flight_per_organization: u32,
    /// Issuer (`iss`) of the OIDC provider people sign in with.
    #[arg(long, env = "WINDLASS_OIDC_ISSUER", requires_all = ["oidc_audience", "oidc_jwks_uri"])]
    pub oidc_issuer: Option<String>,
    /// The audience Windlass is registered as at the provider.
    #[arg(long, env = "WINDLASS_OIDC_AUDIENCE")]
    pub oidc_audience: Option<String>,
    #[arg(long, env = "WINDLASS_OIDC_JWKS_URI")]
    pub oidc_jwks_uri: Option<String>,
    /// How often the audit chains' heads are signed (seconds).
    #[arg(long, env = "WINDLASS_AUDIT_DIGEST_SECONDS", default_value_t = 3600)]
    pub audit_digest_seconds: u64,
    /// Serve `/metrics` on this address instead of the API's listener (so the scraper's
    /// network, not the API's public one, sees it). Default: on the API's listener.
    #[arg(long, env = "WINDLASS_API_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Apply database migrations before serving (the embedded default does).
    #[arg(long, env = "WINDLASS_MIGRATE_ON_START", default_value_t = false)]
    pub migrate: bool,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let store = args.store.connect().await?;
    if args.migrate {
        store.migrate().await?;
    }
    let keys = Arc::new(args.keys.key_ring(&store).await?);
    crate::audit_digest_task::spawn(
        store.clone(),
        keys.clone(),
        std::time::Duration::from_secs(args.audit_digest_seconds.max(1)),
    );
    let live_logs = args.live_logs.live_logs(&args.redis)?;
    let engine = Engine::connect(&args.engine.config(&keys).await?).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(listen = %args.listen, "API serving");
    if args.oidc_issuer.is_none() {
        tracing::warn!(
            "no OIDC issuer: only API tokens and organisations' own connections can call the API, and nobody can create organisations"
        );
    }
    let auth = Authentication {
        oidc: OidcVerifier::new(
            args.oidc_issuer
                .map(|issuer| TrustedIssuer {
                    issuer,
                    audience: args.oidc_audience.unwrap_or_default(),
                    jwks_uri: args.oidc_jwks_uri.unwrap_or_default(),
                })
                .into_iter()
                .collect(),
        ),
    };
    let state = AppState {
        store,
        engine: std::sync::Arc::new(engine),
        config: Arc::new(ApiConfig {
            azure_application_id: args.azure_application_id,
            workload_identity_issuer: args
                .workload_identity_issuer
                .unwrap_or_else(|| format!("http://{}", args.listen)),
            trusted_proxies: TrustedProxies::parse(&args.trusted_proxies)
                .map_err(anyhow::Error::msg)?,
            runs_in_flight_per_organization: args.runs_in_flight_per_organization,
        }),
        auth: Arc::new(auth),
        keys,
        live_logs,
    };
    let Some(metrics_listen) = args.metrics_listen else {
        return serve(listener, state, shutdown_signal()).await;
    };
    let metrics_listener = tokio::net::TcpListener::bind(metrics_listen)
        .await
        .with_context(|| format!("binding {metrics_listen}"))?;
    tracing::info!(listen = %metrics_listen, "API metrics serving");
    let metrics = ApiMetrics::new();
    let scrape = axum::serve(
        metrics_listener,
        windlass_api::metrics_router(metrics.clone()),
    )
    .with_graceful_shutdown(shutdown_signal());
    let app = windlass_api::router_with_metrics(state, metrics, MetricsExposure::Separate);
    let api = serve_router(listener, app, shutdown_signal());
    let (api, scrape) = tokio::join!(api, scrape);
    scrape.context("API metrics server")?;
    api
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_router(listener, windlass_api::router(state), shutdown).await
}

async fn serve_router(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Connect info gives the audit log the caller's address.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("API server")
}

/// SIGINT (Ctrl-C) or SIGTERM (what orchestrators send).
pub async fn shutdown_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match terminate.as_mut() {
                Some(s) => { s.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}
