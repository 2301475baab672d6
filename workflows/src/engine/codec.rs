//! The payload codec: every payload Windlass sends to Temporal (workflow inputs and
//! results, activity inputs and results, heartbeat details) is sealed with AES-256-GCM
//! before it leaves the process, so Temporal's history holds ciphertext only.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use prost::Message;
use temporalio_common::data_converters::{
    PayloadCodec, PayloadConversionError, SerializationContextData,
};
use temporalio_common::protos::temporal::api::common::v1::Payload;
use windlass_core::crypto::DataKey;

const ENCODING: &[u8] = b"binary/encrypted";
const ENCODING_KEY: &str = "encoding";
const KEY_VERSION: &str = "encryption-key-version";
const ASSOCIATED_DATA: &[u8] = b"windlass:temporal-payload";

/// The payload keys, newest first. Debug never shows key material.
#[derive(Clone)]
pub struct PayloadKeys {
    current: u32,
    keys: Arc<HashMap<u32, DataKey>>,
}

impl std::fmt::Debug for PayloadKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayloadKeys")
            .field("current_version", &self.current)
            .field("versions", &self.keys.len())
            .finish()
    }
}

impl PayloadKeys {
    /// `versions` newest first; the first seals, all open.
    pub fn new(versions: Vec<(u32, DataKey)>) -> Option<Self> {
        let current = versions.first()?.0;
        Some(Self {
            current,
            keys: Arc::new(versions.into_iter().collect()),
        })
    }
}

pub struct EncryptingCodec {
    keys: PayloadKeys,
}

impl EncryptingCodec {
    pub fn new(keys: PayloadKeys) -> Self {
        Self { keys }
    }

    fn seal(&self, payload: Payload) -> Result<Payload, PayloadConversionError> {
        let key = &self.keys.keys[&self.keys.current];
        let sealed = key
            .seal(&payload.encode_to_vec(), ASSOCIATED_DATA)
            .map_err(|e| PayloadConversionError::EncodingError(Box::new(e)))?;
        Ok(Payload {
            metadata: HashMap::from([
                (ENCODING_KEY.to_owned(), ENCODING.to_vec()),
                (
                    KEY_VERSION.to_owned(),
                    self.keys.current.to_string().into_bytes(),
                ),
            ]),
            data: sealed,
            ..Default::default()
        })
    }

    fn open(&self, payload: Payload) -> Result<Payload, PayloadConversionError> {
        if payload.metadata.get(ENCODING_KEY).map(Vec::as_slice) != Some(ENCODING) {
            // Written by someone without the codec (e.g. the temporal CLI): pass as is.
            return Ok(payload);
        }
        let version: u32 = payload
            .metadata
            .get(KEY_VERSION)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse().ok())
            .ok_or(PayloadConversionError::WrongEncoding)?;
        let key = self.keys.keys.get(&version).ok_or_else(|| {
            PayloadConversionError::EncodingError(
                format!("payload sealed with key version {version}, which this process lacks")
                    .into(),
            )
        })?;
        let plaintext = key
            .open(&payload.data, ASSOCIATED_DATA)
            .map_err(|e| PayloadConversionError::EncodingError(Box::new(e)))?;
        Payload::decode(plaintext.as_slice())
            .map_err(|e| PayloadConversionError::EncodingError(Box::new(e)))
    }
}

impl PayloadCodec for EncryptingCodec {
    fn encode(
        &self,
        _: &SerializationContextData,
        payloads: Vec<Payload>,
    ) -> BoxFuture<'static, Result<Vec<Payload>, PayloadConversionError>> {
        let result = payloads.into_iter().map(|p| self.seal(p)).collect();
        Box::pin(async move { result })
    }

    fn decode(
        &self,
        _: &SerializationContextData,
        payloads: Vec<Payload>,
    ) -> BoxFuture<'static, Result<Vec<Payload>, PayloadConversionError>> {
        let result = payloads.into_iter().map(|p| self.open(p)).collect();
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(text: &str) -> Payload {
        Payload {
            metadata: HashMap::from([("encoding".to_owned(), b"json/plain".to_vec())]),
            data: text.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn payloads_round_trip_sealed_and_old_versions_still_open() {
        let v1 = DataKey::generate().unwrap();
        let old = EncryptingCodec::new(PayloadKeys::new(vec![(1, v1.clone())]).unwrap());
        let sealed = old.seal(payload("{\"subscription\":\"abc\"}")).unwrap();
        assert!(!sealed.data.windows(3).any(|w| w == b"abc"));
        assert_eq!(sealed.metadata["encoding"], ENCODING);

        let rotated = EncryptingCodec::new(
            PayloadKeys::new(vec![(2, DataKey::generate().unwrap()), (1, v1)]).unwrap(),
        );
        assert_eq!(
            rotated.open(sealed).unwrap(),
            payload("{\"subscription\":\"abc\"}")
        );
        let newer = rotated.seal(payload("x")).unwrap();
        assert!(
            old.open(newer).is_err(),
            "a process without v2 cannot read v2"
        );
    }
}
