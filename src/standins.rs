//! `windlass standins`: the local stand-ins (not Azure, not Kubernetes, not an identity
//! provider) in a process of their own, so a test bed can run the API, workers, databases
//! and Temporal as separate processes, as in production, and still read the stand-ins'
//! journals from outside: Azure Resource Manager, Graph and the Entra token endpoint (with
//! Azurite, the real Blob emulator, behind its storage accounts), the Kubernetes API
//! stand-in and the OIDC issuer stand-in. What they listen on is written to
//! `<state dir>/standins.json` ([`StandInAddresses`]) once all of them listen.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use windlass_standins::azurite::Azurite;
use windlass_standins::kube::{KubeStandIn, KubeStandInConfig};
use windlass_standins::{AzureStandIn, OidcIssuerStandIn, StandInAddresses, StandInOptions};

#[derive(Debug, Clone, clap::Args)]
pub struct StandInsArgs {
    /// Where the stand-ins keep their state (the Azure stand-in's, Azurite's blobs) and
    /// write `standins.json`, their CA certificates and the Kubernetes stand-in's token.
    #[arg(long)]
    state_dir: PathBuf,
    /// Port of the Azure stand-in (0: a free one).
    #[arg(long, default_value_t = 0)]
    azure_port: u16,
    /// Port of the Kubernetes API stand-in (0: a free one).
    #[arg(long, default_value_t = 0)]
    kube_port: u16,
    /// Port of the OIDC issuer stand-in (0: a free one).
    #[arg(long, default_value_t = 0)]
    oidc_port: u16,
    /// Port of Azurite (0: a free one).
    #[arg(long, default_value_t = 0)]
    azurite_port: u16,
    /// The audience of the OIDC stand-in's tokens (the API's `--oidc-audience`).
    #[arg(long, default_value = "windlass")]
    oidc_audience: String,
    /// How long the Kubernetes stand-in's simulated rollouts take.
    #[arg(long, default_value_t = 200)]
    rollout_delay_ms: u64,
}

pub async fn run(args: StandInsArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("creating {}", args.state_dir.display()))?;
    let dir = args.state_dir.canonicalize()?;
    let loopback = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));

    let azurite_dir = dir.join("azurite");
    std::fs::create_dir_all(&azurite_dir)?;
    // A free port is chosen before Azurite binds it: if something took it meanwhile,
    // another is chosen.
    let mut tries = if args.azurite_port == 0 { 3 } else { 1 };
    let azurite = loop {
        tries -= 1;
        match Azurite::start_in(&azurite_dir, args.azurite_port).await {
            Ok(azurite) => break azurite,
            Err(e) if tries > 0 => tracing::warn!(error = %e, "Azurite did not start; again"),
            Err(e) => return Err(e).context("starting Azurite (scripts/setup.sh installs it)"),
        }
    };
    let kube = KubeStandIn::start(
        KubeStandInConfig {
            addr: loopback(args.kube_port),
            ..KubeStandInConfig::default()
        }
        .with_rollout_delay(Duration::from_millis(args.rollout_delay_ms)),
    )
    .await
    .context("starting the Kubernetes stand-in")?;
    let kube_ca_file = dir.join("kube-standin-ca.pem");
    std::fs::write(&kube_ca_file, kube.ca_cert_pem())?;
    let kube_token_file = dir.join("kube-standin-token");
    crate::dev::write_private(&kube_token_file, kube.token())?;
    // Persisted, so stand-ins started again on this directory know what was created.
    let azure = AzureStandIn::start_with(StandInOptions {
        addr: loopback(args.azure_port),
        persist_path: Some(dir.join("azure-standin.json")),
        blob: Some(azurite.backend()),
        ..StandInOptions::default()
    })
    .await
    .context("starting the Azure stand-in")?;
    let azure_ca_file = dir.join("azure-standin-ca.pem");
    std::fs::write(&azure_ca_file, &azure.ca_cert_pem)?;
    // An AKS cluster's admin credentials are a client certificate of the Kubernetes
    // stand-in, as AKS issues them.
    azure.set_managed_cluster_kubeconfig(
        &kube
            .client_certificate_kubeconfig("clusterAdmin")
            .context("issuing the clusters' admin certificate")?,
    );
    let idp = OidcIssuerStandIn::start(args.oidc_port, &args.oidc_audience)
        .await
        .context("starting the OIDC issuer stand-in")?;
    let addresses = StandInAddresses {
        pid: std::process::id(),
        azure_url: azure.base_url.clone(),
        azure_ca_file,
        kube_url: kube.url().to_owned(),
        kube_ca_file,
        kube_token_file,
        oidc_issuer: idp.issuer.clone(),
        oidc_jwks_uri: idp.jwks_uri.clone(),
        oidc_audience: idp.audience.clone(),
        azurite_endpoint: azurite.endpoint(),
    };
    addresses.write(&dir)?;
    println!(
        "\nStand-ins (not the real services) are listening:\
         \n  Azure (ARM, Graph, Entra)  {} — a stand-in, not Azure; journal: {}/_standin/writes\
         \n  Kubernetes API             {} — a stand-in, not a cluster; helm releases: {}/_standin/releases\
         \n  OIDC issuer                {} — a stand-in; tokens: POST {}/_standin/tokens\
         \n  Azurite (Blob emulator)    {}\
         \n  addresses                  {}\n",
        addresses.azure_url,
        addresses.azure_url,
        addresses.kube_url,
        addresses.kube_url,
        addresses.oidc_issuer,
        addresses.oidc_issuer,
        addresses.azurite_endpoint,
        dir.join(windlass_standins::addresses::ADDRESSES_FILE)
            .display(),
    );
    tracing::info!(state_dir = %dir.display(), "stand-ins serving");

    crate::serve::shutdown_signal().await;
    drop(azure);
    drop(idp);
    kube.shutdown().await;
    azurite.stop().await;
    Ok(())
}
