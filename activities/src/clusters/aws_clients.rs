//! AWS clients for cluster work, on short-lived credentials from STS AssumeRole with the
//! organisation's ExternalId. `endpoint_url` points every client at one endpoint (moto).

use aws_config::BehaviorVersion;
use aws_config::Region;
use temporalio_sdk::activities::ActivityError;
use windlass_workflows::cluster_contracts::AwsTarget;

use super::storage::aws_failure;
use crate::aws::AssumedRoleProvider;
use crate::aws::s3::s3_client;

pub struct AwsClients {
    roles: AssumedRoleProvider,
    endpoint_url: Option<String>,
}

impl AwsClients {
    pub async fn new(endpoint_url: Option<String>) -> Self {
        Self {
            roles: AssumedRoleProvider::new(endpoint_url.clone()).await,
            endpoint_url,
        }
    }

    pub(crate) async fn s3(
        &self,
        target: &AwsTarget,
        region: &str,
    ) -> Result<aws_sdk_s3::Client, ActivityError> {
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
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .credentials_provider(credentials)
            .load()
            .await;
        Ok(s3_client(&config, self.endpoint_url.as_deref()))
    }
}
