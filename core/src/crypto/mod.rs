//! Envelope encryption. Values are sealed with AES-256-GCM under a data key; data keys are
//! stored only wrapped by a key-encryption key (KEK): a local key file in the embedded
//! default, a KMS key in production. The associated data binds a ciphertext to what it
//! belongs to (an organisation id, "temporal-payload"), so a ciphertext moved elsewhere
//! does not decrypt.

mod data_key;
mod derived_signing_key;
mod kms_kek;
mod local_kek;

pub use data_key::DataKey;
pub use derived_signing_key::{DerivedSigningKey, b64};
pub use kms_kek::AwsKmsKek;
pub use local_kek::LocalKeyFile;

use std::future::Future;
use std::pin::Pin;

/// Why decryption or key handling failed. Deliberately vague about contents: an error
/// message never holds key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("ciphertext does not authenticate (wrong key, wrong context, or tampered)")]
    Authentication,
    #[error("ciphertext is malformed: {0}")]
    Malformed(&'static str),
    #[error("key-encryption key unavailable: {0}")]
    KekUnavailable(String),
    #[error("random number generator failed")]
    Random,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Wraps and unwraps data keys. `context` is authenticated with the wrapped key (KMS calls
/// it encryption context), so an organisation's key cannot be unwrapped as another's.
pub trait KeyEncryptionKey: Send + Sync {
    /// Stable identifier of the KEK (file fingerprint, KMS key ARN), stored beside each
    /// wrapped key so rotation knows what to re-wrap.
    fn id(&self) -> String;
    fn wrap<'a>(
        &'a self,
        key: &'a DataKey,
        context: &'a str,
    ) -> BoxFuture<'a, Result<Vec<u8>, CryptoError>>;
    fn unwrap<'a>(
        &'a self,
        wrapped: &'a [u8],
        context: &'a str,
    ) -> BoxFuture<'a, Result<DataKey, CryptoError>>;
}

/// Lower-case hex, how binary values are kept in TEXT columns on both databases.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn from_hex(text: &str) -> Result<Vec<u8>, CryptoError> {
    if !text.len().is_multiple_of(2) {
        return Err(CryptoError::Malformed("odd-length hex"));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| CryptoError::Malformed("not hex"))
}
