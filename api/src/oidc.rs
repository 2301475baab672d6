//! Federated identity: OIDC bearer tokens (RS256 or ES256) from configured issuers,
//! verified against each issuer's JWKS. There are no passwords anywhere in Windlass.
//!
//! Keys are cached per issuer (`jwks_cache`); an unknown `kid` (the IdP rotated its keys)
//! triggers one refetch, rate-limited and outside any lock a cached key needs, so a flood
//! of forged kids neither floods the IdP nor holds up anyone's sign-in.
//!
//! Checked: signature (RS256 or ES256), `iss`, `aud`, `exp` and `nbf` (60 s of clock skew),
//! `sub`, and `azp` when present (the party the token was issued to must be Windlass's
//! client id, the audience, not another client of the same IdP).

use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

mod jwks_cache;

use jwks_cache::JwksCache;

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
    #[error("token not valid yet (nbf)")]
    NotYetValid,
    #[error("token was issued to another client (azp)")]
    AuthorizedParty,
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
    /// The client the token was issued to (OIDC Core 2): when present, Windlass's.
    azp: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct UnverifiedIssuer {
    iss: Option<String>,
}

pub struct OidcVerifier {
    issuers: Vec<TrustedIssuer>,
    keys: JwksCache,
    /// Clock skew tolerated on exp/nbf.
    leeway: Duration,
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
            // A sign-in whose key is not cached waits at most this for the IdP.
            keys: JwksCache::new(Duration::from_secs(5)),
            leeway: Duration::from_secs(60),
        }
    }

    pub fn with_min_refetch_interval(mut self, interval: Duration) -> Self {
        self.keys.min_refetch_interval = interval;
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
        let key = self.keys.key(issuer, &kid).await?;

        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[&issuer.audience]);
        validation.set_issuer(&[&issuer.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = self.leeway.as_secs();
        // Off by default in jsonwebtoken: a token not valid yet is refused too.
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidAudience => TokenError::Audience,
                ErrorKind::InvalidIssuer => TokenError::UnknownIssuer,
                ErrorKind::InvalidSignature => TokenError::Signature,
                ErrorKind::MissingRequiredClaim(_) => TokenError::Claims,
                ErrorKind::InvalidAlgorithm => TokenError::Algorithm,
                _ => TokenError::Malformed,
            }
        })?;
        if data
            .claims
            .azp
            .as_deref()
            .is_some_and(|azp| azp != issuer.audience)
        {
            return Err(TokenError::AuthorizedParty);
        }
        let subject = data
            .claims
            .sub
            .filter(|s| !s.is_empty())
            .ok_or(TokenError::Claims)?;
        Ok((data.claims.iss, subject, data.claims.groups))
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
