//! windlass-provider-standin: a terraform provider speaking plugin protocol 6 that serves
//! a real provider's schema (azurerm or aws, recovered from the CDKTF bindings' jsii
//! assembly by `scripts/tools/provider_schema_from_jsii.py`), so that `terraform
//! validate` / `plan` of the blueprint users export run here against the schema the
//! real provider would check, at the versions its constraints admit.
//!
//! Behind the schema, resources are planned, applied, read, imported and deleted in a
//! stand-in cloud (the `Cloud` trait): azurerm's in the ARM stand-in (`azure/`), aws's
//! in moto (`aws/`).
//!
//! Terraform starts it as `terraform-provider-<name>_v<version>` from a filesystem
//! mirror (a wrapper script passing `--schema`), reads the go-plugin handshake line from
//! stdout and speaks gRPC over mutual TLS to it. A stand-in, not the real provider.

mod aws;
mod azure;
mod cloud;
mod handshake;
mod plan;
mod proto;
mod schema;
mod service;
mod validate;
mod value;

use std::path::PathBuf;

use anyhow::Context;

const USAGE: &str = "usage: windlass-provider-standin --schema PROVIDER-VERSION.json\n\
    (a terraform plugin: terraform starts it; run alone, it only explains this)";

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WINDLASS_PROVIDER_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let mut args = std::env::args().skip(1);
    let schema_path = match (args.next().as_deref(), args.next()) {
        (Some("--schema"), Some(path)) => PathBuf::from(path),
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    let handshake = match handshake::Handshake::from_env() {
        Ok(handshake) => handshake,
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            std::process::exit(1);
        }
    };
    let schema = schema::ProviderSchema::load(&schema_path)
        .with_context(|| format!("loading the provider schema {}", schema_path.display()))?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(service::serve(handshake, schema))
}
