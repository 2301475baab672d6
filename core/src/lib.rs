//! Domain types, the store and the security primitives every Windlass crate shares.
//!
//! Nothing here talks to Temporal or a cloud: this crate is the vocabulary and the
//! persistence of the read model (organisations, cloud accounts, workflow runs, steps).

pub mod api_tokens;
pub mod app_manifests;
pub mod audit;
pub mod audit_digests;
pub mod audit_sanitize;
pub mod blueprint;
pub mod bounded_cache;
pub mod chart_references;
pub mod clock;
pub mod cloud_accounts;
pub mod cluster_charts;
pub mod clusters;
pub mod crypto;
pub mod deployments;
pub mod environments;
pub mod error;
pub mod identity_connections;
pub mod keys;
pub mod live_logs;
pub mod maintenance;
pub mod organizations;
pub mod placement_wire;
pub mod placements;
pub mod rbac;
pub mod run_records;
pub mod runs;
pub mod secret_vault;
pub mod secrets;
pub mod step_logs;
pub mod store;
pub mod workload_identity;

pub use error::{Error, Result};
pub use store::{Backend, Store};
