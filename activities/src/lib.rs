//! Side effects, grouped by what they touch. Every activity is idempotent: Temporal may run
//! it again after a crash, a timeout or a retryable error, and the second run converges on
//! the same state instead of duplicating it. Whether an error is retryable is decided from
//! each client's typed errors (see [`error`]).

mod account_proof;
mod activity_set;
pub mod aws;
pub mod azure;
pub mod azure_access;
pub mod backplane;
pub mod backplane_http;
pub use windlass_core::bounded_cache;
pub mod cluster_records;
pub mod clusters;
pub mod deployments;
pub mod error;
mod heartbeat;
pub mod helm;
pub mod key_rotation;
pub mod kube;
pub mod memory_budget;
pub mod object_store;
mod process_group;
pub mod rate_limit;
pub mod runs;
pub mod step_log;
pub mod step_time;
pub mod terraform;

pub use activity_set::ActivitySet;
