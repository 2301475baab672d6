//! What every ARM resource provider of the stand-in shares: request bodies, resource
//! group keys, long-running operations and their polling URLs, the refusal of a method.

use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use serde_json::Value;

use super::reply::arm_error;
use super::state::{Operation, State};

pub(super) fn parse_body(body: &[u8]) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|e| {
        arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            format!("The request content was invalid and could not be deserialized: {e}"),
        )
    })
}

pub(super) fn rg_key(sub: &str, name: &str) -> String {
    format!("/subscriptions/{sub}/resourcegroups/{name}").to_ascii_lowercase()
}

pub(super) fn new_operation(
    s: &mut State,
    sub: &str,
    method: &str,
    resource_key: &str,
) -> Operation {
    let op = Operation {
        id: uuid::Uuid::new_v4().to_string(),
        subscription_id: sub.to_string(),
        method: method.to_string(),
        resource_key: resource_key.to_string(),
        polls_remaining: s.faults.lro_polls,
        runs_until: (s.faults.lro_duration_ms > 0)
            .then(|| Utc::now() + chrono::Duration::milliseconds(s.faults.lro_duration_ms as i64)),
        outcome: s.faults.lro_outcome.clone(),
        status: "InProgress".to_string(),
        started_at: Utc::now(),
    };
    s.operations.insert(op.id.clone(), op.clone());
    op
}

pub(super) fn async_url(base: &str, op: &Operation) -> String {
    format!(
        "{base}/subscriptions/{}/providers/Microsoft.Resources/operationStatuses/{}?api-version=2021-04-01",
        op.subscription_id, op.id
    )
}

pub(super) fn location_url(base: &str, op: &Operation) -> String {
    format!(
        "{base}/subscriptions/{}/operationresults/{}?api-version=2021-04-01",
        op.subscription_id, op.id
    )
}

pub(super) fn method_not_allowed() -> Response {
    arm_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "The requested method is not supported by the stand-in for this resource.",
    )
}
