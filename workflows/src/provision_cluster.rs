//! Provisions an AKS cluster, or converges an existing one on its spec: the storage
//! account that holds its state first, then terraform for the seed's inventory, then the
//! kubeconfig into the cluster's own storage, then the cluster charts along their
//! dependency graph. Every step is idempotent; a re-run plans no changes and upgrades
//! charts to the same revision's content.

#![allow(unreachable_pub)]

use std::time::Duration;

use temporalio_common::error::ApplicationFailure;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{WorkflowContext, WorkflowResult, WorkflowTermination};
use windlass_core::cluster_charts::{ChartGraph, ClusterChart};

use crate::chart_graph::{ChartOutcome, along_graph};
use crate::cluster_contracts::{
    ChartRelease, ClusterActivities, ClusterRequest, InstallChart, KubeconfigRef,
    ProvisionClusterInput, ProvisionClusterOutput, PublishKubeconfig, TerraformAction,
    TerraformRun,
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
                long_step("terraform-plan", Duration::from_secs(30 * 60)),
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
            step("bootstrap-storage", Duration::from_secs(30 * 60)),
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
            long_step("terraform-apply", Duration::from_secs(2 * 3600)),
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
            step("publish-kubeconfig", Duration::from_secs(10 * 60)),
        )
        .await,
    )?;

    let charts = install_charts(ctx, &input, &storage, &kubeconfig).await?;
    Ok(ProvisionClusterOutput {
        terraform,
        charts,
        kubeconfig: Some(kubeconfig),
    })
}

async fn install_charts(
    ctx: &WorkflowContext<ProvisionCluster>,
    input: &ProvisionClusterInput,
    storage: &crate::cluster_contracts::ClusterStorage,
    kubeconfig: &KubeconfigRef,
) -> WorkflowResult<Vec<ChartRelease>> {
    let graph = ChartGraph::standard();
    let install = |chart: ClusterChart| {
        let key = format!("install-chart/{}", chart.name);
        let request = InstallChart {
            cluster: input.cluster.clone(),
            target: input.target.clone(),
            storage: storage.clone(),
            kubeconfig: kubeconfig.clone(),
            chart,
        };
        async move {
            ctx.execute_activity(
                ClusterActivities::install_chart,
                request,
                long_step(key, Duration::from_secs(60 * 60)),
            )
            .await
            .map_err(|e| e.to_string())
        }
    };
    let outcomes = if input.sequential_charts {
        let mut outcomes = Vec::new();
        for chart in graph.charts() {
            outcomes.push(match install(chart.clone()).await {
                Ok(release) => ChartOutcome::Installed(release),
                Err(error) => ChartOutcome::Failed(error),
            });
        }
        outcomes
    } else {
        temporalio_workflow::join_all(along_graph(&graph, install)).await
    };

    if ctx.cancellation_token().is_cancelled() {
        return Err(WorkflowTermination::cancelled());
    }
    let mut releases = Vec::new();
    let mut problems = Vec::new();
    for (chart, outcome) in graph.charts().iter().zip(outcomes) {
        match outcome {
            ChartOutcome::Installed(release) => releases.push(release),
            ChartOutcome::Failed(error) => problems.push(format!("{}: {error}", chart.name)),
            ChartOutcome::Skipped { failed_dependency } => problems.push(format!(
                "{}: not installed because {failed_dependency} failed",
                chart.name
            )),
        }
    }
    if !problems.is_empty() {
        let message = format!("cluster charts did not install: {}", problems.join("; "));
        return Err(WorkflowTermination::failed_application(
            ApplicationFailure::builder(message)
                .type_name("ChartsFailed".to_owned())
                .build(),
        ));
    }
    Ok(releases)
}
