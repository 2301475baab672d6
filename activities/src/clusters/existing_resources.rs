//! What of a cluster's blueprint already exists in its cloud, for the reconciliation before
//! an apply (`crate::terraform::reconcile`).
//!
//! The stand-in rendering's cloud is the directory where each stand-in resource records
//! itself when it is created and removes itself when it is destroyed
//! (`windlass_core::blueprint::standin_existing_dir`); its import id is its address. The
//! cloud rendering has no lookup yet: nothing is imported there, as before.

use std::collections::BTreeSet;

use windlass_core::blueprint::{Blueprint, standin_existing_dir};

use super::rendering::ClusterRendering;
use crate::terraform::ExistingResource;

/// The blueprint's terraform resources that exist in the cloud, by address.
pub(super) fn existing_resources(
    rendering: &ClusterRendering,
    blueprint: &Blueprint,
    cluster: uuid::Uuid,
) -> std::io::Result<Vec<ExistingResource>> {
    let ClusterRendering::StandIn { options, .. } = rendering else {
        return Ok(Vec::new());
    };
    let Some(journal) = &options.journal_path else {
        // Without a journal the stand-in records nothing: it creates nothing.
        return Ok(Vec::new());
    };
    let declared: BTreeSet<&str> = blueprint
        .inventory
        .terraform_managed()
        .map(|r| r.terraform_address.as_str())
        .collect();
    let dir = std::path::PathBuf::from(standin_existing_dir(journal, cluster));
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut existing = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let address = text.trim();
        if declared.contains(address) {
            existing.push(ExistingResource {
                address: address.to_owned(),
                import_id: address.to_owned(),
            });
        }
    }
    existing.sort();
    Ok(existing)
}
