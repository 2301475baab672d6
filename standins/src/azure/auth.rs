//! Bearer-token check, throttling and request logging in front of the ARM
//! and Graph stand-ins.

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use sha2::{Digest, Sha256};

use super::{
    Shared,
    reply::{arm_error, graph_error, with_headers},
    state::IssuedToken,
};

pub(crate) fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    Arm,
    Graph,
}

const ARM_AUDIENCES: [&str; 2] = [
    "https://management.azure.com",
    "https://management.core.windows.net",
];
const GRAPH_AUDIENCE: &str = "https://graph.microsoft.com";

/// The caller's principal, or `Err(response)` when the request must be refused before
/// reaching the API.
pub(crate) fn gate(
    shared: &Shared,
    api: Api,
    method: &Method,
    headers: &HeaderMap,
) -> Result<IssuedToken, Response> {
    let err = |status, code: &str, msg: &str| match api {
        Api::Arm => arm_error(status, code, msg),
        Api::Graph => graph_error(status, code, msg),
    };
    let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Err(err(
            StatusCode::UNAUTHORIZED,
            if api == Api::Arm {
                "AuthenticationFailed"
            } else {
                "InvalidAuthenticationToken"
            },
            "Authentication failed. The 'Authorization' header is missing.",
        ));
    };
    let Some(token) = auth.strip_prefix("Bearer ") else {
        return Err(err(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "The 'Authorization' header must use the Bearer scheme.",
        ));
    };
    let issued = shared.with_state(|s| s.issued_tokens.get(&token_hash(token)).cloned());
    let Some(issued) = issued else {
        return Err(err(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "The access token is invalid (not issued by this stand-in).",
        ));
    };
    let audience_ok = match api {
        Api::Arm => ARM_AUDIENCES.contains(&issued.audience.as_str()),
        Api::Graph => issued.audience == GRAPH_AUDIENCE,
    };
    if !audience_ok {
        return Err(err(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationTokenAudience",
            "The access token has been obtained for the wrong audience or resource.",
        ));
    }

    if let Some(retry_after) = shared.with_state(|s| s.take_throttle()) {
        let quota_header = if method == Method::GET {
            "x-ms-ratelimit-remaining-subscription-reads"
        } else {
            "x-ms-ratelimit-remaining-subscription-writes"
        };
        let resp = err(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "The request is being throttled (stand-in injected fault).",
        );
        return Err(with_headers(
            resp,
            &[
                ("retry-after", retry_after.to_string()),
                (quota_header, "0".to_string()),
            ],
        ));
    }
    Ok(issued)
}
