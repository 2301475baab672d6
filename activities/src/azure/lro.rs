//! Generic ARM long-running-operation poller, per "Track asynchronous Azure
//! operations": a 201/202 answer is followed through `Azure-AsyncOperation`
//! when present (it wins), otherwise `Location`; `Retry-After` (seconds)
//! paces polling, with a configurable default when it is absent.

use std::time::{Duration, Instant};

use azure_core::http::Method;
use serde_json::Value;
use url::Url;

use super::{
    error::{AzureError, LroOutcome},
    http::{Http, Reply, error_from},
};

pub(crate) struct LroSettings {
    pub default_interval: Duration,
    pub timeout: Duration,
}

enum Monitor {
    AsyncOperation(Url),
    Location(Url),
}

/// Follows `initial` to a terminal state. Returns the final resource body
/// when there is one (PUT), `None` otherwise (DELETE).
pub(crate) async fn follow(
    http: &Http,
    arm_base: &Url,
    method: Method,
    resource_url: &Url,
    initial: Reply,
    settings: &LroSettings,
) -> Result<Option<Value>, AzureError> {
    if !matches!(initial.status, 201 | 202) {
        return Ok(body_if_any(&initial));
    }
    let monitor = if let Some(u) = initial.header("azure-asyncoperation") {
        Monitor::AsyncOperation(monitor_url(arm_base, u)?)
    } else if let Some(u) = initial.header("location") {
        Monitor::Location(monitor_url(arm_base, u)?)
    } else {
        // No monitor: a 201 carrying a body is already the result.
        return Ok(body_if_any(&initial));
    };

    let started = Instant::now();
    let mut wait = initial.retry_after().unwrap_or(settings.default_interval);
    let mut monitor = monitor;
    loop {
        if started.elapsed() + wait > settings.timeout {
            return Err(AzureError::Timeout {
                what: format!("long-running {method} {}", resource_url.path()),
                waited: started.elapsed(),
            });
        }
        tokio::time::sleep(wait).await;
        let (url, via_status) = match &monitor {
            Monitor::AsyncOperation(u) => (u.clone(), true),
            Monitor::Location(u) => (u.clone(), false),
        };
        let reply = http.send(Method::Get, &url, None).await?;
        wait = reply.retry_after().unwrap_or(settings.default_interval);

        if via_status {
            if !reply.is_success() {
                return Err(error_from(Method::Get, &url, &reply));
            }
            let v = reply.json()?;
            match v["status"].as_str().unwrap_or_default() {
                "Succeeded" => {
                    return if method == Method::Put {
                        final_get(http, resource_url).await
                    } else {
                        Ok(None)
                    };
                }
                "Failed" => return Err(operation_error(LroOutcome::Failed, &v["error"])),
                "Canceled" => return Err(operation_error(LroOutcome::Canceled, &v["error"])),
                other => tracing::debug!(status = other, "operation still running"),
            }
        } else {
            match reply.status {
                202 => {
                    if let Some(next) = reply.header("location") {
                        monitor = Monitor::Location(monitor_url(arm_base, next)?);
                    }
                }
                200..=299 => {
                    return match body_if_any(&reply) {
                        Some(v) => Ok(Some(v)),
                        None if method == Method::Put => final_get(http, resource_url).await,
                        None => Ok(None),
                    };
                }
                _ => {
                    // A failed operation surfaces as the Location URL's error status.
                    let (code, message) = reply.error_detail();
                    let outcome = if code.contains("Cancel") {
                        LroOutcome::Canceled
                    } else {
                        LroOutcome::Failed
                    };
                    return Err(AzureError::Operation {
                        outcome,
                        code,
                        message,
                    });
                }
            }
        }
    }
}

fn body_if_any(reply: &Reply) -> Option<Value> {
    if reply.body.is_empty() {
        None
    } else {
        reply.json().ok()
    }
}

async fn final_get(http: &Http, resource_url: &Url) -> Result<Option<Value>, AzureError> {
    let reply = http.send(Method::Get, resource_url, None).await?;
    if !reply.is_success() {
        return Err(error_from(Method::Get, resource_url, &reply));
    }
    Ok(Some(reply.json()?))
}

fn operation_error(outcome: LroOutcome, error: &Value) -> AzureError {
    AzureError::Operation {
        outcome,
        code: error["code"].as_str().unwrap_or("Unknown").to_string(),
        message: error["message"].as_str().unwrap_or_default().to_string(),
    }
}

/// The bearer token is attached to every poll, so a monitor URL must stay
/// on the ARM origin the client was configured with.
fn monitor_url(arm_base: &Url, raw: &str) -> Result<Url, AzureError> {
    let url = Url::parse(raw).map_err(|e| AzureError::InvalidResponse {
        message: format!("operation monitor URL is not a URL: {e}"),
    })?;
    if url.origin() != arm_base.origin() {
        return Err(AzureError::InvalidResponse {
            message: format!(
                "operation monitor URL points at {} instead of the ARM endpoint",
                url.origin().ascii_serialization()
            ),
        });
    }
    Ok(url)
}
