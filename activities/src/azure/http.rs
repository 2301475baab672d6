//! One request/response round trip on an azure_core pipeline with a bearer
//! token, plus a small bounded retry for throttling and server errors.
//!
//! Retries here are deliberately few: long waits belong to the durable
//! (Temporal) retry policy, which sees the typed [`AzureError`].

use std::{sync::Arc, time::Duration};

use azure_core::{
    credentials::TokenCredential,
    error::ErrorKind,
    http::{
        Context, Method, Pipeline, PipelineSendOptions, Request, RetryOptions,
        headers::{HeaderName, Headers},
        policies::{Policy, auth::BearerTokenAuthorizationPolicy},
    },
};
use backon::{ExponentialBuilder, Retryable};
use serde_json::Value;
use url::Url;

use crate::rate_limit::{CloudAccount, RateLimiter};

use super::{
    config::AzureClientConfig,
    credential::{client_options, transport},
    error::AzureError,
};

pub(crate) struct Reply {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &'static str) -> Option<&str> {
        self.headers
            .get_optional_str(&HeaderName::from_static(name))
    }

    /// `Retry-After` in delta-seconds, the form ARM and Graph use.
    pub fn retry_after(&self) -> Option<Duration> {
        self.header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
    }

    pub fn json(&self) -> Result<Value, AzureError> {
        serde_json::from_slice(&self.body).map_err(|e| AzureError::InvalidResponse {
            message: format!("status {} with a body that is not JSON: {e}", self.status),
        })
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `(code, message)` from an ARM/Graph error body.
    pub fn error_detail(&self) -> (String, String) {
        let v: Value = serde_json::from_slice(&self.body).unwrap_or(Value::Null);
        let err = &v["error"];
        let code = err["code"].as_str().unwrap_or("Unknown").to_string();
        let message = err["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| {
                String::from_utf8_lossy(&self.body)
                    .chars()
                    .take(300)
                    .collect()
            });
        (code, message)
    }
}

pub(crate) struct Http {
    pipeline: Pipeline,
    max_retries: usize,
    max_wait: Duration,
    limiter: Option<RateLimiter>,
}

impl Http {
    pub fn new(
        config: &AzureClientConfig,
        credential: Arc<dyn TokenCredential>,
        scope: &str,
    ) -> Result<Self, AzureError> {
        let mut options = client_options(config, transport(config)?);
        // Retry policy lives in `send` so 429 handling stays bounded and typed.
        options.retry = RetryOptions::none();
        let auth: Arc<dyn Policy> = Arc::new(BearerTokenAuthorizationPolicy::new(
            credential,
            [scope.to_string()],
        ));
        let pipeline = Pipeline::new(
            Some(env!("CARGO_PKG_NAME")),
            Some(env!("CARGO_PKG_VERSION")),
            options,
            Vec::new(),
            vec![auth],
            None,
        );
        Ok(Self {
            pipeline,
            max_retries: config.max_in_client_retries,
            max_wait: config.max_in_client_wait,
            limiter: None,
        })
    }

    /// Every request naming a subscription waits for that subscription's budget (ARM
    /// throttles per subscription). Requests above any subscription are not limited.
    pub fn limited_by(mut self, limiter: Option<RateLimiter>) -> Self {
        self.limiter = limiter;
        self
    }

    /// Sends with bounded retries on 429/5xx/transport errors. Other HTTP
    /// statuses come back as a [`Reply`] for the caller to interpret.
    pub async fn send(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Value>,
    ) -> Result<Reply, AzureError> {
        let max_wait = self.max_wait;
        let attempt = || async {
            let reply = self.send_once(method, url, body).await?;
            match reply.status {
                429 => {
                    let (code, _) = reply.error_detail();
                    Err(AzureError::Throttled {
                        retry_after: reply.retry_after().unwrap_or(Duration::from_secs(1)),
                        code,
                    })
                }
                500..=599 => Err(error_from(method, url, &reply)),
                // Another operation on the resource is still running: ARM says when to
                // come back (Retry-After), as for throttling.
                409 if reply.error_detail().0 == "AnotherOperationInProgress" => {
                    Err(error_from(method, url, &reply))
                }
                _ => Ok(reply),
            }
        };
        attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(max_wait)
                    .with_max_times(self.max_retries)
                    .with_jitter(),
            )
            .when(move |e| match e.retry() {
                super::error::Retry::After(d) => d <= max_wait,
                // Replication and propagation are waited out across attempts, within
                // their windows (`azure_access::azure_failure_in`), not here.
                super::error::Retry::Settling { .. } | super::error::Retry::Never => false,
            })
            .adjust(|e, next| {
                let hinted = match e {
                    AzureError::Throttled { retry_after, .. } => Some(*retry_after),
                    AzureError::Api { retry_after, .. } => *retry_after,
                    _ => None,
                };
                next.map(|d| hinted.unwrap_or(d))
            })
            .notify(|e, d| tracing::warn!(error = %e, wait = ?d, "Azure call will be retried"))
            .await
    }

    async fn send_once(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Value>,
    ) -> Result<Reply, AzureError> {
        // Here rather than in `send`: in-client retries and LRO polls spend the budget too.
        if let Some(limiter) = &self.limiter
            && let Some(subscription) = subscription_of(url)
        {
            limiter.acquire(&CloudAccount::azure(subscription)).await;
        }
        let mut req = Request::new(url.clone(), method);
        req.insert_header("accept", "application/json");
        if let Some(body) = body {
            req.insert_header("content-type", "application/json");
            let bytes = serde_json::to_vec(body).map_err(|e| AzureError::InvalidResponse {
                message: format!("serialising request body: {e}"),
            })?;
            req.set_body(bytes);
        }
        let ctx = Context::new();
        let options = PipelineSendOptions {
            skip_checks: true,
            ..Default::default()
        };
        let resp = self
            .pipeline
            .send(&ctx, &mut req, Some(options))
            .await
            .map_err(map_core_error)?;
        let (status, headers, body) = resp.deconstruct();
        tracing::debug!(%method, path = url.path(), status = u16::from(status), "Azure call");
        Ok(Reply {
            status: status.into(),
            headers,
            body: body.to_vec(),
        })
    }
}

/// The subscription id in an ARM path (`/subscriptions/{id}/...`).
fn subscription_of(url: &Url) -> Option<&str> {
    let mut segments = url.path_segments()?;
    while let Some(segment) = segments.next() {
        if segment.eq_ignore_ascii_case("subscriptions") {
            return segments.next().filter(|id| !id.is_empty());
        }
    }
    None
}

/// Interprets a non-success reply. The path (no query string) identifies
/// the call; no header is ever copied into the error.
pub(crate) fn error_from(method: Method, url: &Url, reply: &Reply) -> AzureError {
    let (code, message) = reply.error_detail();
    match (reply.status, code.as_str()) {
        (_, "RequestDisallowedByPolicy") => AzureError::DisallowedByPolicy {
            policy: denying_policy(&reply.body).unwrap_or_else(|| "(not named)".to_owned()),
            method: method.to_string(),
            path: url.path().to_string(),
            message,
        },
        (_, "ScopeLocked") => AzureError::ScopeLocked {
            locks: locked_scopes(&message).unwrap_or_else(|| "(not named)".to_owned()),
            method: method.to_string(),
            path: url.path().to_string(),
            message,
        },
        (429, _) => AzureError::Throttled {
            retry_after: reply.retry_after().unwrap_or(Duration::from_secs(1)),
            code,
        },
        (401 | 403, _) => AzureError::Unauthorized {
            status: reply.status,
            code,
            message,
        },
        (_, "RoleDefinitionDoesNotExist") => AzureError::RoleDefinitionDoesNotExist { message },
        (status, _) => AzureError::Api {
            method: method.to_string(),
            path: url.path().to_string(),
            status,
            code,
            message,
            retry_after: reply.retry_after(),
        },
    }
}

/// The policy assignment that denied a request: ARM names it in the error's
/// `additionalInfo` (`PolicyViolation`) and in the message's "Policy identifiers".
fn denying_policy(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let error = &v["error"];
    let from_info = error["additionalInfo"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["type"] == "PolicyViolation")
        .find_map(|i| {
            let info = &i["info"];
            let name = info["policyAssignmentDisplayName"]
                .as_str()
                .or(info["policyAssignmentName"].as_str())?;
            Some(match info["policyAssignmentId"].as_str() {
                Some(id) => format!("{name} ({id})"),
                None => name.to_owned(),
            })
        });
    from_info.or_else(|| {
        let message = error["message"].as_str()?;
        let start = message.find("Policy identifiers: '")? + "Policy identifiers: '".len();
        let end = message[start..].rfind('\'')? + start;
        let ids: Value = serde_json::from_str(&message[start..end]).ok()?;
        let assignment = &ids[0]["policyAssignment"];
        Some(format!(
            "{} ({})",
            assignment["name"].as_str()?,
            assignment["id"].as_str().unwrap_or_default()
        ))
    })
}

/// The locked scopes (lock ids where ARM gives them) from a `ScopeLocked` message:
/// "... because following scope(s) are locked: '<scope>'. Please remove the lock ...".
fn locked_scopes(message: &str) -> Option<String> {
    let start = message.find("are locked: ")? + "are locked: ".len();
    let rest = &message[start..];
    let end = rest.find(". Please").unwrap_or(rest.len());
    Some(rest[..end].trim().to_owned())
}

fn map_core_error(err: azure_core::Error) -> AzureError {
    match err.kind() {
        ErrorKind::Credential => AzureError::Credential {
            transient: credential_error_is_transient(&err),
            message: err.to_string(),
        },
        ErrorKind::Connection | ErrorKind::Io => AzureError::Transport {
            message: err.to_string(),
        },
        _ => AzureError::Transport {
            message: err.to_string(),
        },
    }
}

/// The token endpoint failing with 429/5xx or a network error is worth
/// retrying; a rejected assertion is not.
fn credential_error_is_transient(err: &azure_core::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(core) = e.downcast_ref::<azure_core::Error>() {
            match core.kind() {
                ErrorKind::HttpResponse { status, .. } => {
                    let s = u16::from(*status);
                    return s == 429 || s >= 500;
                }
                ErrorKind::Connection | ErrorKind::Io => return true,
                _ => {}
            }
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_and_lock_refusals_name_what_refused() {
        let body = serde_json::json!({"error": {
            "code": "RequestDisallowedByPolicy",
            "message": "Resource 'sa' was disallowed by policy. Policy identifiers: '[{\"policyAssignment\":{\"name\":\"Deny storage\",\"id\":\"/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/deny-storage\"}}]'."
        }});
        assert_eq!(
            denying_policy(body.to_string().as_bytes()).unwrap(),
            "Deny storage (/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/deny-storage)"
        );
        assert_eq!(
            locked_scopes(
                "The scope '/subscriptions/s/resourceGroups/rg' cannot perform delete operation \
                 because following scope(s) are locked: '/subscriptions/s/resourceGroups/rg/providers/Microsoft.Authorization/locks/keep'. Please remove the lock and try again."
            )
            .unwrap(),
            "'/subscriptions/s/resourceGroups/rg/providers/Microsoft.Authorization/locks/keep'"
        );
    }

    #[test]
    fn the_subscription_is_read_from_arm_paths() {
        let url = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            subscription_of(&url(
                "https://management.azure.com/subscriptions/0f9e/resourceGroups/rg?api-version=1"
            )),
            Some("0f9e")
        );
        assert_eq!(
            subscription_of(&url(
                "https://management.azure.com/providers/Microsoft.Authorization/operations"
            )),
            None
        );
        assert_eq!(
            subscription_of(&url("https://management.azure.com/subscriptions/")),
            None
        );
    }
}
