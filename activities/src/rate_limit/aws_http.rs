//! Every AWS SDK request of a client waits for its account's budget. The SDK retries and
//! paginates below the operation, so wrapping its HTTP client (rather than each call site)
//! is the one place that sees every request, retries included.

use std::sync::Arc;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

use super::{CloudAccount, RateLimiter};

/// The SDK's default HTTPS client (hyper, rustls on aws-lc), limited per account.
#[derive(Debug, Clone)]
pub struct RateLimitedHttpClient {
    inner: SharedHttpClient,
    limiter: RateLimiter,
    account: Arc<CloudAccount>,
}

impl RateLimitedHttpClient {
    pub fn new(inner: SharedHttpClient, limiter: RateLimiter, account: CloudAccount) -> Self {
        Self {
            inner,
            limiter,
            account: Arc::new(account),
        }
    }

    /// The client the SDK would build itself; share one per process so connections pool.
    pub fn default_inner() -> SharedHttpClient {
        aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .build_https()
    }
}

impl HttpClient for RateLimitedHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(LimitedConnector {
            inner: self.inner.http_connector(settings, components),
            limiter: self.limiter.clone(),
            account: self.account.clone(),
        })
    }
}

#[derive(Debug)]
struct LimitedConnector {
    inner: SharedHttpConnector,
    limiter: RateLimiter,
    account: Arc<CloudAccount>,
}

impl HttpConnector for LimitedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let (inner, limiter, account) = (
            self.inner.clone(),
            self.limiter.clone(),
            self.account.clone(),
        );
        HttpConnectorFuture::new(async move {
            limiter.acquire(&account).await;
            inner.call(request).await
        })
    }
}
