//! S3 buckets for cluster state on AWS: the bucket's lifecycle, and [`S3Objects`], the
//! [`ObjectStore`] the terraform state and its lock live in.
//!
//! The lock relies on S3's conditional writes (`If-None-Match: *` on PutObject,
//! `If-Match` on DeleteObject), which S3 evaluates atomically, so two workers can never
//! both create the lock object. The bucket is versioned so an overwritten or deleted state
//! can always be recovered from an earlier version.
//!
//! Errors carry bucket names, keys, S3 error codes and messages, never credentials: no
//! presigned URL is ever made here, and the SDK's error texts do not echo request headers.

use std::collections::BTreeMap;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, Delete,
    ObjectIdentifier, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    Tag, Tagging, VersioningConfiguration,
};
// The response type in every S3 operation's `SdkError`, through the SDK's re-export so no
// smithy crate needs to be a direct dependency.
use aws_sdk_s3::config::http::HttpResponse;

use super::AwsError;
use crate::object_store::{ObjectStore, StoreError, VersionedObject};

/// A bucket without a LocationConstraint is created in us-east-1, and S3 refuses the
/// constraint `us-east-1` itself.
const DEFAULT_REGION: &str = "us-east-1";

/// How many times [`delete_bucket_with_contents`] empties the bucket again when objects
/// were written while it was emptying it.
const EMPTYING_PASSES: usize = 3;

/// An S3 client from `config` (Windlass's, or assumed-role credentials). With an endpoint
/// override (moto, MinIO) requests use path-style addressing, because such endpoints have
/// no wildcard DNS for `<bucket>.<host>`.
pub fn s3_client(config: &aws_config::SdkConfig, endpoint_url: Option<&str>) -> aws_sdk_s3::Client {
    let mut builder = aws_sdk_s3::config::Builder::from(config);
    if let Some(url) = endpoint_url {
        builder = builder.endpoint_url(url).force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// Objects under `prefix` in one bucket.
#[derive(Debug, Clone)]
pub struct S3Objects {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl S3Objects {
    /// Keys become `{prefix}/{key}`; an empty prefix leaves them as they are. Slashes
    /// around `prefix` are dropped so `a/` and `a` name the same objects.
    pub fn new(
        client: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
    ) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            prefix: prefix.into().trim_matches('/').to_owned(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn resource(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(key))
    }
}

#[async_trait::async_trait]
impl ObjectStore for S3Objects {
    fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    async fn get(&self, key: &str) -> Result<Option<VersionedObject>, StoreError> {
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            // A missing key, or one whose latest version is a delete marker.
            Err(e) if code(&e) == Some("NoSuchKey") => return Ok(None),
            Err(e) => return Err(classify("GetObject", self.resource(key), e).into()),
        };
        let etag = output.e_tag.clone().unwrap_or_default();
        let content = output.body.collect().await.map_err(|e| {
            StoreError::from(AwsError::S3Transport {
                operation: "GetObject",
                resource: self.resource(key),
                message: DisplayErrorContext(&e).to_string(),
            })
        })?;
        Ok(Some(VersionedObject {
            content: content.into_bytes(),
            etag,
        }))
    }

    async fn put(&self, key: &str, content: Vec<u8>) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .body(ByteStream::from(content))
            .send()
            .await
            .map_err(|e| classify("PutObject", self.resource(key), e))?;
        Ok(())
    }

    async fn create_if_absent(&self, key: &str, content: Vec<u8>) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .if_none_match("*")
            .body(ByteStream::from(content))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            // 412: the object exists. 409: a concurrent conditional write to the same key
            // is in flight, and S3 lets at most one of them win: either way this caller
            // did not create it.
            Err(e)
                if matches!(
                    code(&e),
                    Some("PreconditionFailed" | "ConditionalRequestConflict")
                ) || status(&e) == Some(412) =>
            {
                Ok(false)
            }
            Err(e) => Err(classify("PutObject", self.resource(key), e).into()),
        }
    }

    async fn delete_if_unchanged(&self, key: &str, etag: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .if_match(etag)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            // 412: rewritten since it was read. NoSuchKey: already gone (S3 evaluates
            // If-Match against the current version, and there is none). Not any 404: a
            // missing bucket is an error, not a lock someone else released.
            Err(e)
                if matches!(code(&e), Some("PreconditionFailed" | "NoSuchKey"))
                    || status(&e) == Some(412) =>
            {
                Ok(false)
            }
            Err(e) => Err(classify("DeleteObject", self.resource(key), e).into()),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        // S3 answers 204 whether or not the key exists.
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .await
            .map_err(|e| classify("DeleteObject", self.resource(key), e))?;
        Ok(())
    }
}

/// Makes `bucket` ready to hold terraform state: created in `region` if missing, then
/// versioned, encrypted at rest (SSE-S3), closed to public access and tagged with `tags`.
/// Every step is a PUT of the whole setting, so calling it again converges rather than
/// stacking changes. Tags replace the bucket's tag set; with no tags it is left alone.
pub async fn ensure_state_bucket(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    region: &str,
    tags: &BTreeMap<String, String>,
) -> Result<(), AwsError> {
    let resource = || format!("s3://{bucket}");
    // HeadBucket first, so a run without s3:CreateBucket still works on an existing bucket.
    match client.head_bucket().bucket(bucket).send().await {
        Ok(_) => {}
        Err(e) if status(&e) == Some(404) => {
            let mut create = client.create_bucket().bucket(bucket);
            if region != DEFAULT_REGION {
                create = create.create_bucket_configuration(
                    CreateBucketConfiguration::builder()
                        .location_constraint(BucketLocationConstraint::from(region))
                        .build(),
                );
            }
            match create.send().await {
                Ok(_) => {}
                // Another attempt of this activity created it in between.
                Err(e) if code(&e) == Some("BucketAlreadyOwnedByYou") => {}
                Err(e) => return Err(classify("CreateBucket", resource(), e)),
            }
        }
        Err(e) => return Err(classify("HeadBucket", resource(), e)),
    }

    client
        .put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .map_err(|e| classify("PutBucketVersioning", resource(), e))?;

    let encryption = ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(
                    ServerSideEncryptionByDefault::builder()
                        .sse_algorithm(ServerSideEncryption::Aes256)
                        .build()
                        .map_err(|e| invalid("PutBucketEncryption", resource(), e))?,
                )
                .build(),
        )
        .build()
        .map_err(|e| invalid("PutBucketEncryption", resource(), e))?;
    client
        .put_bucket_encryption()
        .bucket(bucket)
        .server_side_encryption_configuration(encryption)
        .send()
        .await
        .map_err(|e| classify("PutBucketEncryption", resource(), e))?;

    // State files hold secrets (keys, passwords terraform generated): no ACL or bucket
    // policy may ever make them public, whoever edits the bucket later.
    client
        .put_public_access_block()
        .bucket(bucket)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(|e| classify("PutPublicAccessBlock", resource(), e))?;

    // S3 refuses an empty tag set; clearing tags someone else added is not ours to do.
    if !tags.is_empty() {
        let tag_set = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid("PutBucketTagging", resource(), e))?;
        let tagging = Tagging::builder()
            .set_tag_set(Some(tag_set))
            .build()
            .map_err(|e| invalid("PutBucketTagging", resource(), e))?;
        client
            .put_bucket_tagging()
            .bucket(bucket)
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| classify("PutBucketTagging", resource(), e))?;
    }
    Ok(())
}

/// Deletes every version and delete marker in `bucket`, then the bucket: a versioned bucket
/// cannot be deleted while any remain. `false` if the bucket did not exist, so a retry
/// after a successful deletion is a no-op.
pub async fn delete_bucket_with_contents(
    client: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<bool, AwsError> {
    let resource = || format!("s3://{bucket}");
    for pass in 1..=EMPTYING_PASSES {
        if !empty_bucket(client, bucket).await? {
            return Ok(false);
        }
        match client.delete_bucket().bucket(bucket).send().await {
            Ok(_) => return Ok(true),
            // Deleted by a concurrent attempt after we emptied it.
            Err(e) if code(&e) == Some("NoSuchBucket") => return Ok(true),
            // Something wrote to the bucket while it was being emptied: empty it again.
            Err(e) if code(&e) == Some("BucketNotEmpty") && pass < EMPTYING_PASSES => {}
            Err(e) => return Err(classify("DeleteBucket", resource(), e)),
        }
    }
    unreachable!("the last pass returns")
}

/// Deletes all object versions and delete markers, a listing page at a time (at most
/// 1000 entries, DeleteObjects' own limit). `false` if the bucket does not exist.
async fn empty_bucket(client: &aws_sdk_s3::Client, bucket: &str) -> Result<bool, AwsError> {
    let resource = || format!("s3://{bucket}");
    let mut key_marker: Option<String> = None;
    let mut version_marker: Option<String> = None;
    loop {
        let page = match client
            .list_object_versions()
            .bucket(bucket)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
        {
            Ok(page) => page,
            Err(e) if code(&e) == Some("NoSuchBucket") => return Ok(false),
            Err(e) => return Err(classify("ListObjectVersions", resource(), e)),
        };
        let versions = page.versions().iter().map(|v| (v.key(), v.version_id()));
        let markers = page
            .delete_markers()
            .iter()
            .map(|m| (m.key(), m.version_id()));
        let objects = versions
            .chain(markers)
            .map(|(key, version)| {
                ObjectIdentifier::builder()
                    .set_key(key.map(str::to_owned))
                    .set_version_id(version.map(str::to_owned))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid("DeleteObjects", resource(), e))?;
        if !objects.is_empty() {
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| invalid("DeleteObjects", resource(), e))?;
            let output = client
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| classify("DeleteObjects", resource(), e))?;
            // DeleteObjects answers 200 even when some deletions failed; the first
            // failure stands for all of them.
            if let Some(failed) = output.errors().first() {
                let code = failed.code().unwrap_or("unknown error").to_owned();
                let message = failed.message().unwrap_or_default().to_owned();
                let resource = format!("s3://{bucket}/{}", failed.key().unwrap_or_default());
                return Err(match code.as_str() {
                    "AccessDenied" => AwsError::S3AccessDenied {
                        operation: "DeleteObjects",
                        resource,
                        code,
                        message,
                    },
                    _ => AwsError::S3Unavailable {
                        operation: "DeleteObjects",
                        resource,
                        status: 200,
                        code,
                        message,
                    },
                });
            }
        }
        if page.is_truncated() != Some(true) {
            return Ok(true);
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        version_marker = page.next_version_id_marker().map(str::to_owned);
    }
}

impl From<AwsError> for StoreError {
    fn from(e: AwsError) -> Self {
        StoreError {
            retryable: e.is_retryable(),
            message: e.to_string(),
        }
    }
}

fn code<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> Option<&str> {
    match e {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

/// The HTTP status of a service error. HEAD responses have no body, so for them the
/// status is all there is to go on.
fn status<E>(e: &SdkError<E, HttpResponse>) -> Option<u16> {
    match e {
        SdkError::ServiceError(service) => Some(service.raw().status().as_u16()),
        _ => None,
    }
}

/// A request the SDK refused to build: sending it again builds the same one.
fn invalid(
    operation: &'static str,
    resource: String,
    e: aws_sdk_s3::error::BuildError,
) -> AwsError {
    AwsError::S3Rejected {
        operation,
        resource,
        code: "InvalidRequest".to_owned(),
        message: e.to_string(),
    }
}

/// Sorts an S3 failure into the [`AwsError`] variant whose retry verdict fits it.
fn classify<E>(
    operation: &'static str,
    resource: String,
    error: SdkError<E, HttpResponse>,
) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &error {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let e = service.err();
            // HEAD errors have no body, hence no code: name them by their status.
            let code = e
                .code()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("HTTP {status}"));
            let message = e.message().unwrap_or_default().to_owned();
            // Codes first: S3 reports some transient conditions with 400 or 409.
            match code.as_str() {
                "SlowDown"
                | "Throttling"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "TooManyRequestsException" => AwsError::S3Throttled {
                    operation,
                    resource,
                    code,
                    message,
                },
                // RequestTimeout: the upload was too slow. OperationAborted and
                // ConditionalRequestConflict: a concurrent operation on the same bucket or
                // key. BucketNotEmpty: written to while being emptied. ExpiredToken: the
                // SDK fetches fresh credentials for the next attempt.
                "RequestTimeout"
                | "OperationAborted"
                | "ConditionalRequestConflict"
                | "BucketNotEmpty"
                | "ExpiredToken"
                | "RequestExpired"
                | "InternalError"
                | "ServiceUnavailable" => AwsError::S3Unavailable {
                    operation,
                    resource,
                    status,
                    code,
                    message,
                },
                "AccessDenied"
                | "AllAccessDisabled"
                | "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "AccountProblem" => AwsError::S3AccessDenied {
                    operation,
                    resource,
                    code,
                    message,
                },
                _ if status == 429 || status == 503 => AwsError::S3Throttled {
                    operation,
                    resource,
                    code,
                    message,
                },
                _ if status >= 500 => AwsError::S3Unavailable {
                    operation,
                    resource,
                    status,
                    code,
                    message,
                },
                _ if status == 403 => AwsError::S3AccessDenied {
                    operation,
                    resource,
                    code,
                    message,
                },
                // NoSuchBucket, InvalidBucketName, BucketAlreadyExists (another account
                // owns the name), malformed requests: nothing changes by waiting.
                _ => AwsError::S3Rejected {
                    operation,
                    resource,
                    code,
                    message,
                },
            }
        }
        SdkError::ConstructionFailure(_) => AwsError::S3Rejected {
            operation,
            resource,
            code: "InvalidRequest".to_owned(),
            message: DisplayErrorContext(&error).to_string(),
        },
        // Timeouts, connection failures, the credential chain failing (identity is
        // resolved just before sending) and unreadable responses.
        _ => AwsError::S3Transport {
            operation,
            resource,
            message: DisplayErrorContext(&error).to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(prefix: &str) -> S3Objects {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .build();
        S3Objects::new(aws_sdk_s3::Client::from_conf(config), "b", prefix)
    }

    #[test]
    fn keys_sit_under_the_prefix() {
        assert_eq!(objects("").key("cluster.tfstate"), "cluster.tfstate");
        assert_eq!(objects("c1").key("cluster.tfstate"), "c1/cluster.tfstate");
        assert_eq!(objects("/c1/").key("x.lock"), "c1/x.lock");
        assert_eq!(objects("a/b").describe(), "s3://b/a/b");
        assert_eq!(objects("").describe(), "s3://b");
    }

    #[test]
    fn only_transient_s3_errors_retry() {
        let e = |operation| AwsError::S3Transport {
            operation,
            resource: "s3://b".into(),
            message: "timeout".into(),
        };
        assert!(e("GetObject").is_retryable());
        let denied = AwsError::S3AccessDenied {
            operation: "PutObject",
            resource: "s3://b/k".into(),
            code: "AccessDenied".into(),
            message: String::new(),
        };
        assert!(!denied.is_retryable());
        let store = StoreError::from(denied);
        assert!(!store.retryable);
        assert!(store.message.contains("s3://b/k"), "{}", store.message);
    }
}
