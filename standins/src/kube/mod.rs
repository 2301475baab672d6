//! A local **stand-in** for a Kubernetes API server. It is not Kubernetes:
//! there is no scheduler, no kubelet and no pods. It keeps objects in memory,
//! follows the published REST protocol (discovery, CRUD, list with selectors,
//! watch, merge/strategic/JSON patch and server-side apply) closely enough for
//! the real `helm` and `kubectl` binaries to run against it, and simulates the
//! workload controllers: a Deployment, StatefulSet, DaemonSet or Job reports
//! ready a configurable delay after each spec change, unless one of its images
//! contains the configured failure marker, in which case it never does (as with
//! pods stuck in `ImagePullBackOff`).
//!
//! HTTPS on loopback (a throwaway CA). Clients authenticate as on real clusters: a
//! bearer token ([`KubeStandIn::kubeconfig`]), a client certificate signed by the
//! stand-in's client CA ([`KubeStandIn::client_certificate_kubeconfig`], like an AKS
//! admin kubeconfig) or an exec plugin printing an `ExecCredential`
//! ([`KubeStandIn::exec_kubeconfig`], like kubelogin or `aws eks get-token`).
//! Test-only control under `/_standin/...`.

mod api;
mod control;
mod credentials;
mod eks_tokens;
mod faults;
mod managed;
mod patch;
mod proto;
pub mod registry;
mod rollout;
pub mod select;
pub mod store;
pub mod validate;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::{
    Router,
    body::Bytes,
    extract::{ConnectInfo, OriginalUri, Query, State},
    http::{HeaderMap, Method, header},
    response::Response,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use store::{ApiError, Rollout, Store};
pub use store::{ImageDelay, RequestRecord, Settings};

/// How to start the stand-in.
#[derive(Debug, Clone)]
pub struct KubeStandInConfig {
    /// Must be a loopback address; port 0 picks a free one.
    pub addr: SocketAddr,
    /// The bearer token clients must present; random when `None`.
    pub token: Option<String>,
    pub settings: Settings,
}

impl Default for KubeStandInConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            token: None,
            settings: Settings::default(),
        }
    }
}

impl KubeStandInConfig {
    pub fn with_rollout_delay(mut self, delay: Duration) -> Self {
        self.settings.rollout_delay_ms = delay.as_millis() as u64;
        self
    }

    pub fn with_fail_image_marker(mut self, marker: Option<&str>) -> Self {
        self.settings.fail_image_marker = marker.map(String::from);
        self
    }
}

/// A helm release revision as its storage Secret's labels describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelmReleaseRecord {
    pub name: String,
    pub namespace: String,
    pub revision: u32,
    /// `deployed`, `superseded`, `failed`, `pending-upgrade`, ...
    pub status: String,
}

#[derive(Clone)]
pub(crate) struct Shared {
    store: Arc<Mutex<Store>>,
    token: Arc<str>,
    credentials: Arc<credentials::Credentials>,
    eks_tokens: Arc<eks_tokens::EksTokens>,
}

impl Shared {
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let mut guard = self.store.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// The simulated controller: after the rollout delay, the workload reports
    /// the status its pods would give it, unless it changed again meanwhile.
    pub(crate) fn schedule_rollout(&self, (rt, ns, name, generation): Rollout) {
        let delay = self.with(|s| match s.get(&rt, &ns, &name) {
            Some(obj) => {
                // The Deployment controller sees a new spec at once and starts the
                // rolling update; only the pods take time.
                if rt.kind == "Deployment"
                    && obj["metadata"]["generation"].as_i64() == Some(generation)
                {
                    let status = rollout::rolling_deployment(&obj, &obj["status"]);
                    s.set_status(&rt, &ns, &name, status);
                }
                s.settings.rollout_delay(&obj)
            }
            None => Duration::from_millis(s.settings.rollout_delay_ms),
        });
        let shared = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            shared.with(|s| {
                let Some(obj) = s.get(&rt, &ns, &name) else {
                    return;
                };
                if obj["metadata"]["generation"].as_i64() != Some(generation) {
                    return;
                }
                let fails =
                    rollout::has_image_containing(&obj, s.settings.fail_image_marker.as_deref());
                let job_fails = rt.kind == "Job"
                    && rollout::has_image_containing(
                        &obj,
                        s.settings.job_failure_marker.as_deref(),
                    );
                if job_fails {
                    s.set_status(&rt, &ns, &name, rollout::failed_job(&obj, false));
                    shared.schedule_job_failed((rt.clone(), ns.clone(), name.clone(), generation));
                    return;
                }
                if fails && rt.kind == "Deployment" {
                    // Stuck: the new pods never become ready; the old ones stay.
                    let status = rollout::rolling_deployment(&obj, &obj["status"]);
                    s.set_status(&rt, &ns, &name, status);
                } else if let Some(status) = rollout::settled_status(&rt.kind, &obj, fails) {
                    s.set_status(&rt, &ns, &name, status);
                }
                if fails && rt.kind == "Deployment" {
                    shared.schedule_progress_deadline(
                        (rt.clone(), ns.clone(), name.clone(), generation),
                        &obj,
                    );
                }
            });
        });
    }

    /// A failing Job's `Failed` condition follows `FailureTarget` once its pods are gone.
    fn schedule_job_failed(&self, (rt, ns, name, generation): Rollout) {
        let shared = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            shared.with(|s| {
                let Some(obj) = s.get(&rt, &ns, &name) else {
                    return;
                };
                if obj["metadata"]["generation"].as_i64() == Some(generation) {
                    s.set_status(&rt, &ns, &name, rollout::failed_job(&obj, true));
                }
            });
        });
    }

    /// Removes a `Terminating` namespace once its termination time has passed.
    pub(crate) fn schedule_namespace_finalization(&self, name: &str) {
        let delay = self.with(|s| Duration::from_millis(s.settings.namespace_termination_ms));
        let (shared, name) = (self.clone(), name.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            shared.with(|s| s.finalize_namespace(&name));
        });
    }

    /// As the real controller does, a Deployment that has not progressed within its
    /// `progressDeadlineSeconds` (default 600) is marked `ProgressDeadlineExceeded`.
    fn schedule_progress_deadline(&self, (rt, ns, name, generation): Rollout, obj: &Value) {
        let deadline = obj["spec"]["progressDeadlineSeconds"]
            .as_u64()
            .unwrap_or(600);
        let shared = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(deadline)).await;
            shared.with(|s| {
                let Some(obj) = s.get(&rt, &ns, &name) else {
                    return;
                };
                if obj["metadata"]["generation"].as_i64() != Some(generation) {
                    return;
                }
                let status = rollout::deadline_exceeded(&obj);
                s.set_status(&rt, &ns, &name, status);
            });
        });
    }
}

/// Handle to a running stand-in. Dropping it stops the server.
pub struct KubeStandIn {
    url: String,
    ca_pem: String,
    addr: SocketAddr,
    shared: Shared,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for KubeStandIn {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.abort();
        }
    }
}

impl KubeStandIn {
    /// Starts on the current tokio runtime.
    pub async fn start(config: KubeStandInConfig) -> std::io::Result<KubeStandIn> {
        if !config.addr.ip().is_loopback() {
            return Err(std::io::Error::other(
                "the Kubernetes stand-in only listens on loopback addresses",
            ));
        }
        let tcp = tokio::net::TcpListener::bind(config.addr).await?;
        let addr = tcp.local_addr()?;
        let url = format!("https://{addr}");
        let credentials = Arc::new(credentials::Credentials::new()?);
        let tls = crate::tls::generate_with_client_ca(
            "Windlass Kubernetes stand-in CA (not Kubernetes)",
            "windlass-kube-standin",
            Some(credentials.ca_der()),
        )?;
        let token = config
            .token
            .unwrap_or_else(|| format!("standin-{}", uuid::Uuid::new_v4().simple()));
        let shared = Shared {
            store: Arc::new(Mutex::new(Store::new(config.settings))),
            token: token.into(),
            credentials,
            eks_tokens: Arc::default(),
        };
        let app = Router::new()
            .nest("/_standin", control::routes())
            .fallback(dispatch)
            .with_state(shared.clone());
        let listener = crate::tls::TlsListener::new(tcp, tls.config)?;
        let server = tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<credentials::Peer>();
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "Kubernetes stand-in stopped");
            }
        });
        tracing::info!(%url, "Kubernetes API stand-in (not Kubernetes) listening");
        Ok(KubeStandIn {
            url,
            ca_pem: tls.ca_pem,
            addr,
            shared,
            server: Some(server),
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Accept EKS's tokens (`k8s-aws-v1.`, what `aws eks get-token` prints) presigned
    /// for `sts_endpoint`, verified by calling it as EKS's authenticator does.
    pub fn accept_eks_tokens_from(&self, sts_endpoint: &str) -> std::io::Result<()> {
        self.shared
            .eks_tokens
            .accept_from(sts_endpoint)
            .map_err(std::io::Error::other)
    }

    /// Who signed each EKS token the stand-in verified (STS's Arn), in order.
    pub fn eks_token_callers(&self) -> Vec<String> {
        self.shared.eks_tokens.callers()
    }

    /// The bearer token the stand-in accepts.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// PEM of the throwaway CA that signed the stand-in's certificate.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A kubeconfig (YAML) with one context pointing at the stand-in: its URL,
    /// its CA and the bearer token. It holds a credential: keep it out of logs.
    pub fn kubeconfig(&self) -> String {
        kubeconfig(&self.url, &self.ca_pem, &self.shared.token)
    }

    /// A kubeconfig authenticating with a client certificate for `user` (group
    /// `system:masters`) signed by the stand-in's client CA, as an AKS admin kubeconfig
    /// does. It holds a private key: keep it out of logs.
    pub fn client_certificate_kubeconfig(&self, user: &str) -> std::io::Result<String> {
        use base64::Engine as _;
        let issued = self.shared.credentials.issue(user, "system:masters")?;
        let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
        Ok(kubeconfig_for(
            &self.url,
            &self.ca_pem,
            &format!(
                "    client-certificate-data: {}\n    client-key-data: {}",
                b64(&issued.certificate_pem),
                b64(&issued.key_pem)
            ),
        ))
    }

    /// A kubeconfig whose user runs an exec plugin (written into `dir`) that prints an
    /// `ExecCredential`, as EKS (`aws eks get-token`) and AKS with Entra ID (kubelogin)
    /// kubeconfigs do. The token it prints is accepted from now on.
    pub fn exec_kubeconfig(&self, dir: &std::path::Path) -> std::io::Result<String> {
        let token = self.shared.credentials.exec_token();
        let plugin = credentials::write_exec_plugin(dir, &token)?;
        Ok(kubeconfig_for(
            &self.url,
            &self.ca_pem,
            &format!(
                "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      args: [\"eks\", \"get-token\", \"--cluster-name\", \"windlass-standin\"]\n      interactiveMode: Never\n      provideClusterInfo: false",
                plugin.display()
            ),
        ))
    }

    pub fn settings(&self) -> Settings {
        self.shared.with(|s| s.settings.clone())
    }

    /// Applies to rollouts started from now on.
    pub fn set_rollout_delay(&self, delay: Duration) {
        self.shared
            .with(|s| s.settings.rollout_delay_ms = delay.as_millis() as u64);
    }

    /// Per-image rollout times, for rollouts started from now on.
    pub fn set_image_delays(&self, rules: Vec<ImageDelay>) {
        self.shared.with(|s| s.settings.image_delays = rules);
    }

    /// Changes any setting (failure injection, timings) for what follows.
    pub fn update_settings(&self, change: impl FnOnce(&mut Settings)) {
        self.shared.with(|s| change(&mut s.settings));
    }

    pub fn set_fail_image_marker(&self, marker: Option<&str>) {
        self.shared
            .with(|s| s.settings.fail_image_marker = marker.map(String::from));
    }

    /// One object, by kind (`Deployment`) or plural (`deployments`); `namespace`
    /// is ignored for cluster-scoped kinds.
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        self.shared.with(|s| {
            s.find_by_name(kind)
                .and_then(|rt| s.get(&rt, namespace, name))
        })
    }

    /// Objects of a kind, in one namespace or (`None`) all of them.
    pub fn list(&self, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        self.shared.with(|s| {
            s.find_by_name(kind)
                .map(|rt| s.list(&rt, namespace, &Default::default(), &Default::default()))
                .unwrap_or_default()
        })
    }

    /// Helm release revisions stored in `namespace`, oldest first per release.
    pub fn helm_releases(&self, namespace: &str) -> Vec<HelmReleaseRecord> {
        helm_releases(&self.list("Secret", Some(namespace)))
    }

    /// Requests answered so far (method, path and query, status).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.with(|s| s.requests.iter().cloned().collect())
    }

    /// Stops accepting connections and waits for the server task to end.
    pub async fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
    }
}

pub(crate) fn helm_releases(secrets: &[Value]) -> Vec<HelmReleaseRecord> {
    let mut out: Vec<HelmReleaseRecord> = secrets
        .iter()
        .filter(|s| s["metadata"]["labels"]["owner"] == "helm")
        .filter_map(|s| {
            let labels = &s["metadata"]["labels"];
            Some(HelmReleaseRecord {
                name: labels["name"].as_str()?.to_string(),
                namespace: s["metadata"]["namespace"].as_str()?.to_string(),
                revision: labels["version"].as_str()?.parse().ok()?,
                status: labels["status"].as_str()?.to_string(),
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.name, a.revision).cmp(&(&b.name, b.revision)));
    out
}

fn kubeconfig(url: &str, ca_pem: &str, token: &str) -> String {
    kubeconfig_for(url, ca_pem, &format!("    token: {token}"))
}

/// A kubeconfig with one context; `user` is the user's fields, indented four spaces.
fn kubeconfig_for(url: &str, ca_pem: &str, user: &str) -> String {
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: windlass-kube-standin
  cluster:
    server: {url}
    certificate-authority-data: {ca}
users:
- name: windlass
  user:
{user}
contexts:
- name: windlass-kube-standin
  context:
    cluster: windlass-kube-standin
    user: windlass
    namespace: default
current-context: windlass-kube-standin
"
    )
}

async fn dispatch(
    State(shared): State<Shared>,
    ConnectInfo(peer): ConnectInfo<credentials::Peer>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let open = matches!(path.as_str(), "/healthz" | "/readyz" | "/livez");
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let mut authenticated = open
        || presented == Some(&*shared.token)
        || presented.is_some_and(|t| shared.credentials.accepts_token(t))
        || peer
            .certificate
            .as_ref()
            .is_some_and(|der| shared.credentials.accepts_certificate(der));
    if !authenticated
        && let Some(token) = presented.filter(|t| eks_tokens::EksTokens::is_eks_token(t))
    {
        match shared.eks_tokens.verify(token).await {
            Ok(arn) => {
                tracing::debug!(%arn, "EKS token verified");
                authenticated = true;
            }
            Err(reason) => tracing::info!(%reason, "EKS token refused"),
        }
    }
    let response = if authenticated {
        api::handle(&shared, &method, &path, &query, &headers, body).await
    } else {
        api::error_reply(&ApiError::new(401, "Unauthorized", "Unauthorized"))
    };
    let status = response.status().as_u16();
    tracing::debug!(%method, uri = %uri, status, "kube stand-in request");
    shared.with(|s| {
        s.record(RequestRecord {
            method: method.to_string(),
            uri: uri.to_string(),
            status,
        })
    });
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn release_records_come_from_helm_secret_labels() {
        let secrets = vec![
            json!({"metadata": {"namespace": "apps", "labels": {"owner": "helm", "name": "web", "version": "2", "status": "pending-upgrade"}}}),
            json!({"metadata": {"namespace": "apps", "labels": {"owner": "helm", "name": "web", "version": "1", "status": "deployed"}}}),
            json!({"metadata": {"namespace": "apps", "labels": {"owner": "someone"}}}),
        ];
        let records = helm_releases(&secrets);
        assert_eq!(records.len(), 2);
        assert_eq!(
            (records[0].revision, records[0].status.as_str()),
            (1, "deployed")
        );
        assert_eq!(
            (records[1].revision, records[1].status.as_str()),
            (2, "pending-upgrade")
        );
    }
}
