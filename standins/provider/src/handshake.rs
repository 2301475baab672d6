//! go-plugin's side of the handshake, as Terraform's plugin client expects it:
//!
//! - Terraform sets `TF_PLUGIN_MAGIC_COOKIE` (so a plugin run by hand can say it is one)
//!   and `PLUGIN_PROTOCOL_VERSIONS` (the protocol majors it speaks; this one speaks 6);
//! - with AutoMTLS, `PLUGIN_CLIENT_CERT` holds the PEM certificate Terraform will present:
//!   the plugin makes its own self-signed certificate (valid for `localhost`, the name
//!   Terraform checks), requires exactly that client certificate, and puts its own (DER,
//!   base64 without padding) in the handshake line's sixth field;
//! - the line `1|6|tcp|127.0.0.1:PORT|grpc|CERT` on stdout says where to connect.

use std::sync::Arc;

use anyhow::Context;
use base64::Engine;
use rustls::DigitallySignedStruct;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};

/// Terraform's provider handshake cookie (the same for every provider).
const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
const MAGIC_COOKIE_VALUE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
const PROTOCOL_VERSION: &str = "6";

pub struct Handshake {
    /// Terraform's client certificate, when it asked for mutual TLS.
    client_cert: Option<CertificateDer<'static>>,
}

impl Handshake {
    pub fn from_env() -> Result<Self, String> {
        if std::env::var(MAGIC_COOKIE_KEY).as_deref() != Ok(MAGIC_COOKIE_VALUE) {
            return Err("This binary is a terraform provider plugin: terraform starts it.".into());
        }
        let versions = std::env::var("PLUGIN_PROTOCOL_VERSIONS").unwrap_or_default();
        if !versions.split(',').any(|v| v.trim() == PROTOCOL_VERSION) {
            return Err(format!(
                "terraform offers plugin protocol versions {versions:?}; this provider speaks only {PROTOCOL_VERSION}"
            ));
        }
        let client_cert = match std::env::var("PLUGIN_CLIENT_CERT") {
            Ok(pem) if !pem.trim().is_empty() => Some(
                CertificateDer::from_pem_slice(pem.as_bytes())
                    .map_err(|e| format!("PLUGIN_CLIENT_CERT is no PEM certificate: {e}"))?,
            ),
            _ => None,
        };
        Ok(Self { client_cert })
    }

    /// The TLS configuration to serve with (None: plaintext, when Terraform asked for no
    /// TLS), and the handshake line's certificate field.
    pub fn tls(&self) -> anyhow::Result<(Option<Arc<rustls::ServerConfig>>, String)> {
        let Some(client_cert) = &self.client_cert else {
            return Ok((None, String::new()));
        };
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()])?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
            rcgen::KeyUsagePurpose::KeyCertSign,
        ];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.self_signed(&key)?;
        let cert_der = cert.der().clone();
        let field = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&cert_der);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = Arc::new(ExactClientCert {
            expected: client_cert.clone(),
            algorithms: provider.signature_verification_algorithms,
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![cert_der],
                PrivateKeyDer::try_from(key.serialize_der())
                    .map_err(|e| anyhow::anyhow!("the generated key: {e}"))?,
            )
            .context("the plugin's TLS configuration")?;
        // gRPC-Go refuses a TLS server that does not negotiate HTTP/2 by ALPN.
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok((Some(Arc::new(config)), field))
    }
}

/// Writes the handshake line Terraform waits for.
pub fn announce(addr: std::net::SocketAddr, cert_field: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "1|{PROTOCOL_VERSION}|tcp|{addr}|grpc|{cert_field}")?;
    stdout.flush()
}

/// go-plugin's client certificate is self-signed and a CA, which WebPKI path building
/// refuses as an end entity; the plugin's rule is simpler: the peer must present exactly
/// the certificate Terraform announced, and prove it holds its key.
#[derive(Debug)]
struct ExactClientCert {
    expected: CertificateDer<'static>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for ExactClientCert {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.expected.as_ref() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
