//! The deployment webhook CI pipelines call: no bearer token, a signature instead.
//!
//! `Windlass-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`, keyed
//! with the environment's webhook secret (sealed in the store like every secret). A
//! signature older or newer than five minutes is refused, so a captured call cannot be
//! replayed later; within the window, an `Idempotency-Key` makes repeats harmless.

use aws_lc_rs::hmac;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use windlass_core::audit::{ActorKind, AuditResult};
use windlass_core::deployments::DeploymentTrigger;
use windlass_core::environments::EnvironmentSpec;
use windlass_core::secrets::{SecretRef, open_secret, put_secret, webhook_secret_name};

use crate::AppState;
use crate::audit::Caller;
use crate::deployments::{DeployRequest, DeploymentStarted, request_deployment};
use crate::extract::Path;
use crate::problem::Problem;
use crate::runs::idempotency_key;

pub const SIGNATURE_HEADER: &str = "windlass-signature";
const TOLERANCE_SECONDS: i64 = 300;

/// Paths under this prefix authenticate themselves (by signature), not with a bearer token.
pub(crate) const PREFIX: &str = "/v1/webhooks/";

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(webhook_deploy))
}

/// Generates and seals a new signing secret for the environment, replacing any other.
pub(crate) async fn issue_webhook_secret(
    state: &AppState,
    environment: &EnvironmentSpec,
) -> Result<String, Problem> {
    let secret = format!(
        "whsec_{}{}",
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple()
    );
    put_secret(
        &state.store,
        &state.keys,
        environment.organization_id,
        &webhook_secret_name(environment.id),
        &secret,
    )
    .await?;
    Ok(secret)
}

/// The `Windlass-Signature` value for `body` at `timestamp`: what a CI pipeline computes.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut context = hmac::Context::with_key(&key);
    context.update(format!("{timestamp}.").as_bytes());
    context.update(body);
    let tag = context.sign();
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

/// Deploy an environment from a CI pipeline (signed; see the module documentation).
#[utoipa::path(post, path = "/v1/webhooks/environments/{environment_id}/deployments",
    tag = "environments",
    params(("environment_id" = Uuid, Path),
        ("Windlass-Signature" = String, Header, description = "t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">"),
        ("Idempotency-Key" = Option<String>, Header, description = "repeat-safe request key")),
    request_body = DeployRequest,
    responses((status = ACCEPTED, body = DeploymentStarted),
        (status = OK, body = DeploymentStarted, description = "the deployment this Idempotency-Key already started"),
        (status = UNAUTHORIZED, body = Problem), (status = UNPROCESSABLE_ENTITY, body = Problem)))]
async fn webhook_deploy(
    State(state): State<AppState>,
    Path(environment_id): Path<Uuid>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<DeploymentStarted>), Problem> {
    // One answer for every authentication failure: a caller without the secret learns
    // nothing, not even whether the environment exists.
    let refused = || {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "the webhook signature is missing, stale or wrong",
        )
    };
    let environment = state
        .store
        .environment_by_id(environment_id)
        .await
        .map_err(|_| refused())?;
    let caller = Caller {
        actor: format!("webhook:{environment_id}"),
        actor_kind: ActorKind::ApiToken,
        client: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        ip: extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string()),
    };
    if let Err(problem) = verify(&state, &environment, &headers, &body).await {
        let entry = caller.entry(
            Some(environment.organization_id),
            "environments.deploy",
            format!("environment:{environment_id}"),
            AuditResult::Denied,
            serde_json::json!({"trigger": "webhook", "reason": problem.detail}),
        );
        if let Err(error) = state.store.append_audit(entry).await {
            tracing::error!(%error, "could not audit a refused webhook");
        }
        return Err(refused());
    }
    let request: DeployRequest = if body.is_empty() {
        DeployRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| Problem::unprocessable(format!("the body is not a deploy request: {e}")))?
    };
    let key = idempotency_key(&headers)?;
    let (status, started) = request_deployment(
        &state,
        &caller,
        environment,
        DeploymentTrigger::Webhook,
        &request,
        key,
    )
    .await?;
    Ok((status, axum::Json(started)))
}

async fn verify(
    state: &AppState,
    environment: &EnvironmentSpec,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Problem> {
    let bad = |why: &str| Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", why);
    let header = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| bad("no signature header"))?;
    let mut timestamp = None;
    let mut signature = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => signature = decode_hex(v),
            _ => {}
        }
    }
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(bad("malformed signature header"));
    };
    if (chrono::Utc::now().timestamp() - timestamp).abs() > TOLERANCE_SECONDS {
        return Err(bad("signature timestamp outside the five-minute window"));
    }
    let secret = open_secret(
        &state.store,
        &state.keys,
        &SecretRef {
            organization_id: environment.organization_id,
            name: webhook_secret_name(environment.id),
        },
    )
    .await
    .map_err(|_| bad("the environment has no webhook secret"))?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    hmac::verify(&key, &signed, &signature).map_err(|_| bad("signature mismatch"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_names_its_time_and_covers_the_body() {
        let a = sign("whsec_x", 1_700_000_000, b"{}");
        assert!(a.starts_with("t=1700000000,v1="));
        assert_eq!(a.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(a, sign("whsec_x", 1_700_000_000, b"{\"images\":{}}"));
        assert_ne!(a, sign("whsec_y", 1_700_000_000, b"{}"));
        assert_eq!(decode_hex("0aff"), Some(vec![0x0a, 0xff]));
        assert_eq!(decode_hex("0g"), None);
    }
}
