//! Which blueprint rendering a worker applies: the cloud providers' (production), or the
//! provider-less stand-in rendering that runs on machines where no provider can be
//! downloaded, against the Kubernetes stand-in.

use windlass_core::blueprint::{Blueprint, Rendering, StandInOptions, render};
use windlass_core::cloud_accounts::{CloudAccount, CloudProvider, Verification};
use windlass_core::clusters::ClusterSpec;
use windlass_workflows::cluster_contracts::CloudTarget;
use zeroize::Zeroizing;

#[derive(Clone)]
pub enum ClusterRendering {
    Cloud,
    StandIn {
        options: StandInOptions,
        /// The credential the Kubernetes stand-in accepts, handed to terraform at run time.
        kube_token: Zeroizing<String>,
    },
}

impl std::fmt::Debug for ClusterRendering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cloud => f.write_str("Cloud"),
            Self::StandIn { options, .. } => f
                .debug_struct("StandIn")
                .field("kube_api_url", &options.kube_api_url)
                .finish_non_exhaustive(),
        }
    }
}

impl ClusterRendering {
    pub(crate) fn render(
        &self,
        cluster: &ClusterSpec,
        target: &CloudTarget,
    ) -> windlass_core::Result<Blueprint> {
        let rendering = match self {
            Self::Cloud => Rendering::Cloud,
            Self::StandIn { options, .. } => Rendering::StandIn(options.clone()),
        };
        render(cluster, &account_of(cluster, target), &rendering)
    }

    /// What terraform's output must never show.
    pub(crate) fn masker(&self) -> windlass_core::step_logs::Masker {
        let mut masker = windlass_core::step_logs::Masker::new();
        if let Self::StandIn { kube_token, .. } = self {
            masker.mask_value(kube_token.to_string());
        }
        masker
    }

    /// Terraform variables that must not be written to the working directory.
    pub(crate) fn secret_env(&self) -> Vec<(String, String)> {
        match self {
            Self::Cloud => Vec::new(),
            Self::StandIn { kube_token, .. } => vec![(
                "TF_VAR_standin_kube_token".to_owned(),
                kube_token.to_string(),
            )],
        }
    }
}

/// The cloud account as the blueprint needs it; ids only.
pub(crate) fn account_of(cluster: &ClusterSpec, target: &CloudTarget) -> CloudAccount {
    let (provider, tenant_id) = match target {
        CloudTarget::Azure(t) => (CloudProvider::Azure, t.tenant_id.clone()),
        CloudTarget::Aws(_) => (CloudProvider::Aws, String::new()),
    };
    CloudAccount {
        id: target.cloud_account_id(),
        organization_id: target.organization_id(),
        provider,
        tenant_id,
        external_id: target.account_external_id().to_owned(),
        // Cluster runs start on verified accounts only.
        verification: Verification::Verified,
        verified_at: None,
        display_name: String::new(),
        created_at: cluster.created_at,
    }
}
