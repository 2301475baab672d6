//! Workload identity federation as Entra ID does it: the application named by `client_id`
//! must be in the tenant (its home tenant, or another one where it has a service
//! principal); the assertion's (issuer, subject, audience) must equal one of the
//! application's federated identity credentials; its signature must verify against the
//! issuer's published keys (OIDC discovery, then JWKS); and it must be within its
//! validity time. Refusals carry Entra's AADSTS codes.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use serde_json::Value;

use super::{Shared, reply::entra_error, state::Application};

/// Who the assertion proved to be.
pub(crate) struct Principal {
    pub object_id: String,
    pub issuer: String,
    pub subject: String,
}

pub(crate) struct Refusal {
    pub code: u32,
    pub issuer: Option<String>,
    pub subject: Option<String>,
    pub response: Response,
}

fn refuse(status: StatusCode, error: &str, code: u32, description: String) -> Refusal {
    Refusal {
        code,
        issuer: None,
        subject: None,
        response: entra_error(status, error, code, &description),
    }
}

/// Clock skew Entra tolerates on `exp` and `nbf`.
const SKEW_SECS: i64 = 60;

pub(crate) async fn exchange(
    shared: &Shared,
    tenant: &str,
    client_id: &str,
    assertion: &str,
) -> Result<Principal, Refusal> {
    let found = shared.with_state(|s| {
        let home = s
            .applications
            .get(&format!("{tenant}/{client_id}").to_ascii_lowercase())
            .cloned();
        let application = home.or_else(|| {
            s.applications
                .values()
                .find(|a| {
                    a.multi_tenant
                        && a.app_id.eq_ignore_ascii_case(client_id)
                        && s.service_principal_in(tenant, client_id).is_some()
                })
                .cloned()
        });
        let object_id = s
            .service_principal_in(tenant, client_id)
            .map(|sp| sp.id.clone());
        application.zip(object_id)
    });
    let Some((application, object_id)) = found else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. \
                 This can happen if the application has not been installed by the administrator of \
                 the tenant or consented to by any user in the tenant. You may have sent your \
                 authentication request to the wrong tenant."
            ),
        ));
    };

    let Some((header, claims, signing_input, signature)) = parse(assertion) else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50027,
            "JWT token is invalid or malformed.".to_owned(),
        ));
    };
    let claim = |name: &str| claims[name].as_str().unwrap_or_default().to_owned();
    let (issuer, subject) = (claim("iss"), claim("sub"));
    let audiences: Vec<String> = match &claims["aud"] {
        Value::String(a) => vec![a.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let with_claims = |mut refusal: Refusal| {
        refusal.issuer = Some(issuer.clone());
        refusal.subject = Some(subject.clone());
        refusal
    };

    if !matches_credential(&application, &issuer, &subject, &audiences) {
        return Err(with_claims(refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            70021,
            format!(
                "No matching federated identity record found for presented assertion. \
                 Assertion Issuer: '{issuer}'. Assertion Subject: '{subject}'. Assertion Audience: '{}'. \
                 https://learn.microsoft.com/entra/workload-id/workload-identity-federation",
                audiences.join(",")
            ),
        )));
    }

    let verified = match header["alg"].as_str() {
        Some("ES256") => {
            let kid = header["kid"].as_str().unwrap_or_default();
            match issuer_key(&issuer, kid).await {
                Ok(point) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
                    .verify(signing_input.as_bytes(), &signature)
                    .is_ok(),
                Err(why) => {
                    tracing::info!(%issuer, %why, "stand-in could not read the issuer's keys");
                    false
                }
            }
        }
        _ => false,
    };
    if !verified {
        return Err(with_claims(refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
            "Client assertion failed signature validation.".to_owned(),
        )));
    }

    let now = chrono::Utc::now().timestamp();
    let exp = claims["exp"].as_i64().unwrap_or(0);
    let nbf = claims["nbf"].as_i64().unwrap_or(0);
    if now > exp + SKEW_SECS || now + SKEW_SECS < nbf {
        let at = |t: i64| {
            chrono::DateTime::from_timestamp(t, 0)
                .unwrap_or_default()
                .format("%Y-%m-%dT%H:%M:%S.0000000Z")
                .to_string()
        };
        return Err(with_claims(refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700024,
            format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion \
                 valid from {}, expiry time of assertion {}. Review the documentation at \
                 https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
                at(now),
                at(nbf),
                at(exp)
            ),
        )));
    }
    Ok(Principal {
        object_id,
        issuer,
        subject,
    })
}

/// Exact, case-sensitive matching, as Entra matches federated credentials.
fn matches_credential(
    application: &Application,
    issuer: &str,
    subject: &str,
    audiences: &[String],
) -> bool {
    application.federated_credentials.iter().any(|c| {
        c.issuer == issuer
            && c.subject == subject
            && c.audiences.iter().any(|a| audiences.contains(a))
    })
}

type Parsed = (Value, Value, String, Vec<u8>);

fn parse(assertion: &str) -> Option<Parsed> {
    let b64 = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()
    };
    let mut parts = assertion.split('.');
    let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header_json: Value = serde_json::from_slice(&b64(header)?).ok()?;
    let claims_json: Value = serde_json::from_slice(&b64(claims)?).ok()?;
    Some((
        header_json,
        claims_json,
        format!("{header}.{claims}"),
        b64(signature)?,
    ))
}

/// The issuer's P-256 key `kid` as an uncompressed point, read the way Entra reads it:
/// `{issuer}/.well-known/openid-configuration`, then its `jwks_uri`. The stand-in reaches
/// issuers on loopback only (plain HTTP allowed there), so it never fetches from the
/// network whatever an assertion claims.
async fn issuer_key(issuer: &str, kid: &str) -> Result<Vec<u8>, String> {
    let loopback = |url: &str| {
        reqwest::Url::parse(url).ok().is_some_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))
        })
    };
    if !loopback(issuer) {
        return Err(format!("issuer {issuer} is not on loopback"));
    }
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let get = |url: String| {
        let http = http.clone();
        async move {
            let response = http.get(&url).send().await.map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!("{url}: {}", response.status()));
            }
            response.json::<Value>().await.map_err(|e| e.to_string())
        }
    };
    let discovery = get(format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    ))
    .await?;
    if discovery["issuer"].as_str() != Some(issuer) {
        return Err("the discovery document names another issuer".to_owned());
    }
    let jwks_uri = discovery["jwks_uri"]
        .as_str()
        .filter(|u| loopback(u))
        .ok_or("no loopback jwks_uri")?
        .to_owned();
    let jwks = get(jwks_uri).await?;
    let key = jwks["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["kid"].as_str() == Some(kid) && k["kty"] == "EC" && k["crv"] == "P-256")
        .ok_or_else(|| format!("no key {kid}"))?;
    let coord = |c: &str| {
        key[c]
            .as_str()
            .and_then(|v| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(v)
                    .ok()
            })
            .filter(|b| b.len() == 32)
    };
    let (x, y) = (coord("x").ok_or("bad x")?, coord("y").ok_or("bad y")?);
    Ok([vec![4u8], x, y].concat())
}
