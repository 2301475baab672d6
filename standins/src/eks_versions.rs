//! A stand-in for one EKS call moto does not serve: `DescribeClusterVersions`
//! (`GET /cluster-versions`), in the REST-JSON shape of the EKS API, with the versions a
//! test sets. Every other AWS call goes to moto. Not EKS.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

type Versions = Arc<Mutex<Vec<String>>>;

pub struct EksVersionsStandIn {
    addr: SocketAddr,
    versions: Versions,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for EksVersionsStandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl EksVersionsStandIn {
    /// Offers `versions` (`major.minor`, in standard support) until told otherwise.
    pub async fn start(versions: &[&str]) -> std::io::Result<Self> {
        Self::start_on(versions, 0).await
    }

    /// As [`EksVersionsStandIn::start`], on `127.0.0.1:port` (`0`: any free port).
    pub async fn start_on(versions: &[&str], port: u16) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let versions: Versions = Arc::new(Mutex::new(
            versions.iter().map(|v| (*v).to_owned()).collect(),
        ));
        let app = Router::new()
            .route("/cluster-versions", get(list))
            .with_state(versions.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        tracing::info!(%addr, "EKS versions stand-in (not EKS) listening");
        Ok(Self {
            addr,
            versions,
            server,
        })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_versions(&self, versions: &[&str]) {
        *self.versions.lock().unwrap_or_else(|p| p.into_inner()) =
            versions.iter().map(|v| (*v).to_owned()).collect();
    }
}

async fn list(State(versions): State<Versions>) -> axum::Json<Value> {
    let versions = versions.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let entries: Vec<Value> = versions
        .iter()
        .map(|version| {
            json!({
                "clusterVersion": version,
                "clusterType": "eks",
                "defaultPlatformVersion": "eks.1",
                "defaultVersion": false,
                "status": "STANDARD_SUPPORT",
                "versionStatus": "STANDARD_SUPPORT",
                "kubernetesPatchVersion": format!("{version}.0"),
            })
        })
        .collect();
    axum::Json(json!({ "clusterVersions": entries }))
}
