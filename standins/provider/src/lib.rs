//! windlass-provider-standin: a terraform provider speaking plugin protocol 6 that serves
//! a real provider's schema (azurerm or aws, recovered from the CDKTF bindings' jsii
//! assembly by `scripts/tools/provider_schema_from_jsii.py`), so that `terraform
//! validate` / `plan` / `apply` of the blueprint users export run here against the schema
//! the real provider would check, at the versions its constraints admit, and against the
//! clouds' stand-ins. A stand-in, not the real provider.
//!
//! Terraform starts it as `terraform-provider-<name>_v<version>` from a filesystem mirror
//! ([`mirror`]: a wrapper script passing `--schema`), reads the go-plugin handshake line
//! from stdout and speaks gRPC over mutual TLS to it. It runs as its own binary
//! (src/main.rs) or inside `windlass provider-standin`, which is how `windlass dev` and the
//! system tests install it without a second executable to find.

mod aws;
mod azure;
mod cloud;
mod handshake;
pub mod mirror;
mod plan;
mod proto;
mod schema;
mod service;
mod validate;
mod value;

use std::path::Path;

use anyhow::Context;

/// Serves the provider whose schema is `schema_path` to the terraform that started this
/// process, until terraform stops it. Nothing else may write to stdout (the handshake
/// line is read from it).
pub fn run_plugin(schema_path: &Path) -> anyhow::Result<()> {
    let handshake = match handshake::Handshake::from_env() {
        Ok(handshake) => handshake,
        Err(message) => anyhow::bail!("{message}"),
    };
    let schema = schema::ProviderSchema::load(schema_path)
        .with_context(|| format!("loading the provider schema {}", schema_path.display()))?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(service::serve(handshake, schema))
}
