//! Entra ID credential: client assertion (workload identity federation) via
//! azure_identity's `ClientAssertionCredential`.

use std::sync::Arc;

use azure_core::{
    cloud::{CloudConfiguration, CustomConfiguration},
    credentials::TokenCredential,
    error::ErrorKind,
    http::{ClientMethodOptions, ClientOptions, Transport},
};
use azure_identity::{
    ClientAssertion, ClientAssertionCredential, ClientAssertionCredentialOptions,
};

use super::{
    config::{AzureClientConfig, ClientAssertionSource},
    error::AzureError,
};

struct Assertion(ClientAssertionSource);

impl std::fmt::Debug for Assertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The assertion is a bearer credential: never print it.
        write!(f, "Assertion({:?})", self.0)
    }
}

#[async_trait::async_trait]
impl ClientAssertion for Assertion {
    async fn secret(
        &self,
        _options: Option<ClientMethodOptions<'_>>,
    ) -> azure_core::Result<String> {
        let jwt = match &self.0 {
            ClientAssertionSource::Callback(f) => f().await.map_err(|e| {
                azure_core::Error::with_message(
                    ErrorKind::Credential,
                    format!("client assertion callback failed: {e}"),
                )
            })?,
        };
        Ok(jwt.trim().to_string())
    }
}

/// The HTTP transport shared by the credential and the API pipelines.
pub(crate) fn transport(config: &AzureClientConfig) -> Result<Transport, AzureError> {
    if let Some(shared) = &config.shared_transport {
        return Ok(shared.clone());
    }
    let mut builder = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(120))
        // ARM LROs hand out URLs to poll; redirects are not part of the protocol.
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = &config.extra_root_ca_pem {
        let cert = reqwest::Certificate::from_pem(pem.as_bytes())
            .map_err(|e| AzureError::Config(format!("extra root CA: {e}")))?;
        builder = builder.add_root_certificate(cert);
    }
    let client = builder
        .build()
        .map_err(|e| AzureError::Config(format!("HTTP client: {e}")))?;
    Ok(Transport::new(Arc::new(client)))
}

pub(crate) fn client_options(config: &AzureClientConfig, transport: Transport) -> ClientOptions {
    let mut custom = CustomConfiguration::default();
    custom.authority_host = config
        .endpoints
        .authority_host
        .as_str()
        .trim_end_matches('/')
        .to_string();
    ClientOptions {
        transport: Some(transport),
        cloud: Some(Arc::new(CloudConfiguration::Custom(custom))),
        ..ClientOptions::default()
    }
}

/// Builds the federated credential. No client-secret path exists on purpose.
pub fn federated_credential(
    config: &AzureClientConfig,
) -> Result<Arc<dyn TokenCredential>, AzureError> {
    let options = ClientAssertionCredentialOptions {
        client_options: client_options(config, transport(config)?),
    };
    let credential = ClientAssertionCredential::new(
        config.tenant_id.clone(),
        config.client_id.clone(),
        Assertion(config.assertion.clone()),
        Some(options),
    )
    .map_err(|e| AzureError::Config(format!("client assertion credential: {e}")))?;
    Ok(credential)
}
