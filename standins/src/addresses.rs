//! Where `windlass standins` (the stand-ins in a process of their own) listens and keeps
//! what a test in another process reads: written once everything listens, as
//! `standins.json` in its state directory.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file, in the state directory, holding [`StandInAddresses`].
pub const ADDRESSES_FILE: &str = "standins.json";

/// Every stand-in's address and the files clients need to trust and reach them. The
/// stand-ins' own journals: `{azure_url}/_standin/writes` (creations and updates per ARM
/// resource) and `{kube_url}/_standin/releases?namespace=...` (helm release revisions,
/// from helm's own storage Secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandInAddresses {
    /// The process serving them.
    pub pid: u32,
    /// ARM, Graph and the Entra token endpoint (one HTTPS origin); not Azure.
    pub azure_url: String,
    /// PEM of the CA the Azure stand-in's certificate is signed by.
    pub azure_ca_file: PathBuf,
    /// The Kubernetes API stand-in (HTTPS); not a cluster.
    pub kube_url: String,
    pub kube_ca_file: PathBuf,
    /// The bearer token it accepts (mode 0600).
    pub kube_token_file: PathBuf,
    /// The OIDC issuer stand-in people "sign in" with; `POST {oidc_issuer}/_standin/tokens`
    /// mints a token.
    pub oidc_issuer: String,
    pub oidc_jwks_uri: String,
    pub oidc_audience: String,
    /// Azurite (the real Blob emulator) behind the stand-in's storage accounts.
    pub azurite_endpoint: String,
}

impl StandInAddresses {
    /// Writes them into `dir` whole (a reader never sees half a file).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let tmp = dir.join(format!("{ADDRESSES_FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(tmp, dir.join(ADDRESSES_FILE))
    }

    /// What the stand-ins in `dir` wrote, once they listen; `None` before.
    pub fn read(dir: &Path) -> std::io::Result<Option<Self>> {
        match std::fs::read(dir.join(ADDRESSES_FILE)) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}
