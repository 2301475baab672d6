//! What tests across the workspace share, so each suite reads like sentences and nothing
//! is written twice:
//!
//! - [`InProcessEngine`]: the workflow engine as a journal of what it was asked (runs
//!   started with their typed inputs, cancels, deployments queued, schedules), for router
//!   tests that need no Temporal server. System tests keep the real one.
//! - [`TestApi`]: the API router driven in process with `oneshot` (axum's testing
//!   example), on a fresh SQLite store, with an OIDC issuer stand-in for callers' tokens.
//! - Fixtures: an organisation, an Azure account registered to it; the AKS and EKS
//!   clusters of the blueprint tests and the checks every blueprint passes
//!   ([`clusters`]); the AWS account behind the STS trust stand-in ([`AwsBed`]);
//!   [`free_port`].
//! - [`tenancy`]: a role holding exactly some grants, a cluster record hosting some
//!   environment types.
//! - [`client`]: a typed client of the API over any [`client::Transport`] (the router in
//!   process, or HTTP in the system tests).

mod aws_bed;
pub mod client;
pub mod clusters;
mod engine;
mod ports;
mod source_files;
pub mod tenancy;
mod test_api;

pub use aws_bed::AwsBed;
pub use client::{OrganizationClient, Refusal, Transport};
pub use engine::{EngineCall, InProcessEngine};
pub use ports::free_port;
pub use source_files::rust_files;
pub use test_api::{APPLICATION_ID, TestApi, TestCaller};
/// The OIDC issuer stand-in, for tests that need an identity provider of their own.
pub use windlass_standins::OidcIssuerStandIn;
