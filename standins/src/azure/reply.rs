//! Error bodies in the shapes ARM, Graph and Entra ID use, so clients parse
//! the stand-in exactly as they would parse the real services.

use axum::{
    Json,
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

/// ARM error: `{"error":{"code":..,"message":..}}`.
pub(crate) fn arm_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({"error": {"code": code, "message": message.into()}});
    (status, Json(body)).into_response()
}

/// Graph error: ARM's shape plus `innerError`.
pub(crate) fn graph_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let body = json!({"error": {
        "code": code,
        "message": message.into(),
        "innerError": {
            "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
            "request-id": request_id,
            "client-request-id": request_id,
        }
    }});
    (status, Json(body)).into_response()
}

/// Entra ID (OAuth 2.0) error.
pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({
        "error": error,
        "error_description": format!("Windlass Entra stand-in: {description}"),
        "error_codes": [],
        "timestamp": chrono::Utc::now().to_rfc3339(),
    });
    (status, Json(body)).into_response()
}

/// Entra ID's error for a refused token request, with its AADSTS code in the description
/// and in `error_codes`, as clients (MSAL, azure_identity) parse it.
pub(crate) fn entra_error(
    status: StatusCode,
    error: &str,
    code: u32,
    description: &str,
) -> Response {
    let now = chrono::Utc::now();
    let trace_id = uuid::Uuid::new_v4().to_string();
    let correlation_id = uuid::Uuid::new_v4().to_string();
    let timestamp = now.format("%Y-%m-%d %H:%M:%SZ").to_string();
    let body = json!({
        "error": error,
        "error_description": format!(
            "AADSTS{code}: {description} (Windlass Entra stand-in) Trace ID: {trace_id} \
             Correlation ID: {correlation_id} Timestamp: {timestamp}"
        ),
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    (status, Json(body)).into_response()
}

pub(crate) fn json(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

pub(crate) fn with_headers(mut resp: Response, headers: &[(&'static str, String)]) -> Response {
    let map: &mut HeaderMap = resp.headers_mut();
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            map.insert(*k, v);
        }
    }
    resp
}
