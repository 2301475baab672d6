//! Inputs, outputs and activity declarations shared by workflows and activities.
//!
//! Nothing here may hold a secret value: these types are serialised into Temporal history.
//! Credentials travel as references (which identity, in which tenant) and are resolved by
//! the activity inside the worker at the last moment.

#![allow(unreachable_pub)]

use serde::{Deserialize, Serialize};
use temporalio_macros::activity_definitions;
use temporalio_sdk::activities::ActivityError;
use uuid::Uuid;

/// The Azure subscription a run acts on, and who it acts as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AzureTarget {
    pub organization_id: Uuid,
    pub cloud_account_id: Uuid,
    pub tenant_id: String,
    pub subscription_id: String,
    /// Client id of the customer's setup identity: an app registration in their tenant
    /// that trusts Windlass's workload identity issuer (federated credential, no secret).
    pub setup_identity_client_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AzureAccessSetupInput {
    pub target: AzureTarget,
    /// Application (client) id of Windlass's multi-tenant application.
    pub application_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AzureAccessSetupOutput {
    pub role_definition_id: String,
    pub role_assignment_id: String,
    pub service_principal_object_id: String,
    pub registered_providers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AzureAccessTeardownInput {
    pub target: AzureTarget,
    pub application_id: String,
    /// Also delete the service principal from the customer's tenant (the enterprise app).
    #[serde(default = "yes")]
    pub delete_service_principal: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AzureAccessTeardownOutput {
    /// What was there and is now gone; already-absent resources are not listed.
    pub removed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterProvider {
    pub target: AzureTarget,
    pub namespace: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderRegistered {
    pub namespace: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomRole {
    /// Full ARM id of the role definition.
    pub id: String,
}

/// The target plus Windlass's multi-tenant application: what identifies the service
/// principal, and with it the role assignment, in the customer's tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationAccess {
    pub target: AzureTarget,
    pub application_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePrincipal {
    pub object_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignRole {
    pub target: AzureTarget,
    pub application_id: String,
    pub role_definition_id: String,
    pub principal_object_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleAssigned {
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyAccess {
    pub target: AzureTarget,
    pub role_definition_id: String,
    pub principal_object_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    /// The ARM or Graph id of what was removed, if it existed.
    pub removed: Option<String>,
}

/// Activity type names, shared by the declarations here and the implementations in
/// `windlass-activities` so the two cannot drift apart.
pub mod activity_names {
    pub const REGISTER_PROVIDER: &str = "azure.register_provider";
    pub const ENSURE_CUSTOM_ROLE: &str = "azure.ensure_custom_role";
    pub const ENSURE_SERVICE_PRINCIPAL: &str = "azure.ensure_service_principal";
    pub const ASSIGN_ROLE: &str = "azure.assign_role";
    pub const VERIFY_ACCESS: &str = "azure.verify_access";
    pub const REMOVE_ROLE_ASSIGNMENT: &str = "azure.remove_role_assignment";
    pub const REMOVE_CUSTOM_ROLE: &str = "azure.remove_custom_role";
    pub const REMOVE_SERVICE_PRINCIPAL: &str = "azure.remove_service_principal";
}

/// Azure control-plane activities. Implemented in `windlass-activities`; every one is
/// idempotent, so Temporal may retry it after a crash at any point.
pub struct AzureAccessActivities;

#[activity_definitions]
impl AzureAccessActivities {
    /// Registers one resource provider and waits until it is `Registered`.
    #[activity(name = activity_names::REGISTER_PROVIDER)]
    pub fn register_provider(_: RegisterProvider) -> Result<ProviderRegistered, ActivityError> {
        unimplemented!()
    }

    /// Creates or updates the Windlass custom role (deterministic id) on the subscription.
    #[activity(name = activity_names::ENSURE_CUSTOM_ROLE)]
    pub fn ensure_custom_role(_: AzureTarget) -> Result<CustomRole, ActivityError> {
        unimplemented!()
    }

    /// Creates the service principal of the multi-tenant application, or finds it.
    #[activity(name = activity_names::ENSURE_SERVICE_PRINCIPAL)]
    pub fn ensure_service_principal(
        _: ApplicationAccess,
    ) -> Result<ServicePrincipal, ActivityError> {
        unimplemented!()
    }

    /// Assigns the custom role to the principal (deterministic id). Retryable while the
    /// new principal has not replicated to ARM yet.
    #[activity(name = activity_names::ASSIGN_ROLE)]
    pub fn assign_role(_: AssignRole) -> Result<RoleAssigned, ActivityError> {
        unimplemented!()
    }

    /// Reads everything back and fails unless it is exactly as the setup left it.
    #[activity(name = activity_names::VERIFY_ACCESS)]
    pub fn verify_access(_: VerifyAccess) -> Result<(), ActivityError> {
        unimplemented!()
    }

    #[activity(name = activity_names::REMOVE_ROLE_ASSIGNMENT)]
    pub fn remove_role_assignment(_: ApplicationAccess) -> Result<Removal, ActivityError> {
        unimplemented!()
    }

    #[activity(name = activity_names::REMOVE_CUSTOM_ROLE)]
    pub fn remove_custom_role(_: AzureTarget) -> Result<Removal, ActivityError> {
        unimplemented!()
    }

    #[activity(name = activity_names::REMOVE_SERVICE_PRINCIPAL)]
    pub fn remove_service_principal(_: ApplicationAccess) -> Result<Removal, ActivityError> {
        unimplemented!()
    }
}

/// The 14 resource providers the seed's setup registers, in its order.
pub const AZURE_RESOURCE_PROVIDERS: [&str; 14] = [
    "Microsoft.ContainerService",
    "Microsoft.ContainerRegistry",
    "Microsoft.Storage",
    "Microsoft.Network",
    "Microsoft.ContainerInstance",
    "Microsoft.Compute",
    "Microsoft.Authorization",
    "Microsoft.Insights",
    "Microsoft.KeyVault",
    "Microsoft.AppConfiguration",
    "Microsoft.EventGrid",
    "Microsoft.ServiceBus",
    "Microsoft.ManagedIdentity",
    "Microsoft.Features",
];
