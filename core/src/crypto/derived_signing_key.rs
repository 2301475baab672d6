//! An ES256 (P-256) signing key derived deterministically (HKDF-SHA256) from a data key:
//! every process holding the key ring derives the same key, and nothing but the wrapped
//! data key is stored. Used by the workload-identity issuer and the audit digests, each
//! with its own label so the two never share a key.

use aws_lc_rs::agreement::{self, ECDH_P256};
use aws_lc_rs::hkdf;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{CryptoError, DataKey};

pub struct DerivedSigningKey {
    kid: String,
    pair: EcdsaKeyPair,
    /// Uncompressed point: 0x04 || x || y.
    public: Vec<u8>,
}

impl DerivedSigningKey {
    /// `label` separates uses; `kid_prefix` names them in key ids (`<prefix>-v<n>-<thumb>`).
    pub fn derive(
        label: &[u8],
        kid_prefix: &str,
        version: u32,
        data_key: &DataKey,
    ) -> Result<Self, CryptoError> {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, label);
        let prk = salt.extract(data_key.expose_bytes());
        // A 32-byte string is a valid P-256 scalar unless it is zero or >= n (about 2^-32):
        // the counter picks the next candidate then, deterministically.
        for counter in 0u8..=255 {
            let mut scalar = Zeroizing::new([0u8; 32]);
            let info = [format!("v{version}").into_bytes(), vec![counter]].concat();
            let info = [info.as_slice()];
            prk.expand(&info, hkdf::HKDF_SHA256)
                .and_then(|okm| okm.fill(scalar.as_mut()))
                .map_err(|_| CryptoError::Malformed("deriving the signing key"))?;
            let Ok(private) = agreement::PrivateKey::from_private_key(&ECDH_P256, scalar.as_ref())
            else {
                continue;
            };
            let public = private
                .compute_public_key()
                .map_err(|_| CryptoError::Malformed("computing the public key"))?
                .as_ref()
                .to_vec();
            let pair = EcdsaKeyPair::from_private_key_and_public_key(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                scalar.as_ref(),
                &public,
            )
            .map_err(|_| CryptoError::Malformed("loading the signing key"))?;
            let thumb: String = Sha256::digest(&public)
                .iter()
                .take(4)
                .map(|b| format!("{b:02x}"))
                .collect();
            return Ok(Self {
                kid: format!("{kid_prefix}-v{version}-{thumb}"),
                pair,
                public,
            });
        }
        Err(CryptoError::Malformed("no valid signing key derivable"))
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half as a JWK.
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
            "x": b64(&self.public[1..33]), "y": b64(&self.public[33..65]),
        })
    }

    /// The uncompressed public point (0x04 || x || y).
    pub fn public_key(&self) -> &[u8] {
        &self.public
    }

    /// ES256 as JWS has it: the fixed-width r || s.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.pair
            .sign(&SystemRandom::new(), message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| CryptoError::Malformed("signing"))
    }
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
