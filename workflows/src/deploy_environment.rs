//! Deploys one revision of an environment: the namespace and the services' secrets, then
//! every service in parallel (at most `max_parallel` at once), each waited for until it has
//! rolled out. If any service fails, or the run is cancelled, the whole environment goes
//! back to its last good revision: every service this run touched is rolled back to the
//! release it had then, and services that did not exist then are removed.

#![allow(unreachable_pub)]

use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::Duration;

use temporalio_common::error::ApplicationFailure;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{WorkflowContext, WorkflowResult, WorkflowTermination};
use windlass_core::deployments::{DeploymentState, GoodRevision};

use crate::cluster_contracts::{ClusterLifecycleActivities, ClusterRequest};
use crate::deployment_contracts::{
    BeginDeployment, ClusterAccess, DeployEnvironmentInput, DeployEnvironmentOutput, DeployService,
    DeploymentActivities, DeploymentRecordActivities, FinishDeployment, PrepareNamespace,
    PruneServices, RollBackService,
};
use crate::lanes::in_lanes;
use crate::outcome::{detached, ended, long_step, record, step};

#[workflow]
#[derive(Default)]
pub struct DeployEnvironment;

#[workflow_methods]
impl DeployEnvironment {
    #[run(name = "deploy_environment")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: DeployEnvironmentInput,
    ) -> WorkflowResult<DeployEnvironmentOutput> {
        let result = deploy(ctx, input).await;
        record(ctx, result).await
    }
}

type Ctx = WorkflowContext<DeployEnvironment>;

async fn deploy(
    ctx: &Ctx,
    input: DeployEnvironmentInput,
) -> WorkflowResult<DeployEnvironmentOutput> {
    let start = ended(
        ctx,
        ctx.execute_activity(
            DeploymentRecordActivities::begin,
            BeginDeployment {
                run_id: input.run_id,
                environment_id: input.environment_id,
                revision: input.revision,
            },
            step(ctx, "begin-deployment", Duration::from_secs(600)),
        )
        .await,
    )?;
    if !start.proceed {
        return Err(WorkflowTermination::cancelled());
    }
    let outcome = roll_out(ctx, &input, start.last_good.as_ref()).await;
    let (state, releases, detail) = match &outcome {
        Ok(releases) => (DeploymentState::Deployed, releases.clone(), None),
        Err(end) => (end.state, BTreeMap::new(), Some(end.detail.clone())),
    };
    let finished = ctx
        .execute_activity(
            DeploymentRecordActivities::finish,
            FinishDeployment {
                run_id: input.run_id,
                state,
                releases: releases.clone(),
                detail: detail.clone(),
            },
            detached(step(ctx, "finish-deployment", Duration::from_secs(3600))),
        )
        .await;
    if ctx.patched(crate::patches::BOOKKEEPING_NEVER_SPOILS_THE_RESULT) {
        // What the cluster runs is the outcome; a record that could not be written is
        // logged, not turned into a failed deployment.
        if let Err(error) = finished {
            tracing::warn!(%error, run_id = %input.run_id, "the deployment's end could not be recorded");
        }
    } else {
        finished?;
    }
    match outcome {
        Ok(releases) => Ok(DeployEnvironmentOutput {
            revision: input.revision,
            state,
            releases,
        }),
        Err(end) if end.cancelled => Err(WorkflowTermination::cancelled()),
        Err(end) => Err(WorkflowTermination::failed_application(
            ApplicationFailure::builder(end.detail)
                .type_name("DeploymentFailed".to_owned())
                .build(),
        )),
    }
}

/// How a deployment that did not deploy ended.
struct Ended {
    state: DeploymentState,
    cancelled: bool,
    detail: String,
}

async fn roll_out(
    ctx: &Ctx,
    input: &DeployEnvironmentInput,
    last_good: Option<&GoodRevision>,
) -> Result<BTreeMap<String, u32>, Ended> {
    let failed_before_services = |error: WorkflowTermination| Ended {
        state: if ctx.cancellation_token().is_cancelled() {
            DeploymentState::Cancelled
        } else {
            DeploymentState::Failed
        },
        cancelled: ctx.cancellation_token().is_cancelled(),
        detail: format!("nothing was deployed: {error}"),
    };
    let storage = ended(
        ctx,
        ctx.execute_activity(
            ClusterLifecycleActivities::locate_storage,
            ClusterRequest {
                cluster: input.cluster.clone(),
                target: input.target.clone(),
            },
            step(ctx, "locate-cluster", Duration::from_secs(600)),
        )
        .await,
    )
    .map_err(failed_before_services)?
    .ok_or_else(|| Ended {
        state: DeploymentState::Failed,
        cancelled: false,
        detail: format!(
            "cluster {} has no storage (and so no kubeconfig): provision it first",
            input.cluster.name
        ),
    })?;
    let access = ClusterAccess {
        cluster: input.cluster.clone(),
        target: input.target.clone(),
        storage,
    };
    let secrets = input
        .services
        .iter()
        .map(|s| (s.name().to_owned(), s.secrets()))
        .filter(|(_, secrets)| !secrets.is_empty())
        .collect();
    let secrets_digests = ended(
        ctx,
        ctx.execute_activity(
            DeploymentActivities::prepare_namespace,
            PrepareNamespace {
                run_id: input.run_id,
                organization_id: input.organization_id,
                access: access.clone(),
                environment_name: input.environment_name.clone(),
                namespace: input.namespace.clone(),
                secrets,
            },
            step(ctx, "prepare-namespace", Duration::from_secs(900)),
        )
        .await,
    )
    .map_err(failed_before_services)?;

    // Once one service has failed, services not yet started are not started: the
    // environment is going back anyway.
    let stop = Cell::new(false);
    let outcomes: Vec<(String, ServiceOutcome)> = in_lanes(
        input.services.clone(),
        input.max_parallel as usize,
        |service| {
            let access = access.clone();
            let stop = &stop;
            let secrets_digest = secrets_digests.get(service.name()).cloned();
            async move {
                let name = service.name().to_owned();
                if stop.get() || ctx.cancellation_token().is_cancelled() {
                    return (name, ServiceOutcome::NotStarted);
                }
                let budget = Duration::from_secs(u64::from(service.timeout_seconds()) + 300);
                let result = ctx
                    .execute_activity(
                        DeploymentActivities::deploy_service,
                        DeployService {
                            access,
                            environment_name: input.environment_name.clone(),
                            namespace: input.namespace.clone(),
                            revision: input.revision,
                            service,
                            secrets_digest,
                        },
                        long_step(ctx, format!("deploy/{name}"), budget),
                    )
                    .await;
                match result {
                    Ok(release) => (name, ServiceOutcome::Deployed(release.revision)),
                    Err(error) => {
                        stop.set(true);
                        (name, ServiceOutcome::Failed(step_error(&error)))
                    }
                }
            }
        },
    )
    .await;

    let cancelled = ctx.cancellation_token().is_cancelled();
    let failures: Vec<String> = outcomes
        .iter()
        .filter_map(|(name, outcome)| match outcome {
            ServiceOutcome::Failed(error) if !cancelled => Some(format!("{name}: {error}")),
            _ => None,
        })
        .collect();
    if failures.is_empty() && !cancelled {
        let releases: BTreeMap<String, u32> = outcomes
            .into_iter()
            .filter_map(|(name, outcome)| match outcome {
                ServiceOutcome::Deployed(revision) => Some((name, revision)),
                _ => None,
            })
            .collect();
        let remove: Vec<String> = last_good
            .into_iter()
            .flat_map(|good| good.services.iter().map(|s| s.name().to_owned()))
            .filter(|name| !releases.contains_key(name))
            .collect();
        if !remove.is_empty() {
            ctx.execute_activity(
                DeploymentActivities::prune_services,
                PruneServices {
                    access,
                    namespace: input.namespace.clone(),
                    remove,
                },
                long_step(ctx, "prune-services", Duration::from_secs(1800)),
            )
            .await
            .map_err(|error| Ended {
                state: DeploymentState::Failed,
                cancelled: false,
                detail: format!("every service rolled out, but removing old ones failed: {error}"),
            })?;
        }
        return Ok(releases);
    }

    // Back to the last good revision: every service this run touched (deployed, or
    // failed part-way), never the ones it did not start.
    let touched: Vec<String> = outcomes
        .iter()
        .filter(|(_, outcome)| !matches!(outcome, ServiceOutcome::NotStarted))
        .map(|(name, _)| name.clone())
        .collect();
    let rollback_failures: Vec<String> = in_lanes(touched, input.max_parallel as usize, |name| {
        let to = last_good.and_then(|good| {
            let revision = good.releases.get(&name)?;
            let spec = good.services.iter().find(|s| s.name() == name)?;
            Some((*revision, spec.clone()))
        });
        let request = RollBackService {
            access: access.clone(),
            environment_name: input.environment_name.clone(),
            namespace: input.namespace.clone(),
            service: name.clone(),
            to,
        };
        async move {
            ctx.execute_activity(
                DeploymentActivities::roll_back_service,
                request,
                detached(long_step(
                    ctx,
                    format!("rollback/{name}"),
                    Duration::from_secs(1800),
                )),
            )
            .await
            .err()
            .map(|error| format!("{name}: {}", step_error(&error)))
        }
    })
    .await
    .into_iter()
    .flatten()
    .collect();

    let back_to = match last_good {
        Some(good) => format!("revision {}", good.revision),
        None => "no services (there is no earlier good revision)".to_owned(),
    };
    let cause = if cancelled {
        "cancelled".to_owned()
    } else {
        format!("failed: {}", failures.join("; "))
    };
    if rollback_failures.is_empty() {
        Err(Ended {
            state: if cancelled {
                DeploymentState::Cancelled
            } else {
                DeploymentState::RolledBack
            },
            cancelled,
            detail: format!(
                "revision {} {cause}; environment rolled back to {back_to}",
                input.revision
            ),
        })
    } else {
        Err(Ended {
            state: DeploymentState::Failed,
            cancelled,
            detail: format!(
                "revision {} {cause}; rolling back to {back_to} failed too: {}",
                input.revision,
                rollback_failures.join("; ")
            ),
        })
    }
}

enum ServiceOutcome {
    Deployed(u32),
    Failed(String),
    NotStarted,
}

/// The message of an activity failure without the SDK's wrapping.
fn failure_text(error: &str) -> String {
    error.lines().next().unwrap_or(error).to_owned()
}

/// What a failed step said (the activity's own error, e.g. which chart could not be
/// fetched from where), not Temporal's "Activity task failed" around it.
fn step_error(error: &temporalio_sdk::ActivityExecutionError) -> String {
    match error.cause().map(|cause| cause.failure().message.clone()) {
        Some(message) if !message.trim().is_empty() => failure_text(&message),
        _ => failure_text(&error.to_string()),
    }
}
