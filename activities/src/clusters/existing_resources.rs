//! What of a cluster's blueprint already exists in its cloud, for the reconciliation before
//! an apply (`crate::terraform::reconcile`).
//!
//! The stand-in rendering's cloud (EKS, until the provider stand-in manages aws
//! resources) is the directory where each stand-in resource records itself when it is
//! created and removes itself when it is destroyed
//! (`windlass_core::blueprint::standin_existing_dir`); its import id is its address. The
//! providers' rendering has no lookup ahead (`None`): their refresh finds what is gone,
//! and azurerm refuses to create what exists, which the apply then imports
//! (`crate::terraform::already_existing`).

use std::collections::BTreeSet;

use windlass_core::blueprint::{Blueprint, standin_existing_dir};
use windlass_core::cloud_accounts::CloudProvider;
use windlass_core::clusters::ClusterSpec;

use super::rendering::ClusterRendering;
use crate::terraform::ExistingResource;

/// Where the cloud's record of the blueprint's resources can be read, and which those are.
pub(super) struct ExistenceRecord {
    /// The blueprint's terraform resources, by address: all the record may hold.
    pub declared: BTreeSet<String>,
    /// Those that exist in the cloud.
    pub existing: Vec<ExistingResource>,
}

/// What of the blueprint exists in the cloud; `None` where no record can be read.
pub(super) fn existing_resources(
    rendering: &ClusterRendering,
    blueprint: &Blueprint,
    spec: &ClusterSpec,
) -> std::io::Result<Option<ExistenceRecord>> {
    let ClusterRendering::StandIn { options, .. } = rendering else {
        return Ok(None);
    };
    // AKS blueprints are the providers' rendering whatever the worker's setting.
    if spec.provider != CloudProvider::Aws {
        return Ok(None);
    }
    let cluster = spec.id;
    let Some(journal) = &options.journal_path else {
        // Without a journal the stand-in keeps no record.
        return Ok(None);
    };
    let declared: BTreeSet<String> = blueprint
        .inventory
        .terraform_managed()
        .map(|r| r.terraform_address.clone())
        .collect();
    let dir = std::path::PathBuf::from(standin_existing_dir(journal, cluster));
    let mut existing = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Some(ExistenceRecord { declared, existing }));
        }
        Err(e) => return Err(e),
    };
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
    Ok(Some(ExistenceRecord { declared, existing }))
}
