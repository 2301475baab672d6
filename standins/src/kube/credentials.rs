//! The credentials real clusters hand out, besides a static bearer token: client
//! certificates (the AKS admin kubeconfig, kubeadm's) signed by the cluster's client CA,
//! and exec plugins (kubelogin on AKS, `aws eks get-token` on EKS) that print an
//! `ExecCredential` whose token the API server accepts.
//!
//! The stand-in verifies a client certificate against its client CA during the TLS
//! handshake (see `tls::generate_with_client_ca`); a request is authenticated by a
//! verified certificate the stand-in issued, or by an accepted token.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::serve::IncomingStream;
use base64::Engine as _;
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::CertificateDer;

use crate::tls::TlsListener;

/// The stand-in's client CA and what it accepts.
pub(crate) struct Credentials {
    ca: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
    /// DER of every client certificate issued (a verified certificate must be one).
    issued: Mutex<HashSet<Vec<u8>>>,
    /// Tokens exec plugins print.
    exec_tokens: Mutex<HashSet<String>>,
}

/// A client certificate and its key, PEM.
pub struct ClientCertificate {
    pub certificate_pem: String,
    pub key_pem: String,
}

impl Credentials {
    pub(crate) fn new() -> std::io::Result<Self> {
        let err = |e: rcgen::Error| std::io::Error::other(e.to_string());
        let key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(
            DnType::CommonName,
            "Windlass Kubernetes stand-in client CA (not Kubernetes)",
        );
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).map_err(err)?;
        Ok(Self {
            ca_der: cert.der().clone(),
            ca: Issuer::new(params, key),
            issued: Mutex::default(),
            exec_tokens: Mutex::default(),
        })
    }

    pub(crate) fn ca_der(&self) -> CertificateDer<'static> {
        self.ca_der.clone()
    }

    /// A client certificate for `user` in `group` (`system:masters` for an admin).
    pub(crate) fn issue(&self, user: &str, group: &str) -> std::io::Result<ClientCertificate> {
        let err = |e: rcgen::Error| std::io::Error::other(e.to_string());
        let key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.distinguished_name.push(DnType::CommonName, user);
        params
            .distinguished_name
            .push(DnType::OrganizationName, group);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.ca).map_err(err)?;
        self.issued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(cert.der().to_vec());
        Ok(ClientCertificate {
            certificate_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A fresh token in the shape `aws eks get-token` prints, accepted from now on.
    pub(crate) fn exec_token(&self) -> String {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            "https://sts.amazonaws.com/?Action=GetCallerIdentity&X-Amz-Standin={}",
            uuid::Uuid::new_v4().simple()
        ));
        let token = format!("k8s-aws-v1.{payload}");
        self.exec_tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.clone());
        token
    }

    pub(crate) fn accepts_token(&self, token: &str) -> bool {
        self.exec_tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(token)
    }

    pub(crate) fn accepts_certificate(&self, der: &[u8]) -> bool {
        self.issued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(der)
    }
}

/// The client certificate a connection presented (already verified against the client
/// CA by the TLS handshake), for the handlers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Peer {
    pub certificate: Option<Arc<Vec<u8>>>,
}

impl axum::extract::connect_info::Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        let (_, connection) = stream.io().get_ref();
        Peer {
            certificate: connection
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|c| Arc::new(c.to_vec())),
        }
    }
}

/// Writes an exec plugin into `dir`: a script printing an `ExecCredential` with `token`,
/// as `aws eks get-token` and kubelogin do. Returns its path.
pub(crate) fn write_exec_plugin(dir: &Path, token: &str) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("windlass-standin-get-token");
    let credential = serde_json::json!({
        "kind": "ExecCredential",
        "apiVersion": "client.authentication.k8s.io/v1",
        "spec": {},
        "status": {"token": token, "expirationTimestamp": "2099-01-01T00:00:00Z"},
    });
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\n# A stand-in for `aws eks get-token` / kubelogin: prints an ExecCredential.\n\
             cat <<'EOF'\n{credential}\nEOF\n"
        ),
    )?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))?;
    Ok(path)
}
