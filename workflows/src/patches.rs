//! Patch markers: every change to a workflow's command sequence (or to what it does with
//! an activity's result) is taken only by executions that recorded the marker; histories
//! recorded before it replay the old path. Each id is here, with what it changed, so a
//! marker is never reused and can be retired (deprecate, then remove) once no execution
//! older than it can still be running. See ARCHITECTURE.md, "Changing workflow code".

/// `EnvironmentDeployments` builds its state from the input in `#[init]`, so requests
/// carried across continue-as-new stay ahead of those arriving in the new run's first task
/// (before: first-task signals were queued ahead of them).
pub const QUEUE_STATE_FROM_INIT: &str = "environment-queue-state-from-init";

/// The deploy child of `EnvironmentDeployments` starts with parent-close policy
/// RequestCancel (it rolls back and records itself if the queue is terminated) and id reuse
/// policy RejectDuplicate (a run id deploys once). Before: the server's defaults.
pub const DEPLOY_CHILD_OUTLIVES_QUEUE: &str = "deploy-child-outlives-queue";

/// A failing bookkeeping step (recording a run's end, a deployment's state) no longer
/// replaces the run's own result: it is logged, and the API repairs the record from
/// Temporal. Before: its failure became the run's failure.
pub const BOOKKEEPING_NEVER_SPOILS_THE_RESULT: &str = "bookkeeping-never-spoils-the-result";

/// `ClusterMaintenance` holds its cluster (as the cluster target's one unfinished run)
/// while it works, lets go while it waits for a window, and takes the cluster again, as it
/// is then, after every wait; a deleted cluster ends it. Before: it read the spec once and
/// worked whatever else ran on the cluster.
pub const MAINTENANCE_HOLDS_ITS_CLUSTER: &str = "maintenance-holds-its-cluster";

/// `UpgradeCluster` and `DeleteCluster` record what they did to the cluster (its new
/// version; that it is deleted) in a step of their own before the run's end is recorded.
/// Before: recording the end applied the upgrade (and nothing recorded a delete).
pub const CLUSTER_CHANGE_IS_ITS_OWN_STEP: &str = "cluster-change-is-its-own-step";

/// Steps (`outcome::step`, `outcome::long_step`) are scheduled with their budget in a header
/// and Temporal's schedule-to-close set to budget + a queue allowance (schedule-to-start):
/// the budget counts the time a step runs, enforced by the worker's guard, not the time it
/// waits in its task queue. Before: schedule-to-close was the budget, queue time included.
pub const STEP_BUDGETS_COUNT_RUNNING_TIME: &str = "step-budgets-count-running-time";
