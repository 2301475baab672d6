//! Federated identity: OIDC bearer tokens (RS256 or ES256) from configured issuers,
//! verified against each issuer's JWKS. There are no passwords anywhere in Windlass.
//!
//! Keys are cached per issuer; an unknown `kid` (the IdP rotated its keys) triggers one
//! refetch, rate-limited so a flood of forged kids cannot turn into a flood of fetches.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::RwLock;

#[derive(Debug, Clone)]
pub struct TrustedIssuer {
    /// Exactly the `iss` claim the IdP puts in its tokens.
    pub issuer: String,
    /// The `aud` Windlass is registered as at this IdP.
    pub audience: String,
    pub jwks_uri: String,
}

/// Why a token was refused. The variants are for logs and tests; callers answer every one
/// of them with the same 401, so a prober learns nothing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("not a well-formed JWT")]
    Malformed,
    #[error("issuer is not trusted")]
    UnknownIssuer,
    #[error("algorithm not allowed (RS256 and ES256 only)")]
    Algorithm,
    #[error("no key with this kid in the issuer's JWKS")]
    UnknownKey,
    #[error("signature does not verify")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token is for another audience")]
    Audience,
    #[error("token is missing a required claim")]
    Claims,
    #[error("the issuer's keys could not be fetched: {0}")]
    JwksUnavailable(String),
}

/// Who the caller is: a pseudonymous id, never a name or an email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `user:` + a hash of (issuer, subject) for Windlass's own sign-in, or of
    /// (organisation, issuer, subject) for an organisation's connection: stable per
    /// person, meaningless outside.
    pub subject: String,
    pub issuer: String,
    /// The organisation connection that verified the token; `None` for Windlass's own
    /// sign-in. Such an identity acts in that connection's organisation only.
    pub connection: Option<OrganizationConnection>,
    /// IdP groups, mapped to roles by the connection's group mappings.
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrganizationConnection {
    pub organization_id: uuid::Uuid,
    pub connection_id: uuid::Uuid,
}

#[derive(Debug, Deserialize)]
struct Claims {
    iss: String,
    sub: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct UnverifiedIssuer {
    iss: Option<String>,
}

struct CachedKeys {
    keys: JwkSet,
    fetched_at: Instant,
}

pub struct OidcVerifier {
    issuers: Vec<TrustedIssuer>,
    http: reqwest::Client,
    cache: RwLock<HashMap<String, CachedKeys>>,
    /// Clock skew tolerated on exp/nbf.
    leeway: Duration,
    /// Keys are refreshed after this even without a kid miss.
    max_key_age: Duration,
    /// At most one refetch per issuer within this window.
    min_refetch_interval: Duration,
}

impl Default for OidcVerifier {
    /// Trusts no issuer of its own: only organisations' connections.
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl OidcVerifier {
    pub fn new(issuers: Vec<TrustedIssuer>) -> Self {
        Self {
            issuers,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            cache: RwLock::new(HashMap::new()),
            leeway: Duration::from_secs(60),
            max_key_age: Duration::from_secs(3600),
            min_refetch_interval: Duration::from_secs(30),
        }
    }

    pub fn with_min_refetch_interval(mut self, interval: Duration) -> Self {
        self.min_refetch_interval = interval;
        self
    }

    /// Whether `issuer` is one of Windlass's own sign-in issuers.
    pub fn is_platform_issuer(&self, issuer: &str) -> bool {
        self.issuers.iter().any(|i| i.issuer == issuer)
    }

    /// A token from Windlass's own sign-in issuers.
    pub async fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        let claimed = claimed_issuer(token)?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.issuer == claimed)
            .ok_or(TokenError::UnknownIssuer)?;
        let (iss, sub, groups) = self.verify_with(token, issuer).await?;
        Ok(Identity {
            subject: pseudonymous_subject(&iss, &sub),
            issuer: iss,
            connection: None,
            groups,
        })
    }

    /// A token from one of an organisation's own connections: the identity it proves
    /// is that organisation's only, and its pseudonym is scoped to the organisation, so
    /// a connection naming someone else's issuer cannot stand in for their people.
    pub async fn verify_for_organization(
        &self,
        token: &str,
        connection: OrganizationConnection,
        issuer: &TrustedIssuer,
    ) -> Result<Identity, TokenError> {
        let (iss, sub, groups) = self.verify_with(token, issuer).await?;
        Ok(Identity {
            subject: organization_subject(connection.organization_id, &iss, &sub),
            issuer: iss,
            connection: Some(connection),
            groups,
        })
    }

    /// Verifies `token` against `issuer`'s keys, audience and issuer; (iss, sub, groups).
    async fn verify_with(
        &self,
        token: &str,
        issuer: &TrustedIssuer,
    ) -> Result<(String, String, Vec<String>), TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(TokenError::Algorithm);
        }
        let kid = header.kid.clone().ok_or(TokenError::UnknownKey)?;
        let key = self.key(issuer, &kid).await?;

        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[&issuer.audience]);
        validation.set_issuer(&[&issuer.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = self.leeway.as_secs();
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => TokenError::Expired,
                ErrorKind::InvalidAudience => TokenError::Audience,
                ErrorKind::InvalidIssuer => TokenError::UnknownIssuer,
                ErrorKind::InvalidSignature => TokenError::Signature,
                ErrorKind::MissingRequiredClaim(_) => TokenError::Claims,
                ErrorKind::InvalidAlgorithm => TokenError::Algorithm,
                _ => TokenError::Malformed,
            }
        })?;
        let subject = data
            .claims
            .sub
            .filter(|s| !s.is_empty())
            .ok_or(TokenError::Claims)?;
        Ok((data.claims.iss, subject, data.claims.groups))
    }

    async fn key(&self, issuer: &TrustedIssuer, kid: &str) -> Result<DecodingKey, TokenError> {
        let fresh_enough = |cached: &CachedKeys| cached.fetched_at.elapsed() < self.max_key_age;
        // Keyed by issuer and key URL: two organisations may name the same issuer with
        // different key URLs, and one's keys must never verify the other's tokens.
        let cache_key = format!("{}\n{}", issuer.issuer, issuer.jwks_uri);
        if let Some(cached) = self.cache.read().await.get(&cache_key)
            && fresh_enough(cached)
            && let Some(jwk) = cached.keys.find(kid)
        {
            return DecodingKey::from_jwk(jwk).map_err(|_| TokenError::UnknownKey);
        }
        let mut cache = self.cache.write().await;
        let recently_fetched = cache
            .get(&cache_key)
            .is_some_and(|c| c.fetched_at.elapsed() < self.min_refetch_interval);
        if !recently_fetched {
            let keys = self.fetch(issuer).await?;
            cache.insert(
                cache_key.clone(),
                CachedKeys {
                    keys,
                    fetched_at: Instant::now(),
                },
            );
        }
        let jwk = cache
            .get(&cache_key)
            .and_then(|c| c.keys.find(kid))
            .ok_or(TokenError::UnknownKey)?;
        DecodingKey::from_jwk(jwk).map_err(|_| TokenError::UnknownKey)
    }

    async fn fetch(&self, issuer: &TrustedIssuer) -> Result<JwkSet, TokenError> {
        let unavailable = |e: reqwest::Error| TokenError::JwksUnavailable(e.to_string());
        self.http
            .get(&issuer.jwks_uri)
            .send()
            .await
            .map_err(unavailable)?
            .error_for_status()
            .map_err(unavailable)?
            .json::<JwkSet>()
            .await
            .map_err(unavailable)
    }
}

/// The issuer a token claims (unverified: it only picks the keys to verify with).
pub fn claimed_issuer(token: &str) -> Result<String, TokenError> {
    let claimed: UnverifiedIssuer = jsonwebtoken::dangerous::insecure_decode_claims(token)
        .map_err(|_| TokenError::Malformed)?;
    claimed.iss.ok_or(TokenError::Malformed)
}

/// `user:` + a hash of (issuer, subject): stable per person, meaningless outside Windlass,
/// and never the name or email an IdP may use as `sub`.
pub fn pseudonymous_subject(issuer: &str, subject: &str) -> String {
    let digest = Sha256::digest(format!("{issuer}\n{subject}"));
    format!("user:{}", &format!("{digest:x}")[..32])
}

/// The pseudonym of a person signed in through one of `organization_id`'s connections.
pub fn organization_subject(organization_id: uuid::Uuid, issuer: &str, subject: &str) -> String {
    let digest = Sha256::digest(format!("{organization_id}\n{issuer}\n{subject}"));
    format!("user:{}", &format!("{digest:x}")[..32])
}
