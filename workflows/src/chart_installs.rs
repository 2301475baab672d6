//! Installing (or upgrading) a cluster's charts from a workflow, one activity per chart,
//! along the dependency graph. Shared by provisioning and weekly maintenance.

use std::time::Duration;

use temporalio_common::error::ApplicationFailure;
use temporalio_sdk::{WorkflowContext, WorkflowResult, WorkflowTermination};
use windlass_core::cluster_charts::{ChartGraph, ClusterChart};
use windlass_core::clusters::ClusterSpec;

use crate::chart_graph::{ChartOutcome, along_graph};
use crate::cluster_contracts::{
    ChartRelease, CloudTarget, ClusterActivities, ClusterStorage, InstallChart, KubeconfigRef,
};
use crate::outcome::long_step;

/// Which cluster the charts go to, and how the steps are named.
pub(crate) struct ChartInstalls<'a> {
    pub cluster: &'a ClusterSpec,
    pub target: &'a CloudTarget,
    pub storage: &'a ClusterStorage,
    pub kubeconfig: &'a KubeconfigRef,
    /// `install-chart` or `update-chart`: step keys are `<prefix>/<chart>`.
    pub step_prefix: &'a str,
    /// One after another instead of along the graph.
    pub sequential: bool,
}

/// Every chart of the standard graph; fails the run (after the others finished) if one
/// did not install, naming each that failed or was skipped.
pub(crate) async fn install_cluster_charts<W>(
    ctx: &WorkflowContext<W>,
    installs: ChartInstalls<'_>,
) -> WorkflowResult<Vec<ChartRelease>> {
    let graph = ChartGraph::standard();
    let install = |chart: ClusterChart| {
        let key = format!("{}/{}", installs.step_prefix, chart.name);
        let request = InstallChart {
            cluster: installs.cluster.clone(),
            target: installs.target.clone(),
            storage: installs.storage.clone(),
            kubeconfig: installs.kubeconfig.clone(),
            chart,
        };
        async move {
            ctx.execute_activity(
                ClusterActivities::install_chart,
                request,
                long_step(ctx, key, Duration::from_secs(60 * 60)),
            )
            .await
            .map_err(|e| e.to_string())
        }
    };
    let outcomes = if installs.sequential {
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
