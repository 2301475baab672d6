//! The worker process and what a fleet operator needs of it.
//!
//! The SDK's `Worker::run` future is not `Send`, so each worker runs on a thread of its own
//! with its own Tokio runtime; the rest of the process talks to it through [`WorkerHandle`].
//! A process polling several task queues runs one such worker per queue ([`Fleet`]).

mod activity_metrics;
mod fleet;
mod metrics;
mod step_budget_guard;
mod step_journal;
mod worker;

pub use fleet::Fleet;
pub use metrics::WorkerMetrics;
pub use step_budget_guard::{STEP_BUDGET_EXCEEDED, StepBudgetGuard};
pub use step_journal::StepJournal;
pub use worker::{Backing, WorkerConfig, WorkerHandle, spawn_worker, spawn_worker_with};
