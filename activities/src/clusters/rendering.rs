//! The blueprint a worker applies: the cloud providers' HCL, exactly what users export.
//! (On the test bed the providers are the schema-faithful provider stand-in, installed as
//! a filesystem mirror: see `windlass_provider_standin::mirror`.)

use windlass_core::blueprint::{Blueprint, render};
use windlass_core::cloud_accounts::{CloudAccount, Verification};
use windlass_core::clusters::ClusterSpec;
use windlass_workflows::cluster_contracts::CloudTarget;

/// The blueprint of `cluster` in `target`'s account.
pub(crate) fn blueprint(
    cluster: &ClusterSpec,
    target: &CloudTarget,
) -> windlass_core::Result<Blueprint> {
    render(cluster, &account_of(cluster, target))
}

/// The cloud account as the blueprint needs it; ids only.
pub(crate) fn account_of(cluster: &ClusterSpec, target: &CloudTarget) -> CloudAccount {
    CloudAccount {
        id: target.cloud_account_id(),
        organization_id: target.organization_id(),
        provider: target.provider(),
        tenant_id: target.directory_tenant_id().to_owned(),
        external_id: target.account_external_id().to_owned(),
        // Cluster runs start on verified accounts only.
        verification: Verification::Verified,
        verified_at: None,
        display_name: String::new(),
        created_at: cluster.created_at,
    }
}
