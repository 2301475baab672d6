//! The webhook signature: what a CI pipeline computes and what the API checks.
//!
//! `Windlass-Signature: t=<unix seconds>,v2=<hex HMAC-SHA256 of "<t>\n<Idempotency-Key>\n<raw body>">`,
//! keyed with the environment's webhook secret. The Idempotency-Key is signed (empty when
//! the request has none), so a captured call cannot be replayed under a new key; the
//! separators are newlines, which neither the decimal timestamp nor a header value can
//! hold, so no two (timestamp, key, body) triples sign the same bytes. `v1` (timestamp and
//! body only) is no longer accepted.

use aws_lc_rs::hmac;
use uuid::Uuid;
use windlass_core::environments::EnvironmentSpec;
use windlass_core::secret_vault::seal_secret;
use windlass_core::secrets::SealedSecret;
use windlass_core::secrets::webhook_secret_name;
use zeroize::Zeroizing;

use crate::AppState;
use crate::problem::Problem;

pub const SIGNATURE_HEADER: &str = "windlass-signature";
/// How far in the past a signature may be dated.
pub const MAX_AGE_SECONDS: i64 = 270;
/// How far in the future (the pipeline's clock running ahead of ours).
pub const MAX_SKEW_AHEAD_SECONDS: i64 = 30;
/// The whole window a signature is valid in: five minutes.
pub const WINDOW_SECONDS: i64 = MAX_AGE_SECONDS + MAX_SKEW_AHEAD_SECONDS;

/// Why a webhook call was not authenticated: a closed set, used as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Refusal {
    MissingSignature,
    MalformedSignature,
    OutsideWindow,
    UnknownEnvironment,
    NoWebhookSecret,
    SignatureMismatch,
    Replayed,
}

impl Refusal {
    pub(crate) fn as_label(self) -> &'static str {
        match self {
            Refusal::MissingSignature => "missing_signature",
            Refusal::MalformedSignature => "malformed_signature",
            Refusal::OutsideWindow => "outside_window",
            Refusal::UnknownEnvironment => "unknown_environment",
            Refusal::NoWebhookSecret => "no_webhook_secret",
            Refusal::SignatureMismatch => "signature_mismatch",
            Refusal::Replayed => "replayed",
        }
    }
}

/// A parsed `Windlass-Signature` header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PresentedSignature {
    pub timestamp: i64,
    pub tag: Vec<u8>,
}

impl PresentedSignature {
    pub(crate) fn tag_hex(&self) -> String {
        hex(&self.tag)
    }
}

/// The `Windlass-Signature` value for a call at `timestamp` with this Idempotency-Key and
/// body: what a CI pipeline computes.
pub fn sign(secret: &str, timestamp: i64, idempotency_key: Option<&str>, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, &signed_message(timestamp, idempotency_key, body));
    format!("t={timestamp},v2={}", hex(tag.as_ref()))
}

pub(crate) fn signed_message(
    timestamp: i64,
    idempotency_key: Option<&str>,
    body: &[u8],
) -> Vec<u8> {
    let mut message =
        format!("{timestamp}\n{}\n", idempotency_key.unwrap_or_default()).into_bytes();
    message.extend_from_slice(body);
    message
}

/// Parses `t=<digits>,v2=<64 hex digits>`; anything else (a repeated or missing part, a
/// sign, an overlong number) is malformed.
pub(crate) fn parse(header: &str) -> Result<PresentedSignature, Refusal> {
    let mut timestamp = None;
    let mut tag = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) if timestamp.is_none() => {
                if t.is_empty() || t.len() > 19 || !t.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Refusal::MalformedSignature);
                }
                timestamp = Some(t.parse::<i64>().map_err(|_| Refusal::MalformedSignature)?);
            }
            Some(("v2", v)) if tag.is_none() => {
                tag = Some(
                    decode_hex(v)
                        .filter(|t| t.len() == 32)
                        .ok_or(Refusal::MalformedSignature)?,
                );
            }
            Some(("t" | "v2", _)) => return Err(Refusal::MalformedSignature),
            _ => {}
        }
    }
    match (timestamp, tag) {
        (Some(timestamp), Some(tag)) => Ok(PresentedSignature { timestamp, tag }),
        _ => Err(Refusal::MalformedSignature),
    }
}

/// Whether `timestamp` is inside the window around `now`, without overflow whatever the
/// timestamp (a difference that does not fit in an i64 is outside it).
pub(crate) fn within_window(timestamp: i64, now: i64) -> bool {
    match now.checked_sub(timestamp) {
        Some(age) => (-MAX_SKEW_AHEAD_SECONDS..=MAX_AGE_SECONDS).contains(&age),
        None => false,
    }
}

pub(crate) fn verify(
    secret: &str,
    presented: &PresentedSignature,
    idempotency_key: Option<&str>,
    body: &[u8],
) -> Result<(), Refusal> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::verify(
        &key,
        &signed_message(presented.timestamp, idempotency_key, body),
        &presented.tag,
    )
    .map_err(|_| Refusal::SignatureMismatch)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Where the signed webhook routes live: callers there authenticate by signature, not by
/// bearer token (`authz`).
pub(crate) const PREFIX: &str = "/v1/webhooks/";

/// A new signing secret for the environment, and its sealed form that replaces any other
/// when stored (with its audit entry: `Store::upsert_sealed_secret_on`).
pub(crate) async fn new_webhook_secret(
    state: &AppState,
    environment: &EnvironmentSpec,
) -> Result<(Zeroizing<String>, SealedSecret), Problem> {
    let secret = Zeroizing::new(format!(
        "whsec_{}{}",
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple()
    ));
    let sealed = seal_secret(
        &state.keys,
        environment.organization_id,
        &webhook_secret_name(environment.id),
        &secret,
    )
    .await?;
    Ok((secret, sealed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_covers_its_time_key_and_body() {
        let a = sign("whsec_x", 1_700_000_000, Some("k1"), b"{}");
        assert!(a.starts_with("t=1700000000,v2="));
        assert_eq!(a.len(), "t=1700000000,v2=".len() + 64);
        assert_ne!(
            a,
            sign("whsec_x", 1_700_000_000, Some("k1"), b"{\"images\":{}}")
        );
        assert_ne!(a, sign("whsec_x", 1_700_000_000, Some("k2"), b"{}"));
        assert_ne!(a, sign("whsec_x", 1_700_000_000, None, b"{}"));
        assert_ne!(a, sign("whsec_x", 1_700_000_001, Some("k1"), b"{}"));
        assert_ne!(a, sign("whsec_y", 1_700_000_000, Some("k1"), b"{}"));
        let presented = parse(&a).unwrap();
        assert_eq!(verify("whsec_x", &presented, Some("k1"), b"{}"), Ok(()));
        assert_eq!(
            verify("whsec_x", &presented, Some("k2"), b"{}"),
            Err(Refusal::SignatureMismatch)
        );
    }

    #[test]
    fn a_key_cannot_borrow_bytes_from_the_body() {
        // With '.' separators "1.a.b" + "c" and "1.a" + "b.c" would sign the same bytes.
        assert_ne!(
            signed_message(1, Some("a.b"), b"c"),
            signed_message(1, Some("a"), b"b.c")
        );
    }

    #[test]
    fn extreme_timestamps_are_outside_the_window_without_overflow() {
        let now = 1_700_000_000;
        assert!(within_window(now, now));
        assert!(within_window(now - MAX_AGE_SECONDS, now));
        assert!(!within_window(now - MAX_AGE_SECONDS - 1, now));
        assert!(within_window(now + MAX_SKEW_AHEAD_SECONDS, now));
        assert!(!within_window(now + MAX_SKEW_AHEAD_SECONDS + 1, now));
        assert!(!within_window(i64::MIN, now));
        assert!(!within_window(i64::MAX, now));
        assert!(!within_window(i64::MIN, i64::MAX));
        assert!(!within_window(i64::MAX, i64::MIN));
        assert_eq!(WINDOW_SECONDS, 300);
    }

    #[test]
    fn malformed_headers_are_refused() {
        let tag = "ab".repeat(32);
        assert!(parse(&format!("t=5,v2={tag}")).is_ok());
        for header in [
            String::new(),
            format!("t=-9223372036854775808,v2={tag}"),
            format!("t=+5,v2={tag}"),
            format!("t=99999999999999999999,v2={tag}"),
            format!("t=5,t=6,v2={tag}"),
            format!("t=5,v2={tag},v2={tag}"),
            format!("t=5,v1={tag}"),
            "t=5,v2=0g".to_owned(),
            "t=5,v2=abab".to_owned(),
        ] {
            assert_eq!(parse(&header), Err(Refusal::MalformedSignature), "{header}");
        }
        assert_eq!(decode_hex("0aff"), Some(vec![0x0a, 0xff]));
    }
}
