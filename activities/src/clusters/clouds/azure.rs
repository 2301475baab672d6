//! Azure behind the cluster seam: the state in a storage account of the cluster's resource
//! group, reached through short-lived account SAS tokens ARM issues; AKS's version
//! listing; terraform's azurerm provider on a federated token. Every call acts as
//! Windlass's platform application in the customer's tenant, by workload identity
//! federation.

use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use temporalio_sdk::activities::ActivityError;
use windlass_core::blueprint::{AzureNames, Blueprint};
use windlass_core::clusters::ClusterSpec;
use windlass_workflows::cluster_contracts::{ClusterStorage, StorageLocation};
use windlass_workflows::contracts::AzureTarget;

use super::{ClusterCloud, Step, storage_in_another_cloud};
use crate::azure::BlobContainer;
use crate::azure_access::{AzureConnector, FederatedToken};
use crate::clusters::terraform_credentials::{TerraformCredentials, renew, write_token};
use crate::error::failure;
use crate::object_store::ObjectStore;
use crate::terraform::{Diagnostic, ExistingResource, already_existing};

/// How long a SAS for the cluster's storage is valid.
const SAS_LIFETIME: chrono::Duration = chrono::Duration::hours(1);

/// One organisation's subscription, through this worker's connector.
pub(super) struct AzureCloud<'a> {
    azure: &'a AzureConnector,
    target: &'a AzureTarget,
}

impl<'a> AzureCloud<'a> {
    pub(super) fn new(azure: &'a AzureConnector, target: &'a AzureTarget) -> Self {
        Self { azure, target }
    }

    fn storage(names: &AzureNames, blob_endpoint: String) -> ClusterStorage {
        ClusterStorage {
            location: StorageLocation::AzureBlob {
                resource_group: names.resource_group.clone(),
                storage_account: names.storage_account.clone(),
                blob_endpoint,
            },
            state_container: names.state_container.clone(),
            kubeconfigs_container: names.kubeconfigs_container.clone(),
        }
    }
}

#[async_trait::async_trait]
impl ClusterCloud for AzureCloud<'_> {
    async fn bootstrap_storage(
        &self,
        step: Step<'_>,
        cluster: &ClusterSpec,
    ) -> Result<ClusterStorage, ActivityError> {
        let names = AzureNames::new(cluster);
        let tags = cluster.resource_tags();
        let arm = &self.azure.platform_clients(self.target)?.arm;
        let sub = &self.target.subscription_id;
        step.heartbeating(arm.put_resource_group(
            sub,
            &names.resource_group,
            &cluster.region,
            &tags,
        ))
        .await?
        .map_err(self.azure.failure_after(step.age()))?;
        let account = step
            .heartbeating(arm.put_storage_account(
                sub,
                &names.resource_group,
                &names.storage_account,
                &cluster.region,
                &tags,
            ))
            .await?
            .map_err(self.azure.failure_after(step.age()))?;
        Ok(Self::storage(&names, account.blob_endpoint))
    }

    async fn locate_storage(
        &self,
        step: Step<'_>,
        cluster: &ClusterSpec,
    ) -> Result<Option<ClusterStorage>, ActivityError> {
        let names = AzureNames::new(cluster);
        let arm = &self.azure.platform_clients(self.target)?.arm;
        let account = step
            .heartbeating(arm.get_storage_account(
                &self.target.subscription_id,
                &names.resource_group,
                &names.storage_account,
            ))
            .await?
            .map_err(self.azure.failure_after(step.age()))?;
        Ok(account.map(|account| Self::storage(&names, account.blob_endpoint)))
    }

    async fn delete_storage(
        &self,
        step: Step<'_>,
        cluster: &ClusterSpec,
    ) -> Result<bool, ActivityError> {
        let names = AzureNames::new(cluster);
        let arm = &self.azure.platform_clients(self.target)?.arm;
        let sub = &self.target.subscription_id;
        let existed = step
            .heartbeating(arm.get_resource_group(sub, &names.resource_group))
            .await?
            .map_err(self.azure.failure_after(step.age()))?
            .is_some();
        step.heartbeating(arm.delete_resource_group(sub, &names.resource_group))
            .await?
            .map_err(self.azure.failure_after(step.age()))?;
        tracing::info!(cluster = %cluster.id, resource_group = %names.resource_group, existed, "resource group deleted");
        Ok(existed)
    }

    async fn containers(
        &self,
        storage: &ClusterStorage,
        names: &[&str],
    ) -> Result<Vec<Arc<dyn ObjectStore>>, ActivityError> {
        let StorageLocation::AzureBlob {
            resource_group,
            storage_account,
            blob_endpoint,
        } = &storage.location
        else {
            return Err(storage_in_another_cloud());
        };
        let arm = &self.azure.platform_clients(self.target)?.arm;
        let sas = arm
            .blob_account_sas(
                &self.target.subscription_id,
                resource_group,
                storage_account,
                Utc::now() + SAS_LIFETIME,
            )
            .await
            .map_err(failure)?;
        names
            .iter()
            .map(|name| {
                let container =
                    BlobContainer::with_sas(blob_endpoint, name, &sas).map_err(failure)?;
                Ok(Arc::new(container) as Arc<dyn ObjectStore>)
            })
            .collect()
    }

    async fn kubeconfig_for_use(&self, published: String) -> Result<String, ActivityError> {
        // An AKS kubeconfig carries its own client certificate.
        Ok(published)
    }

    async fn offered_versions(
        &self,
        step: Step<'_>,
        region: &str,
    ) -> Result<Vec<String>, ActivityError> {
        let arm = &self.azure.platform_clients(self.target)?.arm;
        let offered = step
            .heartbeating(arm.kubernetes_versions(&self.target.subscription_id, region))
            .await?
            .map_err(self.azure.failure_after(step.age()))?;
        Ok(offered
            .into_iter()
            .filter(|v| !v.preview)
            .map(|v| v.version)
            .collect())
    }

    /// The azurerm provider authenticates as Windlass's platform application in the
    /// customer's tenant (`ARM_USE_OIDC`, `ARM_CLIENT_ID`, `ARM_TENANT_ID`) with a
    /// federated token read from `ARM_OIDC_TOKEN_FILE_PATH`. Windlass's assertions live
    /// ten minutes and an apply can take longer, so the file is renewed while terraform
    /// runs; the provider reads it whenever it needs a new access token.
    async fn terraform_credentials(
        &self,
        dir: &Path,
    ) -> Result<TerraformCredentials, ActivityError> {
        let federation = self.azure.platform_federation(self.target)?;
        let mut env = vec![
            ("ARM_USE_OIDC".to_owned(), "true".to_owned()),
            ("ARM_TENANT_ID".to_owned(), federation.tenant_id),
            ("ARM_CLIENT_ID".to_owned(), federation.client_id),
        ];
        let renewal = match federation.token {
            FederatedToken::File(path) => {
                env.push((
                    "ARM_OIDC_TOKEN_FILE_PATH".to_owned(),
                    path.display().to_string(),
                ));
                None
            }
            FederatedToken::Minted(source) => {
                let file = dir.join(".windlass-oidc-token");
                write_token(&file, &source).await?;
                env.push((
                    "ARM_OIDC_TOKEN_FILE_PATH".to_owned(),
                    file.display().to_string(),
                ));
                Some(renew(file, source))
            }
        };
        Ok(TerraformCredentials::new(env, renewal))
    }

    /// Nothing to look up ahead: azurerm reads before it creates and refuses what exists,
    /// naming its ARM id ([`Self::refused_as_existing`]).
    async fn existing_resources(
        &self,
        _blueprint: &Blueprint,
        _cluster: &ClusterSpec,
    ) -> Result<Option<Vec<ExistingResource>>, ActivityError> {
        Ok(None)
    }

    fn refused_as_existing(
        &self,
        diagnostics: &[Diagnostic],
        _blueprint: &Blueprint,
    ) -> Vec<ExistingResource> {
        already_existing(diagnostics)
    }
}
