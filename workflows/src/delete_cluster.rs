//! Deletes a cluster: terraform destroy against the cluster's state (which lives in the
//! resource group being deleted, so it goes first), then the resource group with what the
//! bootstrap made. A delete that stopped halfway resumes: destroy only removes what the
//! state still lists, and a missing storage account means terraform's part is done.

#![allow(unreachable_pub)]

use std::time::Duration;

use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{WorkflowContext, WorkflowResult};

use crate::cluster_contracts::{
    ClusterActivities, ClusterChange, ClusterLifecycleActivities, ClusterRecordActivities,
    ClusterRef, ClusterRequest, DeleteClusterInput, DeleteClusterOutput, TerraformAction,
    TerraformRun,
};
use crate::outcome::{bookkeeping, ended, long_step, record, step};

#[workflow]
#[derive(Default)]
pub struct DeleteCluster;

#[workflow_methods]
impl DeleteCluster {
    #[run(name = "delete_cluster")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: DeleteClusterInput,
    ) -> WorkflowResult<DeleteClusterOutput> {
        let result = delete(ctx, input).await;
        record(ctx, result).await
    }
}

async fn delete(
    ctx: &WorkflowContext<DeleteCluster>,
    input: DeleteClusterInput,
) -> WorkflowResult<DeleteClusterOutput> {
    let request = ClusterRequest {
        cluster: input.cluster.clone(),
        target: input.target.clone(),
    };
    let storage = ended(
        ctx,
        ctx.execute_activity(
            ClusterLifecycleActivities::locate_storage,
            request.clone(),
            step(ctx, "locate-storage", Duration::from_secs(10 * 60)),
        )
        .await,
    )?;
    let terraform = match storage {
        Some(storage) => Some(ended(
            ctx,
            ctx.execute_activity(
                ClusterActivities::terraform_apply,
                TerraformRun {
                    cluster: input.cluster.clone(),
                    target: input.target.clone(),
                    storage,
                    action: TerraformAction::Destroy,
                    allow_cluster_removal: true,
                },
                long_step(ctx, "terraform-destroy", Duration::from_secs(2 * 3600)),
            )
            .await,
        )?),
        None => None,
    };
    let resource_group_deleted = ended(
        ctx,
        ctx.execute_activity(
            ClusterLifecycleActivities::delete_resource_group,
            request,
            step(ctx, "delete-resource-group", Duration::from_secs(60 * 60)),
        )
        .await,
    )?;
    if ctx.patched(crate::patches::CLUSTER_CHANGE_IS_ITS_OWN_STEP) {
        ended(
            ctx,
            ctx.execute_activity(
                ClusterRecordActivities::record_change,
                ClusterChange::Deleted {
                    cluster: ClusterRef {
                        organization_id: input.cluster.organization_id,
                        cluster_id: input.cluster.id,
                    },
                },
                bookkeeping("record-deletion"),
            )
            .await,
        )?;
    }
    Ok(DeleteClusterOutput {
        terraform,
        resource_group_deleted,
    })
}
