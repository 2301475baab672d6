//! The helm runner: real helm (v4), driven through its CLI against the cluster a
//! kubeconfig names. Each command gets that kubeconfig as a private temporary
//! file; values are typed Rust structs written as JSON; failures are classified
//! into retryable and terminal [`HelmError`]s.

mod args;
mod chart_fetch;
pub mod chart_hosts;
mod cli;
mod desired;
mod error;
mod release;
mod release_store;
mod render;

pub use chart_hosts::{ChartHostError, ChartHosts};
pub use cli::{Helm, Kubeconfig, LintMessage};
pub use error::HelmError;
pub use release::{Chart, Installed, Recovery, Release, ReleaseInfo, ReleaseStatus, Revision};
pub use render::{Rendered, RenderedObject};
