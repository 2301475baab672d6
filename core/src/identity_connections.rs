//! An organisation's own identity providers. A connection names an OIDC issuer, the
//! audience Windlass is registered as there, and where its signing keys are; a token it
//! verifies authenticates a person in that organisation only, and only that connection's
//! group mappings apply to it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::rbac::Role;
use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IdentityConnection {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    /// Exactly the `iss` claim of the provider's tokens.
    pub issuer: String,
    /// The `aud` the provider puts in tokens for Windlass.
    pub audience: String,
    pub jwks_uri: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewIdentityConnection {
    pub organization_id: Uuid,
    pub name: String,
    pub issuer: String,
    pub audience: String,
    pub jwks_uri: String,
}

impl NewIdentityConnection {
    /// The issuer and key URLs are HTTPS, or HTTP on a loopback address (a provider on
    /// the same machine); Windlass fetches the keys, so nothing else is reachable through
    /// them.
    pub fn validate(&self) -> Result<()> {
        let label = |field: &str, value: &str, max: usize| {
            if value.trim().is_empty() || value.len() > max || value.chars().any(char::is_control) {
                Err(Error::InvalidInput(format!(
                    "{field}: 1 to {max} printable characters"
                )))
            } else {
                Ok(())
            }
        };
        label("name", &self.name, 100)?;
        label("audience", &self.audience, 256)?;
        for (field, value) in [("issuer", &self.issuer), ("jwks_uri", &self.jwks_uri)] {
            label(field, value, 512)?;
            let url = url::Url::parse(value)
                .map_err(|e| Error::InvalidInput(format!("{field}: not a URL ({e})")))?;
            let loopback = match url.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d == "localhost",
                None => false,
            };
            let allowed = url.scheme() == "https" || (url.scheme() == "http" && loopback);
            if !allowed || url.username() != "" || url.password().is_some() {
                return Err(Error::InvalidInput(format!(
                    "{field}: an https:// URL (http:// only on a loopback address), without credentials"
                )));
            }
        }
        Ok(())
    }
}

/// Members of `idp_group`, signed in through `connection_id`, get `role`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroupMapping {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub connection_id: Uuid,
    pub idp_group: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// A person's role in an organisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RoleBinding {
    pub id: Uuid,
    pub organization_id: Uuid,
    /// The person's pseudonymous id (`user:…`).
    pub subject: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(issuer: &str, jwks_uri: &str) -> NewIdentityConnection {
        NewIdentityConnection {
            organization_id: Uuid::new_v4(),
            name: "okta".into(),
            issuer: issuer.into(),
            audience: "windlass".into(),
            jwks_uri: jwks_uri.into(),
        }
    }

    #[test]
    fn keys_are_fetched_over_https_or_from_loopback_only() {
        assert!(
            connection("https://acme.okta.com", "https://acme.okta.com/keys")
                .validate()
                .is_ok()
        );
        assert!(
            connection("http://127.0.0.1:9000", "http://127.0.0.1:9000/jwks")
                .validate()
                .is_ok()
        );
        for (issuer, jwks) in [
            ("http://acme.okta.com", "https://acme.okta.com/keys"),
            (
                "https://acme.okta.com",
                "http://169.254.169.254/latest/meta-data",
            ),
            ("https://acme.okta.com", "file:///etc/passwd"),
            (
                "https://acme.okta.com",
                "https://user:pw@acme.okta.com/keys",
            ),
            ("not a url", "https://acme.okta.com/keys"),
        ] {
            assert!(
                connection(issuer, jwks).validate().is_err(),
                "{issuer} {jwks}"
            );
        }
    }
}
