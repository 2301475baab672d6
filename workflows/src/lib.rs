//! Deterministic workflow code, the contracts between workflows and activities, and the thin
//! layer over the Temporal SDK that the rest of Windlass uses instead of touching it.
//!
//! Workflow code here must stay deterministic: no clocks, no I/O, no randomness except the
//! workflow context's. Every side effect is an activity declared in [`contracts`] and
//! implemented in `windlass-activities`.

pub mod aws_access_contracts;
pub mod aws_access_verify;
pub mod azure_access_setup;
pub mod azure_access_teardown;
pub mod chart_graph;
mod chart_installs;
pub mod cluster_contracts;
pub mod cluster_maintenance;
pub mod contracts;
pub mod delete_cluster;
pub mod deploy_environment;
pub mod deployment_contracts;
pub mod engine;
pub mod environment_queue;
pub mod key_rotation_contracts;
mod lanes;
mod outcome;
mod patches;
pub mod provision_cluster;
pub mod run_contracts;
pub mod step_budget;
pub mod task_queues;
pub mod upgrade_cluster;

pub use aws_access_verify::AwsAccessVerify;
pub use azure_access_setup::AzureAccessSetup;
pub use azure_access_teardown::AzureAccessTeardown;
pub use cluster_maintenance::ClusterMaintenance;
pub use delete_cluster::DeleteCluster;
pub use deploy_environment::DeployEnvironment;
pub use environment_queue::EnvironmentDeployments;
pub use provision_cluster::ProvisionCluster;
pub use upgrade_cluster::UpgradeCluster;
