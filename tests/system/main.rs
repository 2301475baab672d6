//! System tests: Windlass assembled from real parts (Temporal's dev server, SQLite, the
//! API, workers) with the Azure stand-in in place of Azure. See `support` for the stack.

mod access_control;
mod api_contract;
mod api_metrics;
mod audit_trail;
mod aws_account_ownership;
mod azure_access;
mod bounded_reads;
mod chart_fetch;
mod chart_references;
mod cloud_account_ownership;
mod cluster_lifecycle;
mod cluster_maintenance;
mod cluster_provisioning;
mod deployment_drain;
mod deployments;
mod dev_command;
mod eks_provisioning;
mod environment_queue;
mod fault_suite;
mod forged_payloads;
mod helm_retry;
mod histories;
mod maintenance_holds;
mod plaintext_scan;
mod run_events;
mod sts_trust_standin;
pub mod support;
mod tenancy;
mod tenant_isolation;
mod terraform_crash;
pub mod topology;
mod worker_crash;
mod worker_drain;
mod workers_command;
