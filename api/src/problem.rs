//! RFC 9457 problem details, the one error shape of the API.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use windlass_workflows::engine::EngineError;

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What went wrong with this request, and what to do about it.
    pub detail: String,
    #[serde(skip)]
    retry_after_secs: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("https://windlass.dev/problems/{kind}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            retry_after_secs: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-request", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }

    pub fn unavailable(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
        }
    }

    /// 429: the caller (or, for unauthenticated routes, whoever shares its budget) sent
    /// too many requests; `Retry-After` says when the budget refills.
    pub fn too_many_requests(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "too-many-requests", detail)
        }
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred; it has been logged",
        )
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let retry_after = self.retry_after_secs;
        let mut response = (status, axum::Json(self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<windlass_core::Error> for Problem {
    fn from(error: windlass_core::Error) -> Self {
        use windlass_core::Error;
        match error {
            Error::NotFound { .. } => Problem::not_found(error.to_string()),
            Error::Conflict(detail) => Problem::conflict(detail),
            Error::InvalidInput(detail) => Problem::unprocessable(detail),
            Error::Forbidden(detail) => Problem::new(StatusCode::FORBIDDEN, "forbidden", detail),
            Error::InFlightLimit(detail) => Problem::too_many_requests(detail, 10),
            Error::Unavailable(detail) => {
                tracing::warn!(%detail, "a service the change needs is unavailable");
                Problem::unavailable("the workflow engine is unavailable; retry shortly", 5)
            }
            ref e if e.is_retryable() => {
                tracing::warn!(error = %e, "store unavailable");
                Problem::unavailable("the database is unavailable; retry shortly", 2)
            }
            e => {
                tracing::error!(error = %e, "store error");
                Problem::internal()
            }
        }
    }
}

impl From<EngineError> for Problem {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Unavailable(_) => {
                tracing::warn!(%error, "workflow engine unavailable");
                Problem::unavailable("the workflow engine is unavailable; retry shortly", 5)
            }
            EngineError::InvalidInput(_) => Problem::unprocessable(error.to_string()),
            EngineError::NotFound(_) => Problem::not_found(error.to_string()),
            _ => {
                tracing::error!(%error, "workflow engine error");
                Problem::internal()
            }
        }
    }
}

pub(crate) async fn unknown_route(uri: axum::http::Uri) -> Problem {
    Problem::not_found(format!("no route for {}", uri.path()))
}

pub(crate) async fn method_not_allowed(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}
