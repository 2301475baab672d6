//! AWS behind the cluster seam: the state in a versioned S3 bucket, EKS's version listing,
//! kubeconfigs whose tokens the worker signs, terraform on the organisation's assumed
//! role, and the network's resources found by their tags before an apply. Every call runs
//! on short-lived credentials from STS AssumeRole with the organisation's ExternalId.

mod clients;
mod existing_resources;
mod terraform_credentials;

use std::path::Path;
use std::sync::Arc;

use temporalio_sdk::activities::ActivityError;
use windlass_core::blueprint::{AwsNames, Blueprint};
use windlass_core::clusters::ClusterSpec;
use windlass_workflows::cluster_contracts::{AwsTarget, ClusterStorage, StorageLocation};

use super::{ClusterCloud, Step, storage_in_another_cloud};
use crate::aws::s3::{S3Objects, delete_bucket_with_contents, ensure_state_bucket};
use crate::clusters::terraform_credentials::TerraformCredentials;
use crate::error::{FailureCode, failure, retryable};
use crate::object_store::ObjectStore;
use crate::terraform::{Diagnostic, ExistingResource};

pub use clients::AwsClients;

/// Where the kubeconfigs are kept in the state bucket.
const KUBECONFIGS_PREFIX: &str = "kubeconfigs";

/// One organisation's AWS account, through this worker's clients.
pub(super) struct AwsCloud<'a> {
    clients: &'a AwsClients,
    target: &'a AwsTarget,
}

impl<'a> AwsCloud<'a> {
    pub(super) fn new(clients: &'a AwsClients, target: &'a AwsTarget) -> Self {
        Self { clients, target }
    }

    fn storage(&self, cluster: &ClusterSpec) -> ClusterStorage {
        let names = AwsNames::new(cluster);
        ClusterStorage {
            location: StorageLocation::S3 {
                bucket: names.state_bucket.clone(),
                region: cluster.region.clone(),
            },
            // The blueprint's S3 backend keeps `cluster.tfstate` at the bucket root.
            state_container: String::new(),
            kubeconfigs_container: KUBECONFIGS_PREFIX.to_owned(),
        }
    }
}

#[async_trait::async_trait]
impl ClusterCloud for AwsCloud<'_> {
    async fn bootstrap_storage(
        &self,
        step: Step<'_>,
        cluster: &ClusterSpec,
    ) -> Result<ClusterStorage, ActivityError> {
        let names = AwsNames::new(cluster);
        let s3 = self.clients.s3(self.target, &cluster.region).await?;
        let tags = cluster.resource_tags();
        step.heartbeating(ensure_state_bucket(
            &s3,
            &names.state_bucket,
            &cluster.region,
            &tags,
        ))
        .await?
        .map_err(failure)?;
        Ok(self.storage(cluster))
    }

    async fn locate_storage(
        &self,
        step: Step<'_>,
        cluster: &ClusterSpec,
    ) -> Result<Option<ClusterStorage>, ActivityError> {
        let names = AwsNames::new(cluster);
        let s3 = self.clients.s3(self.target, &cluster.region).await?;
        let exists = step
            .heartbeating(bucket_exists(&s3, &names.state_bucket))
            .await??;
        Ok(exists.then(|| self.storage(cluster)))
    }

    async fn delete_storage(
        &self,
        step: Step<'_>,
        cluster: &ClusterSpec,
    ) -> Result<bool, ActivityError> {
        let names = AwsNames::new(cluster);
        let s3 = self.clients.s3(self.target, &cluster.region).await?;
        let existed = step
            .heartbeating(delete_bucket_with_contents(&s3, &names.state_bucket))
            .await?
            .map_err(failure)?;
        tracing::info!(cluster = %cluster.id, bucket = %names.state_bucket, existed, "state bucket deleted");
        Ok(existed)
    }

    async fn containers(
        &self,
        storage: &ClusterStorage,
        names: &[&str],
    ) -> Result<Vec<Arc<dyn ObjectStore>>, ActivityError> {
        let StorageLocation::S3 { bucket, region } = &storage.location else {
            return Err(storage_in_another_cloud());
        };
        let s3 = self.clients.s3(self.target, region).await?;
        Ok(names
            .iter()
            .map(|name| {
                Arc::new(S3Objects::new(
                    s3.clone(),
                    bucket.clone(),
                    (*name).to_owned(),
                )) as Arc<dyn ObjectStore>
            })
            .collect())
    }

    async fn kubeconfig_for_use(&self, published: String) -> Result<String, ActivityError> {
        // An EKS kubeconfig runs `aws eks get-token` as whoever uses it: the worker signs
        // the token itself, as the organisation's role.
        let published = zeroize::Zeroizing::new(published);
        Ok(self
            .clients
            .kubeconfig_with_tokens(self.target, &published)
            .await?
            .to_string())
    }

    async fn offered_versions(
        &self,
        step: Step<'_>,
        region: &str,
    ) -> Result<Vec<String>, ActivityError> {
        let eks = self.clients.eks(self.target, region).await?;
        step.heartbeating(eks_versions(&eks)).await?
    }

    async fn terraform_credentials(
        &self,
        dir: &Path,
    ) -> Result<TerraformCredentials, ActivityError> {
        terraform_credentials::as_assumed_role(self.clients, self.target, dir).await
    }

    async fn existing_resources(
        &self,
        blueprint: &Blueprint,
        cluster: &ClusterSpec,
    ) -> Result<Option<Vec<ExistingResource>>, ActivityError> {
        existing_resources::tagged_existing(self.clients, self.target, blueprint, cluster)
            .await
            .map(Some)
    }

    fn refused_as_existing(
        &self,
        diagnostics: &[Diagnostic],
        blueprint: &Blueprint,
    ) -> Vec<ExistingResource> {
        existing_resources::aws_refused_as_existing(diagnostics, blueprint, &self.target.account_id)
    }
}

async fn bucket_exists(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<bool, ActivityError> {
    match s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(true),
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(false),
        Err(e) => Err(retryable(
            std::io::Error::other(format!(
                "HeadBucket {bucket}: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )),
            FailureCode::AwsUnavailable,
            None,
        )),
    }
}

/// The versions EKS offers for new clusters and upgrades (standard or extended support).
async fn eks_versions(eks: &aws_sdk_eks::Client) -> Result<Vec<String>, ActivityError> {
    let mut versions = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = eks
            .describe_cluster_versions()
            .set_next_token(next.clone())
            .send()
            .await
            .map_err(|e| {
                retryable(
                    std::io::Error::other(format!(
                        "EKS DescribeClusterVersions: {}",
                        aws_sdk_eks::error::DisplayErrorContext(&e)
                    )),
                    FailureCode::AwsUnavailable,
                    None,
                )
            })?;
        versions.extend(
            page.cluster_versions()
                .iter()
                .filter_map(|v| v.cluster_version().map(str::to_owned)),
        );
        next = page.next_token().map(str::to_owned);
        if next.is_none() {
            return Ok(versions);
        }
    }
}
