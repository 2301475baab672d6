//! EKS's bearer tokens, verified as EKS's authenticator (aws-iam-authenticator) does: the
//! token is `k8s-aws-v1.` and the base64url of an STS GetCallerIdentity URL presigned by
//! the caller with the cluster's name in its signed `x-k8s-aws-id` header; the server
//! calls that URL and takes the identity STS answers.
//!
//! What is checked, as the authenticator checks it: the URL is the configured STS
//! endpoint's (a token cannot send the server elsewhere), the action is
//! GetCallerIdentity, `x-k8s-aws-id` is among the signed headers, and the token is at
//! most 15 minutes old (`X-Amz-Date`; STS ignores `X-Amz-Expires` for this call). The
//! signature is STS's to check: moto, behind the stand-in, does not, so a token signed
//! for another cluster is not told apart here. A verified token is remembered until it
//! expires, as the authenticator caches.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use base64::Engine as _;

/// The token's prefix, as EKS defines it.
const PREFIX: &str = "k8s-aws-v1.";

/// How long a token is accepted after it was signed.
const TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

#[derive(Default)]
pub(crate) struct EksTokens {
    /// The STS endpoint tokens must point at; `None`: EKS tokens are not accepted.
    sts: Mutex<Option<url::Url>>,
    /// Verified tokens and until when they hold.
    verified: Mutex<HashMap<String, SystemTime>>,
    /// Who the verified tokens were signed by (STS's Arn), in order, for tests.
    callers: Mutex<Vec<String>>,
    http: reqwest::Client,
}

impl EksTokens {
    pub(crate) fn accept_from(&self, sts_endpoint: &str) -> Result<(), String> {
        let url = url::Url::parse(sts_endpoint).map_err(|e| format!("{sts_endpoint}: {e}"))?;
        *self.sts.lock().unwrap_or_else(|p| p.into_inner()) = Some(url);
        Ok(())
    }

    pub(crate) fn is_eks_token(token: &str) -> bool {
        token.starts_with(PREFIX)
    }

    /// Whether `token` is a valid EKS token; the caller's ARN when it is.
    pub(crate) async fn verify(&self, token: &str) -> Result<String, String> {
        let now = SystemTime::now();
        {
            let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            verified.retain(|_, until| *until > now);
            if verified.contains_key(token) {
                return Ok("(cached)".to_owned());
            }
        }
        let sts = self
            .sts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or("EKS tokens are not accepted here")?;
        let (url, signed_at) = presigned_url(token, &sts)?;
        let expires = signed_at + TOKEN_LIFETIME;
        if expires <= now {
            return Err("the token has expired".to_owned());
        }
        let response = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("calling STS: {e}"))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(format!("STS refused the token: HTTP {status}"));
        }
        let arn = caller_arn(&body).ok_or("STS answered without an Arn")?;
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.to_owned(), expires);
        self.callers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(arn.clone());
        Ok(arn)
    }

    pub(crate) fn callers(&self) -> Vec<String> {
        self.callers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The presigned URL a token carries, checked against `sts`, and when it was signed.
fn presigned_url(token: &str, sts: &url::Url) -> Result<(url::Url, SystemTime), String> {
    let encoded = token.strip_prefix(PREFIX).ok_or("not an EKS token")?;
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .map_err(|_| "the token is not base64url")?;
    let text = String::from_utf8(decoded).map_err(|_| "the token is not a URL")?;
    let url = url::Url::parse(&text).map_err(|_| "the token is not a URL")?;
    if url.origin() != sts.origin() {
        return Err(format!(
            "the token's URL is not STS's ({} instead of {})",
            url.origin().ascii_serialization(),
            sts.origin().ascii_serialization()
        ));
    }
    let query: HashMap<String, String> = url
        .query_pairs()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
        .collect();
    if query.get("action").map(String::as_str) != Some("GetCallerIdentity") {
        return Err("the token's action is not GetCallerIdentity".to_owned());
    }
    let signed_headers = query
        .get("x-amz-signedheaders")
        .ok_or("the token's URL is not presigned")?;
    if !signed_headers.split(';').any(|h| h == "x-k8s-aws-id") {
        return Err("the token does not sign x-k8s-aws-id (the cluster's name)".to_owned());
    }
    let date = query
        .get("x-amz-date")
        .ok_or("the token has no X-Amz-Date")?;
    let signed_at = chrono::NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| "the token's X-Amz-Date is malformed")?
        .and_utc();
    let signed_at =
        SystemTime::UNIX_EPOCH + Duration::from_secs(signed_at.timestamp().max(0) as u64);
    Ok((url, signed_at))
}

/// The Arn in STS's answer (JSON when asked for, XML otherwise).
fn caller_arn(body: &str) -> Option<String> {
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(body) {
        let arn = &json["GetCallerIdentityResponse"]["GetCallerIdentityResult"]["Arn"];
        return arn.as_str().map(str::to_owned);
    }
    let start = body.find("<Arn>")? + "<Arn>".len();
    let end = body[start..].find("</Arn>")? + start;
    Some(body[start..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(url: &str) -> String {
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url)
        )
    }

    fn now_stamp() -> String {
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string()
    }

    #[test]
    fn a_token_pointing_elsewhere_than_sts_is_refused() {
        let sts = url::Url::parse("http://127.0.0.1:8447").unwrap();
        let url = format!(
            "http://attacker.example/?Action=GetCallerIdentity&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Date={}",
            now_stamp()
        );
        let error = presigned_url(&token(&url), &sts).unwrap_err();
        assert!(error.contains("not STS's"), "{error}");
    }

    #[test]
    fn a_token_without_the_cluster_header_or_too_old_is_refused() {
        let sts = url::Url::parse("http://127.0.0.1:8447").unwrap();
        let unsigned = format!(
            "http://127.0.0.1:8447/?Action=GetCallerIdentity&X-Amz-SignedHeaders=host&X-Amz-Date={}",
            now_stamp()
        );
        assert!(
            presigned_url(&token(&unsigned), &sts)
                .unwrap_err()
                .contains("x-k8s-aws-id")
        );
        let old = "http://127.0.0.1:8447/?Action=GetCallerIdentity&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Date=20200101T000000Z";
        let (_, signed_at) = presigned_url(&token(old), &sts).unwrap();
        assert!(signed_at + TOKEN_LIFETIME < SystemTime::now());
    }

    #[test]
    fn the_arn_is_read_from_json_or_xml() {
        assert_eq!(
            caller_arn(r#"{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Arn":"arn:aws:sts::1:assumed-role/r/s"}}}"#).as_deref(),
            Some("arn:aws:sts::1:assumed-role/r/s")
        );
        assert_eq!(
            caller_arn("<GetCallerIdentityResult><Arn>arn:x</Arn></GetCallerIdentityResult>")
                .as_deref(),
            Some("arn:x")
        );
    }
}
