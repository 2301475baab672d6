//! The Windlass custom role and the resource providers it needs, encoded
//! from the reference permissions list, plus deterministic resource ids so
//! re-runs address the same ARM resources.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Resource providers registered before anything is provisioned; the workflow contract
/// owns the list, since the setup workflow fans out over it.
pub use windlass_workflows::contracts::AZURE_RESOURCE_PROVIDERS as RESOURCE_PROVIDERS;

/// Control-plane actions of the custom role, fully qualified.
pub const ROLE_ACTIONS: [&str; 68] = [
    // AKS
    "Microsoft.ContainerService/managedClusters/*",
    "Microsoft.ContainerService/locations/operationresults/read",
    "Microsoft.ContainerService/locations/operations/read",
    "Microsoft.ContainerService/operations/read",
    "Microsoft.ContainerService/locations/usages/read",
    "Microsoft.ContainerService/locations/orchestrators/read",
    // Container Registry
    "Microsoft.ContainerRegistry/registries/*",
    "Microsoft.ContainerRegistry/locations/operationresults/read",
    "Microsoft.ContainerRegistry/operations/read",
    "Microsoft.ContainerRegistry/checkNameAvailability/read",
    // Storage
    "Microsoft.Storage/storageAccounts/*",
    "Microsoft.Storage/locations/usages/read",
    "Microsoft.Storage/operations/read",
    "Microsoft.Storage/storageAccounts/listAccountSas/action",
    "Microsoft.Storage/storageAccounts/listServiceSas/action",
    "Microsoft.Storage/storageAccounts/listKeys/action",
    "Microsoft.Storage/storageAccounts/blobServices/*",
    "Microsoft.Storage/storageAccounts/fileServices/*",
    // Networking
    "Microsoft.Network/virtualNetworks/*",
    "Microsoft.Network/networkSecurityGroups/*",
    "Microsoft.Network/routeTables/*",
    "Microsoft.Network/publicIPAddresses/*",
    "Microsoft.Network/loadBalancers/*",
    "Microsoft.Network/networkInterfaces/*",
    "Microsoft.Network/natGateways/*",
    "Microsoft.Network/locations/operations/read",
    "Microsoft.Network/locations/usages/read",
    "Microsoft.Network/operations/read",
    "Microsoft.Network/dnsZones/*",
    "Microsoft.Network/privateDnsZones/*",
    "Microsoft.Network/publicIPPrefixes/*",
    "Microsoft.Network/applicationSecurityGroups/*",
    "Microsoft.Network/privateEndpoints/*",
    "Microsoft.Network/privateLinkServices/*",
    // Compute
    "Microsoft.Compute/virtualMachineScaleSets/*",
    "Microsoft.Compute/virtualMachines/*",
    "Microsoft.Compute/disks/*",
    "Microsoft.Compute/snapshots/*",
    "Microsoft.Compute/availabilitySets/*",
    "Microsoft.Compute/locations/operations/read",
    "Microsoft.Compute/locations/usages/read",
    "Microsoft.Compute/locations/vmSizes/read",
    "Microsoft.Compute/operations/read",
    // Resource Manager
    "Microsoft.Resources/subscriptions/resourceGroups/*",
    "Microsoft.Resources/subscriptions/resources/read",
    "Microsoft.Resources/deployments/*",
    "Microsoft.Resources/subscriptions/operationresults/read",
    "Microsoft.Resources/subscriptions/providers/read",
    // Authorization
    "Microsoft.Authorization/roleAssignments/*",
    "Microsoft.Authorization/roleDefinitions/read",
    "Microsoft.Authorization/*/read",
    // Managed Identity
    "Microsoft.ManagedIdentity/userAssignedIdentities/*",
    "Microsoft.ManagedIdentity/*/read",
    // Key Vault
    "Microsoft.KeyVault/vaults/*",
    "Microsoft.KeyVault/operations/read",
    // Monitoring
    "Microsoft.Insights/components/*",
    "Microsoft.Insights/webtests/*",
    "Microsoft.Insights/alertRules/*",
    "Microsoft.Insights/diagnosticSettings/*",
    "Microsoft.Insights/logDefinitions/read",
    "Microsoft.Insights/metricDefinitions/read",
    // Features
    "Microsoft.Features/features/read",
    "Microsoft.Features/providers/features/read",
    "Microsoft.Features/providers/features/register/action",
    // Container Instances
    "Microsoft.ContainerInstance/containerGroups/*",
    "Microsoft.ContainerInstance/locations/operations/read",
    "Microsoft.ContainerInstance/operations/read",
    "Microsoft.ContainerInstance/locations/usages/read",
];

/// Whether the Windlass role's actions cover `action` (ARM's wildcard match: `*` spans
/// any characters, case-insensitively; the role has no `notActions`).
pub fn grants(action: &str) -> bool {
    ROLE_ACTIONS
        .iter()
        .any(|pattern| wildcard_match(pattern, action))
}

fn wildcard_match(pattern: &str, action: &str) -> bool {
    let (pattern, action) = (pattern.to_ascii_lowercase(), action.to_ascii_lowercase());
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == action;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    let Some(mut rest) = action.strip_prefix(first) else {
        return false;
    };
    for middle in &parts[1..parts.len() - 1] {
        let Some(at) = rest.find(middle) else {
            return false;
        };
        rest = &rest[at + middle.len()..];
    }
    rest.ends_with(last)
}

/// Data-plane actions of the custom role.
pub const ROLE_DATA_ACTIONS: [&str; 6] = [
    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*",
    "Microsoft.ContainerRegistry/registries/repositories/content/read",
    "Microsoft.ContainerRegistry/registries/repositories/content/write",
    "Microsoft.ContainerRegistry/registries/repositories/content/delete",
    "Microsoft.ContainerRegistry/registries/repositories/metadata/read",
    "Microsoft.ContainerRegistry/registries/repositories/metadata/write",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Permission {
    pub actions: Vec<String>,
    pub not_actions: Vec<String>,
    pub data_actions: Vec<String>,
    pub not_data_actions: Vec<String>,
}

/// `properties` of an ARM role definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct RoleDefinition {
    pub role_name: String,
    pub description: String,
    #[serde(rename = "type")]
    pub role_type: String,
    pub permissions: Vec<Permission>,
    pub assignable_scopes: Vec<String>,
}

/// The least-privilege role Windlass operates a subscription with.
pub fn windlass_custom_role(subscription_id: &str) -> RoleDefinition {
    let owned = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    RoleDefinition {
        // Role names are unique per tenant; one tenant may hold several
        // subscriptions managed by Windlass.
        role_name: format!("Windlass Operator ({subscription_id})"),
        description: "Least-privilege role used by Windlass to provision and operate clusters in this subscription.".to_string(),
        role_type: "CustomRole".to_string(),
        permissions: vec![Permission {
            actions: owned(&ROLE_ACTIONS),
            not_actions: Vec::new(),
            data_actions: owned(&ROLE_DATA_ACTIONS),
            not_data_actions: Vec::new(),
        }],
        assignable_scopes: vec![format!("/subscriptions/{subscription_id}")],
    }
}

/// UUID v5 namespace for every id Windlass derives (fixed forever: changing
/// it would orphan resources created by earlier runs).
pub const WINDLASS_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a4e_9b3d_5e70_8a21_c4d5_e6f7_0819);

/// Role definition id for an organisation's subscription.
pub fn role_definition_id(org_id: Uuid, subscription_id: &str) -> Uuid {
    let name = format!(
        "azure/role-definition/{org_id}/{}",
        subscription_id.to_ascii_lowercase()
    );
    Uuid::new_v5(&WINDLASS_ID_NAMESPACE, name.as_bytes())
}

/// Role assignment id: ARM keys assignments by (scope, role, principal), so
/// the id is derived from exactly that triple.
pub fn role_assignment_id(scope: &str, role_definition_id: Uuid, principal_id: &str) -> Uuid {
    let name = format!(
        "azure/role-assignment/{}/{role_definition_id}/{}",
        scope.to_ascii_lowercase(),
        principal_id.to_ascii_lowercase()
    );
    Uuid::new_v5(&WINDLASS_ID_NAMESPACE, name.as_bytes())
}

/// Full ARM id of a subscription-scoped role definition, as role
/// assignments reference it.
pub fn role_definition_resource_id(subscription_id: &str, id: Uuid) -> String {
    format!(
        "/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{id}"
    )
}
