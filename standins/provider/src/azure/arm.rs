//! An ARM client as the azurerm provider's SDK behaves: a bearer token from the tenant's
//! token endpoint by workload identity federation (the OIDC token in `ARM_OIDC_TOKEN` or
//! `ARM_OIDC_TOKEN_FILE_PATH` as client assertion), long-running operations followed
//! through `Azure-AsyncOperation` (which wins) or `Location` at the `Retry-After` pace,
//! and throttling (429) and `AnotherOperationInProgress` (409) retried a bounded number
//! of times.

use std::time::Duration;

use serde_json::Value as Json;
use tokio::sync::Mutex;

use crate::cloud::CloudError;

pub struct ArmClient {
    http: reqwest::Client,
    /// The stand-in's origin: ARM, and the token endpoint as authority host.
    base_url: String,
    tenant_id: String,
    client_id: String,
    oidc_token: OidcToken,
    /// Pace of polling when an operation gives no `Retry-After`.
    default_poll: Duration,
    token: Mutex<Option<String>>,
}

pub enum OidcToken {
    Value(String),
    File(String),
}

/// An HTTP client trusting the CAs in `ca_pem` (a PEM bundle) besides the usual roots.
fn http_client(ca_pem: Option<&str>) -> Result<reqwest::Client, CloudError> {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(60));
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|e| CloudError::NotConfigured(format!("the ARM CA certificates: {e}")))?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| CloudError::NotConfigured(format!("an HTTP client: {e}")))
}

/// The resource manager endpoint of the custom cloud whose metadata host is `host`, read
/// as the real provider reads it (`/metadata/endpoints`, the environment named
/// `AzureCloud`).
pub async fn resource_manager_of(host: &str, ca_pem: Option<&str>) -> Result<String, CloudError> {
    let url = format!("https://{host}/metadata/endpoints?api-version=2022-09-01");
    let unreadable = |e: String| {
        CloudError::NotConfigured(format!(
            "the cloud metadata at {url} could not be read: {e}"
        ))
    };
    let response = http_client(ca_pem)?
        .get(&url)
        .send()
        .await
        .map_err(|e| unreadable(e.to_string()))?;
    if !response.status().is_success() {
        return Err(unreadable(response.status().to_string()));
    }
    let clouds: Json = response
        .json()
        .await
        .map_err(|e| unreadable(e.to_string()))?;
    clouds
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == "AzureCloud")
        .and_then(|c| c["resourceManager"].as_str())
        .map(|url| url.trim_end_matches('/').to_owned())
        .ok_or_else(|| unreadable("no AzureCloud environment with a resourceManager".into()))
}

/// Attempts for one call that meets throttling or a concurrent operation.
const ATTEMPTS: u32 = 5;
/// How long a role assignment waits for its principal to replicate (`PrincipalNotFound`).
const REPLICATION_WAIT: Duration = Duration::from_secs(300);

impl ArmClient {
    pub fn new(
        base_url: String,
        ca_pem: Option<&str>,
        tenant_id: String,
        client_id: String,
        oidc_token: OidcToken,
        default_poll: Duration,
    ) -> Result<Self, CloudError> {
        Ok(Self {
            http: http_client(ca_pem)?,
            base_url: base_url.trim_end_matches('/').to_owned(),
            tenant_id,
            client_id,
            oidc_token,
            default_poll,
            token: Mutex::new(None),
        })
    }

    async fn token(&self) -> Result<String, CloudError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref() {
            return Ok(token.clone());
        }
        let assertion = match &self.oidc_token {
            OidcToken::Value(v) => v.clone(),
            OidcToken::File(path) => std::fs::read_to_string(path)
                .map_err(|e| {
                    CloudError::NotConfigured(format!("ARM_OIDC_TOKEN_FILE_PATH {path}: {e}"))
                })?
                .trim()
                .to_owned(),
        };
        let form = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("grant_type", "client_credentials"),
                ("client_id", self.client_id.as_str()),
                ("scope", "https://management.azure.com/.default"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion.as_str()),
            ])
            .finish();
        let response = self
            .http
            .post(format!(
                "{}/{}/oauth2/v2.0/token",
                self.base_url, self.tenant_id
            ))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(|e| CloudError::Refused(format!("requesting an ARM token: {e}")))?;
        let status = response.status();
        let body: Json = response.json().await.unwrap_or_default();
        let Some(token) = body["access_token"].as_str() else {
            return Err(CloudError::Refused(format!(
                "the token endpoint refused the federated credential ({status}): {} {}",
                body["error"].as_str().unwrap_or_default(),
                body["error_description"].as_str().unwrap_or_default()
            )));
        };
        *cached = Some(token.to_owned());
        Ok(token.to_owned())
    }

    async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Json>,
    ) -> Result<reqwest::Response, CloudError> {
        let mut attempt = 0;
        // azurerm waits out a new principal's replication for as long as the resource's
        // create timeout allows; a few minutes here.
        let replication_deadline = std::time::Instant::now() + REPLICATION_WAIT;
        loop {
            attempt += 1;
            let mut request = self
                .http
                .request(method.clone(), url)
                .bearer_auth(self.token().await?);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request
                .send()
                .await
                .map_err(|e| CloudError::Refused(format!("{method} {url}: {e}")))?;
            let status = response.status().as_u16();
            let retry_after = retry_after(&response);
            if status == 429 && attempt < ATTEMPTS {
                tokio::time::sleep(retry_after.unwrap_or(self.default_poll)).await;
                continue;
            }
            if matches!(status, 400 | 409) {
                // 409 is retried only for a concurrent operation on the same resource (a few
                // times); 400 only for a principal the directory replica does not know yet
                // (a role assignment right after its identity's creation), until the
                // replication deadline, as azurerm does.
                let text = response.text().await.unwrap_or_default();
                let busy = text.contains("AnotherOperationInProgress") && attempt < ATTEMPTS;
                let replicating = text.contains("PrincipalNotFound")
                    && std::time::Instant::now() < replication_deadline;
                if !(busy || replicating) {
                    return Err(refusal(&method, url, status, &text));
                }
                let pause = self.default_poll.max(Duration::from_millis(250));
                tokio::time::sleep(retry_after.unwrap_or(pause)).await;
                continue;
            }
            return Ok(response);
        }
    }

    fn url(&self, id: &str, api_version: &str) -> String {
        format!("{}{id}?api-version={api_version}", self.base_url)
    }

    /// The resource `id`, or None when ARM answers 404.
    pub async fn get(&self, id: &str, api_version: &str) -> Result<Option<Json>, CloudError> {
        let url = self.url(id, api_version);
        let response = self.send(reqwest::Method::GET, &url, None).await?;
        match response.status().as_u16() {
            200 => Ok(Some(response.json().await.unwrap_or_default())),
            404 => Ok(None),
            status => Err(refusal(
                &reqwest::Method::GET,
                &url,
                status,
                &response.text().await.unwrap_or_default(),
            )),
        }
    }

    /// Creates or replaces `id` and waits for its provisioning; returns the resource.
    pub async fn put(&self, id: &str, api_version: &str, body: &Json) -> Result<Json, CloudError> {
        let url = self.url(id, api_version);
        let response = self.send(reqwest::Method::PUT, &url, Some(body)).await?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(refusal(
                &reqwest::Method::PUT,
                &url,
                status,
                &response.text().await.unwrap_or_default(),
            ));
        }
        self.follow(&response).await?;
        self.get(id, api_version)
            .await?
            .ok_or_else(|| CloudError::Refused(format!("PUT {id} succeeded but GET finds nothing")))
    }

    /// A POST action on a resource (`listClusterAdminCredential`); returns its body.
    pub async fn post(&self, path: &str, api_version: &str) -> Result<Json, CloudError> {
        let url = self.url(path, api_version);
        let response = self
            .send(
                reqwest::Method::POST,
                &url,
                Some(&Json::Object(Default::default())),
            )
            .await?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(refusal(
                &reqwest::Method::POST,
                &url,
                status,
                &response.text().await.unwrap_or_default(),
            ));
        }
        Ok(response.json().await.unwrap_or_default())
    }

    pub async fn delete(&self, id: &str, api_version: &str) -> Result<(), CloudError> {
        let url = self.url(id, api_version);
        let response = self.send(reqwest::Method::DELETE, &url, None).await?;
        match response.status().as_u16() {
            200 | 204 | 404 => Ok(()),
            202 => self.follow(&response).await,
            status => Err(refusal(
                &reqwest::Method::DELETE,
                &url,
                status,
                &response.text().await.unwrap_or_default(),
            )),
        }
    }

    /// Follows a long-running operation to its end, if the response started one.
    async fn follow(&self, started: &reqwest::Response) -> Result<(), CloudError> {
        let header = |name: &str| {
            started
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let mut wait = retry_after(started).unwrap_or(self.default_poll);
        if let Some(url) = header("azure-asyncoperation") {
            loop {
                tokio::time::sleep(wait).await;
                let response = self.send(reqwest::Method::GET, &url, None).await?;
                wait = retry_after(&response).unwrap_or(self.default_poll);
                let body: Json = response.json().await.unwrap_or_default();
                match body["status"].as_str().unwrap_or_default() {
                    "Succeeded" => return Ok(()),
                    "Failed" | "Canceled" => {
                        return Err(CloudError::Refused(format!(
                            "the operation ended {}: {} {}",
                            body["status"].as_str().unwrap_or_default(),
                            body["error"]["code"].as_str().unwrap_or_default(),
                            body["error"]["message"].as_str().unwrap_or_default()
                        )));
                    }
                    _ => {}
                }
            }
        }
        if let Some(url) = header("location") {
            loop {
                tokio::time::sleep(wait).await;
                let response = self.send(reqwest::Method::GET, &url, None).await?;
                wait = retry_after(&response).unwrap_or(self.default_poll);
                match response.status().as_u16() {
                    202 => continue,
                    200..=299 => return Ok(()),
                    status => {
                        return Err(refusal(
                            &reqwest::Method::GET,
                            &url,
                            status,
                            &response.text().await.unwrap_or_default(),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// ARM's error body (`{"error": {"code", "message"}}`) as the user reads it.
fn refusal(method: &reqwest::Method, url: &str, status: u16, body: &str) -> CloudError {
    let parsed: Json = serde_json::from_str(body).unwrap_or_default();
    let path = url.split('?').next().unwrap_or(url);
    CloudError::Refused(format!(
        "{method} {path}: {status} {}: {}",
        parsed["error"]["code"].as_str().unwrap_or("(no code)"),
        parsed["error"]["message"].as_str().unwrap_or(body)
    ))
}
