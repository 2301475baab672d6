//! One queue workflow per environment (id `environment-<id>`) runs its deployments one at a
//! time, each as a child workflow with the run's id, so two deployments of one environment
//! never overlap whatever the API, the workers or the network do.
//!
//! Requests and cancels arrive as Temporal Updates (update-with-start from the API), so the
//! API answers only once the queue has accepted them, with what it did: a cancel answered
//! "dropped while waiting" can never deploy. With the policy `supersede` a new request
//! replaces those still waiting. Cancelling the running one cancels its child, which rolls
//! the environment back. Everything the queue promised (waiting, dropped-but-unrecorded,
//! recently settled runs) is carried across continue-as-new, and the state is built from
//! the input in `#[init]`, before any handler of the new run sees it.
//!
//! The signals of earlier versions stay, delegating to the same code, for histories and
//! callers still on them.

#![allow(unreachable_pub)]

use futures::FutureExt;
use std::collections::VecDeque;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ChildWorkflowOptions, ContinueAsNewOptions, ParentClosePolicy, SyncWorkflowContext,
    WorkflowCancellationToken, WorkflowContext, WorkflowContextView, WorkflowIdReusePolicy,
    WorkflowResult,
};
use uuid::Uuid;
use windlass_core::deployments::DeploymentState;
use windlass_core::environments::DeployPolicy;

use crate::deploy_environment::DeployEnvironment;
use crate::deployment_contracts::{
    CancelledDeployment, DeploymentRecordActivities, DeploymentRequest, DropQueued,
    EnvironmentQueueInput, QueuedDeployment,
};
use crate::patches;

/// Continue as new after this many deployments, to keep the history short.
pub const DEPLOYMENTS_PER_HISTORY: u32 = 50;
/// How many settled run ids the queue remembers (and carries) to answer repeats.
const SETTLED_REMEMBERED: usize = 200;

pub fn environment_queue_id(environment_id: Uuid) -> String {
    format!("environment-{environment_id}")
}

#[workflow]
#[derive(Default)]
pub struct EnvironmentDeployments {
    environment_id: Uuid,
    waiting: VecDeque<DeploymentRequest>,
    /// How many of `waiting` came with the input (histories before the init patch put
    /// requests signalled in the first task ahead of them; see `run`).
    carried: usize,
    /// Requests that left the queue unrun, with why, to be recorded.
    dropped: Vec<DropQueued>,
    /// Cancellations of the running deployment (and, from old signals, of any), by run id.
    cancels: Vec<Uuid>,
    running: Option<Uuid>,
    settled: VecDeque<Uuid>,
    deployments_per_history: u32,
}

#[workflow_methods]
impl EnvironmentDeployments {
    #[init]
    pub fn init(_ctx: &WorkflowContextView, input: EnvironmentQueueInput) -> Self {
        Self {
            environment_id: input.environment_id,
            carried: input.waiting.len(),
            waiting: input.waiting.into(),
            dropped: input.dropped,
            cancels: Vec::new(),
            running: None,
            settled: input.settled.into(),
            deployments_per_history: input
                .deployments_per_history
                .filter(|n| *n > 0)
                .unwrap_or(DEPLOYMENTS_PER_HISTORY),
        }
    }

    #[run(name = "environment_deployments")]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<()> {
        if !ctx.patched(patches::QUEUE_STATE_FROM_INIT) {
            // Recorded before this version: signals of the first task were queued ahead of
            // the carried requests. Replay them in that order.
            ctx.state_mut(|s| {
                let carried = s.carried.min(s.waiting.len());
                s.waiting.rotate_left(carried);
            });
        }
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
                    crate::outcome::bookkeeping(format!("drop/{}", dropped.run_id)),
                )
                .await?;
            }
            let Some(next) = ctx.state_mut(|s| s.waiting.pop_front()) else {
                continue;
            };
            run_one(ctx, next).await?;
            handled += 1;
            let (limit, idle) = ctx.state(|s| {
                (
                    s.deployments_per_history,
                    s.waiting.is_empty() && s.dropped.is_empty(),
                )
            });
            if handled >= limit || (idle && ctx.continue_as_new_suggested()) {
                let carried = ctx.state_mut(|s| EnvironmentQueueInput {
                    environment_id: s.environment_id,
                    waiting: std::mem::take(&mut s.waiting).into(),
                    dropped: std::mem::take(&mut s.dropped),
                    settled: s.settled.iter().copied().collect(),
                    deployments_per_history: Some(s.deployments_per_history),
                });
                ctx.continue_as_new(carried, ContinueAsNewOptions::default())?;
            }
        }
    }

    #[update_validator(enqueue)]
    fn validate_enqueue(
        &self,
        _ctx: &WorkflowContextView,
        request: &DeploymentRequest,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if request.input.environment_id != self.environment_id {
            return Err(format!(
                "deployment of environment {} sent to the queue of {}",
                request.input.environment_id, self.environment_id
            )
            .into());
        }
        Ok(())
    }

    /// Queues a deployment; answers once accepted. Repeating a request is harmless.
    #[update]
    pub fn enqueue(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        request: DeploymentRequest,
    ) -> QueuedDeployment {
        self.accept(request)
    }

    /// Cancels a deployment: dropped if waiting (then it never deploys), cancelled and
    /// rolled back if running; answers what it did.
    #[update]
    pub fn cancel(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        run_id: Uuid,
    ) -> CancelledDeployment {
        if self.running == Some(run_id) {
            if !self.cancels.contains(&run_id) {
                self.cancels.push(run_id);
            }
            return CancelledDeployment::CancellingRunning;
        }
        if self.drop_waiting(run_id) {
            return CancelledDeployment::DroppedWhileWaiting;
        }
        if self.settled.contains(&run_id) || self.dropped.iter().any(|d| d.run_id == run_id) {
            return CancelledDeployment::AlreadySettled;
        }
        CancelledDeployment::Unknown
    }

    /// Earlier versions' request signal (signal-with-start).
    #[signal]
    pub fn request_deployment(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        request: DeploymentRequest,
    ) {
        self.accept(request);
    }

    /// Earlier versions' cancel signal: settled with the others at the next turn.
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

impl EnvironmentDeployments {
    fn accept(&mut self, request: DeploymentRequest) -> QueuedDeployment {
        // The API may repeat a request it is unsure was delivered.
        if self.running == Some(request.run_id)
            || self.waiting.iter().any(|r| r.run_id == request.run_id)
        {
            return QueuedDeployment::AlreadyQueued;
        }
        if self.settled.contains(&request.run_id)
            || self.dropped.iter().any(|d| d.run_id == request.run_id)
        {
            return QueuedDeployment::AlreadySettled;
        }
        if request.policy == DeployPolicy::Supersede {
            let superseded: Vec<Uuid> = self.waiting.drain(..).map(|r| r.run_id).collect();
            for old in superseded {
                self.drop_request(
                    old,
                    DeploymentState::Superseded,
                    &format!("superseded by run {}", request.run_id),
                );
            }
        }
        self.waiting.push_back(request);
        let ahead = self.waiting.len() - 1 + usize::from(self.running.is_some());
        QueuedDeployment::Queued {
            ahead: u32::try_from(ahead).unwrap_or(u32::MAX),
        }
    }

    /// Takes `run_id` out of the waiting requests, recorded as cancelled; whether it was
    /// waiting.
    fn drop_waiting(&mut self, run_id: Uuid) -> bool {
        let Some(at) = self.waiting.iter().position(|r| r.run_id == run_id) else {
            return false;
        };
        self.waiting.remove(at);
        self.drop_request(
            run_id,
            DeploymentState::Cancelled,
            "cancelled while waiting",
        );
        true
    }

    fn drop_request(&mut self, run_id: Uuid, state: DeploymentState, detail: &str) {
        self.dropped.push(DropQueued {
            run_id,
            state,
            detail: detail.to_owned(),
        });
        self.remember(run_id);
    }

    fn remember(&mut self, run_id: Uuid) {
        self.settled.push_back(run_id);
        while self.settled.len() > SETTLED_REMEMBERED {
            self.settled.pop_front();
        }
    }
}

type Ctx = WorkflowContext<EnvironmentDeployments>;

/// Cancellations of waiting requests (from the old signal) drop them; those of no known
/// request are forgotten (the run already ended). The running one's is handled by `run_one`.
fn settle_cancellations(ctx: &Ctx) {
    ctx.state_mut(|s| {
        let running = s.running;
        let cancels = std::mem::take(&mut s.cancels);
        for run_id in cancels {
            if Some(run_id) == running {
                s.cancels.push(run_id);
            } else {
                s.drop_waiting(run_id);
            }
        }
    });
}

async fn run_one(ctx: &Ctx, request: DeploymentRequest) -> WorkflowResult<()> {
    let run_id = request.run_id;
    ctx.state_mut(|s| s.running = Some(run_id));
    // Cancelling this token cancels the child, which then rolls back and records itself.
    let child_cancel = WorkflowCancellationToken::new();
    let mut options = ChildWorkflowOptions::builder()
        .workflow_id(request.workflow_id.clone())
        .cancellation_token(child_cancel.clone())
        .build();
    if ctx.patched(patches::DEPLOY_CHILD_OUTLIVES_QUEUE) {
        // If the queue is terminated the deployment is asked to cancel, so it rolls back
        // and records its end, instead of dying mid-helm; a run id deploys once.
        options.parent_close_policy = ParentClosePolicy::RequestCancel;
        options.id_reuse_policy = WorkflowIdReusePolicy::RejectDuplicate;
    }
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
                crate::outcome::bookkeeping(format!("drop/{run_id}")),
            )
            .await?;
        }
    }
    ctx.state_mut(|s| {
        s.running = None;
        s.cancels.retain(|id| *id != run_id);
        s.remember(run_id);
    });
    Ok(())
}
