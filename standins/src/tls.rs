//! Loopback TLS for the stand-ins, with a throwaway CA generated at start-up that
//! clients trust explicitly; nothing is installed system-wide.
//!
//! The clients insist on TLS: azure_core refuses to attach bearer tokens to non-HTTPS
//! URLs and azure_identity refuses non-HTTPS authority hosts; client-go (helm, kubectl)
//! only sends kubeconfig credentials over TLS. Accepting stops when the server does, so
//! clients of a stopped stand-in see "connection refused".

use std::{io, net::SocketAddr, sync::Arc, time::Duration};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

/// A freshly generated CA plus a leaf certificate for 127.0.0.1/localhost.
pub(crate) struct LoopbackTls {
    pub ca_pem: String,
    pub config: Arc<rustls::ServerConfig>,
}

/// `ca_name` and `leaf_name` say which stand-in this is (and that it is not the real
/// service) to anyone inspecting the certificate.
pub(crate) fn generate(ca_name: &str, leaf_name: &str) -> io::Result<LoopbackTls> {
    generate_with_client_ca(ca_name, leaf_name, None)
}

/// As [`generate`]; with `client_ca`, clients may also present a certificate, which is
/// verified against that CA (an unverifiable one fails the handshake, as on a real API
/// server); clients without one still connect (bearer tokens).
pub(crate) fn generate_with_client_ca(
    ca_name: &str,
    leaf_name: &str,
    client_ca: Option<CertificateDer<'static>>,
) -> io::Result<LoopbackTls> {
    let err = |e: rcgen::Error| io::Error::other(e.to_string());

    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().map_err(err)?;
    let mut leaf_params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .map_err(err)?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, leaf_name);
    let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer).map_err(err)?;

    let chain: Vec<CertificateDer<'static>> = vec![leaf_cert.der().clone(), ca_cert.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    // Explicit provider: the workspace may compile more than one rustls
    // backend, and the process-wide default would then be ambiguous.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca).map_err(io::Error::other)?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .map_err(io::Error::other)?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(io::Error::other)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];

    Ok(LoopbackTls {
        ca_pem: ca_cert.pem(),
        config: Arc::new(config),
    })
}

/// An axum listener whose handshakes run concurrently, so one stalled client
/// cannot block the accept loop.
pub(crate) struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<tokio::net::TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub(crate) fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let local = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                // Stop accepting (and release the port) once the server is gone,
                // so clients of a stopped stand-in see "connection refused".
                let accepted = tokio::select! {
                    accepted = tcp.accept() => accepted,
                    () = tx.closed() => break,
                };
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::debug!(error = %e, "stand-in accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let conn_tx = tx.clone();
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(tls)) => {
                            let _ = conn_tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "stand-in TLS handshake failed"),
                        Err(_) => tracing::debug!("stand-in TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { rx, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept task only ends when the server is gone; park forever.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
