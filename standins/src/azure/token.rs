//! Entra ID token endpoint stand-in (`/{tenant}/oauth2/v2.0/token`).
//!
//! Only the client-credentials grant with a federated client assertion is
//! accepted: Windlass never holds client secrets, and the stand-in rejects
//! them so a regression that starts sending one fails loudly. The assertion is
//! verified as Entra ID verifies it (`federation.rs`); the access token issued
//! remembers its principal (tenant, application, service principal), which ARM
//! and Graph authorise.

use std::collections::HashMap;

use axum::{
    Form,
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use serde_json::json;

use super::{
    Shared,
    reply::{json, oauth_error},
    state::{IssuedToken, TokenRequestRecord},
};

/// RFC 7523 client assertion type, as sent by azure_identity and MSAL.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub(crate) async fn token(
    State(shared): State<Shared>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let grant_type = get("grant_type");
    let scope = get("scope");
    let assertion_type = get("client_assertion_type");
    let assertion = get("client_assertion");
    let mut record = TokenRequestRecord {
        at: chrono::Utc::now(),
        tenant: tenant.clone(),
        client_id: get("client_id"),
        scope: scope.clone(),
        grant_type: grant_type.clone(),
        client_assertion_type: assertion_type.clone(),
        had_client_assertion: !assertion.is_empty(),
        granted: false,
        assertion_issuer: None,
        assertion_subject: None,
        error_code: None,
    };

    let response = match check(&form, &grant_type, &scope, &assertion_type, &assertion) {
        Err(resp) => resp,
        Ok(audience) => {
            match super::federation::exchange(&shared, &tenant, &record.client_id, &assertion).await
            {
                Err(refusal) => {
                    record.assertion_issuer = refusal.issuer.clone();
                    record.assertion_subject = refusal.subject.clone();
                    record.error_code = Some(refusal.code);
                    refusal.response
                }
                Ok(principal) => {
                    record.assertion_issuer = Some(principal.issuer);
                    record.assertion_subject = Some(principal.subject);
                    let token = format!("standin.{}", uuid::Uuid::new_v4().simple());
                    shared.with_state(|s| {
                        s.issued_tokens.insert(
                            super::auth::token_hash(&token),
                            IssuedToken {
                                audience,
                                tenant_id: tenant.to_ascii_lowercase(),
                                app_id: record.client_id.to_ascii_lowercase(),
                                object_id: principal.object_id,
                            },
                        );
                    });
                    record.granted = true;
                    json(
                        StatusCode::OK,
                        json!({
                            "token_type": "Bearer",
                            "expires_in": 3599,
                            "ext_expires_in": 3599,
                            "access_token": token,
                        }),
                    )
                }
            }
        }
    };
    tracing::debug!(tenant = %tenant, client_id = %record.client_id, granted = record.granted, code = ?record.error_code, "stand-in token request");
    shared.with_state(|s| {
        super::state::keep_last(&mut s.token_requests, super::state::REQUEST_RECORDS);
        s.token_requests.push(record)
    });
    response
}

/// Returns the audience the token is for, or the OAuth error to send.
fn check(
    form: &HashMap<String, String>,
    grant_type: &str,
    scope: &str,
    assertion_type: &str,
    assertion: &str,
) -> Result<String, Response> {
    if form.contains_key("client_secret") {
        return Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client_secret is not accepted; Windlass authenticates with federated client assertions only",
        ));
    }
    if grant_type != "client_credentials" {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only grant_type=client_credentials is supported",
        ));
    }
    if form.get("client_id").is_none_or(|c| c.is_empty()) {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_id is required",
        ));
    }
    if assertion_type != CLIENT_ASSERTION_TYPE {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ));
    }
    // The shape here; the signature and claims in `federation::exchange`.
    let segments: Vec<&str> = assertion.split('.').collect();
    if segments.len() != 3 || segments.iter().any(|s| s.is_empty()) {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "client_assertion is not a compact JWT",
        ));
    }
    // Client credentials only allow a single `{resource}/.default` scope.
    let Some(resource) = scope.strip_suffix("/.default") else {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "client credential flows must use a single scope ending in /.default",
        ));
    };
    Ok(resource.trim_end_matches('/').to_string())
}

/// Entra ID's tenant discovery document (`/{tenant}/v2.0/.well-known/openid-configuration`),
/// which MSAL-based clients (azure-identity for Python, .NET, Java) read before their
/// first token request to find the token endpoint.
pub(crate) async fn openid_configuration(
    State(shared): State<Shared>,
    Path(tenant): Path<String>,
) -> Response {
    let base = &shared.base_url;
    json(
        StatusCode::OK,
        json!({
            "issuer": format!("{base}/{tenant}/v2.0"),
            "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
            "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
            "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "response_types_supported": ["code", "id_token", "token id_token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "windlass-standin.invalid",
        }),
    )
}
