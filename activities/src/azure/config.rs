//! Where the clients talk to and how they authenticate.
//!
//! Authentication is federated only: an Entra ID client assertion exchanged through
//! `ClientAssertionCredential`. In the workers the assertions come from Windlass's own
//! workload-identity issuer, minted per subject (`AzureConnector`); there is deliberately
//! no way to configure a client secret, nor one token file shared by every organisation
//! (whose single subject any organisation's run could present: the confused deputy).

use std::{fmt, sync::Arc, time::Duration};

use futures::future::BoxFuture;
use url::Url;

use super::error::{AzureError, SettleWindows};
use crate::rate_limit::RateLimiter;

/// Base URLs and token scopes. Scopes are audience identifiers, so they
/// stay the real Azure ones even when the URLs point at a stand-in.
#[derive(Debug, Clone)]
pub struct AzureEndpoints {
    pub arm: Url,
    pub graph: Url,
    pub authority_host: Url,
    pub arm_scope: String,
    pub graph_scope: String,
}

impl AzureEndpoints {
    pub fn public_cloud() -> Self {
        Self {
            arm: Url::parse("https://management.azure.com").expect("static URL"),
            graph: Url::parse("https://graph.microsoft.com").expect("static URL"),
            authority_host: Url::parse("https://login.microsoftonline.com").expect("static URL"),
            arm_scope: "https://management.azure.com/.default".into(),
            graph_scope: "https://graph.microsoft.com/.default".into(),
        }
    }

    /// All three services served from one origin, as the Windlass stand-in does.
    pub fn single_origin(base_url: &str) -> Result<Self, AzureError> {
        let url = Url::parse(base_url)
            .map_err(|e| AzureError::Config(format!("base URL {base_url:?}: {e}")))?;
        Ok(Self {
            arm: url.clone(),
            graph: url.clone(),
            authority_host: url,
            ..Self::public_cloud()
        })
    }
}

type AssertionCallback = dyn Fn() -> BoxFuture<'static, Result<String, String>> + Send + Sync;

/// Where client assertions come from: asked on every token request, because assertions
/// are short-lived.
#[derive(Clone)]
pub enum ClientAssertionSource {
    /// Any async producer of a JWT. The error string must not contain the
    /// assertion.
    Callback(Arc<AssertionCallback>),
}

impl ClientAssertionSource {
    pub fn callback<F, Fut>(f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<String, String>> + Send + 'static,
    {
        Self::Callback(Arc::new(move || Box::pin(f())))
    }

    /// A fresh assertion.
    pub async fn fetch(&self) -> Result<String, String> {
        match self {
            Self::Callback(f) => f().await.map(|jwt| jwt.trim().to_owned()),
        }
    }

    /// For a template whose assertions the connector sets per identity.
    pub fn set_per_identity() -> Self {
        Self::callback(|| async {
            Err("no assertion source: the Azure connector sets one per identity".to_owned())
        })
    }
}

impl fmt::Debug for ClientAssertionSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Callback(_) => f.write_str("Callback(..)"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AzureClientConfig {
    pub endpoints: AzureEndpoints,
    pub tenant_id: String,
    pub client_id: String,
    pub assertion: ClientAssertionSource,
    /// Extra CA (PEM) to trust, for a loopback stand-in's throwaway CA.
    pub extra_root_ca_pem: Option<String>,
    /// LRO poll interval when the service sends no `Retry-After` (the ARM
    /// guidance suggests 60 s).
    pub lro_default_poll_interval: Duration,
    /// Upper bound on waiting for one long-running operation.
    pub lro_timeout: Duration,
    /// In-client retries of 429/5xx before the error is surfaced.
    pub max_in_client_retries: usize,
    /// A `Retry-After` longer than this is surfaced at once instead of slept
    /// through, leaving the wait to the durable (Temporal) retry.
    pub max_in_client_wait: Duration,
    /// Provider registration polling: first interval, cap and overall limit.
    pub provider_poll_initial: Duration,
    pub provider_poll_max: Duration,
    pub provider_timeout: Duration,
    /// The fleet's request budget per subscription; every ARM request waits for a token.
    /// `None` sends without waiting (ARM's own 429s are still handled).
    pub rate_limiter: Option<RateLimiter>,
    /// How long replication and propagation lags are waited out before they are
    /// terminal (role definitions, service principals, role assignments).
    pub settle_windows: SettleWindows,
    /// One HTTP client (connection pool, trusted roots) for every client built from this
    /// configuration, whatever tenant or identity it acts as: credentials travel in each
    /// request's headers, never in the connection. Unset, each client builds its own
    /// (about 0.75 MB apiece, which a worker serving many tenants cannot afford).
    pub(crate) shared_transport: Option<azure_core::http::Transport>,
}

impl AzureClientConfig {
    pub fn new(
        endpoints: AzureEndpoints,
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        assertion: ClientAssertionSource,
    ) -> Self {
        Self {
            endpoints,
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            assertion,
            extra_root_ca_pem: None,
            lro_default_poll_interval: Duration::from_secs(60),
            lro_timeout: Duration::from_secs(60 * 60),
            max_in_client_retries: 2,
            max_in_client_wait: Duration::from_secs(30),
            provider_poll_initial: Duration::from_secs(2),
            provider_poll_max: Duration::from_secs(30),
            provider_timeout: Duration::from_secs(10 * 60),
            rate_limiter: None,
            settle_windows: SettleWindows::default(),
            shared_transport: None,
        }
    }

    /// This configuration with one HTTP client shared by every client built from it (and
    /// from its clones). Left unshared if the client cannot be built (a bad extra CA): each
    /// client then reports that error when built.
    pub fn sharing_one_transport(mut self) -> Self {
        if self.shared_transport.is_none() {
            self.shared_transport = super::credential::transport(&self).ok();
        }
        self
    }
}
