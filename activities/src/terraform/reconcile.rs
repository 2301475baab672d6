//! Reconciling before applying: what exists in the cloud under its deterministic name but
//! is missing from the state is imported, not created again.
//!
//! An attempt that dies mid-apply can leave resources the cloud made but terraform never
//! recorded (it writes the state once a creation has returned). Created again, they would
//! exist twice, or fail with "already exists". So before each apply the runner writes an
//! `import` block for each of them; terraform adopts them into the state instead.
//!
//! The other way round, a resource in the state that the cloud does not have is what
//! terraform's refresh finds gone and plans to create again. Resources without a refresh
//! of their own (the stand-in's `terraform_data`, recorded before their create-time
//! provisioner runs, so one whose provisioner died with its worker is in the state but was
//! never made) are forgotten here instead, with [`forget`].
//!
//! Where no record of what exists can be read ahead (the real providers), the provider
//! says so itself: it reads before it creates and refuses a resource that already exists
//! ([`already_existing`]); the runner then imports it and applies again.

use std::collections::BTreeSet;
use std::path::Path;

use super::messages::Diagnostic;

/// The file the import blocks go into, beside the blueprint's own files (which a render
/// replaces, this one included).
pub const RECONCILE_IMPORTS_FILE: &str = "windlass_reconcile_imports.tf";

/// A resource the cloud has: its address in the blueprint and the id terraform imports.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExistingResource {
    pub address: String,
    pub import_id: String,
}

/// Every resource instance address in a state document (root module), with its index key
/// as terraform writes addresses: `type.name`, `type.name["key"]`, `type.name[0]`.
pub fn state_addresses(state: &[u8]) -> BTreeSet<String> {
    let Ok(state) = serde_json::from_slice::<serde_json::Value>(state) else {
        return BTreeSet::new();
    };
    let mut addresses = BTreeSet::new();
    for resource in state["resources"].as_array().into_iter().flatten() {
        if resource["mode"] != "managed" || resource.get("module").is_some() {
            continue;
        }
        let (Some(kind), Some(name)) = (resource["type"].as_str(), resource["name"].as_str())
        else {
            continue;
        };
        for instance in resource["instances"].as_array().into_iter().flatten() {
            let address = match &instance["index_key"] {
                serde_json::Value::String(key) => format!("{kind}.{name}[\"{key}\"]"),
                serde_json::Value::Number(n) => format!("{kind}.{name}[{n}]"),
                _ => format!("{kind}.{name}"),
            };
            addresses.insert(address);
        }
    }
    addresses
}

/// The file of import blocks for resources an apply found already existing.
pub const ADOPTED_IMPORTS_FILE: &str = "windlass_adopted_imports.tf";

/// The resources an apply refused to create because they already exist, as the azurerm
/// provider reports them: "A resource with the ID \"<id>\" already exists - to be managed
/// via Terraform this resource needs to be imported into the State." An earlier attempt
/// died after the cloud made them and before terraform recorded them; importing them is
/// what the message asks for.
pub fn already_existing(diagnostics: &[Diagnostic]) -> Vec<ExistingResource> {
    const PREFIX: &str = "A resource with the ID \"";
    const SUFFIX: &str = "\" already exists - to be managed via Terraform";
    let mut found: Vec<ExistingResource> = diagnostics
        .iter()
        .filter(|d| d.severity == "error")
        .filter_map(|d| {
            let address = d.address.clone()?;
            let text = if d.summary.contains(SUFFIX) {
                &d.summary
            } else {
                &d.detail
            };
            let start = text.find(PREFIX)? + PREFIX.len();
            let end = start + text[start..].find(SUFFIX)?;
            Some(ExistingResource {
                address,
                import_id: text[start..end].to_owned(),
            })
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Writes an import block into `dir` for each of `existing` that `recorded` lacks, and
/// returns those addresses; with none, no file is left.
pub fn write_imports(
    dir: &Path,
    recorded: &BTreeSet<String>,
    existing: &[ExistingResource],
) -> std::io::Result<Vec<String>> {
    write_imports_to(dir, RECONCILE_IMPORTS_FILE, recorded, existing)
}

/// As [`write_imports`], into the file `file` of `dir`.
pub fn write_imports_to(
    dir: &Path,
    file: &str,
    recorded: &BTreeSet<String>,
    existing: &[ExistingResource],
) -> std::io::Result<Vec<String>> {
    let missing: BTreeSet<&ExistingResource> = existing
        .iter()
        .filter(|r| !recorded.contains(&r.address))
        .collect();
    let path = dir.join(file);
    if missing.is_empty() {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => return Ok(Vec::new()),
        }
    }
    let mut text = String::from(
        "# Written by Windlass before a retry: these exist in the cloud but not in the state.\n",
    );
    for resource in &missing {
        text.push_str(&format!(
            "\nimport {{\n  to = {}\n  id = {}\n}}\n",
            resource.address,
            hcl_string(&resource.import_id)
        ));
    }
    std::fs::write(&path, text)?;
    Ok(missing.into_iter().map(|r| r.address.clone()).collect())
}

/// Removes `addresses` from the state file at `path`, as `terraform state rm` would (with a
/// new serial); returns those it held.
pub fn forget(path: &Path, addresses: &BTreeSet<String>) -> std::io::Result<Vec<String>> {
    let invalid = |e: serde_json::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path)?).map_err(invalid)?;
    let mut forgotten = Vec::new();
    if let Some(resources) = state["resources"].as_array_mut() {
        for resource in resources.iter_mut() {
            let base = format!(
                "{}.{}",
                resource["type"].as_str().unwrap_or(""),
                resource["name"].as_str().unwrap_or("")
            );
            if resource["mode"] != "managed" || resource.get("module").is_some() {
                continue;
            }
            if let Some(instances) = resource["instances"].as_array_mut() {
                instances.retain(|instance| {
                    let address = match &instance["index_key"] {
                        serde_json::Value::String(key) => format!("{base}[\"{key}\"]"),
                        serde_json::Value::Number(n) => format!("{base}[{n}]"),
                        _ => base.clone(),
                    };
                    let keep = !addresses.contains(&address);
                    if !keep {
                        forgotten.push(address);
                    }
                    keep
                });
            }
        }
        resources.retain(|r| r["instances"].as_array().is_none_or(|i| !i.is_empty()));
    }
    if !forgotten.is_empty() {
        let serial = state["serial"].as_u64().unwrap_or(0);
        state["serial"] = serde_json::json!(serial + 1);
        std::fs::write(path, serde_json::to_vec_pretty(&state).map_err(invalid)?)?;
    }
    forgotten.sort();
    Ok(forgotten)
}

fn hcl_string(value: &str) -> String {
    // JSON string escapes are valid HCL; `${` and `%{` would start a template.
    serde_json::to_string(value)
        .expect("a string serialises")
        .replace("${", "$${")
        .replace("%{", "%%{")
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATE: &str = r#"{"version":4,"resources":[
        {"mode":"managed","type":"terraform_data","name":"resource_group","instances":[{"attributes":{"id":"a"}}]},
        {"mode":"managed","type":"terraform_data","name":"subnet_zone","instances":[
            {"index_key":"1","attributes":{"id":"b"}},{"index_key":"2","attributes":{"id":"c"}}]},
        {"mode":"data","type":"terraform_remote_state","name":"x","instances":[{"attributes":{}}]}
    ]}"#;

    #[test]
    fn azurerms_already_exists_errors_name_what_to_import() {
        let id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v";
        let refused = Diagnostic {
            severity: "error".into(),
            summary: format!(
                "A resource with the ID \"{id}\" already exists - to be managed via Terraform this resource needs to be imported into the State. Please see the resource documentation for \"azurerm_virtual_network\" for more information."
            ),
            detail: String::new(),
            address: Some("azurerm_virtual_network.this".into()),
        };
        let other = Diagnostic {
            severity: "error".into(),
            summary: "creating Subnet: unexpected status 500".into(),
            detail: String::new(),
            address: Some("azurerm_subnet.zone[\"1\"]".into()),
        };
        let no_address = Diagnostic {
            address: None,
            ..refused.clone()
        };
        assert_eq!(
            already_existing(&[refused.clone(), other, no_address, refused]),
            vec![ExistingResource {
                address: "azurerm_virtual_network.this".into(),
                import_id: id.into(),
            }]
        );
    }

    fn existing(address: &str) -> ExistingResource {
        ExistingResource {
            address: address.into(),
            import_id: address.into(),
        }
    }

    #[test]
    fn state_addresses_carry_index_keys() {
        let addresses = state_addresses(STATE.as_bytes());
        assert_eq!(
            addresses.into_iter().collect::<Vec<_>>(),
            [
                "terraform_data.resource_group",
                "terraform_data.subnet_zone[\"1\"]",
                "terraform_data.subnet_zone[\"2\"]"
            ]
        );
        assert!(state_addresses(b"not json").is_empty());
    }

    #[test]
    fn forgetting_removes_instances_and_empty_resources() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("terraform.tfstate");
        std::fs::write(&path, STATE).unwrap();
        let gone: BTreeSet<String> = [
            "terraform_data.resource_group".to_owned(),
            "terraform_data.subnet_zone[\"2\"]".to_owned(),
            "terraform_data.never_there".to_owned(),
        ]
        .into();
        let forgotten = forget(&path, &gone).unwrap();
        assert_eq!(
            forgotten,
            [
                "terraform_data.resource_group",
                "terraform_data.subnet_zone[\"2\"]"
            ]
        );
        let left = state_addresses(&std::fs::read(&path).unwrap());
        assert_eq!(
            left.into_iter().collect::<Vec<_>>(),
            ["terraform_data.subnet_zone[\"1\"]"]
        );
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(state["serial"], 1);
    }

    #[test]
    fn only_what_the_state_lacks_is_imported() {
        let dir = tempfile::tempdir().unwrap();
        let recorded = state_addresses(STATE.as_bytes());
        let imported = write_imports(
            dir.path(),
            &recorded,
            &[
                existing("terraform_data.subnet_zone[\"2\"]"),
                existing("terraform_data.subnet_zone[\"3\"]"),
            ],
        )
        .unwrap();
        assert_eq!(imported, ["terraform_data.subnet_zone[\"3\"]"]);
        let text = std::fs::read_to_string(dir.path().join(RECONCILE_IMPORTS_FILE)).unwrap();
        assert!(
            text.contains(
                "import {\n  to = terraform_data.subnet_zone[\"3\"]\n  id = \"terraform_data.subnet_zone[\\\"3\\\"]\"\n}"
            ),
            "{text}"
        );

        // Once everything is recorded, the file goes.
        let none = write_imports(
            dir.path(),
            &recorded,
            &[existing("terraform_data.resource_group")],
        )
        .unwrap();
        assert!(none.is_empty());
        assert!(!dir.path().join(RECONCILE_IMPORTS_FILE).exists());
    }
}
