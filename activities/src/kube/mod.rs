//! Kubernetes through kube-rs: a client from a cluster's kubeconfig, the objects a
//! deployment writes itself (namespace, per-service Secrets) and rollout watches.

mod client;
mod error;
mod objects;
mod retry;
mod rollout;

pub use client::client_from_kubeconfig;
pub use error::KubeError;
pub use objects::{apply_secret, ensure_namespace};
pub use rollout::{RolloutEvent, wait_for_rollout};
