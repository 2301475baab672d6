//! The payload codec: every payload Windlass sends to Temporal (workflow inputs and
//! results, signals, activity inputs and results, heartbeat details) is sealed with
//! AES-256-GCM before it leaves the process, so Temporal's history holds ciphertext only,
//! and nothing else is accepted back: a payload that is not sealed is refused, so someone
//! who can reach Temporal cannot start or signal a workflow with an input of their own.
//!
//! What the seal binds (format 2, `windlass-seal: 2`), as AES-GCM associated data:
//! - the format and the **key line** (`windlass-key-line`: the organisation whose key
//!   sealed it, or the platform). The line picks the key, so a payload of organisation A
//!   opens only where A's key is held: a placed worker holds its own organisation's line
//!   only, so another organisation's payloads (or the platform's) never open there;
//! - the **workflow id** (`windlass-workflow`) when the sealer knows it. Temporal's
//!   `SerializationContextData` (temporalio-common 1.1.1) carries no workflow id or
//!   namespace (its Workflow and Activity variants are empty structs), and the SDK seals a
//!   workflow's commands and an activity's result outside any code of ours, so the only
//!   sealers that know the workflow are Windlass's own client calls (the API starting or
//!   signalling a run's workflow), which say so with [`with_scope`]. A decoder that knows
//!   which workflow it reads (a scoped client call) refuses a payload bound to another;
//!   a worker cannot (the SDK does not tell the codec), so there the organisation's line
//!   is the binding, and the workflows compare their own id with the run their input names.
//!
//! Format 1 (no `windlass-seal`: the platform's `temporal_payloads` key, associated data
//! `windlass:temporal-payload`) still opens, so histories written before the upgrade (a
//! queue workflow lives for weeks) replay; nothing seals it any more.

use std::collections::HashMap;

use futures::future::BoxFuture;
use prost::Message;
use temporalio_common::data_converters::{
    PayloadCodec, PayloadConversionError, SerializationContextData,
};
use temporalio_common::protos::temporal::api::common::v1::Payload;
use uuid::Uuid;

pub use super::payload_keys::{FixedSource, KeyLine, PayloadKeySource, PayloadKeys};

const ENCODING: &[u8] = b"binary/encrypted";
const ENCODING_KEY: &str = "encoding";
const KEY_VERSION: &str = "encryption-key-version";
const SEAL_FORMAT: &str = "windlass-seal";
const KEY_LINE: &str = "windlass-key-line";
const WORKFLOW: &str = "windlass-workflow";
/// Payloads the Temporal server writes itself, which no sealer can have sealed: the
/// details of a cancelled activity that never started (`ACTIVITY_ID_NOT_STARTED`, in
/// the `CanceledFailureInfo` the workflow gets back). Passed through as they are, and
/// only exactly: a fixed JSON string is not an input anyone can shape, and no Windlass
/// input or signal decodes from it (they are objects, or ids that it is not).
const SERVER_MARKERS: [&[u8]; 1] = [b"\"ACTIVITY_ID_NOT_STARTED\""];

/// Format 1's associated data: the same for every payload.
const LEGACY_ASSOCIATED_DATA: &[u8] = b"windlass:temporal-payload";

/// The organisation and workflow a client call is for: payloads it seals use the
/// organisation's key line and are bound to the workflow; payloads it opens must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadScope {
    pub organization_id: Uuid,
    pub workflow_id: String,
}

tokio::task_local! {
    static SCOPE: PayloadScope;
}

/// Runs `call` (a Temporal client call) with payloads sealed for, and opened as, `scope`.
pub async fn with_scope<F: std::future::Future>(scope: PayloadScope, call: F) -> F::Output {
    SCOPE.scope(scope, call).await
}

fn current_scope() -> Option<PayloadScope> {
    SCOPE.try_with(Clone::clone).ok()
}

fn associated_data(line: &KeyLine, workflow: Option<&str>) -> Vec<u8> {
    format!(
        "windlass:temporal-payload:2\n{}\n{}",
        line.label(),
        workflow.unwrap_or("")
    )
    .into_bytes()
}

fn refused(message: impl Into<String>) -> PayloadConversionError {
    PayloadConversionError::EncodingError(message.into().into())
}

pub struct EncryptingCodec {
    keys: PayloadKeys,
}

impl EncryptingCodec {
    pub fn new(keys: PayloadKeys) -> Self {
        Self { keys }
    }

    async fn seal(
        keys: &PayloadKeys,
        scope: Option<&PayloadScope>,
        payload: Payload,
    ) -> Result<Payload, PayloadConversionError> {
        let line = match scope {
            Some(scope) => KeyLine::Organization(scope.organization_id),
            None => keys.sealing_line().clone(),
        };
        let workflow = scope.map(|s| s.workflow_id.as_str());
        let line_keys = keys.line(&line, true, None).await.map_err(refused)?;
        let key = &line_keys.keys[&line_keys.current];
        let sealed = key
            .seal(&payload.encode_to_vec(), &associated_data(&line, workflow))
            .map_err(|e| PayloadConversionError::EncodingError(Box::new(e)))?;
        let mut metadata = HashMap::from([
            (ENCODING_KEY.to_owned(), ENCODING.to_vec()),
            (SEAL_FORMAT.to_owned(), b"2".to_vec()),
            (KEY_LINE.to_owned(), line.label().into_bytes()),
            (
                KEY_VERSION.to_owned(),
                line_keys.current.to_string().into_bytes(),
            ),
        ]);
        if let Some(workflow) = workflow {
            metadata.insert(WORKFLOW.to_owned(), workflow.as_bytes().to_vec());
        }
        Ok(Payload {
            metadata,
            data: sealed,
            ..Default::default()
        })
    }

    async fn open(
        keys: &PayloadKeys,
        scope: Option<&PayloadScope>,
        payload: Payload,
    ) -> Result<Payload, PayloadConversionError> {
        let text = |name: &str| {
            payload
                .metadata
                .get(name)
                .and_then(|v| std::str::from_utf8(v).ok())
        };
        if payload.metadata.len() == 1
            && payload.metadata.get(ENCODING_KEY).map(Vec::as_slice) == Some(b"json/plain")
            && SERVER_MARKERS.contains(&payload.data.as_slice())
        {
            return Ok(payload);
        }
        if payload.metadata.get(ENCODING_KEY).map(Vec::as_slice) != Some(ENCODING) {
            // Written by someone without Windlass's keys (a raw client, the temporal CLI).
            return Err(refused(
                "unencrypted payload refused: Windlass accepts only payloads it sealed",
            ));
        }
        let version: u32 = text(KEY_VERSION)
            .and_then(|v| v.parse().ok())
            .ok_or(PayloadConversionError::WrongEncoding)?;
        let (line, associated) = match text(SEAL_FORMAT) {
            None => (KeyLine::Platform, LEGACY_ASSOCIATED_DATA.to_vec()),
            Some("2") => {
                let line = text(KEY_LINE)
                    .and_then(KeyLine::parse)
                    .ok_or_else(|| refused("sealed payload without a valid key line"))?;
                let workflow = text(WORKFLOW);
                if let Some(scope) = scope {
                    if workflow.is_some_and(|w| w != scope.workflow_id) {
                        return Err(refused("payload sealed for another workflow refused"));
                    }
                    // The platform's line is what shared workers seal with (an update's
                    // answer, a workflow's result): only Windlass holds that key.
                    if line != KeyLine::Organization(scope.organization_id)
                        && line != KeyLine::Platform
                    {
                        return Err(refused("payload sealed for another organisation refused"));
                    }
                }
                let associated = associated_data(&line, workflow);
                (line, associated)
            }
            Some(other) => return Err(refused(format!("unknown payload seal format {other}"))),
        };
        let line_keys = keys
            .line(&line, false, Some(version))
            .await
            .map_err(refused)?;
        let key = line_keys.keys.get(&version).ok_or_else(|| {
            refused(format!(
                "payload sealed with {} key version {version}, which this process lacks",
                line.label()
            ))
        })?;
        let plaintext = key
            .open(&payload.data, &associated)
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
        // Read now: the returned future may be polled outside the caller's scope.
        let scope = current_scope();
        let keys = self.keys.clone();
        Box::pin(async move {
            let mut sealed = Vec::with_capacity(payloads.len());
            for payload in payloads {
                sealed.push(Self::seal(&keys, scope.as_ref(), payload).await?);
            }
            Ok(sealed)
        })
    }

    fn decode(
        &self,
        _: &SerializationContextData,
        payloads: Vec<Payload>,
    ) -> BoxFuture<'static, Result<Vec<Payload>, PayloadConversionError>> {
        let scope = current_scope();
        let keys = self.keys.clone();
        Box::pin(async move {
            let mut opened = Vec::with_capacity(payloads.len());
            for payload in payloads {
                opened.push(Self::open(&keys, scope.as_ref(), payload).await?);
            }
            Ok(opened)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use windlass_core::crypto::DataKey;

    use super::*;

    fn payload(text: &str) -> Payload {
        Payload {
            metadata: HashMap::from([("encoding".to_owned(), b"json/plain".to_vec())]),
            data: text.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    fn keys(lines: Vec<(KeyLine, Vec<(u32, DataKey)>)>, sealing: KeyLine) -> PayloadKeys {
        PayloadKeys::new(Arc::new(FixedSource(lines.into_iter().collect())), sealing)
    }

    fn scope(org: Uuid, workflow: &str) -> PayloadScope {
        PayloadScope {
            organization_id: org,
            workflow_id: workflow.to_owned(),
        }
    }

    fn key() -> Vec<(u32, DataKey)> {
        vec![(1, DataKey::generate().unwrap())]
    }

    #[tokio::test]
    async fn plaintext_is_refused() {
        let keys = keys(vec![(KeyLine::Platform, key())], KeyLine::Platform);
        let error = EncryptingCodec::open(&keys, None, payload("{\"run_id\":\"x\"}"))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("unencrypted"), "{error}");
        // Claiming the encoding without a seal does not help either.
        let mut forged = payload("{}");
        forged
            .metadata
            .insert(ENCODING_KEY.to_owned(), ENCODING.to_vec());
        forged
            .metadata
            .insert(KEY_VERSION.to_owned(), b"1".to_vec());
        assert!(EncryptingCodec::open(&keys, None, forged).await.is_err());
        // The server's own marker passes, exactly and only it.
        let marker = payload("\"ACTIVITY_ID_NOT_STARTED\"");
        assert_eq!(
            EncryptingCodec::open(&keys, None, marker.clone())
                .await
                .unwrap(),
            marker
        );
        for near in [
            "ACTIVITY_ID_NOT_STARTED",
            "\"ACTIVITY_ID_NOT_STARTED \"",
            "{}",
        ] {
            assert!(
                EncryptingCodec::open(&keys, None, payload(near))
                    .await
                    .is_err()
            );
        }
    }

    #[tokio::test]
    async fn payloads_round_trip_sealed_and_old_versions_still_open() {
        let v1 = DataKey::generate().unwrap();
        let old = keys(
            vec![(KeyLine::Platform, vec![(1, v1.clone())])],
            KeyLine::Platform,
        );
        let sealed = EncryptingCodec::seal(&old, None, payload("{\"subscription\":\"abc\"}"))
            .await
            .unwrap();
        assert!(!sealed.data.windows(3).any(|w| w == b"abc"));
        assert_eq!(sealed.metadata["encoding"], ENCODING);

        let rotated = keys(
            vec![(
                KeyLine::Platform,
                vec![(2, DataKey::generate().unwrap()), (1, v1)],
            )],
            KeyLine::Platform,
        );
        assert_eq!(
            EncryptingCodec::open(&rotated, None, sealed).await.unwrap(),
            payload("{\"subscription\":\"abc\"}")
        );
        let newer = EncryptingCodec::seal(&rotated, None, payload("x"))
            .await
            .unwrap();
        assert!(
            EncryptingCodec::open(&old, None, newer).await.is_err(),
            "a process without v2 cannot read v2"
        );
    }

    #[tokio::test]
    async fn format_one_payloads_still_open() {
        // Sealed as the codec before key lines did: platform key, fixed associated data.
        let platform = DataKey::generate().unwrap();
        let inner = payload("{\"run_id\":\"old\"}");
        let legacy = Payload {
            metadata: HashMap::from([
                (ENCODING_KEY.to_owned(), ENCODING.to_vec()),
                (KEY_VERSION.to_owned(), b"1".to_vec()),
            ]),
            data: platform
                .seal(&inner.encode_to_vec(), LEGACY_ASSOCIATED_DATA)
                .unwrap(),
            ..Default::default()
        };
        let keys = keys(
            vec![(KeyLine::Platform, vec![(1, platform)])],
            KeyLine::Platform,
        );
        assert_eq!(
            EncryptingCodec::open(&keys, None, legacy.clone())
                .await
                .unwrap(),
            inner
        );
        // Relabelling it as format 2 breaks the seal.
        let mut relabelled = legacy;
        relabelled
            .metadata
            .insert(SEAL_FORMAT.to_owned(), b"2".to_vec());
        relabelled
            .metadata
            .insert(KEY_LINE.to_owned(), b"platform".to_vec());
        assert!(
            EncryptingCodec::open(&keys, None, relabelled)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_payload_replayed_into_another_workflow_is_refused() {
        let org = Uuid::new_v4();
        let keys = keys(vec![(KeyLine::Organization(org), key())], KeyLine::Platform);
        let sealed = EncryptingCodec::seal(&keys, Some(&scope(org, "run-a")), payload("{}"))
            .await
            .unwrap();
        assert_eq!(sealed.metadata[WORKFLOW], b"run-a");
        assert!(
            EncryptingCodec::open(&keys, Some(&scope(org, "run-a")), sealed.clone())
                .await
                .is_ok()
        );
        let error = EncryptingCodec::open(&keys, Some(&scope(org, "run-b")), sealed.clone())
            .await
            .unwrap_err();
        assert!(error.to_string().contains("another workflow"), "{error}");
        // Rewriting the binding in the metadata breaks the seal.
        let mut rebound = sealed;
        rebound
            .metadata
            .insert(WORKFLOW.to_owned(), b"run-b".to_vec());
        assert!(
            EncryptingCodec::open(&keys, Some(&scope(org, "run-b")), rebound)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_payload_of_another_organisation_is_refused() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let shared = keys(
            vec![
                (KeyLine::Organization(a), key()),
                (KeyLine::Organization(b), key()),
            ],
            KeyLine::Platform,
        );
        let of_a = EncryptingCodec::seal(&shared, Some(&scope(a, "run-a")), payload("{}"))
            .await
            .unwrap();
        assert_eq!(
            of_a.metadata[KEY_LINE],
            format!("organization:{a}").into_bytes()
        );
        // A scoped reader of B refuses it, whatever workflow it names.
        let error = EncryptingCodec::open(&shared, Some(&scope(b, "run-a")), of_a.clone())
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("another organisation"),
            "{error}"
        );
        // A placed worker of B holds B's line only: A's payload cannot open there,
        // and relabelling it as B's breaks the seal.
        let placed_b = keys(
            vec![(
                KeyLine::Organization(b),
                vec![(1, DataKey::generate().unwrap())],
            )],
            KeyLine::Organization(b),
        );
        assert!(
            EncryptingCodec::open(&placed_b, None, of_a.clone())
                .await
                .is_err()
        );
        let mut relabelled = of_a;
        relabelled.metadata.insert(
            KEY_LINE.to_owned(),
            format!("organization:{b}").into_bytes(),
        );
        assert!(
            EncryptingCodec::open(&shared, None, relabelled)
                .await
                .is_err()
        );
        // What the placed worker seals itself is under B's line.
        let own = EncryptingCodec::seal(&placed_b, None, payload("{}"))
            .await
            .unwrap();
        assert_eq!(
            own.metadata[KEY_LINE],
            format!("organization:{b}").into_bytes()
        );
        assert!(EncryptingCodec::open(&placed_b, None, own).await.is_ok());
    }
}
