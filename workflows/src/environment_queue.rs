//! One queue workflow per environment (id `environment-<id>`) runs its deployments one at a
//! time, each as a child workflow with the run's id, so two deployments of one environment
//! never overlap whatever the API, the workers or the network do. Requests arrive as
//! signals (signal-with-start from the API); with the policy `supersede` a new request
//! replaces those still waiting. Cancelling a waiting request drops it; cancelling the
//! running one cancels its child, which rolls the environment back.

#![allow(unreachable_pub)]

use std::collections::VecDeque;
use std::time::Duration;

use futures::FutureExt;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityOptions, ChildWorkflowOptions, ContinueAsNewOptions, SyncWorkflowContext,
    WorkflowCancellationToken, WorkflowContext, WorkflowContextView, WorkflowResult,
};
use uuid::Uuid;
use windlass_core::deployments::DeploymentState;
use windlass_core::environments::DeployPolicy;

use crate::deploy_environment::DeployEnvironment;
use crate::deployment_contracts::{
    DeploymentRecordActivities, DeploymentRequest, DropQueued, EnvironmentQueueInput,
};

/// Continue as new after this many deployments, to keep the history short.
const DEPLOYMENTS_PER_HISTORY: u32 = 50;

pub fn environment_queue_id(environment_id: Uuid) -> String {
    format!("environment-{environment_id}")
}

#[workflow]
#[derive(Default)]
pub struct EnvironmentDeployments {
    waiting: VecDeque<DeploymentRequest>,
    /// Requests that left the queue unrun, with why, to be recorded.
    dropped: Vec<DropQueued>,
    /// Cancellations asked for, by run id.
    cancels: Vec<Uuid>,
    running: Option<Uuid>,
}

#[workflow_methods]
impl EnvironmentDeployments {
    #[run(name = "environment_deployments")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: EnvironmentQueueInput,
    ) -> WorkflowResult<()> {
        ctx.state_mut(|s| s.waiting.extend(input.waiting.clone()));
        let mut handled = 0u32;
        loop {
            ctx.wait_condition(|s| {
                !s.waiting.is_empty() || !s.dropped.is_empty() || !s.cancels.is_empty()
            })
            .await?;
            settle_cancellations(ctx);
            for dropped in ctx.state_mut(|s| std::mem::take(&mut s.dropped)) {
                ctx.execute_activity(
                    DeploymentRecordActivities::drop_queued,
                    dropped.clone(),
                    bookkeeping(format!("drop/{}", dropped.run_id)),
                )
                .await?;
            }
            let Some(next) = ctx.state_mut(|s| s.waiting.pop_front()) else {
                continue;
            };
            run_one(ctx, next).await?;
            handled += 1;
            let idle = ctx.state(|s| s.waiting.is_empty() && s.dropped.is_empty());
            if handled >= DEPLOYMENTS_PER_HISTORY || (idle && ctx.continue_as_new_suggested()) {
                let waiting = ctx.state_mut(|s| std::mem::take(&mut s.waiting));
                ctx.continue_as_new(
                    EnvironmentQueueInput {
                        environment_id: input.environment_id,
                        waiting: waiting.into(),
                    },
                    ContinueAsNewOptions::default(),
                )?;
            }
        }
    }

    #[signal]
    pub fn request_deployment(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        request: DeploymentRequest,
    ) {
        // The API may repeat a signal it is unsure was delivered.
        if self.running == Some(request.run_id)
            || self.waiting.iter().any(|r| r.run_id == request.run_id)
        {
            return;
        }
        if request.policy == DeployPolicy::Supersede {
            for old in self.waiting.drain(..) {
                self.dropped.push(DropQueued {
                    run_id: old.run_id,
                    state: DeploymentState::Superseded,
                    detail: format!("superseded by run {}", request.run_id),
                });
            }
        }
        self.waiting.push_back(request);
    }

    #[signal]
    pub fn cancel_deployment(&mut self, _ctx: &mut SyncWorkflowContext<Self>, run_id: Uuid) {
        self.cancels.push(run_id);
    }

    /// Run ids: the running deployment first (if any), then those waiting, in order.
    #[query]
    pub fn queue(&self, _ctx: &WorkflowContextView) -> Vec<Uuid> {
        self.running
            .iter()
            .copied()
            .chain(self.waiting.iter().map(|r| r.run_id))
            .collect()
    }
}

type Ctx = WorkflowContext<EnvironmentDeployments>;

/// Cancellations of waiting requests drop them; those of no known request are forgotten
/// (the run already ended). The running one's is handled by `run_one`.
fn settle_cancellations(ctx: &Ctx) {
    ctx.state_mut(|s| {
        let running = s.running;
        let cancels = std::mem::take(&mut s.cancels);
        for run_id in cancels {
            if Some(run_id) == running {
                s.cancels.push(run_id);
            } else if let Some(at) = s.waiting.iter().position(|r| r.run_id == run_id) {
                s.waiting.remove(at);
                s.dropped.push(DropQueued {
                    run_id,
                    state: DeploymentState::Cancelled,
                    detail: "cancelled while waiting".into(),
                });
            }
        }
    });
}

async fn run_one(ctx: &Ctx, request: DeploymentRequest) -> WorkflowResult<()> {
    let run_id = request.run_id;
    ctx.state_mut(|s| s.running = Some(run_id));
    // Cancelling this token cancels the child, which then rolls back and records itself.
    let child_cancel = WorkflowCancellationToken::new();
    let options = ChildWorkflowOptions::builder()
        .workflow_id(request.workflow_id.clone())
        .cancellation_token(child_cancel.clone())
        .build();
    let started = ctx
        .start_child_workflow(DeployEnvironment::run, request.input.clone(), options)
        .await;
    match started {
        Ok(child) => {
            let result = child.result().fuse();
            let cancel_asked = ctx.wait_condition(|s| s.cancels.contains(&run_id)).fuse();
            futures::pin_mut!(result, cancel_asked);
            temporalio_workflow::select! {
                _ = result => {}
                _ = cancel_asked => {
                    child_cancel.cancel_with_reason("cancelled through the API");
                    let _ = result.await;
                }
            }
        }
        Err(error) => {
            ctx.execute_activity(
                DeploymentRecordActivities::drop_queued,
                DropQueued {
                    run_id,
                    state: DeploymentState::Failed,
                    detail: format!("the deployment could not start: {error}"),
                },
                bookkeeping(format!("drop/{run_id}")),
            )
            .await?;
        }
    }
    ctx.state_mut(|s| {
        s.running = None;
        s.cancels.retain(|id| *id != run_id);
    });
    Ok(())
}

fn bookkeeping(key: String) -> ActivityOptions {
    ActivityOptions::with_schedule_to_close_timeout(Duration::from_secs(3600))
        .activity_id(key)
        .build()
}
