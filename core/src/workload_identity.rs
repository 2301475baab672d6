//! Windlass's own workload-identity issuer: the OIDC issuer whose short-lived tokens the
//! workers present to Entra ID as client assertions (workload identity federation).
//!
//! The subject says on whose behalf Windlass acts: `windlass:organization:<id>` as a
//! customer's setup identity (the customer's federated credential trusts exactly their own
//! organisation's subject, which is the ownership proof of an Azure account), and
//! `windlass:platform` as Windlass's multi-tenant application.
//!
//! Keys: ES256. Version `n` of the signing key is derived (HKDF-SHA256) from version `n`
//! of the `workload_identity` data key, which exists in the store only wrapped by the KEK.
//! Nothing else is stored: every process with the key ring (the API serving the JWKS, the
//! workers signing) derives the same key, and a KEK rotation rewraps it like any data key.
//! Rotating the data key adds a signing key; the JWKS publishes every version, so tokens
//! signed before a rotation stay verifiable for their ten minutes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::Result;
use crate::crypto::{DataKey, DerivedSigningKey, b64};
use crate::keys::KeyRing;

/// The key ring purpose the signing keys are derived from.
pub const PURPOSE: &str = "workload_identity";
/// The audience Entra ID expects of a federated client assertion.
pub const AZURE_TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";
/// How long a minted assertion is valid: long enough for one token request and its
/// retries, short enough that a leaked one is useless soon.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// Where the issuer's discovery document and keys are served, relative to the issuer URL.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// On whose behalf Windlass acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkloadSubject {
    /// As an organisation's setup identity in its tenant.
    Organization(Uuid),
    /// As Windlass's multi-tenant application.
    Platform,
}

impl std::fmt::Display for WorkloadSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Organization(id) => write!(f, "windlass:organization:{}", id.hyphenated()),
            Self::Platform => f.write_str("windlass:platform"),
        }
    }
}

/// The workload-identity key of one data key version (label and key ids as first shipped:
/// Entra ID's federated credentials and cached JWKS know them).
fn derive_signing_key(version: u32, data_key: &DataKey) -> Result<DerivedSigningKey> {
    Ok(DerivedSigningKey::derive(
        b"windlass workload identity es256",
        "wi",
        version,
        data_key,
    )?)
}

fn sign_jwt(key: &DerivedSigningKey, claims: &Value) -> Result<String> {
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": key.kid()});
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = key.sign(signing_input.as_bytes())?;
    Ok(format!("{signing_input}.{}", b64(&signature)))
}

/// The issuer: mints assertions (workers) and publishes its keys (the API).
pub struct WorkloadIdentityIssuer {
    issuer: String,
    keys: Arc<KeyRing>,
    derived: Mutex<HashMap<u32, Arc<DerivedSigningKey>>>,
}

impl std::fmt::Debug for WorkloadIdentityIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadIdentityIssuer")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl WorkloadIdentityIssuer {
    /// `issuer` is the URL relying parties fetch `/.well-known/openid-configuration` from
    /// (the API's public base URL); it must match the federated credentials exactly.
    pub fn new(issuer: impl Into<String>, keys: Arc<KeyRing>) -> Self {
        Self {
            issuer: issuer.into().trim_end_matches('/').to_owned(),
            keys,
            derived: Mutex::new(HashMap::new()),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    fn signing_key(&self, version: u32, data_key: &DataKey) -> Result<Arc<DerivedSigningKey>> {
        let mut derived = self.derived.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(key) = derived.get(&version) {
            return Ok(key.clone());
        }
        let key = Arc::new(derive_signing_key(version, data_key)?);
        derived.insert(version, key.clone());
        Ok(key)
    }

    /// A signed assertion for `subject` and `audience`, valid for [`ASSERTION_LIFETIME`].
    pub async fn mint(&self, subject: WorkloadSubject, audience: &str) -> Result<String> {
        let (version, data_key) = self.keys.current(PURPOSE, "").await?;
        let key = self.signing_key(version, &data_key)?;
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": self.issuer,
            "sub": subject.to_string(),
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + ASSERTION_LIFETIME.as_secs() as i64,
            "jti": Uuid::new_v4().to_string(),
        });
        sign_jwt(&key, &claims)
    }

    /// Every signing key's public half (`{"keys": [...]}`), newest first.
    pub async fn jwks(&self) -> Result<Value> {
        let mut keys = Vec::new();
        for (version, data_key) in self.keys.all_versions(PURPOSE, "").await? {
            keys.push(self.signing_key(version, &data_key)?.jwk());
        }
        Ok(json!({ "keys": keys }))
    }

    /// The OpenID Provider metadata relying parties (Entra ID) read first.
    pub fn discovery(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{}{JWKS_PATH}", self.issuer),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "jti"],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_name_the_organisation_or_the_platform() {
        let org = Uuid::from_u128(7);
        assert_eq!(
            WorkloadSubject::Organization(org).to_string(),
            "windlass:organization:00000000-0000-0000-0000-000000000007"
        );
        assert_eq!(WorkloadSubject::Platform.to_string(), "windlass:platform");
    }

    #[test]
    fn the_same_data_key_derives_the_same_signing_key_and_versions_differ() {
        let data_key = DataKey::from_bytes(&[9u8; 32]).unwrap();
        let a = derive_signing_key(1, &data_key).unwrap();
        let b = derive_signing_key(1, &data_key).unwrap();
        let c = derive_signing_key(2, &data_key).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        assert_eq!(a.kid(), b.kid());
        assert_ne!(a.public_key(), c.public_key());
        // The key ids Entra ID has cached since the first release.
        assert!(a.kid().starts_with("wi-v1-"), "{}", a.kid());
    }

    #[test]
    fn a_minted_jwt_verifies_against_its_jwk() {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
        use base64::Engine as _;
        let key = derive_signing_key(1, &DataKey::from_bytes(&[3u8; 32]).unwrap()).unwrap();
        let jwt = sign_jwt(&key, &json!({"sub": "x"})).unwrap();
        let (input, signature) = jwt.rsplit_once('.').unwrap();
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .unwrap();
        let jwk = key.jwk();
        let coord = |c: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(jwk[c].as_str().unwrap())
                .unwrap()
        };
        let point = [vec![4u8], coord("x"), coord("y")].concat();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
            .verify(input.as_bytes(), &signature)
            .expect("the signature verifies with the published key");
    }
}
