//! Limits on what a request may carry, answered before anything else reads it: headers
//! (here), the body (`MAX_BODY_BYTES`, `413`) and each field (the handlers' validation,
//! `400`/`422`). Documented in the README's "Limits".

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::problem::Problem;

/// All header names and values together.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
pub const MAX_HEADER_COUNT: usize = 64;

/// `431 Request Header Fields Too Large` for requests over either header limit.
pub(crate) async fn limit_headers(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > MAX_HEADER_COUNT || bytes > MAX_HEADER_BYTES {
        return Problem::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers-too-large",
            format!(
                "requests carry at most {MAX_HEADER_COUNT} headers of {} KiB in all",
                MAX_HEADER_BYTES / 1024
            ),
        )
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    async fn status_of(request: axum::http::Request<Body>) -> StatusCode {
        Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn(limit_headers))
            .oneshot(request)
            .await
            .unwrap()
            .status()
    }

    #[tokio::test]
    async fn oversized_or_too_many_headers_are_a_431() {
        let ok = axum::http::Request::get("/")
            .header("x-a", "b")
            .body(Body::empty())
            .unwrap();
        assert_eq!(status_of(ok).await, StatusCode::OK);
        let big = axum::http::Request::get("/")
            .header("x-big", "a".repeat(MAX_HEADER_BYTES))
            .body(Body::empty())
            .unwrap();
        assert_eq!(
            status_of(big).await,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        let mut many = axum::http::Request::get("/");
        for i in 0..=MAX_HEADER_COUNT {
            many = many.header(format!("x-{i}"), "v");
        }
        assert_eq!(
            status_of(many.body(Body::empty()).unwrap()).await,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
    }
}
