//! The production KEK: an AWS KMS symmetric key. Data keys are sent to KMS to be wrapped
//! and unwrapped, so the KEK itself never leaves KMS; the wrapping context becomes the
//! KMS encryption context, which KMS authenticates and CloudTrail records, so an
//! organisation's wrapped key cannot be unwrapped under another organisation's context.
//!
//! The SDK logs raw HTTP requests and responses at `trace` level (`aws_smithy_runtime`),
//! which for Encrypt and Decrypt contain a data key: never enable that level in production.

use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::operation::decrypt::DecryptError;
use aws_sdk_kms::primitives::Blob;
use zeroize::Zeroizing;

use super::{BoxFuture, CryptoError, DataKey, KeyEncryptionKey};

/// The encryption-context key under which the wrapping context is passed to KMS. Changing
/// it makes every key wrapped so far unreadable.
const CONTEXT_KEY: &str = "windlass";

/// Region used when neither the environment nor a profile names one: a KMS key ARN names
/// its own region, but the SDK still needs one to build the endpoint.
const FALLBACK_REGION: &str = "us-east-1";

pub struct AwsKmsKek {
    client: aws_sdk_kms::Client,
    key_id: String,
}

impl std::fmt::Debug for AwsKmsKek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKmsKek")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl AwsKmsKek {
    /// `key_id` is a key id, key ARN, alias name or alias ARN. It is also what [`id`]
    /// returns and what is stored beside each wrapped key, so configure it in one form and
    /// keep it: a key ARN is the safe choice (an alias can be repointed, and a bare key id
    /// means different keys in different regions or accounts).
    ///
    /// Credentials and region come from the standard AWS chain (environment, profile, web
    /// identity, instance metadata). `endpoint_url` overrides the KMS endpoint, for a local
    /// stand-in such as moto.
    ///
    /// [`id`]: KeyEncryptionKey::id
    pub async fn new(key_id: String, endpoint_url: Option<String>) -> Result<Self, CryptoError> {
        if key_id.trim().is_empty() {
            return Err(CryptoError::KekUnavailable(
                "no KMS key id configured".to_owned(),
            ));
        }
        let region = RegionProviderChain::default_provider().or_else(FALLBACK_REGION);
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region);
        if let Some(url) = endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let config = loader.load().await;
        Ok(Self {
            client: aws_sdk_kms::Client::new(&config),
            key_id,
        })
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}

impl KeyEncryptionKey for AwsKmsKek {
    fn id(&self) -> String {
        format!("kms:{}", self.key_id)
    }

    fn wrap<'a>(
        &'a self,
        key: &'a DataKey,
        context: &'a str,
    ) -> BoxFuture<'a, Result<Vec<u8>, CryptoError>> {
        Box::pin(async move {
            // The SDK takes the plaintext by value and drops its copy unzeroed; nothing we
            // can reach, but at least ours is not left behind.
            let output = self
                .client
                .encrypt()
                .key_id(&self.key_id)
                .plaintext(Blob::new(key.expose_bytes().to_vec()))
                .encryption_context(CONTEXT_KEY, context)
                .send()
                .await
                .map_err(|e| self.failure("Encrypt", e, |_| false))?;
            output
                .ciphertext_blob
                .map(Blob::into_inner)
                .ok_or_else(|| self.unavailable("Encrypt returned no ciphertext"))
        })
    }

    fn unwrap<'a>(
        &'a self,
        wrapped: &'a [u8],
        context: &'a str,
    ) -> BoxFuture<'a, Result<DataKey, CryptoError>> {
        Box::pin(async move {
            // Naming the key makes KMS refuse a ciphertext made under any other key rather
            // than decrypt it with whichever key the ciphertext names.
            let output = self
                .client
                .decrypt()
                .key_id(&self.key_id)
                .ciphertext_blob(Blob::new(wrapped))
                .encryption_context(CONTEXT_KEY, context)
                .send()
                .await
                .map_err(|e| {
                    self.failure("Decrypt", e, |e| {
                        matches!(
                            e,
                            DecryptError::InvalidCiphertextException(_)
                                | DecryptError::IncorrectKeyException(_)
                        )
                    })
                })?;
            let plaintext = Zeroizing::new(
                output
                    .plaintext
                    .map(Blob::into_inner)
                    .ok_or_else(|| self.unavailable("Decrypt returned no plaintext"))?,
            );
            DataKey::from_bytes(&plaintext)
        })
    }
}

impl AwsKmsKek {
    fn unavailable(&self, why: &str) -> CryptoError {
        CryptoError::KekUnavailable(format!("{}: {why}", self.id()))
    }

    /// Service refusals that mean "this ciphertext does not belong here" are
    /// authentication failures, like a GCM tag mismatch under the local KEK. Everything
    /// else (throttling, network, timeouts, a disabled key, missing permissions) means the
    /// KEK cannot be used right now. KMS error texts and the SDK's connection errors carry
    /// codes, key ids and addresses, never request or response bodies.
    fn failure<E>(
        &self,
        operation: &str,
        error: SdkError<E>,
        refuses_ciphertext: impl Fn(&E) -> bool,
    ) -> CryptoError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        if let SdkError::ServiceError(service) = &error {
            let e = service.err();
            if refuses_ciphertext(e) {
                return CryptoError::Authentication;
            }
            let code = e.code().unwrap_or("unknown error");
            return self.unavailable(&match e.message().filter(|m| !m.is_empty()) {
                Some(message) => format!("{operation} failed: {code}: {message}"),
                None => format!("{operation} failed: {code}"),
            });
        }
        self.unavailable(&format!(
            "{operation} failed: {}",
            DisplayErrorContext(&error)
        ))
    }
}
