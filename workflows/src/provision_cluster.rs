//! Provisions an AKS or EKS cluster, or converges an existing one on its spec: the storage
//! that holds its state first (a storage account, an S3 bucket), then terraform for the
//! blueprint's inventory (the exported HCL), then the
//! kubeconfig into the cluster's own storage, then the cluster charts along their
//! dependency graph. Every step is idempotent; a re-run plans no changes and upgrades
//! charts to the same revision's content.

#![allow(unreachable_pub)]

use std::time::Duration;

use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{WorkflowContext, WorkflowResult};

use crate::chart_installs::{ChartInstalls, install_cluster_charts};
use crate::cluster_contracts::{
    ClusterActivities, ClusterRequest, ProvisionClusterInput, ProvisionClusterOutput,
    PublishKubeconfig, TerraformAction, TerraformRun,
};
use crate::outcome::{ended, long_step, record, step};

#[workflow]
#[derive(Default)]
pub struct ProvisionCluster;

#[workflow_methods]
impl ProvisionCluster {
    #[run(name = "provision_cluster")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: ProvisionClusterInput,
    ) -> WorkflowResult<ProvisionClusterOutput> {
        let result = provision(ctx, input).await;
        record(ctx, result).await
    }
}

async fn provision(
    ctx: &WorkflowContext<ProvisionCluster>,
    input: ProvisionClusterInput,
) -> WorkflowResult<ProvisionClusterOutput> {
    let request = ClusterRequest {
        cluster: input.cluster.clone(),
        target: input.target.clone(),
    };
    if input.dry_run {
        let terraform = ended(
            ctx,
            ctx.execute_activity(
                ClusterActivities::terraform_plan,
                request,
                long_step(ctx, "terraform-plan", Duration::from_secs(30 * 60)),
            )
            .await,
        )?;
        return Ok(ProvisionClusterOutput {
            terraform,
            charts: Vec::new(),
            kubeconfig: None,
        });
    }

    let storage = ended(
        ctx,
        ctx.execute_activity(
            ClusterActivities::bootstrap_storage,
            request,
            step(ctx, "bootstrap-storage", Duration::from_secs(30 * 60)),
        )
        .await,
    )?;

    // AKS creation alone takes 5-15 minutes; the budget covers retries after a crash.
    let terraform = ended(
        ctx,
        ctx.execute_activity(
            ClusterActivities::terraform_apply,
            TerraformRun {
                cluster: input.cluster.clone(),
                target: input.target.clone(),
                storage: storage.clone(),
                action: TerraformAction::Apply,
                allow_cluster_removal: input.allow_cluster_replacement,
            },
            long_step(ctx, "terraform-apply", Duration::from_secs(2 * 3600)),
        )
        .await,
    )?;

    let kubeconfig = ended(
        ctx,
        ctx.execute_activity(
            ClusterActivities::publish_kubeconfig,
            PublishKubeconfig {
                cluster: input.cluster.clone(),
                target: input.target.clone(),
                storage: storage.clone(),
            },
            step(ctx, "publish-kubeconfig", Duration::from_secs(10 * 60)),
        )
        .await,
    )?;

    let charts = install_cluster_charts(
        ctx,
        ChartInstalls {
            cluster: &input.cluster,
            target: &input.target,
            storage: &storage,
            kubeconfig: &kubeconfig,
            step_prefix: "install-chart",
            sequential: input.sequential_charts,
        },
    )
    .await?;
    Ok(ProvisionClusterOutput {
        terraform,
        charts,
        kubeconfig: Some(kubeconfig),
    })
}
