use std::collections::BTreeMap;
use std::time::Duration;

use sha2::{Digest, Sha256};
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use windlass_core::app_manifests::{Workload, mark_secrets, render, secret_name, service_labels};
use windlass_core::environments::{ChartSource, ServiceSpec};
use windlass_core::step_logs::Masker;
use windlass_workflows::deployment_contracts::{
    ClusterAccess, DeployService, PrepareNamespace, PruneServices, RollBackService, ServiceRelease,
};

use super::DeploymentActivities;
use crate::clusters::storage::{kubeconfig_ref, read_kubeconfig};
use crate::error::{FailureCode, failure, retryable, terminal};
use crate::heartbeat::{heartbeating, supervised};
use crate::helm::{Chart, Kubeconfig, Release};
use crate::kube::{
    RolloutEvent, apply_secret, client_from_kubeconfig, ensure_namespace, wait_for_rollout,
};
use crate::step_log::mask_kubeconfig;

/// Windlass's chart for container apps, jobs and cron jobs: it renders the objects given.
const APP_CHART: &str = "windlass-app";

/// The cluster's kubeconfig and a masker that hides its credentials.
struct Cluster {
    text: String,
    masker: Masker,
}

async fn cluster(
    work: &DeploymentActivities,
    ctx: &ActivityContext,
    access: &ClusterAccess,
) -> Result<Cluster, ActivityError> {
    let text = read_kubeconfig(
        &work.work,
        ctx,
        &access.target,
        &access.storage,
        &kubeconfig_ref(&access.storage),
    )
    .await?;
    let mut masker = Masker::new();
    mask_kubeconfig(&mut masker, &text);
    Ok(Cluster { text, masker })
}

async fn kube_client(
    ctx: &ActivityContext,
    cluster: &Cluster,
) -> Result<kube::Client, ActivityError> {
    heartbeating(ctx, client_from_kubeconfig(&cluster.text))
        .await?
        .map_err(failure)
}

pub(super) async fn prepare_namespace(
    work: &DeploymentActivities,
    ctx: &ActivityContext,
    request: &PrepareNamespace,
) -> Result<BTreeMap<String, String>, ActivityError> {
    let cluster = cluster(work, ctx, &request.access).await?;
    let client = kube_client(ctx, &cluster).await?;
    let labels = BTreeMap::from([
        (
            "app.kubernetes.io/part-of".to_owned(),
            request.environment_name.clone(),
        ),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "windlass".to_owned(),
        ),
    ]);
    heartbeating(ctx, ensure_namespace(&client, &request.namespace, &labels))
        .await?
        .map_err(failure)?;
    let mut digests = BTreeMap::new();
    for (service, variables) in &request.secrets {
        let mut data = BTreeMap::new();
        let mut digest = Sha256::new();
        for (variable, secret) in variables {
            let granted = work
                .backplane
                .run_secret(request.run_id, request.organization_id, secret)
                .await
                .map_err(|e| match e {
                    windlass_core::Error::Forbidden(_) | windlass_core::Error::NotFound { .. } => {
                        terminal(e, FailureCode::SecretUnavailable)
                    }
                    e => retryable(e, FailureCode::SecretUnavailable, None),
                })?;
            // The sealed version, not the value: re-sealed on every write, opaque.
            digest.update(format!("{variable}={};", granted.sealed_tag));
            data.insert(variable.clone(), zeroize::Zeroizing::new(granted.value));
        }
        let digest: String = digest.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        digests.insert(service.clone(), digest);
        let labels = service_labels(&request.environment_name, service);
        heartbeating(
            ctx,
            apply_secret(
                &client,
                &request.namespace,
                &secret_name(service),
                &labels,
                &data,
            ),
        )
        .await?
        .map_err(failure)?;
        tracing::info!(namespace = %request.namespace, %service, keys = data.len(), "service secrets written");
    }
    Ok(digests)
}

pub(super) async fn deploy(
    work: &DeploymentActivities,
    ctx: &ActivityContext,
    request: &DeployService,
) -> Result<ServiceRelease, ActivityError> {
    let cluster = cluster(work, ctx, &request.access).await?;
    let service = &request.service;
    let timeout = Duration::from_secs(u64::from(service.timeout_seconds()));
    let (mut objects, workload) = render(&request.environment_name, service, request.revision);
    if let Some(digest) = &request.secrets_digest {
        mark_secrets(&mut objects, digest);
    }
    let (chart, values) = match service {
        ServiceSpec::HelmChart(chart) => (user_chart(&chart.chart), chart.values.clone()),
        _ => (
            Chart::Local(work.work.charts_dir.join(APP_CHART)),
            serde_json::json!({ "objects": objects }),
        ),
    };
    let user_chart = matches!(service, ServiceSpec::HelmChart(_));
    let release = Release {
        name: service.name().to_owned(),
        namespace: request.namespace.clone(),
        chart,
        timeout,
        wait: false,
        step: Some(crate::step_log::step_identity(ctx)),
        // Windlass's app chart is Windlass's own; a user's chart may share fields with
        // other managers on purpose, so a conflict there is theirs to settle.
        force_conflicts: !user_chart,
    };
    let mut writer = work.work.step_logs.writer(ctx, cluster.masker.clone());
    let installed = {
        let mut log = |line: &str| writer.line(crate::step_log::helm_line_level(line), line);
        upgrade_fetching_the_chart(work, ctx, &cluster, &release, &values, &mut log).await
    };
    let installed = match installed {
        Ok(installed) => installed,
        Err(error) => {
            writer.finish().await;
            return Err(error);
        }
    };
    writer.line(
        "info",
        &format!(
            "release {} at revision {}; waiting for {}",
            installed.release.name,
            installed.release.revision,
            describe(&workload)
        ),
    );
    let rolled_out = watch(
        ctx,
        &cluster,
        &request.namespace,
        &workload,
        timeout,
        &mut writer,
    )
    .await;
    writer.finish().await;
    rolled_out?;
    Ok(ServiceRelease {
        name: installed.release.name,
        revision: installed.release.revision,
    })
}

/// How many times a chart that could not be fetched is tried within one attempt, and
/// the pause after each failure: a registry's brief hiccup passes, a wrong or unreachable
/// registry fails within seconds instead of a quarter of an hour of activity retries.
const CHART_FETCH_TRIES: [Duration; 3] = [
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::ZERO,
];

/// `helm upgrade --install`, with a short bounded retry while the chart cannot be fetched
/// (its host does not resolve, or helm cannot get it); then the failure is terminal and
/// names the chart and its registry.
async fn upgrade_fetching_the_chart(
    work: &DeploymentActivities,
    ctx: &ActivityContext,
    cluster: &Cluster,
    release: &Release,
    values: &serde_json::Value,
    log: &mut (dyn FnMut(&str) + Send),
) -> Result<crate::helm::Installed, ActivityError> {
    let mut last = None;
    for pause in CHART_FETCH_TRIES {
        if let Err(error) =
            crate::helm::chart_hosts::check(&release.chart, work.work.chart_hosts).await
        {
            tracing::warn!(release = %release.name, %error, "chart host refused");
            if !error.is_retryable() {
                return Err(failure(error));
            }
            log(&format!("Error: {error}"));
            last = Some(failure(error));
            tokio::time::sleep(pause).await;
            continue;
        }
        let installed = supervised(
            ctx,
            work.work.helm.upgrade_install(
                &Kubeconfig::new(cluster.text.clone()),
                release,
                values,
                &mut *log,
                ctx.cancelled(),
            ),
        )
        .await;
        match installed {
            Ok(installed) => return Ok(installed),
            Err(error @ crate::helm::HelmError::ChartFetch { .. }) => {
                tracing::warn!(release = %release.name, %error, "chart could not be fetched");
                last = Some(failure(error));
                tokio::time::sleep(pause).await;
            }
            Err(error) => return Err(failure(error)),
        }
    }
    Err(last.expect("at least one try"))
}

pub(super) async fn roll_back(
    work: &DeploymentActivities,
    ctx: &ActivityContext,
    request: &RollBackService,
) -> Result<(), ActivityError> {
    let cluster = cluster(work, ctx, &request.access).await?;
    let kubeconfig = Kubeconfig::new(cluster.text.clone());
    let mut writer = work.work.step_logs.writer(ctx, cluster.masker.clone());
    let result = match &request.to {
        Some((revision, spec)) => {
            let timeout = Duration::from_secs(u64::from(spec.timeout_seconds()));
            let release = Release {
                name: request.service.clone(),
                namespace: request.namespace.clone(),
                chart: Chart::Local(work.work.charts_dir.join(APP_CHART)),
                timeout,
                wait: false,
                step: None,
                force_conflicts: !matches!(spec, ServiceSpec::HelmChart(_)),
            };
            writer.line(
                "info",
                &format!(
                    "rolling {} back to release revision {revision}",
                    request.service
                ),
            );
            let rolled = {
                let mut log =
                    |line: &str| writer.line(crate::step_log::helm_line_level(line), line);
                supervised(
                    ctx,
                    work.work.helm.rollback(
                        &kubeconfig,
                        &release,
                        *revision,
                        &mut log,
                        ctx.cancelled(),
                    ),
                )
                .await
            };
            match rolled {
                Ok(_) => {
                    // A job of the old revision already ran; only long-running workloads
                    // need to be back and ready.
                    let (_, workload) = render(&request.environment_name, spec, 0);
                    let workload = match workload {
                        Workload::Job(_) => Workload::Scheduled,
                        other => other,
                    };
                    watch(
                        ctx,
                        &cluster,
                        &request.namespace,
                        &workload,
                        timeout,
                        &mut writer,
                    )
                    .await
                }
                Err(error) => Err(failure(error)),
            }
        }
        None => {
            writer.line(
                "info",
                &format!(
                    "{} did not exist in the last good revision; uninstalling it",
                    request.service
                ),
            );
            let mut log = |line: &str| writer.line(crate::step_log::helm_line_level(line), line);
            supervised(
                ctx,
                work.work.helm.uninstall(
                    &kubeconfig,
                    &request.service,
                    &request.namespace,
                    &mut log,
                    ctx.cancelled(),
                ),
            )
            .await
            .map_err(failure)
        }
    };
    writer.finish().await;
    result
}

pub(super) async fn prune(
    work: &DeploymentActivities,
    ctx: &ActivityContext,
    request: &PruneServices,
) -> Result<(), ActivityError> {
    let cluster = cluster(work, ctx, &request.access).await?;
    let kubeconfig = Kubeconfig::new(cluster.text.clone());
    let mut writer = work.work.step_logs.writer(ctx, cluster.masker.clone());
    for name in &request.remove {
        writer.line(
            "info",
            &format!("{name} is no longer in the environment; uninstalling it"),
        );
        let mut log = |line: &str| writer.line(crate::step_log::helm_line_level(line), line);
        let removed = supervised(
            ctx,
            work.work.helm.uninstall(
                &kubeconfig,
                name,
                &request.namespace,
                &mut log,
                ctx.cancelled(),
            ),
        )
        .await;
        if let Err(error) = removed {
            writer.finish().await;
            return Err(failure(error));
        }
    }
    writer.finish().await;
    Ok(())
}

/// Watches the workload until it has rolled out, writing each change to the step log.
async fn watch(
    ctx: &ActivityContext,
    cluster: &Cluster,
    namespace: &str,
    workload: &Workload,
    timeout: Duration,
    writer: &mut crate::step_log::StepLogWriter,
) -> Result<(), ActivityError> {
    let client = kube_client(ctx, cluster).await?;
    let mut on_event = |event: RolloutEvent| {
        writer.line("info", &format!("{}: {}", event.workload, event.status));
    };
    heartbeating(
        ctx,
        wait_for_rollout(&client, namespace, workload, timeout, &mut on_event),
    )
    .await?
    .map_err(failure)
}

fn user_chart(source: &ChartSource) -> Chart {
    match source {
        ChartSource::Repository { url, name, version } => Chart::Repository {
            url: url.clone(),
            name: name.clone(),
            version: version.clone(),
        },
        ChartSource::Oci { reference, version } => Chart::Oci {
            reference: reference.clone(),
            version: version.clone(),
        },
    }
}

fn describe(workload: &Workload) -> String {
    match workload {
        Workload::Deployment(name) => format!("deployment/{name} to roll out"),
        Workload::Job(name) => format!("job/{name} to complete"),
        Workload::Scheduled => "nothing (runs on its schedule)".into(),
        Workload::Release(name) => format!("the deployments of release {name}"),
    }
}
