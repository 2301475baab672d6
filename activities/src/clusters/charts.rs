//! One cluster chart, installed or upgraded with helm. The kubeconfig is read from the
//! cluster's storage account here, at the last moment, and never leaves this function.

use temporalio_sdk::activities::{ActivityContext, ActivityError};
use windlass_core::blueprint::render_values;
use windlass_workflows::cluster_contracts::{ChartRelease, InstallChart};

use super::ClusterWork;
use super::rendering::account_of;
use crate::error::{FailureCode, failure, terminal};
use crate::heartbeat::supervised;
use crate::helm::{Chart, Kubeconfig, Release};
use crate::step_log::mask_kubeconfig;

pub(super) async fn install(
    work: &ClusterWork,
    ctx: &ActivityContext,
    request: &InstallChart,
) -> Result<ChartRelease, ActivityError> {
    let values = render_values(
        &request.cluster,
        &account_of(&request.cluster, &request.target),
    )
    .map_err(|e| terminal(e, FailureCode::InvalidInput))?;
    let values = chart_values(&values, &request.chart.name)?;

    let text = super::storage::read_kubeconfig(
        work,
        ctx,
        &request.target,
        &request.storage,
        &request.kubeconfig,
    )
    .await?;
    let mut masker = windlass_core::step_logs::Masker::new();
    mask_kubeconfig(&mut masker, &text);
    let kubeconfig = Kubeconfig::new(text);

    let release = Release {
        name: request.chart.name.clone(),
        namespace: request.chart.namespace.clone(),
        chart: Chart::Local(work.charts_dir.join(&request.chart.name)),
        timeout: work.chart_timeout,
        wait: true,
        step: Some(crate::step_log::step_identity(ctx)),
        // The cluster's own charts are Windlass's: a policy add-on's edits to their
        // objects (AKS mutates cert-manager's webhooks) are taken back, not a failure.
        force_conflicts: true,
    };
    let cluster = request.cluster.id;
    let chart = request.chart.name.clone();
    let shown = masker.clone();
    let mut writer = work.step_logs.writer(ctx, masker);
    let mut log = |line: &str| {
        writer.line(crate::step_log::helm_line_level(line), line);
        tracing::info!(target: "windlass::helm", %cluster, chart = %chart, "{}", shown.apply(line));
    };
    let installed = supervised(
        ctx,
        work.helm
            .upgrade_install(&kubeconfig, &release, &values, &mut log, ctx.cancelled()),
    )
    .await;
    let installed = match installed {
        Ok(installed) => installed,
        Err(error) => {
            writer.finish().await;
            return Err(failure(error));
        }
    };
    if let Some(recovery) = &installed.recovered {
        tracing::warn!(%cluster, chart = %request.chart.name, ?recovery, "recovered a release left pending by a dead helm");
        writer.rollout_event(&format!("recovered a release left pending: {recovery:?}"));
    }
    let status = serde_json::to_value(&installed.release.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    writer.rollout_event(&format!(
        "release {}/{} revision {}: {status}",
        installed.release.namespace, installed.release.name, installed.release.revision
    ));
    writer.finish().await;
    Ok(ChartRelease {
        name: installed.release.name,
        namespace: installed.release.namespace,
        revision: installed.release.revision,
        status,
    })
}

/// The typed values of one cluster chart, as JSON for helm's `-f`.
fn chart_values(
    values: &windlass_core::blueprint::ClusterChartValues,
    chart: &str,
) -> Result<serde_json::Value, ActivityError> {
    let value = match chart {
        "cert-manager" => json(&values.cert_manager),
        "external-dns" => json(&values.external_dns),
        "ingress-nginx" => json(&values.ingress_nginx),
        "loki" => json(&values.loki),
        // The metrics chart ships metrics to long-term storage the Thanos way.
        "prometheus" => json(&values.thanos),
        "karpenter" => json(&values.karpenter),
        "windlass-agent" => json(&values.windlass_agent),
        other => {
            return Err(terminal(
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{other} is not a cluster chart"),
                ),
                FailureCode::InvalidInput,
            ));
        }
    };
    Ok(value)
}

fn json(values: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(values).expect("chart values serialise")
}
