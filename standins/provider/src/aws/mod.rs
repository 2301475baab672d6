//! aws's resources against moto, the AWS emulator.
//!
//! Configured as the real provider is: the region from the provider configuration (or
//! `AWS_REGION` / `AWS_DEFAULT_REGION`), credentials from the configuration's
//! `access_key` / `secret_key` / `token`, the standard environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) or a profile's
//! `credential_process` (how Windlass hands terraform renewable credentials), every service's
//! endpoint from `AWS_ENDPOINT_URL` (which the real provider's SDK honours too). The
//! stand-in manages resources only in moto, so it refuses to work without that endpoint
//! rather than reach for the real AWS. `allowed_account_ids` / `forbidden_account_ids`
//! are checked against STS GetCallerIdentity, as the real provider checks them.
//! `WINDLASS_STANDIN_AWS_POLL_SECONDS` paces the waits for EKS and NAT gateways (5 s).
//!
//! Each service is a module: EC2 and IAM speak the Query protocol, ECR JSON 1.1 (both
//! signed in transport.rs), EKS and S3 go through their SDK crates. Every module reads a
//! resource back by its id into the attributes the real provider reports; creates,
//! updates and imports answer with that reading, so what terraform records is what moto
//! holds.

mod ec2;
mod ecr;
mod eks;
mod iam;
mod kinds;
mod s3;
mod transport;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sts::config::{BehaviorVersion, Credentials, Region};

use crate::cloud::{Cloud, CloudError};
use crate::value::Value;
use kinds::{Kind, Service};
use transport::{Answer, Transport, Xml};

/// The region IAM (a global service) signs its requests for.
const IAM_REGION: &str = "us-east-1";

pub struct AwsCloud {
    region: String,
    account_id: String,
    transport: Transport,
    eks: aws_sdk_eks::Client,
    s3: aws_sdk_s3::Client,
    /// The provider's `default_tags`: every taggable resource's `tags_all` has them.
    default_tags: BTreeMap<String, String>,
    /// Pace of waiting for a resource to settle (EKS clusters, node groups).
    poll: Duration,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The credentials a profile's `credential_process` prints, as the real provider's SDK
/// reads them: the profile is the configuration's `profile`, `AWS_PROFILE` or `default`,
/// in `AWS_CONFIG_FILE` (or `~/.aws/config`); the command runs through `sh -c`. The real
/// SDK runs it again when the credentials expire; the stand-in reads them once per
/// provider process. `None`: no such profile or setting.
fn profile_credential_process(config: &Value) -> Result<Option<Credentials>, CloudError> {
    let profile = config
        .str_attr("profile")
        .map(str::to_owned)
        .or_else(|| env("AWS_PROFILE"))
        .unwrap_or_else(|| "default".to_owned());
    let path = env("AWS_CONFIG_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| env("HOME").map(|home| std::path::Path::new(&home).join(".aws/config")));
    let Some(text) = path.and_then(|p| std::fs::read_to_string(p).ok()) else {
        return Ok(None);
    };
    let section = if profile == "default" {
        "[default]".to_owned()
    } else {
        format!("[profile {profile}]")
    };
    let mut in_section = false;
    let mut command = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line == section;
        } else if in_section
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == "credential_process"
        {
            command = Some(value.trim().to_owned());
        }
    }
    let Some(command) = command else {
        return Ok(None);
    };
    let failed = |why: String| {
        CloudError::NotConfigured(format!("credential_process of profile {profile}: {why}"))
    };
    let output = std::process::Command::new("sh")
        .args(["-c", &command])
        .output()
        .map_err(|e| failed(e.to_string()))?;
    if !output.status.success() {
        return Err(failed(format!("exited with {}", output.status)));
    }
    let printed: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| failed(format!("not JSON: {e}")))?;
    if printed["Version"] != 1 {
        return Err(failed("Version is not 1".into()));
    }
    let field = |name: &str| printed[name].as_str().map(str::to_owned);
    let (Some(access_key), Some(secret_key)) = (field("AccessKeyId"), field("SecretAccessKey"))
    else {
        return Err(failed("AccessKeyId or SecretAccessKey missing".into()));
    };
    let expires = field("Expiration")
        .and_then(|e| chrono::DateTime::parse_from_rfc3339(&e).ok())
        .map(|e| std::time::SystemTime::from(e.with_timezone(&chrono::Utc)));
    if expires.is_some_and(|e| e <= std::time::SystemTime::now()) {
        return Err(failed("the credentials it printed have expired".into()));
    }
    Ok(Some(Credentials::new(
        access_key,
        secret_key,
        field("SessionToken"),
        expires,
        "windlass-provider-standin-credential-process",
    )))
}

impl AwsCloud {
    /// The cloud the provider configuration (and the environment) points at; the
    /// caller's account is asked of STS and checked against the allowed accounts.
    pub async fn configure(config: &Value) -> Result<Self, CloudError> {
        let region = config
            .str_attr("region")
            .map(str::to_owned)
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .ok_or_else(|| {
                CloudError::NotConfigured(
                    "region (or AWS_REGION) is not set: the provider needs a region".into(),
                )
            })?;
        let endpoint = env("AWS_ENDPOINT_URL").ok_or_else(|| {
            CloudError::NotConfigured(
                "AWS_ENDPOINT_URL is not set: the provider stand-in manages resources only in moto, the AWS emulator it points at"
                    .into(),
            )
        })?;
        let setting = |attr: &str, var: &str| {
            config
                .str_attr(attr)
                .map(str::to_owned)
                .or_else(|| env(var))
        };
        let credentials = match (
            setting("access_key", "AWS_ACCESS_KEY_ID"),
            setting("secret_key", "AWS_SECRET_ACCESS_KEY"),
        ) {
            (Some(access_key), Some(secret_key)) => Credentials::new(
                access_key,
                secret_key,
                setting("token", "AWS_SESSION_TOKEN"),
                None,
                "windlass-provider-standin",
            ),
            _ => match profile_credential_process(config)? {
                Some(credentials) => credentials,
                None => {
                    return Err(CloudError::NotConfigured(
                        "no valid credential sources found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile with credential_process (SSO and instance roles are not supported by the stand-in)"
                            .into(),
                    ));
                }
            },
        };
        let poll = env("WINDLASS_STANDIN_AWS_POLL_SECONDS")
            .and_then(|s| s.parse().ok())
            .map_or(Duration::from_secs(5), Duration::from_secs);
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(region.clone()))
                .endpoint_url(&endpoint)
                .credentials_provider(credentials.clone())
                .build(),
        );
        let eks = aws_sdk_eks::Client::from_conf(
            aws_sdk_eks::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(region.clone()))
                .endpoint_url(&endpoint)
                .credentials_provider(credentials.clone())
                .build(),
        );
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(region.clone()))
                .endpoint_url(&endpoint)
                .force_path_style(matches!(config.get("s3_use_path_style"), Value::Bool(true)))
                .credentials_provider(credentials.clone())
                .build(),
        );
        let identity = sts.get_caller_identity().send().await.map_err(|e| {
            CloudError::NotConfigured(format!(
                "retrieving caller identity from STS: {}",
                aws_sdk_sts::error::DisplayErrorContext(&e)
            ))
        })?;
        let account_id = identity.account().unwrap_or_default().to_owned();
        let allowed = strings(config.get("allowed_account_ids"));
        if !allowed.is_empty() && !allowed.contains(&account_id) {
            return Err(CloudError::Refused(format!(
                "AWS account ID not allowed: {account_id}"
            )));
        }
        if strings(config.get("forbidden_account_ids")).contains(&account_id) {
            return Err(CloudError::Refused(format!(
                "AWS account ID not allowed: {account_id}"
            )));
        }
        let default_tags = match config.get("default_tags") {
            Value::List(blocks) => blocks.first().map(|b| string_map(b.get("tags"))),
            block @ Value::Map(_) => Some(string_map(block.get("tags"))),
            _ => None,
        }
        .unwrap_or_default();
        Ok(Self {
            transport: Transport::new(&endpoint, credentials)?,
            region,
            account_id,
            eks,
            s3,
            default_tags,
            poll,
        })
    }

    fn kind(type_name: &str) -> Result<Kind, CloudError> {
        kinds::kind(type_name).ok_or_else(|| CloudError::Unsupported(type_name.to_owned()))
    }

    async fn ec2(&self, action: &str, params: Params) -> Answer<Xml> {
        self.transport
            .query("ec2", &self.region, "2016-11-15", action, &params.0)
            .await
    }

    async fn iam(&self, action: &str, params: Params) -> Answer<Xml> {
        self.transport
            .query("iam", IAM_REGION, "2010-05-08", action, &params.0)
            .await
    }

    async fn ecr(&self, action: &str, body: serde_json::Value) -> Answer<serde_json::Value> {
        self.transport
            .json(
                "ecr",
                &self.region,
                "AmazonEC2ContainerRegistry_V20150921",
                action,
                &body,
            )
            .await
    }

    /// The tags a resource carries in the cloud: its planned `tags_all` (the provider's
    /// default tags under the resource's own), as the real provider sends them.
    fn tags_all(&self, planned: &Value) -> BTreeMap<String, String> {
        match planned.get("tags_all") {
            tags @ Value::Map(_) => string_map(tags),
            _ => {
                let mut all = self.default_tags.clone();
                all.extend(string_map(planned.get("tags")));
                all
            }
        }
    }

    /// `tags` and `tags_all` as the real provider reads them back: `tags` without what
    /// the default tags put there (null when nothing is left).
    fn tag_attributes(&self, actual: &BTreeMap<String, String>, into: &mut Attrs) {
        let own: BTreeMap<_, _> = actual
            .iter()
            .filter(|(k, v)| self.default_tags.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        into.set(
            "tags",
            if own.is_empty() {
                Value::Null
            } else {
                map_value(&own)
            },
        );
        into.set("tags_all", map_value(actual));
    }

    /// Polls `done` until it answers `true`, at the configured pace, for up to `limit`.
    async fn wait_until<F, Fut>(
        &self,
        what: &str,
        limit: Duration,
        mut done: F,
    ) -> Result<(), CloudError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<bool, CloudError>>,
    {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if done().await? {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(CloudError::Refused(format!(
                    "timeout while waiting for {what}"
                )));
            }
            tokio::time::sleep(self.poll.max(Duration::from_millis(200))).await;
        }
    }

    async fn read(&self, kind: Kind, id: &str) -> Result<Option<Value>, CloudError> {
        let read = match kind.service() {
            Service::Ec2 => ec2::read(self, kind, id).await?,
            Service::Iam => iam::read(self, kind, id).await?,
            Service::Eks => eks::read(self, kind, id).await?,
            Service::Ecr => ecr::read(self, kind, id).await?,
            Service::S3 => s3::read(self, kind, id).await?,
        };
        Ok(read.map(|mut attrs| {
            // Every regional resource reports its region (aws 6's per-resource region);
            // the schema of a global one (IAM) has no such attribute, and conforming to
            // it drops this.
            attrs.set("region", Value::String(self.region.clone()));
            attrs.into_value()
        }))
    }

    /// The resource `id` names, read back after a change that must have made it.
    async fn observed(&self, kind: Kind, id: &str) -> Result<Value, CloudError> {
        self.read(kind, id).await?.ok_or_else(|| {
            CloudError::Refused(format!(
                "reading {} ({id}) after the change: it does not exist",
                kind.label()
            ))
        })
    }

    /// The id a resource's state names it by.
    fn state_id(kind: Kind, state: &Value) -> Result<String, CloudError> {
        state
            .str_attr("id")
            .map(str::to_owned)
            .ok_or_else(|| CloudError::Refused(format!("{}: the state has no id", kind.label())))
    }
}

#[tonic::async_trait]
impl Cloud for AwsCloud {
    async fn create(&self, type_name: &str, planned: &Value) -> Result<Value, CloudError> {
        let kind = Self::kind(type_name)?;
        // Each API refuses what already exists (EntityAlreadyExists, ResourceInUse,
        // RepositoryAlreadyExists, BucketAlreadyOwnedByYou), and the refusal is the
        // user's error: terraform never adopts an existing resource without an import.
        let id = match kind.service() {
            Service::Ec2 => ec2::create(self, kind, planned).await?,
            Service::Iam => iam::create(self, kind, planned).await?,
            Service::Eks => eks::create(self, kind, planned).await?,
            Service::Ecr => ecr::create(self, kind, planned).await?,
            Service::S3 => s3::create(self, kind, planned).await?,
        };
        self.observed(kind, &id).await
    }

    async fn update(&self, type_name: &str, planned: &Value) -> Result<Value, CloudError> {
        let kind = Self::kind(type_name)?;
        let id = Self::state_id(kind, planned)?;
        match kind.service() {
            Service::Ec2 => ec2::update(self, kind, &id, planned).await?,
            Service::Iam => iam::update(self, kind, &id, planned).await?,
            Service::Eks => eks::update(self, kind, &id, planned).await?,
            Service::Ecr => ecr::update(self, kind, &id, planned).await?,
            Service::S3 => s3::update(self, kind, &id, planned).await?,
        }
        self.observed(kind, &id).await
    }

    async fn exists(&self, type_name: &str, state: &Value) -> Result<bool, CloudError> {
        let kind = Self::kind(type_name)?;
        let id = Self::state_id(kind, state)?;
        Ok(self.read(kind, &id).await?.is_some())
    }

    async fn delete(&self, type_name: &str, state: &Value) -> Result<(), CloudError> {
        let kind = Self::kind(type_name)?;
        let id = Self::state_id(kind, state)?;
        match kind.service() {
            Service::Ec2 => ec2::delete(self, kind, &id, state).await,
            Service::Iam => iam::delete(self, kind, &id, state).await,
            Service::Eks => eks::delete(self, kind, &id, state).await,
            Service::Ecr => ecr::delete(self, kind, &id, state).await,
            Service::S3 => s3::delete(self, kind, &id, state).await,
        }
    }

    async fn import(&self, type_name: &str, id: &str) -> Result<Value, CloudError> {
        let kind = Self::kind(type_name)?;
        self.read(kind, id).await?.ok_or_else(|| {
            CloudError::Refused(format!(
                "Cannot import non-existent remote object: {type_name} {id} does not exist"
            ))
        })
    }

    fn plan(&self, _type_name: &str, prior: &Value, config: &Value, planned: Value) -> Value {
        let Value::Map(mut fields) = planned else {
            return planned;
        };
        // A policy document that says what the prior one says is no change, however it
        // is spelt (the real provider suppresses such diffs): an imported role's policy,
        // as IAM answers it, against the configuration's `jsonencode`.
        for name in ["assume_role_policy", "policy"] {
            if let (Some(Value::String(wanted)), Some(had)) =
                (fields.get(name), prior.str_attr(name))
                && same_json(wanted, had)
            {
                fields.insert(name.to_owned(), Value::String(had.to_owned()));
            }
        }
        // What the real provider settles at plan time: the resource's region (the
        // provider's), and `tags_all`, its tags over the default tags.
        if let Some(region) = fields.get_mut("region")
            && matches!(region, Value::Null | Value::Unknown)
        {
            *region = Value::String(self.region.clone());
        }
        if fields.contains_key("tags_all") {
            // `tags` is only optional in the real provider (the jsii schema marks it
            // computed too): what the configuration leaves out stays null.
            if config.get("tags").is_null() && matches!(fields.get("tags"), Some(Value::Unknown)) {
                fields.insert("tags".into(), Value::Null);
            }
            let tags = fields.get("tags").cloned().unwrap_or(Value::Null);
            let all = if tags.has_unknown() {
                Value::Unknown
            } else {
                let mut all = self.default_tags.clone();
                all.extend(string_map(&tags));
                map_value(&all)
            };
            fields.insert("tags_all".into(), all);
        }
        Value::Map(fields)
    }
}

/// Whether two JSON documents are the same document.
fn same_json(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// A request's parameters, in the Query protocol's flattened form.
#[derive(Debug, Default)]
struct Params(Vec<(String, String)>);

impl Params {
    fn new() -> Self {
        Self::default()
    }

    fn set(mut self, name: &str, value: impl Into<String>) -> Self {
        self.0.push((name.to_owned(), value.into()));
        self
    }

    fn set_opt(self, name: &str, value: Option<&str>) -> Self {
        match value {
            Some(value) => self.set(name, value),
            None => self,
        }
    }

    /// `prefix.1`, `prefix.2`, ... (EC2's lists; IAM's take `prefix.member`).
    fn list(mut self, prefix: &str, items: &[String]) -> Self {
        for (i, item) in items.iter().enumerate() {
            self.0.push((format!("{prefix}.{}", i + 1), item.clone()));
        }
        self
    }

    /// Tags as `prefix.N.Key` / `prefix.N.Value`.
    fn tags(mut self, prefix: &str, tags: &BTreeMap<String, String>) -> Self {
        for (i, (key, value)) in tags.iter().enumerate() {
            self.0
                .push((format!("{prefix}.{}.Key", i + 1), key.clone()));
            self.0
                .push((format!("{prefix}.{}.Value", i + 1), value.clone()));
        }
        self
    }
}

/// A resource's attributes being read.
#[derive(Debug, Default)]
struct Attrs(BTreeMap<String, Value>);

impl Attrs {
    fn new() -> Self {
        Self::default()
    }

    fn set(&mut self, name: &str, value: Value) -> &mut Self {
        self.0.insert(name.to_owned(), value);
        self
    }

    fn string(&mut self, name: &str, value: Option<&str>) -> &mut Self {
        self.set(
            name,
            value.map_or(Value::Null, |v| Value::String(v.to_owned())),
        )
    }

    fn into_value(self) -> Value {
        Value::Map(self.0)
    }
}

fn object(fields: Vec<(&str, Value)>) -> Value {
    Value::Map(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn string(value: impl Into<String>) -> Value {
    Value::String(value.into())
}

fn string_list_value<S: AsRef<str>>(items: &[S]) -> Value {
    Value::List(items.iter().map(|s| string(s.as_ref())).collect())
}

fn map_value(map: &BTreeMap<String, String>) -> Value {
    Value::Map(
        map.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// A list (or set) of strings; anything else is empty.
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::List(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => vec![],
    }
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    match value {
        Value::Map(m) => m
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// The first object of a list block (`vpc_config`, `scaling_config`).
fn block<'a>(value: &'a Value, name: &str) -> &'a Value {
    match value.get(name) {
        Value::List(items) => items.first().unwrap_or(&Value::Null),
        other => other,
    }
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

fn flag(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        _ => None,
    }
}

/// An attribute the create cannot do without.
fn required<'a>(kind: Kind, attrs: &'a Value, name: &str) -> Result<&'a str, CloudError> {
    attrs.str_attr(name).ok_or_else(|| {
        CloudError::Refused(format!("creating {}: {name} is not known", kind.label()))
    })
}

/// Tags to add and keys to remove to go from `current` to `wanted`.
fn tag_changes(
    current: &BTreeMap<String, String>,
    wanted: &BTreeMap<String, String>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let set = wanted
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let removed = current
        .keys()
        .filter(|k| !wanted.contains_key(*k))
        .cloned()
        .collect();
    (set, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_changes_add_change_and_remove() {
        let current = BTreeMap::from([
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "2".to_owned()),
        ]);
        let wanted = BTreeMap::from([
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "3".to_owned()),
            ("c".to_owned(), "4".to_owned()),
        ]);
        let (set, removed) = tag_changes(&current, &wanted);
        assert_eq!(set.len(), 2);
        assert!(removed.is_empty());
        let (set, removed) = tag_changes(&wanted, &BTreeMap::new());
        assert!(set.is_empty());
        assert_eq!(removed.len(), 3);
    }

    #[test]
    fn policies_compare_as_documents() {
        assert!(same_json(r#"{"a": [1, 2]}"#, r#"{"a":[1,2]}"#));
        assert!(!same_json(r#"{"a": [1, 2]}"#, r#"{"a":[2,1]}"#));
    }

    #[test]
    fn query_lists_and_tags_flatten() {
        let params = Params::new()
            .list("SubnetId", &["a".into(), "b".into()])
            .tags(
                "Tags.member",
                &BTreeMap::from([("k".to_owned(), "v".to_owned())]),
            );
        assert_eq!(
            params.0,
            vec![
                ("SubnetId.1".to_owned(), "a".to_owned()),
                ("SubnetId.2".to_owned(), "b".to_owned()),
                ("Tags.member.1.Key".to_owned(), "k".to_owned()),
                ("Tags.member.1.Value".to_owned(), "v".to_owned()),
            ]
        );
    }
}
