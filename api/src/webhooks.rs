//! The deployment webhook CI pipelines call: no bearer token, a signature instead.
//!
//! The signature (`webhook_signature`) covers the timestamp, the Idempotency-Key and the
//! body, keyed with the environment's webhook secret (sealed in the store like every
//! secret). It is valid for five minutes in all (270 s back, 30 s ahead) and accepted once:
//! the store's replay cache refuses a second call carrying the same (timestamp, signature),
//! so a retry is signed afresh (a new `t`) and, with the same Idempotency-Key, answers the
//! deployment the first call started. Failures are counted and rate-limited per
//! environment and audited once per window (`webhook_refusals`).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use windlass_core::audit::{ActorKind, AuditResult};
use windlass_core::deployments::DeploymentTrigger;
use windlass_core::environments::EnvironmentSpec;
use windlass_core::secret_vault::open_secret;
use windlass_core::secrets::{SecretRef, webhook_secret_name};

use crate::AppState;
use crate::caller::Caller;
use crate::deployments::{DeployRequest, DeploymentStarted, request_deployment};
use crate::extract::Path;
use crate::launch::idempotency_key;
use crate::problem::Problem;
use crate::webhook_refusals::{RefusalSummary, WebhookRefusals};
use crate::webhook_signature::{self, PresentedSignature, Refusal};
pub use crate::webhook_signature::{SIGNATURE_HEADER, sign};

/// Paths under this prefix authenticate themselves (by signature), not with a bearer token.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(webhook_deploy))
}

/// Deploy an environment from a CI pipeline (signed; see the module documentation).
#[utoipa::path(post, path = "/v1/webhooks/environments/{environment_id}/deployments",
    tag = "environments",
    params(("environment_id" = Uuid, Path),
        ("Windlass-Signature" = String, Header, description = "t=<unix seconds>,v2=<hex HMAC-SHA256 of \"<t>\\n<Idempotency-Key>\\n<body>\">, accepted once within five minutes"),
        ("Idempotency-Key" = Option<String>, Header, description = "repeat-safe request key")),
    request_body = DeployRequest,
    responses((status = ACCEPTED, body = DeploymentStarted),
        (status = OK, body = DeploymentStarted, description = "the deployment this Idempotency-Key already started"),
        (status = BAD_REQUEST, body = Problem), (status = UNAUTHORIZED, body = Problem),
        (status = UNPROCESSABLE_ENTITY, body = Problem),
        (status = TOO_MANY_REQUESTS, body = Problem, description = "too many refused calls for this environment; see Retry-After")))]
async fn webhook_deploy(
    State(state): State<AppState>,
    axum::Extension(refusals): axum::Extension<WebhookRefusals>,
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
            "the webhook signature is missing, stale, already used or wrong",
        )
    };
    let environment = state.store.environment_by_id(environment_id).await.ok();
    // Unknown environments share one budget, so random ids cannot grow the table.
    let budget = environment.as_ref().map_or(Uuid::nil(), |e| e.id);
    if let Err(retry_after) = refusals.check(budget) {
        return Err(Problem::too_many_requests(
            "too many refused webhook calls for this environment; retry later",
            retry_after,
        ));
    }
    let caller = Caller {
        actor: format!("webhook:{environment_id}"),
        actor_kind: ActorKind::ApiToken,
        client: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        // The client behind trusted proxies, as `authenticate` established it.
        ip: match extensions.get::<crate::client_address::ClientAddress>() {
            Some(crate::client_address::ClientAddress(client)) => *client,
            None => crate::client_address::peer(&extensions),
        }
        .map(|ip| ip.to_string()),
    };
    let key = idempotency_key(&headers)?;
    let verified = match &environment {
        Some(environment) => {
            match verify(&state, environment, &headers, key.as_deref(), &body).await {
                Ok(presented) => first_use(&state, environment, &presented).await?,
                Err(refusal) => Err(refusal),
            }
        }
        None => Err(Refusal::UnknownEnvironment),
    };
    if let Err(reason) = verified {
        tracing::info!(%environment_id, reason = reason.as_label(), "webhook call refused");
        let audit = environment.map(|e| (state.clone(), caller, e.organization_id));
        refusals.refuse(budget, reason, move |summary| {
            if let Some((state, caller, organization_id)) = audit {
                tokio::spawn(audit_refusals(state, caller, organization_id, summary));
            }
        });
        return Err(refused());
    }
    let Some(environment) = environment else {
        return Err(refused());
    };
    let request: DeployRequest = if body.is_empty() {
        DeployRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| Problem::unprocessable(format!("the body is not a deploy request: {e}")))?
    };
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

/// One entry for a window's refusals, however many there were.
async fn audit_refusals(
    state: AppState,
    caller: Caller,
    organization_id: Uuid,
    summary: RefusalSummary,
) {
    let entry = caller.entry(
        Some(organization_id),
        "environments.deploy",
        format!("environment:{}", summary.environment_id),
        AuditResult::Denied,
        serde_json::json!({
            "trigger": "webhook",
            "refused": summary.refused,
            "reasons": summary.reasons,
            "window_seconds": summary.window_seconds,
        }),
    );
    if let Err(error) = state.store.append_audit(entry).await {
        tracing::error!(%error, "could not audit refused webhook calls");
    }
}

async fn verify(
    state: &AppState,
    environment: &EnvironmentSpec,
    headers: &HeaderMap,
    idempotency_key: Option<&str>,
    body: &[u8],
) -> Result<PresentedSignature, Refusal> {
    let header = headers
        .get(SIGNATURE_HEADER)
        .ok_or(Refusal::MissingSignature)?
        .to_str()
        .map_err(|_| Refusal::MalformedSignature)?;
    let presented = webhook_signature::parse(header)?;
    if !webhook_signature::within_window(presented.timestamp, chrono::Utc::now().timestamp()) {
        return Err(Refusal::OutsideWindow);
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
    .map_err(|_| Refusal::NoWebhookSecret)?;
    webhook_signature::verify(&secret, &presented, idempotency_key, body)?;
    Ok(presented)
}

/// Whether this genuine signature is presented for the first time. Only a genuine one
/// reaches the cache, so garbage cannot fill it; entries are kept twice the window, past
/// which the window check refuses the timestamp anyway.
async fn first_use(
    state: &AppState,
    environment: &EnvironmentSpec,
    presented: &PresentedSignature,
) -> Result<Result<(), Refusal>, Problem> {
    let forget_before =
        chrono::Utc::now() - chrono::Duration::seconds(2 * webhook_signature::WINDOW_SECONDS);
    let first = state
        .store
        .first_use_of_webhook_signature(
            environment.id,
            presented.timestamp,
            &presented.tag_hex(),
            forget_before,
        )
        .await?;
    Ok(if first {
        Ok(())
    } else {
        Err(Refusal::Replayed)
    })
}
