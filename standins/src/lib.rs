//! Local stand-ins for services that cannot run on the test bed.
//!
//! Nothing here is the real service: these are small in-memory fakes that
//! follow the published protocols closely enough for Windlass' clients and
//! workflows to be exercised end to end on loopback.

// Handlers return early `Err(Response)`s, the idiomatic axum shape; their
// size does not matter on a loopback test stand-in.
#![allow(clippy::result_large_err)]

pub mod addresses;
pub mod azure;
pub mod azurite;
pub mod chart_repository;
pub mod eks_versions;
pub mod kube;
pub mod moto;
pub mod oidc;
pub mod sts_trust;
mod tls;

pub use addresses::StandInAddresses;
pub use azure::{AzureStandIn, StandInOptions, serve};
pub use kube::{KubeStandIn, KubeStandInConfig};
pub use oidc::OidcIssuerStandIn;
pub use sts_trust::StsTrustStandIn;
