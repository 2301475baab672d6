//! AWS clients for cluster work, on short-lived credentials from STS AssumeRole with the
//! organisation's ExternalId. `endpoint_url` points every client at one endpoint (moto).

use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_config::Region;
use temporalio_sdk::activities::ActivityError;
use windlass_workflows::cluster_contracts::AwsTarget;

use crate::aws::eks_token;
use crate::aws::s3::s3_client;
use crate::aws::{AssumedRoleProvider, StandInCredentials};
use crate::error::{FailureCode, failure, terminal};
use crate::rate_limit::{CloudAccount, RateLimitedHttpClient, RateLimiter};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

pub struct AwsClients {
    roles: Arc<AssumedRoleProvider>,
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
            roles: Arc::new(
                AssumedRoleProvider::new(endpoint_url.clone(), standin_credentials).await,
            ),
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

    pub(crate) async fn tagging(
        &self,
        target: &AwsTarget,
        region: &str,
    ) -> Result<aws_sdk_resourcegroupstagging::Client, ActivityError> {
        let config = self.config(target, region).await?;
        let mut builder = aws_sdk_resourcegroupstagging::config::Builder::from(&config);
        if let Some(url) = &self.endpoint_url {
            builder = builder.endpoint_url(url);
        }
        Ok(aws_sdk_resourcegroupstagging::Client::from_conf(
            builder.build(),
        ))
    }

    pub(crate) async fn s3(
        &self,
        target: &AwsTarget,
        region: &str,
    ) -> Result<aws_sdk_s3::Client, ActivityError> {
        let config = self.config(target, region).await?;
        Ok(s3_client(&config, self.endpoint_url.as_deref()))
    }

    /// The organisation's short-lived credentials for the account.
    pub(crate) async fn assumed(
        &self,
        target: &AwsTarget,
    ) -> Result<crate::aws::AssumedCredentials, ActivityError> {
        self.credential_source(target).fetch().await
    }

    /// Where the organisation's credentials for the account come from, for a task that
    /// renews them.
    pub(crate) fn credential_source(&self, target: &AwsTarget) -> AssumedRoleSource {
        AssumedRoleSource {
            roles: self.roles.clone(),
            organization_id: target.organization_id,
            role_arn: target.role_arn.clone(),
        }
    }

    /// A kubeconfig whose `aws eks get-token` users are replaced by tokens signed with the
    /// organisation's credentials (see [`crate::aws::eks_token`]).
    pub(crate) async fn kubeconfig_with_tokens(
        &self,
        target: &AwsTarget,
        kubeconfig: &str,
    ) -> Result<zeroize::Zeroizing<String>, ActivityError> {
        let credentials = self.assumed(target).await?;
        let endpoint = self.endpoint_url.as_deref();
        eks_token::with_minted_tokens(kubeconfig, |cluster, region| {
            let region = region.unwrap_or("us-east-1");
            eks_token::mint(
                &credentials,
                &eks_token::sts_endpoint(endpoint, region),
                region,
                cluster,
            )
        })
        .map_err(|e| terminal(std::io::Error::other(e), FailureCode::NoKubeconfig))
    }

    /// What terraform's aws provider needs besides credentials: every service's endpoint
    /// when Windlass's AWS is a stand-in (`AWS_ENDPOINT_URL`, which the provider's SDK
    /// honours); nothing against AWS itself.
    pub fn terraform_cloud_env(&self) -> Vec<(String, String)> {
        self.endpoint_url
            .iter()
            .map(|url| ("AWS_ENDPOINT_URL".to_owned(), url.clone()))
            .collect()
    }

    /// SDK configuration on the organisation's assumed-role credentials.
    async fn config(
        &self,
        target: &AwsTarget,
        region: &str,
    ) -> Result<aws_config::SdkConfig, ActivityError> {
        let assumed = self.assumed(target).await?;
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

/// One organisation's role in one account, asked of the shared (caching) provider.
#[derive(Clone)]
pub(crate) struct AssumedRoleSource {
    roles: Arc<AssumedRoleProvider>,
    organization_id: uuid::Uuid,
    role_arn: String,
}

impl AssumedRoleSource {
    pub(crate) async fn fetch(&self) -> Result<crate::aws::AssumedCredentials, ActivityError> {
        self.roles
            .credentials(self.organization_id, &self.role_arn)
            .await
            .map_err(failure)
    }
}
