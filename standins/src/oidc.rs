//! A local **stand-in** for an OIDC identity provider: an ES256 signing key made at start,
//! its JWKS served on loopback, and tokens issued for any subject and groups. It is what
//! an IdP looks like to Windlass's token verifier, not an IdP.
//!
//! Tokens are minted in process ([`OidcIssuerStandIn::token`]) or, for a test in another
//! process than `windlass standins`, by `POST /_standin/tokens`
//! (`{"subject": "...", "groups": [...], "lifetime_seconds": 3600}`), unauthenticated
//! because it only listens on loopback.

use std::net::SocketAddr;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

pub struct OidcIssuerStandIn {
    /// The `iss` of its tokens.
    pub issuer: String,
    pub jwks_uri: String,
    pub audience: String,
    pkcs8: Vec<u8>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for OidcIssuerStandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl OidcIssuerStandIn {
    /// Starts on 127.0.0.1 (port 0 picks one) on the current tokio runtime.
    pub async fn start(port: u16, audience: &str) -> std::io::Result<Self> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| std::io::Error::other("generating the issuer's key"))?
                .as_ref()
                .to_vec();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
            .map_err(|_| std::io::Error::other("loading the issuer's key"))?;
        let point = pair.public_key().as_ref().to_vec();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "standin-1",
            "alg": "ES256", "use": "sig", "x": b64(&point[1..33]), "y": b64(&point[33..65])}]});
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
        let base = format!("http://{}", listener.local_addr()?);
        // OIDC discovery too, so it can also stand in for a workload-identity issuer that
        // Entra ID (its stand-in) reads keys from.
        let discovery = json!({"issuer": base, "jwks_uri": format!("{base}/jwks"),
            "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"]});
        let minter = std::sync::Arc::new((pkcs8.clone(), base.clone(), audience.to_owned()));
        let app = axum::Router::new()
            .route(
                "/_standin/tokens",
                axum::routing::post(move |axum::Json(request): axum::Json<TokenRequest>| {
                    let minter = minter.clone();
                    async move {
                        let (pkcs8, issuer, audience) = &*minter;
                        let now = jsonwebtoken::get_current_timestamp();
                        let claims = json!({"iss": issuer, "aud": audience,
                            "sub": request.subject, "iat": now,
                            "exp": now + request.lifetime_seconds, "groups": request.groups});
                        axum::Json(json!({"token": sign(pkcs8, &claims)}))
                    }
                }),
            )
            .route(
                "/jwks",
                axum::routing::get(move || {
                    let jwks = jwks.clone();
                    async move { axum::Json(jwks) }
                }),
            )
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || {
                    let discovery = discovery.clone();
                    async move { axum::Json(discovery) }
                }),
            );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            issuer: base.clone(),
            jwks_uri: format!("{base}/jwks"),
            audience: audience.to_owned(),
            pkcs8,
            server,
        })
    }

    /// A token for `subject` in `groups`, valid for `lifetime_secs`.
    pub fn token(&self, subject: &str, groups: &[&str], lifetime_secs: u64) -> String {
        self.token_claiming(&self.issuer, &self.audience, subject, groups, lifetime_secs)
    }

    /// A token signed with this issuer's key that claims to come from `issuer` for
    /// `audience`: what an attacker who runs their own IdP can mint, for tests that show
    /// such tokens get nowhere.
    pub fn token_claiming(
        &self,
        issuer: &str,
        audience: &str,
        subject: &str,
        groups: &[&str],
        lifetime_secs: u64,
    ) -> String {
        let now = jsonwebtoken::get_current_timestamp();
        self.sign(&json!({"iss": issuer, "aud": audience, "sub": subject,
            "iat": now, "exp": now + lifetime_secs, "groups": groups}))
    }

    /// A federated client assertion for `subject` with audience `audience`, expiring
    /// `expires_in_secs` from now (negative: already expired).
    pub fn assertion(&self, subject: &str, audience: &str, expires_in_secs: i64) -> String {
        let now = jsonwebtoken::get_current_timestamp() as i64;
        self.sign(&json!({"iss": self.issuer, "aud": audience, "sub": subject,
            "iat": now.min(now + expires_in_secs), "exp": now + expires_in_secs}))
    }

    /// Any claims, signed with the issuer's key.
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        sign(&self.pkcs8, claims)
    }
}

/// `POST /_standin/tokens`: a sign-in token for a test in another process.
#[derive(serde::Deserialize)]
struct TokenRequest {
    subject: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default = "default_lifetime")]
    lifetime_seconds: u64,
}

fn default_lifetime() -> u64 {
    3600
}

fn sign(pkcs8: &[u8], claims: &serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("standin-1".into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(pkcs8))
        .expect("ES256 signing with a freshly generated key")
}
