//! A workflow the API starts, with its typed input. The kind follows from the input, so a
//! run cannot be started with another kind's input, and nothing is parsed back from JSON
//! on the way to Temporal.

use windlass_core::runs::WorkflowKind;

use crate::aws_access_contracts::AwsAccessVerifyInput;
use crate::cluster_contracts::{DeleteClusterInput, ProvisionClusterInput, UpgradeClusterInput};
use crate::contracts::{AzureAccessSetupInput, AzureAccessTeardownInput};

/// The input of a workflow started through [`super::Engine::start`]. Deployments start
/// through their environment's queue and maintenance from its schedule: neither is here.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum WorkflowInput {
    AzureAccessSetup(AzureAccessSetupInput),
    AzureAccessTeardown(AzureAccessTeardownInput),
    AwsAccessVerify(AwsAccessVerifyInput),
    ProvisionCluster(ProvisionClusterInput),
    UpgradeCluster(UpgradeClusterInput),
    DeleteCluster(DeleteClusterInput),
}

impl WorkflowInput {
    pub fn kind(&self) -> WorkflowKind {
        match self {
            Self::AzureAccessSetup(_) => WorkflowKind::AzureAccessSetup,
            Self::AzureAccessTeardown(_) => WorkflowKind::AzureAccessTeardown,
            Self::AwsAccessVerify(_) => WorkflowKind::AwsAccessVerify,
            Self::ProvisionCluster(_) => WorkflowKind::ProvisionCluster,
            Self::UpgradeCluster(_) => WorkflowKind::UpgradeCluster,
            Self::DeleteCluster(_) => WorkflowKind::DeleteCluster,
        }
    }

    /// The input as the run's row keeps it (what `GET .../runs/{id}` shows): the
    /// workflow's own input, untagged.
    pub fn to_json(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::to_value(self)
    }
}
