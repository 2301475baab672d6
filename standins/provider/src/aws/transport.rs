//! The AWS wire protocols the stand-in speaks itself, signed with SigV4 as the real
//! provider's SDK signs them: the Query protocol (EC2, IAM: a form-encoded POST answered
//! in XML) and JSON 1.1 (ECR: `X-Amz-Target`). EKS, S3 and STS go through their SDK
//! crates instead (mod.rs builds their clients from the same settings).

use std::time::{Duration, SystemTime};

use aws_sdk_sts::config::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use serde_json::Value as Json;

use crate::cloud::CloudError;

/// A refusal from an AWS API: its error code (`EntityAlreadyExists`,
/// `InvalidVpcID.NotFound`, `RepositoryNotFoundException`) and message.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The service as the SDK names it in errors (`EC2`, `IAM`, `ECR`).
    pub service: String,
    pub operation: String,
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ApiError {
    /// Whether the API says the thing asked about does not exist.
    pub fn is_not_found(&self) -> bool {
        // `InvalidVpcID.NotFound`, `RepositoryNotFoundException`,
        // `ServerSideEncryptionConfigurationNotFoundError`; `NoSuchEntity`,
        // `NoSuchBucket`, `NoSuchPublicAccessBlockConfiguration`.
        self.status == 404 || self.code.contains("NotFound") || self.code.starts_with("NoSuch")
    }

    /// As the user reads it: `<what>: operation error <Op>: <Code>: <message>`, the shape
    /// of the real provider's errors.
    pub fn refused(&self, what: &str) -> CloudError {
        CloudError::Refused(format!(
            "{what}: operation error {}: {}, https response error StatusCode: {}, api error {}: {}",
            self.service, self.operation, self.status, self.code, self.message
        ))
    }
}

/// What a call answered: the answer, or the API's refusal; `Err` outside is a call that
/// did not get an answer (or not one the protocol allows).
pub type Answer<T> = Result<Result<T, ApiError>, CloudError>;

/// The answer, or the refusal as the user's error about `what`.
pub fn expect<T>(answer: Answer<T>, what: &str) -> Result<T, CloudError> {
    answer?.map_err(|e| e.refused(what))
}

/// The answer, None when the API says the thing does not exist, or the refusal.
pub fn found<T>(answer: Answer<T>, what: &str) -> Result<Option<T>, CloudError> {
    match answer? {
        Ok(answer) => Ok(Some(answer)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.refused(what)),
    }
}

/// Done when the API answers, or says the thing is already gone (a delete).
pub fn gone<T>(answer: Answer<T>, what: &str) -> Result<(), CloudError> {
    found(answer, what).map(|_| ())
}

/// Signs and sends requests to one endpoint (moto's, from `AWS_ENDPOINT_URL`).
pub struct Transport {
    http: reqwest::Client,
    endpoint: String,
    identity: Identity,
}

impl Transport {
    pub fn new(endpoint: &str, credentials: Credentials) -> Result<Self, CloudError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| CloudError::NotConfigured(format!("an HTTP client: {e}")))?;
        Ok(Self {
            http,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            identity: credentials.into(),
        })
    }

    /// A signed request of `body` to `path` (with its query) on the endpoint; returns the
    /// status and body.
    async fn send(
        &self,
        method: reqwest::Method,
        (service, region): (&str, &str),
        path: &str,
        headers: &[(&str, &str)],
        body: String,
    ) -> Result<(u16, String), CloudError> {
        let url = format!("{}{path}", self.endpoint);
        let mut settings = SigningSettings::default();
        if service == "s3" {
            // S3 wants the payload's hash as a header of its own.
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        }
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(region)
            .name(service)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| CloudError::NotConfigured(format!("signing for {service}: {e}")))?
            .into();
        let signable = SignableRequest::new(
            method.as_str(),
            url.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| CloudError::Refused(format!("signing a {service} request: {e}")))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| CloudError::Refused(format!("signing a {service} request: {e}")))?
            .into_parts();
        let mut request = self.http.request(method, &url).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| CloudError::Refused(format!("calling {service} at {url}: {e}")))?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        Ok((status, text))
    }

    /// A signed POST to the endpoint's root (the Query and JSON protocols).
    async fn post(
        &self,
        service: &str,
        region: &str,
        headers: &[(&str, &str)],
        body: String,
    ) -> Result<(u16, String), CloudError> {
        self.send(reqwest::Method::POST, (service, region), "/", headers, body)
            .await
    }

    /// A REST-XML GET of `path` (S3's `/<bucket>?versioning`); the XML answer, or the
    /// API's refusal (`<Error><Code>`).
    pub async fn rest_get(&self, service: &str, region: &str, path: &str) -> Answer<Xml> {
        let (status, text) = self
            .send(
                reqwest::Method::GET,
                (service, region),
                path,
                &[],
                String::new(),
            )
            .await?;
        answer(service, path, status, &text)
    }

    /// One Query protocol call: `Action` and `Version` with `params`; the XML answer, or
    /// the API's refusal.
    pub async fn query(
        &self,
        service: &str,
        region: &str,
        version: &str,
        action: &str,
        params: &[(String, String)],
    ) -> Answer<Xml> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", action)
            .append_pair("Version", version)
            .extend_pairs(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .finish();
        let (status, text) = self
            .post(
                service,
                region,
                &[(
                    "content-type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                )],
                body,
            )
            .await?;
        answer(service, action, status, &text)
    }

    /// One JSON 1.1 call (`<prefix>.<action>` as target); the JSON answer, or the API's
    /// refusal.
    pub async fn json(
        &self,
        service: &str,
        region: &str,
        target_prefix: &str,
        action: &str,
        body: &Json,
    ) -> Answer<Json> {
        let target = format!("{target_prefix}.{action}");
        let (status, text) = self
            .post(
                service,
                region,
                &[
                    ("content-type", "application/x-amz-json-1.1"),
                    ("x-amz-target", target.as_str()),
                ],
                body.to_string(),
            )
            .await?;
        let json: Json = serde_json::from_str(&text).unwrap_or_default();
        if (200..300).contains(&status) {
            return Ok(Ok(json));
        }
        let code = json["__type"].as_str().unwrap_or("(no code)");
        Ok(Err(ApiError {
            service: service.to_ascii_uppercase(),
            operation: action.to_owned(),
            status,
            // `__type` may carry a namespace: `com.amazon...#RepositoryNotFoundException`.
            code: code.rsplit('#').next().unwrap_or(code).to_owned(),
            message: json["message"]
                .as_str()
                .or(json["Message"].as_str())
                .unwrap_or_default()
                .to_owned(),
        }))
    }
}

/// An XML answer, or the refusal it carries (EC2: `Response/Errors/Error`; IAM:
/// `ErrorResponse/Error`; S3: `Error`).
fn answer(service: &str, operation: &str, status: u16, text: &str) -> Answer<Xml> {
    let xml = Xml::parse(text).map_err(|e| {
        CloudError::Refused(format!(
            "{service} {operation} answered {status} with no XML ({e}): {}",
            text.chars().take(200).collect::<String>()
        ))
    })?;
    if (200..300).contains(&status) {
        return Ok(Ok(xml));
    }
    let error = xml.find("Error");
    Ok(Err(ApiError {
        service: service.to_ascii_uppercase(),
        operation: operation.to_owned(),
        status,
        code: error
            .and_then(|e| e.text_of("Code"))
            .unwrap_or("(no code)")
            .to_owned(),
        message: error
            .and_then(|e| e.text_of("Message"))
            .unwrap_or_default()
            .to_owned(),
    }))
}

/// An XML element as the Query protocol answers: its name, text and children (no
/// attributes: the protocol uses none).
#[derive(Debug, Clone, Default)]
pub struct Xml {
    pub name: String,
    pub text: String,
    pub children: Vec<Xml>,
}

impl Xml {
    pub fn parse(text: &str) -> Result<Xml, String> {
        use quick_xml::events::Event;
        let mut reader = quick_xml::Reader::from_str(text);
        let mut stack = vec![Xml::default()];
        let local = |name: quick_xml::name::QName<'_>| {
            String::from_utf8_lossy(name.local_name().as_ref()).into_owned()
        };
        loop {
            match reader.read_event().map_err(|e| e.to_string())? {
                Event::Start(start) => stack.push(Xml {
                    name: local(start.name()),
                    ..Default::default()
                }),
                Event::Empty(start) => {
                    let element = Xml {
                        name: local(start.name()),
                        ..Default::default()
                    };
                    stack.last_mut().expect("root").children.push(element);
                }
                Event::End(_) => {
                    let element = stack.pop().expect("balanced");
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(element),
                        None => return Err("unbalanced end tag".into()),
                    }
                }
                Event::Text(text) => {
                    let decoded = text.decode().map_err(|e| e.to_string())?;
                    stack.last_mut().expect("root").text.push_str(&decoded);
                }
                Event::CData(data) => {
                    let decoded = data.decode().map_err(|e| e.to_string())?;
                    stack.last_mut().expect("root").text.push_str(&decoded);
                }
                Event::GeneralRef(reference) => {
                    let name = reference.decode().map_err(|e| e.to_string())?;
                    let resolved = resolve_reference(&name)
                        .ok_or_else(|| format!("unknown entity &{name};"))?;
                    stack.last_mut().expect("root").text.push(resolved);
                }
                Event::Eof => break,
                _ => {}
            }
        }
        let root = stack.pop().ok_or("no document")?;
        if !stack.is_empty() {
            return Err("unclosed element".into());
        }
        root.children
            .into_iter()
            .next()
            .ok_or_else(|| "no root element".into())
    }

    pub fn child(&self, name: &str) -> Option<&Xml> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The first element named `name` at any depth (this one included).
    pub fn find(&self, name: &str) -> Option<&Xml> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }

    /// The text of the child at `path` (names, one level each).
    pub fn text_at(&self, path: &[&str]) -> Option<&str> {
        let mut element = self;
        for name in path {
            element = element.child(name)?;
        }
        Some(element.text.trim())
    }

    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.text_at(&[name])
    }

    /// The entries of the list child `name` (its `item` or `member` elements).
    pub fn list(&self, name: &str) -> Vec<&Xml> {
        self.child(name)
            .map(|l| {
                l.children
                    .iter()
                    .filter(|c| c.name == "item" || c.name == "member")
                    .collect()
            })
            .unwrap_or_default()
    }

    /// An EC2 `tagSet` or IAM `Tags` list as a map.
    pub fn tags(&self, name: &str) -> std::collections::BTreeMap<String, String> {
        self.list(name)
            .into_iter()
            .filter_map(|t| {
                let key = t.text_of("key").or(t.text_of("Key"))?;
                let value = t.text_of("value").or(t.text_of("Value")).unwrap_or("");
                Some((key.to_owned(), value.to_owned()))
            })
            .collect()
    }
}

fn resolve_reference(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix('x') {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            return char::from_u32(code);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_answers_parse() {
        let xml = Xml::parse(
            r#"<?xml version="1.0" encoding="UTF-8"?>
            <CreateVpcResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
              <vpc><vpcId>vpc-1</vpcId><tagSet><item><key>Name</key><value>a &amp; b</value></item></tagSet><empty/></vpc>
            </CreateVpcResponse>"#,
        )
        .unwrap();
        assert_eq!(xml.name, "CreateVpcResponse");
        assert_eq!(xml.text_at(&["vpc", "vpcId"]), Some("vpc-1"));
        let vpc = xml.child("vpc").unwrap();
        assert_eq!(vpc.tags("tagSet")["Name"], "a & b");
        assert!(vpc.child("empty").is_some());
    }

    #[test]
    fn errors_are_found_at_any_depth() {
        let xml = Xml::parse(
            "<Response><Errors><Error><Code>InvalidVpcID.NotFound</Code><Message>gone</Message></Error></Errors></Response>",
        )
        .unwrap();
        assert_eq!(
            xml.find("Error").unwrap().text_of("Code"),
            Some("InvalidVpcID.NotFound")
        );
    }
}
