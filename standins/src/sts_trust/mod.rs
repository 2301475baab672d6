//! A stand-in for what STS enforces and moto does not: a role's trust policy on
//! `AssumeRole`. It listens in front of moto (which mints credentials for any AssumeRole,
//! ExternalId or not); for AssumeRole it asks moto who the caller is (GetCallerIdentity
//! with the caller's own headers) and what the role trusts (IAM GetRole), then either
//! refuses as STS does (HTTP 403, `AccessDenied`, "User: <caller> is not authorized to
//! perform: sts:AssumeRole on resource: <role>") or forwards the request. Every other
//! request (S3, IAM, KMS, the rest of STS) is forwarded to moto unchanged. Not STS.

mod policy;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

pub use policy::{AssumeRoleRequest, allows};

/// One AssumeRole the stand-in judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRoleAttempt {
    pub role_arn: String,
    pub caller_arn: String,
    pub external_id: Option<String>,
    pub allowed: bool,
}

#[derive(Clone)]
struct Shared {
    moto: String,
    http: reqwest::Client,
    attempts: Arc<Mutex<Vec<AssumeRoleAttempt>>>,
}

pub struct StsTrustStandIn {
    addr: SocketAddr,
    attempts: Arc<Mutex<Vec<AssumeRoleAttempt>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for StsTrustStandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl StsTrustStandIn {
    /// Listens on a loopback port in front of moto at `moto_endpoint`.
    pub async fn start(moto_endpoint: &str) -> std::io::Result<Self> {
        Self::start_on(moto_endpoint, 0).await
    }

    /// As [`StsTrustStandIn::start`], on `127.0.0.1:port` (`0`: any free port).
    pub async fn start_on(moto_endpoint: &str, port: u16) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let http = reqwest::Client::builder()
            // S3 answers redirects its own clients follow; forwarded as they are.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Shared {
            moto: moto_endpoint.trim_end_matches('/').to_owned(),
            http,
            attempts: attempts.clone(),
        };
        let app = Router::new().fallback(handle).with_state(shared);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        tracing::info!(%addr, "STS trust-policy stand-in (not STS) listening in front of moto");
        Ok(Self {
            addr,
            attempts,
            server,
        })
    }

    /// Where AWS clients go instead of moto.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every AssumeRole judged so far, in order.
    pub fn attempts(&self) -> Vec<AssumeRoleAttempt> {
        self.attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = query_params(&uri, &headers, &body);
    if param(&params, "Action") == Some("AssumeRole") {
        match judge(&shared, &headers, &params).await {
            Ok(None) => {}
            Ok(Some(refusal)) => return refusal,
            Err(message) => {
                tracing::warn!(%message, "STS trust-policy stand-in could not judge an AssumeRole");
                return error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Receiver",
                    "ServiceUnavailable",
                    &message,
                );
            }
        }
    }
    forward(&shared, method, &uri, &headers, body).await
}

/// The AWS query protocol's parameters: the form body of a POST, or the query string.
fn query_params(uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Vec<(String, String)> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let mut params: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    if is_form {
        params.extend(url::form_urlencoded::parse(body).into_owned());
    }
    params
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `Ok(None)`: the trust policy allows it, forward. `Ok(Some(403))`: refused as STS does.
async fn judge(
    shared: &Shared,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Result<Option<Response>, String> {
    let role_arn = param(params, "RoleArn").unwrap_or_default().to_owned();
    let external_id = param(params, "ExternalId").map(str::to_owned);
    let (caller_account, caller_arn) = caller_identity(shared, headers).await?;
    let policy = match role_account_and_name(&role_arn) {
        Some((account, name)) => trust_policy(shared, account, name).await?,
        // A malformed ARN is moto's to reject (ValidationError), as STS would.
        None => return Ok(None),
    };
    let allowed = policy.as_ref().is_some_and(|policy| {
        allows(
            policy,
            &AssumeRoleRequest {
                caller_arn: &caller_arn,
                caller_account: &caller_account,
                external_id: external_id.as_deref(),
            },
        )
    });
    tracing::info!(%role_arn, %caller_arn, allowed, "AssumeRole judged by the trust-policy stand-in");
    shared
        .attempts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(AssumeRoleAttempt {
            role_arn: role_arn.clone(),
            caller_arn: caller_arn.clone(),
            external_id,
            allowed,
        });
    if allowed {
        return Ok(None);
    }
    // STS says the same whether the role is missing, trusts someone else or requires
    // another ExternalId: the caller learns nothing about the policy.
    Ok(Some(error_response(
        StatusCode::FORBIDDEN,
        "Sender",
        "AccessDenied",
        &format!(
            "User: {caller_arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
        ),
    )))
}

/// `arn:aws:iam::<account>:role/[<path>/]<name>` → (account, name).
fn role_account_and_name(role_arn: &str) -> Option<(&str, &str)> {
    let (account, resource) = role_arn.strip_prefix("arn:aws:iam::")?.split_once(':')?;
    let name = resource.strip_prefix("role/")?.rsplit('/').next()?;
    (account.len() == 12 && !name.is_empty()).then_some((account, name))
}

/// Who the caller's credentials are, as moto's GetCallerIdentity says: the same
/// Authorization and session token headers (moto identifies by access key id and does not
/// check signatures).
async fn caller_identity(shared: &Shared, headers: &HeaderMap) -> Result<(String, String), String> {
    let mut request = shared
        .http
        .post(format!("{}/", shared.moto))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("Action=GetCallerIdentity&Version=2011-06-15");
    for name in [
        header::AUTHORIZATION,
        HeaderName::from_static("x-amz-security-token"),
    ] {
        if let Some(value) = headers.get(&name) {
            request = request.header(name, value);
        }
    }
    let response = request.send().await.map_err(|e| format!("moto: {e}"))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| format!("moto: {e}"))?;
    if !status.is_success() {
        return Err(format!("moto GetCallerIdentity: HTTP {status}"));
    }
    match (xml_text(&text, "Account"), xml_text(&text, "Arn")) {
        (Some(account), Some(arn)) => Ok((account, arn)),
        _ => Err("moto GetCallerIdentity: no Account or Arn".to_owned()),
    }
}

/// The role's trust policy from moto's IAM (`None`: no such role), read in the role's own
/// account.
async fn trust_policy(shared: &Shared, account: &str, name: &str) -> Result<Option<Value>, String> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("Action", "GetRole")
        .append_pair("Version", "2010-05-08")
        .append_pair("RoleName", name)
        .finish();
    let response = shared
        .http
        .post(format!("{}/", shared.moto))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(
            header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=sts-trust-standin/20260101/us-east-1/iam/aws4_request, \
             SignedHeaders=host, Signature=0",
        )
        .header("x-moto-account-id", account)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("moto: {e}"))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| format!("moto: {e}"))?;
    if status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(format!("moto GetRole: HTTP {status}"));
    }
    // IAM returns the document URL-encoded.
    let encoded = xml_text(&text, "AssumeRolePolicyDocument")
        .ok_or("moto GetRole: no AssumeRolePolicyDocument")?;
    let document: String = url::form_urlencoded::parse(format!("d={encoded}").as_bytes())
        .map(|(_, v)| v.into_owned())
        .next()
        .unwrap_or_default();
    serde_json::from_str(&document)
        .map(Some)
        .map_err(|e| format!("moto GetRole: trust policy is not JSON: {e}"))
}

/// The text of the first `<tag>` element (moto's responses are flat enough for this).
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(xml_unescape(&xml[start..end]))
}

fn xml_unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// STS's query-protocol error document.
fn error_response(status: StatusCode, kind: &str, code: &str, message: &str) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let body = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <Error>\n    \
         <Type>{kind}</Type>\n    <Code>{code}</Code>\n    <Message>{}</Message>\n  </Error>\n  \
         <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n",
        xml_escape(message)
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/xml".to_owned()),
            (HeaderName::from_static("x-amzn-requestid"), request_id),
        ],
        body,
    )
        .into_response()
}

/// Headers that describe one hop, not the message.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-connection"
            | "expect"
    )
}

/// The request to moto as it came (method, path, query, headers, body); its answer back
/// as it is.
async fn forward(
    shared: &Shared,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = shared
        .http
        .request(method, format!("{}{path}", shared.moto));
    for (name, value) in headers {
        // reqwest sets Host and Content-Length for moto's address and this body.
        if hop_by_hop(name) || name == header::HOST || name == header::CONTENT_LENGTH {
            continue;
        }
        request = request.header(name, value);
    }
    let response = match request.body(body).send().await {
        Ok(response) => response,
        Err(e) => {
            return error_response(
                StatusCode::BAD_GATEWAY,
                "Receiver",
                "ServiceUnavailable",
                &format!("moto: {e}"),
            );
        }
    };
    let status = response.status();
    let mut out = HeaderMap::new();
    for (name, value) in response.headers() {
        if !hop_by_hop(name) {
            out.append(name.clone(), value.clone());
        }
    }
    match response.bytes().await {
        Ok(bytes) => (status, out, bytes).into_response(),
        Err(e) => error_response(
            StatusCode::BAD_GATEWAY,
            "Receiver",
            "ServiceUnavailable",
            &format!("moto: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_name_their_account_and_role() {
        assert_eq!(
            role_account_and_name("arn:aws:iam::123456789012:role/windlass-access"),
            Some(("123456789012", "windlass-access"))
        );
        assert_eq!(
            role_account_and_name("arn:aws:iam::123456789012:role/team/ci"),
            Some(("123456789012", "ci"))
        );
        assert_eq!(role_account_and_name("arn:aws:iam::123:role/x"), None);
        assert_eq!(
            role_account_and_name("arn:aws:iam::123456789012:user/x"),
            None
        );
    }

    #[test]
    fn xml_text_is_unescaped() {
        let xml = "<R><Arn>arn:a&amp;b</Arn><Account>1</Account></R>";
        assert_eq!(xml_text(xml, "Arn").as_deref(), Some("arn:a&b"));
        assert_eq!(xml_text(xml, "Missing"), None);
    }
}
