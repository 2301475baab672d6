//! Small Azure Resource Manager and Microsoft Graph clients on `azure_core`
//! pipelines, authenticated by workload identity federation only.
//!
//! Endpoints are configurable so tests can point everything at the local
//! stand-in (`windlass-standins`); see [`AzureEndpoints::single_origin`].

mod aks_versions;
mod arm;
mod blobs;
mod config;
mod credential;
mod error;
mod graph;
mod http;
mod lro;
mod role;
mod storage_accounts;

pub use aks_versions::KubernetesVersion;
pub use arm::{
    ArmClient, ResourceGroup, RoleAssignment, RoleAssignmentProperties, RoleDefinitionResource,
};
pub use blobs::{BlobContainer, VersionedBlob};
pub use config::{AzureClientConfig, AzureEndpoints, ClientAssertionSource};
pub use credential::federated_credential;
pub use error::{AzureError, Lag, LroOutcome, Retry, SettleWindows};
pub use graph::{GraphClient, ServicePrincipal};
pub use role::{
    Permission, RESOURCE_PROVIDERS, ROLE_ACTIONS, ROLE_DATA_ACTIONS, RoleDefinition,
    WINDLASS_ID_NAMESPACE, role_assignment_id, role_definition_id, role_definition_resource_id,
    windlass_custom_role,
};
pub use storage_accounts::StorageAccount;
