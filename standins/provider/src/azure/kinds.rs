//! The azurerm resources Windlass's blueprint uses, as ARM resources: each one's ARM id
//! (from its attributes, as the provider builds it), API version, request body, what ARM
//! computes, and its attributes back from an ARM document (import).

use serde_json::{Value as Json, json};

use crate::value::Value;

pub const MANAGED_CLUSTERS: &str = "Microsoft.ContainerService/managedClusters";

/// How one resource type maps onto ARM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ResourceGroup,
    /// A resource in a resource group: `Microsoft.<ns>/<type>/<name>`.
    InGroup(&'static str),
    Subnet,
    StorageContainer,
    FederatedIdentityCredential,
    NodePool,
    RoleAssignment,
    /// Associations are properties of another resource, not resources: applying one
    /// edits its holder (the NAT gateway's public IPs, the subnet's NAT gateway).
    NatGatewayPublicIp,
    SubnetNatGateway,
}

pub fn kind(type_name: &str) -> Option<Kind> {
    Some(match type_name {
        "azurerm_resource_group" => Kind::ResourceGroup,
        "azurerm_virtual_network" => Kind::InGroup("Microsoft.Network/virtualNetworks"),
        "azurerm_public_ip" => Kind::InGroup("Microsoft.Network/publicIPAddresses"),
        "azurerm_nat_gateway" => Kind::InGroup("Microsoft.Network/natGateways"),
        "azurerm_storage_account" => Kind::InGroup("Microsoft.Storage/storageAccounts"),
        "azurerm_container_registry" => Kind::InGroup("Microsoft.ContainerRegistry/registries"),
        "azurerm_user_assigned_identity" => {
            Kind::InGroup("Microsoft.ManagedIdentity/userAssignedIdentities")
        }
        "azurerm_kubernetes_cluster" => Kind::InGroup(MANAGED_CLUSTERS),
        "azurerm_subnet" => Kind::Subnet,
        "azurerm_storage_container" => Kind::StorageContainer,
        "azurerm_federated_identity_credential" => Kind::FederatedIdentityCredential,
        "azurerm_kubernetes_cluster_node_pool" => Kind::NodePool,
        "azurerm_role_assignment" => Kind::RoleAssignment,
        "azurerm_nat_gateway_public_ip_association" => Kind::NatGatewayPublicIp,
        "azurerm_subnet_nat_gateway_association" => Kind::SubnetNatGateway,
        _ => return None,
    })
}

impl Kind {
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::ResourceGroup => "2021-04-01",
            Kind::RoleAssignment => "2022-04-01",
            Kind::StorageContainer => "2023-05-01",
            Kind::InGroup(t) if t.starts_with("Microsoft.Storage/") => "2023-05-01",
            Kind::InGroup(t) if t.starts_with("Microsoft.ContainerRegistry/") => "2023-07-01",
            Kind::InGroup(t) if t.starts_with("Microsoft.ManagedIdentity/") => "2023-01-31",
            Kind::FederatedIdentityCredential => "2023-01-31",
            Kind::InGroup(t) if t.starts_with("Microsoft.ContainerService/") => "2024-09-01",
            Kind::NodePool => "2024-09-01",
            _ => "2024-05-01",
        }
    }

    /// The ARM id the resource gets (for associations: the holder's id).
    pub fn arm_id(self, subscription: &str, attrs: &Value) -> Result<String, String> {
        let get = |name: &str| {
            attrs
                .str_attr(name)
                .map(str::to_owned)
                .ok_or_else(|| format!("{name} is not known"))
        };
        Ok(match self {
            Kind::ResourceGroup => {
                format!(
                    "/subscriptions/{subscription}/resourceGroups/{}",
                    get("name")?
                )
            }
            Kind::InGroup(t) => format!(
                "/subscriptions/{subscription}/resourceGroups/{}/providers/{t}/{}",
                get("resource_group_name")?,
                get("name")?
            ),
            Kind::Subnet => format!(
                "/subscriptions/{subscription}/resourceGroups/{}/providers/Microsoft.Network/virtualNetworks/{}/subnets/{}",
                get("resource_group_name")?,
                get("virtual_network_name")?,
                get("name")?
            ),
            Kind::StorageContainer => format!(
                "{}/blobServices/default/containers/{}",
                get("storage_account_id")?,
                get("name")?
            ),
            Kind::FederatedIdentityCredential => {
                format!(
                    "{}/federatedIdentityCredentials/{}",
                    get("parent_id")?,
                    get("name")?
                )
            }
            Kind::NodePool => format!(
                "{}/agentPools/{}",
                get("kubernetes_cluster_id")?,
                get("name")?
            ),
            Kind::RoleAssignment => {
                let scope = get("scope")?;
                // Deterministic where the real provider draws a random UUID: a retried
                // create meets its own assignment instead of a RoleAssignmentExists.
                let name = uuid::Uuid::new_v5(
                    &uuid::Uuid::NAMESPACE_URL,
                    format!(
                        "{scope}|{}|{}",
                        get("role_definition_name")?,
                        get("principal_id")?
                    )
                    .as_bytes(),
                );
                format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}")
            }
            Kind::NatGatewayPublicIp => get("nat_gateway_id")?,
            Kind::SubnetNatGateway => get("subnet_id")?,
        })
    }

    /// The body of the PUT that creates or updates the resource.
    pub fn body(self, subscription: &str, attrs: &Value) -> Result<Json, String> {
        let mut body = json!({});
        if let Some(location) = attrs.str_attr("location") {
            body["location"] = json!(location);
        }
        if let Value::Map(_) = attrs.get("tags") {
            body["tags"] = attrs.get("tags").to_json();
        }
        match self {
            Kind::ResourceGroup => {}
            Kind::InGroup("Microsoft.Storage/storageAccounts") => {
                body["kind"] = json!(attrs.str_attr("account_kind").unwrap_or("StorageV2"));
                body["sku"] = json!({"name": format!(
                    "{}_{}",
                    attrs.str_attr("account_tier").unwrap_or("Standard"),
                    attrs.str_attr("account_replication_type").unwrap_or("LRS")
                )});
                body["properties"] = json!({
                    "minimumTlsVersion": attrs.get("min_tls_version").to_json(),
                    "allowSharedKeyAccess": attrs.get("shared_access_key_enabled").to_json(),
                    "defaultToOAuthAuthentication": attrs.get("default_to_oauth_authentication").to_json(),
                    "allowBlobPublicAccess": attrs.get("allow_nested_items_to_be_public").to_json(),
                });
            }
            Kind::RoleAssignment => {
                let role = attrs.str_attr("role_definition_name").unwrap_or_default();
                let role_id = built_in_role(role)
                    .ok_or_else(|| format!("no built-in role is named {role:?}"))?;
                body = json!({"properties": {
                    "roleDefinitionId": format!(
                        "/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{role_id}"
                    ),
                    "principalId": attrs.get("principal_id").to_json(),
                    "principalType": attrs.get("principal_type").to_json(),
                }});
            }
            Kind::InGroup(MANAGED_CLUSTERS) => {
                let mut props = properties(attrs);
                // The identity is the resource's, beside its properties, as ARM has it.
                if let Some(identity) = props.as_object_mut().and_then(|p| p.remove("identity")) {
                    body["identity"] = json!({"type": identity[0]["type"]});
                }
                body["properties"] = props;
            }
            _ => {
                body["properties"] = properties(attrs);
            }
        }
        Ok(body)
    }

    /// What ARM computed, as attributes: the id, and what the resource type reports.
    pub fn observed(self, id: &str, attrs: &Value, doc: &Json) -> Value {
        let mut out = std::collections::BTreeMap::new();
        let mut set = |name: &str, value: Value| {
            out.insert(name.to_owned(), value);
        };
        set("id", Value::String(id.to_owned()));
        let props = &doc["properties"];
        let derived = |salt: &str| Value::String(derived_uuid(id, salt));
        match self {
            Kind::InGroup("Microsoft.ManagedIdentity/userAssignedIdentities") => {
                set(
                    "principal_id",
                    string_or(&props["principalId"], || derived("principal")),
                );
                set(
                    "client_id",
                    string_or(&props["clientId"], || derived("client")),
                );
                set(
                    "tenant_id",
                    string_or(&props["tenantId"], || derived("tenant")),
                );
            }
            Kind::InGroup("Microsoft.ContainerRegistry/registries") => {
                let name = attrs.str_attr("name").unwrap_or_default();
                set(
                    "login_server",
                    string_or(&props["loginServer"], || {
                        Value::String(format!("{name}.azurecr.io"))
                    }),
                );
            }
            Kind::InGroup("Microsoft.Network/publicIPAddresses") => {
                let digest = derived_uuid(id, "ip");
                let bytes = digest.as_bytes();
                set(
                    "ip_address",
                    string_or(&props["ipAddress"], || {
                        Value::String(format!("20.{}.{}.{}", bytes[0], bytes[1], bytes[2]))
                    }),
                );
            }
            Kind::InGroup("Microsoft.Network/natGateways") => {
                set(
                    "resource_guid",
                    string_or(&props["resourceGuid"], || derived("guid")),
                );
            }
            Kind::InGroup("Microsoft.Storage/storageAccounts") => {
                let blob = props["primaryEndpoints"]["blob"].as_str().map_or_else(
                    || {
                        format!(
                            "https://{}.blob.core.windows.net/",
                            attrs.str_attr("name").unwrap_or_default()
                        )
                    },
                    str::to_owned,
                );
                set("primary_blob_endpoint", Value::String(blob));
            }
            Kind::StorageContainer => {
                set("resource_manager_id", Value::String(id.to_owned()));
            }
            Kind::InGroup(MANAGED_CLUSTERS) => {
                let location = attrs.str_attr("location").unwrap_or_default();
                let prefix = attrs.str_attr("dns_prefix").unwrap_or_default();
                set(
                    "oidc_issuer_url",
                    string_or(&props["oidcIssuerProfile"]["issuerURL"], || {
                        Value::String(format!(
                            "https://{location}.oic.prod-aks.azure.com/{}/",
                            derived_uuid(id, "oidc")
                        ))
                    }),
                );
                set(
                    "fqdn",
                    string_or(&props["fqdn"], || {
                        Value::String(format!("{prefix}.hcp.{location}.azmk8s.io"))
                    }),
                );
                set(
                    "current_kubernetes_version",
                    attrs.get("kubernetes_version").clone(),
                );
                let mut identities = Vec::new();
                for block in attrs_list(attrs, "identity") {
                    let mut identity = block;
                    identity.insert(
                        "principal_id".into(),
                        string_or(&doc["identity"]["principalId"], || {
                            derived("cluster-identity")
                        }),
                    );
                    identity.insert("tenant_id".into(), derived("tenant"));
                    identities.push(Value::Map(identity));
                }
                set("identity", Value::List(identities));
                let kubelet = &props["identityProfile"]["kubeletidentity"];
                set(
                    "kubelet_identity",
                    Value::List(vec![Value::Map(
                        [
                            ("client_id", string_or(&kubelet["clientId"], || derived("kubelet-client"))),
                            ("object_id", string_or(&kubelet["objectId"], || derived("kubelet-object"))),
                            (
                                "user_assigned_identity_id",
                                string_or(&kubelet["resourceId"], || {
                                    Value::String(format!(
                                        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{}-agentpool",
                                        id.split('/').nth(2).unwrap_or_default(),
                                        attrs.str_attr("node_resource_group").unwrap_or_default(),
                                        attrs.str_attr("name").unwrap_or_default()
                                    ))
                                }),
                            ),
                        ]
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect(),
                    )]),
                );
            }
            Kind::NatGatewayPublicIp => {
                let ip = attrs.str_attr("public_ip_address_id").unwrap_or_default();
                set("id", Value::String(format!("{id}|{ip}")));
            }
            _ => {}
        }
        Value::Map(out)
    }

    /// A resource's attributes from its ARM document (`id` the import id).
    pub fn imported(self, id: &str, doc: &Json) -> Value {
        let segments: Vec<&str> = id.trim_matches('/').split('/').collect();
        let after = |key: &str| {
            segments
                .iter()
                .position(|s| s.eq_ignore_ascii_case(key))
                .and_then(|i| segments.get(i + 1))
                .map(|s| Value::String((*s).to_owned()))
                .unwrap_or(Value::Null)
        };
        let mut attrs = match &doc["properties"] {
            Json::Object(_) => snake_properties(&doc["properties"]),
            _ => Default::default(),
        };
        attrs.insert("id".into(), Value::String(id.to_owned()));
        attrs.insert(
            "name".into(),
            Value::String(segments.last().copied().unwrap_or_default().to_owned()),
        );
        if self != Kind::ResourceGroup {
            attrs.insert("resource_group_name".into(), after("resourceGroups"));
        }
        for key in ["location", "tags"] {
            if !doc[key].is_null() {
                attrs.insert(key.into(), Value::from_json(&doc[key]));
            }
        }
        match self {
            Kind::InGroup("Microsoft.Storage/storageAccounts") => {
                let sku = doc["sku"]["name"].as_str().unwrap_or_default();
                let (tier, replication) = sku.split_once('_').unwrap_or((sku, ""));
                let props = &doc["properties"];
                for (attr, value) in [
                    ("account_kind", doc["kind"].clone()),
                    ("account_tier", json!(tier)),
                    ("account_replication_type", json!(replication)),
                    ("min_tls_version", props["minimumTlsVersion"].clone()),
                    (
                        "shared_access_key_enabled",
                        props["allowSharedKeyAccess"].clone(),
                    ),
                    (
                        "default_to_oauth_authentication",
                        props["defaultToOAuthAuthentication"].clone(),
                    ),
                    (
                        "allow_nested_items_to_be_public",
                        props["allowBlobPublicAccess"].clone(),
                    ),
                ] {
                    attrs.insert(attr.into(), Value::from_json(&value));
                }
            }
            Kind::StorageContainer => {
                let account = id
                    .to_ascii_lowercase()
                    .find("/blobservices/")
                    .map(|at| id[..at].to_owned())
                    .unwrap_or_default();
                attrs.remove("resource_group_name");
                attrs.insert("storage_account_id".into(), Value::String(account));
                let access = match doc["properties"]["publicAccess"].as_str() {
                    Some("Blob") => "blob",
                    Some("Container") => "container",
                    _ => "private",
                };
                attrs.insert("container_access_type".into(), Value::String(access.into()));
            }
            _ => {}
        }
        Value::Map(attrs)
    }
}

/// The attributes that are no part of the ARM path or envelope, as camelCase properties
/// (what is still unknown inside them, computed by ARM, is sent as null).
fn properties(attrs: &Value) -> Json {
    let Value::Map(fields) = attrs else {
        return json!({});
    };
    let mut props = serde_json::Map::new();
    for (name, value) in fields {
        if matches!(
            name.as_str(),
            "id" | "name" | "location" | "tags" | "resource_group_name" | "timeouts"
        ) || value.is_null()
            || matches!(value, Value::Unknown)
        {
            continue;
        }
        props.insert(camel(name), value.to_json());
    }
    Json::Object(props)
}

fn snake_properties(props: &Json) -> std::collections::BTreeMap<String, Value> {
    props
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.as_str() != "provisioningState")
                .map(|(k, v)| (snake(k), Value::from_json(v)))
                .collect()
        })
        .unwrap_or_default()
}

fn camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The objects of a list block in `attrs`.
fn attrs_list(attrs: &Value, name: &str) -> Vec<std::collections::BTreeMap<String, Value>> {
    match attrs.get(name) {
        Value::List(items) => items
            .iter()
            .filter_map(|item| match item {
                Value::Map(m) => Some(m.clone()),
                _ => None,
            })
            .collect(),
        _ => vec![],
    }
}

fn string_or(json: &Json, fallback: impl FnOnce() -> Value) -> Value {
    json.as_str()
        .map_or_else(fallback, |s| Value::String(s.to_owned()))
}

/// A stable UUID for what the stand-in ARM does not report itself.
fn derived_uuid(id: &str, salt: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("{id}#{salt}").as_bytes(),
    )
    .to_string()
}

/// The built-in roles the blueprint assigns by name, by their published ids (the real
/// provider looks the name up with a roleDefinitions query).
fn built_in_role(name: &str) -> Option<&'static str> {
    Some(match name {
        "Owner" => "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        "Contributor" => "b24988ac-6180-42a0-ab88-20f7382dd24c",
        "Reader" => "acdd72a7-3385-48ef-bd42-f606fba81ae7",
        "Network Contributor" => "4d97b98b-1d4f-4787-a291-c67834d212e7",
        "Virtual Machine Contributor" => "9980e02c-c2be-4d73-94e8-173b1dc7cf3c",
        "Storage Blob Data Contributor" => "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
        "AcrPull" => "7f951dda-4ed3-4680-a7ca-43fe172d538d",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_convert_both_ways() {
        assert_eq!(camel("address_prefixes"), "addressPrefixes");
        assert_eq!(snake("addressPrefixes"), "address_prefixes");
    }

    #[test]
    fn ids_are_the_providers() {
        let attrs = Value::from_json(&json!({
            "name": "zone-1", "resource_group_name": "rg", "virtual_network_name": "vnet"
        }));
        assert_eq!(
            Kind::Subnet.arm_id("sub", &attrs).unwrap(),
            "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/zone-1"
        );
    }
}
