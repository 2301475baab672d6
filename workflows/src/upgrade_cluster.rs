//! Upgrades a cluster by one minor version, as AKS requires: check that the region offers
//! the target version, upgrade the control plane (node pools stay on their version, which
//! AKS allows for a minor behind), then the node pools.

#![allow(unreachable_pub)]

use std::time::Duration;

use temporalio_common::error::ApplicationFailure;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{WorkflowContext, WorkflowResult, WorkflowTermination};

use crate::cluster_contracts::{
    ClusterActivities, ClusterChange, ClusterMaintenanceActivities, ClusterRecordActivities,
    ClusterRef, ClusterRequest, TerraformAction, TerraformRun, UpgradeClusterInput,
    UpgradeClusterOutput,
};
use crate::outcome::{bookkeeping, ended, long_step, record, step};

#[workflow]
#[derive(Default)]
pub struct UpgradeCluster;

#[workflow_methods]
impl UpgradeCluster {
    #[run(name = "upgrade_cluster")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: UpgradeClusterInput,
    ) -> WorkflowResult<UpgradeClusterOutput> {
        let result = upgrade(ctx, input).await;
        record(ctx, result).await
    }
}

async fn upgrade(
    ctx: &WorkflowContext<UpgradeCluster>,
    input: UpgradeClusterInput,
) -> WorkflowResult<UpgradeClusterOutput> {
    let request = ClusterRequest {
        cluster: input.cluster.clone(),
        target: input.target.clone(),
    };
    let offered = ended(
        ctx,
        ctx.execute_activity(
            ClusterMaintenanceActivities::check_upgrades,
            request.clone(),
            step(ctx, "check-versions", Duration::from_secs(10 * 60)),
        )
        .await,
    )?;
    if offered.newer.first() != Some(&input.to_version) {
        let message = if offered.newer.contains(&input.to_version) {
            format!(
                "AKS upgrades one minor version at a time: from {} the next is {}, not {}",
                offered.current, offered.newer[0], input.to_version
            )
        } else {
            format!(
                "{} is not offered in {} (newer versions offered: {})",
                input.to_version,
                input.cluster.region,
                if offered.newer.is_empty() {
                    "none".to_owned()
                } else {
                    offered.newer.join(", ")
                }
            )
        };
        return Err(WorkflowTermination::failed_application(
            ApplicationFailure::builder(message)
                .type_name("VersionNotOffered".to_owned())
                .non_retryable(true)
                .build(),
        ));
    }

    let storage = ended(
        ctx,
        ctx.execute_activity(
            ClusterActivities::bootstrap_storage,
            request,
            step(ctx, "locate-storage", Duration::from_secs(10 * 60)),
        )
        .await,
    )?;
    let mut phase = input.cluster.clone();
    phase.kubernetes_version = input.to_version.clone();
    phase.node_pool_version = Some(input.cluster.kubernetes_version.clone());
    let control_plane = ended(
        ctx,
        ctx.execute_activity(
            ClusterActivities::terraform_apply,
            TerraformRun {
                cluster: phase.clone(),
                target: input.target.clone(),
                storage: storage.clone(),
                action: TerraformAction::Apply,
                allow_cluster_removal: false,
            },
            long_step(ctx, "upgrade-control-plane", Duration::from_secs(2 * 3600)),
        )
        .await,
    )?;
    phase.node_pool_version = None;
    let node_pools = ended(
        ctx,
        ctx.execute_activity(
            ClusterActivities::terraform_apply,
            TerraformRun {
                cluster: phase,
                target: input.target.clone(),
                storage,
                action: TerraformAction::Apply,
                allow_cluster_removal: false,
            },
            long_step(ctx, "upgrade-node-pools", Duration::from_secs(3 * 3600)),
        )
        .await,
    )?;
    if ctx.patched(crate::patches::CLUSTER_CHANGE_IS_ITS_OWN_STEP) {
        ended(
            ctx,
            ctx.execute_activity(
                ClusterRecordActivities::record_change,
                ClusterChange::Upgraded {
                    cluster: ClusterRef {
                        organization_id: input.cluster.organization_id,
                        cluster_id: input.cluster.id,
                    },
                    kubernetes_version: input.to_version.clone(),
                },
                bookkeeping("record-version"),
            )
            .await,
        )?;
    }
    Ok(UpgradeClusterOutput {
        offered,
        control_plane,
        node_pools,
    })
}
