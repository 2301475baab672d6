//! AWS clients for cluster work, on short-lived credentials from STS AssumeRole with the
//! organisation's ExternalId. `endpoint_url` points every client at one endpoint (moto).

use aws_config::BehaviorVersion;
use aws_config::Region;
use temporalio_sdk::activities::ActivityError;
use windlass_workflows::cluster_contracts::AwsTarget;

use super::storage::aws_failure;
use crate::aws::s3::s3_client;
use crate::aws::{AssumedRoleProvider, StandInCredentials};
use crate::rate_limit::{CloudAccount, RateLimitedHttpClient, RateLimiter};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

pub struct AwsClients {
    roles: AssumedRoleProvider,
    endpoint_url: Option<String>,
    eks_endpoint_url: Option<String>,
    /// The fleet's budget per AWS account, and the one HTTP client (connection pool) the
    /// limited SDK clients share.
    limited: Option<(RateLimiter, SharedHttpClient)>,
}

impl AwsClients {
    /// `eks_endpoint_url` overrides `endpoint_url` for EKS alone (the AWS emulator used in
    /// tests serves STS and S3 but not EKS's version listing). `standin_credentials` are
    /// Windlass's own credentials for local stand-ins; `None` (production) takes them from
    /// the standard AWS chain.
    pub async fn new(
        endpoint_url: Option<String>,
        eks_endpoint_url: Option<String>,
        standin_credentials: Option<StandInCredentials>,
    ) -> Self {
        Self {
            roles: AssumedRoleProvider::new(endpoint_url.clone(), standin_credentials).await,
            eks_endpoint_url: eks_endpoint_url.or_else(|| endpoint_url.clone()),
            endpoint_url,
            limited: None,
        }
    }

    /// Every request to a customer's account (S3, EKS; retries included) waits for that
    /// account's budget. STS calls are Windlass's own account and are not limited.
    pub fn with_rate_limiter(mut self, limiter: RateLimiter) -> Self {
        self.limited = Some((limiter, RateLimitedHttpClient::default_inner()));
        self
    }

    pub(crate) async fn eks(
        &self,
        target: &AwsTarget,
        region: &str,
    ) -> Result<aws_sdk_eks::Client, ActivityError> {
        let config = self.config(target, region).await?;
        let mut builder = aws_sdk_eks::config::Builder::from(&config);
        if let Some(url) = &self.eks_endpoint_url {
            builder = builder.endpoint_url(url);
        }
        Ok(aws_sdk_eks::Client::from_conf(builder.build()))
    }

    pub(crate) async fn s3(
        &self,
        target: &AwsTarget,
        region: &str,
    ) -> Result<aws_sdk_s3::Client, ActivityError> {
        let config = self.config(target, region).await?;
        Ok(s3_client(&config, self.endpoint_url.as_deref()))
    }

    /// SDK configuration on the organisation's assumed-role credentials.
    async fn config(
        &self,
        target: &AwsTarget,
        region: &str,
    ) -> Result<aws_config::SdkConfig, ActivityError> {
        let assumed = self
            .roles
            .credentials(target.organization_id, &target.role_arn)
            .await
            .map_err(aws_failure)?;
        let credentials = aws_sdk_s3::config::Credentials::new(
            assumed.access_key_id.clone(),
            assumed.secret_access_key.to_string(),
            Some(assumed.session_token.to_string()),
            Some(assumed.expires_at.into()),
            "windlass-assumed-role",
        );
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .credentials_provider(credentials);
        if let Some((limiter, http)) = &self.limited {
            loader = loader.http_client(RateLimitedHttpClient::new(
                http.clone(),
                limiter.clone(),
                CloudAccount::aws(&target.account_id),
            ));
        }
        let config = loader.load().await;
        Ok(config)
    }
}
