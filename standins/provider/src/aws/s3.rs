//! Buckets and their versioning, default encryption and public access block, through
//! aws-sdk-s3. The configurations are whole-setting PUTs: applying one over what the
//! bootstrap step already set converges, as with the real provider.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, Delete, MfaDelete,
    ObjectIdentifier, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    Tag, Tagging, VersioningConfiguration,
};

use super::kinds::Kind;
use super::transport::ApiError;
use super::{Attrs, AwsCloud, block, flag, object, string, string_map, tag_changes};
use crate::cloud::CloudError;
use crate::value::Value;

/// The region S3 creates buckets in without a location constraint.
const DEFAULT_REGION: &str = "us-east-1";

fn api_error<E>(operation: &str, error: &SdkError<E, HttpResponse>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    ApiError {
        service: "S3".into(),
        operation: operation.into(),
        status: error.raw_response().map_or(0, |r| r.status().as_u16()),
        code: error.code().unwrap_or("(no code)").to_owned(),
        message: error.message().map_or_else(
            || aws_sdk_s3::error::DisplayErrorContext(error).to_string(),
            str::to_owned,
        ),
    }
}

/// The answer, None when S3 says the bucket (or the setting) does not exist.
fn found<T, E>(
    operation: &str,
    what: &str,
    answer: Result<T, SdkError<E, HttpResponse>>,
) -> Result<Option<T>, CloudError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match answer {
        Ok(answer) => Ok(Some(answer)),
        Err(e) => {
            let error = api_error(operation, &e);
            if error.is_not_found() {
                Ok(None)
            } else {
                Err(error.refused(what))
            }
        }
    }
}

fn expect<T, E>(
    operation: &str,
    what: &str,
    answer: Result<T, SdkError<E, HttpResponse>>,
) -> Result<T, CloudError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    answer.map_err(|e| api_error(operation, &e).refused(what))
}

/// A bucket's route-53 zone, for the regions the stand-in meets (the real provider has
/// the full table).
fn hosted_zone_id(region: &str) -> Option<&'static str> {
    Some(match region {
        "us-east-1" => "Z3AQBSTGFYJSTF",
        "us-east-2" => "Z2O1EMRO9K5GLX",
        "us-west-1" => "Z2F56UZL2M1ACD",
        "us-west-2" => "Z3BJ6K6RIION7M",
        "eu-west-1" => "Z1BKCTXD74EZPE",
        "eu-west-2" => "Z3GKZC51ZF0DB4",
        "eu-west-3" => "Z3R1K369G5AVDG",
        "eu-central-1" => "Z21DNDUVLTQW6Q",
        "eu-north-1" => "Z3BAZG2TWCNX0D",
        "ap-northeast-1" => "Z2M4EHUR26P7ZW",
        "ap-southeast-1" => "Z3O0J2DXBE1FTB",
        "ap-southeast-2" => "Z1WCIGYICN2BYD",
        _ => return None,
    })
}

/// The bucket a resource is about: a bucket's own name, or a setting's `bucket`.
fn bucket_of(planned: &Value, kind: Kind) -> Result<&str, CloudError> {
    planned
        .str_attr("bucket")
        .ok_or_else(|| CloudError::Refused(format!("{}: bucket is not known", kind.label())))
}

pub async fn create(cloud: &AwsCloud, kind: Kind, planned: &Value) -> Result<String, CloudError> {
    let bucket = bucket_of(planned, kind)?;
    match kind {
        Kind::S3Bucket => {
            let what = format!("creating S3 Bucket ({bucket})");
            let mut request = cloud
                .s3
                .create_bucket()
                .bucket(bucket)
                .set_object_lock_enabled_for_bucket(flag(planned.get("object_lock_enabled")));
            if cloud.region != DEFAULT_REGION {
                request = request.create_bucket_configuration(
                    CreateBucketConfiguration::builder()
                        .location_constraint(BucketLocationConstraint::from(cloud.region.as_str()))
                        .build(),
                );
            }
            // BucketAlreadyOwnedByYou is an error too: the bucket must be imported.
            expect("CreateBucket", &what, request.send().await)?;
            let tags = cloud.tags_all(planned);
            if !tags.is_empty() {
                put_tags(cloud, bucket, &tags, &what).await?;
            }
        }
        _ => put_setting(cloud, kind, bucket, planned).await?,
    }
    Ok(bucket.to_owned())
}

async fn put_tags(
    cloud: &AwsCloud,
    bucket: &str,
    tags: &std::collections::BTreeMap<String, String>,
    what: &str,
) -> Result<(), CloudError> {
    if tags.is_empty() {
        return expect(
            "DeleteBucketTagging",
            what,
            cloud.s3.delete_bucket_tagging().bucket(bucket).send().await,
        )
        .map(|_| ());
    }
    let tag_set = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CloudError::Refused(format!("{what}: {e}")))?;
    let tagging = Tagging::builder()
        .set_tag_set(Some(tag_set))
        .build()
        .map_err(|e| CloudError::Refused(format!("{what}: {e}")))?;
    expect(
        "PutBucketTagging",
        what,
        cloud
            .s3
            .put_bucket_tagging()
            .bucket(bucket)
            .tagging(tagging)
            .send()
            .await,
    )
    .map(|_| ())
}

/// Versioning, encryption or public access block, as `planned` sets it.
async fn put_setting(
    cloud: &AwsCloud,
    kind: Kind,
    bucket: &str,
    planned: &Value,
) -> Result<(), CloudError> {
    let what = format!("creating {} ({bucket})", kind.label());
    let invalid = |e: aws_sdk_s3::error::BuildError| CloudError::Refused(format!("{what}: {e}"));
    match kind {
        Kind::S3BucketVersioning => {
            let config = block(planned, "versioning_configuration");
            let status = config.str_attr("status").unwrap_or("Enabled");
            expect(
                "PutBucketVersioning",
                &what,
                cloud
                    .s3
                    .put_bucket_versioning()
                    .bucket(bucket)
                    .set_mfa(planned.str_attr("mfa").map(str::to_owned))
                    .versioning_configuration(
                        VersioningConfiguration::builder()
                            .status(BucketVersioningStatus::from(status))
                            .set_mfa_delete(config.str_attr("mfa_delete").map(MfaDelete::from))
                            .build(),
                    )
                    .send()
                    .await,
            )?;
        }
        Kind::S3BucketEncryption => {
            let Value::List(rules) = planned.get("rule") else {
                return Err(CloudError::Refused(format!("{what}: no rule")));
            };
            let mut built = Vec::new();
            for rule in rules {
                let default = block(rule, "apply_server_side_encryption_by_default");
                let mut builder = ServerSideEncryptionRule::builder()
                    .set_bucket_key_enabled(flag(rule.get("bucket_key_enabled")));
                if let Some(algorithm) = default.str_attr("sse_algorithm") {
                    builder = builder.apply_server_side_encryption_by_default(
                        ServerSideEncryptionByDefault::builder()
                            .sse_algorithm(ServerSideEncryption::from(algorithm))
                            .set_kms_master_key_id(
                                default
                                    .str_attr("kms_master_key_id")
                                    .filter(|k| !k.is_empty())
                                    .map(str::to_owned),
                            )
                            .build()
                            .map_err(invalid)?,
                    );
                }
                built.push(builder.build());
            }
            expect(
                "PutBucketEncryption",
                &what,
                cloud
                    .s3
                    .put_bucket_encryption()
                    .bucket(bucket)
                    .server_side_encryption_configuration(
                        ServerSideEncryptionConfiguration::builder()
                            .set_rules(Some(built))
                            .build()
                            .map_err(invalid)?,
                    )
                    .send()
                    .await,
            )?;
        }
        Kind::S3BucketPublicAccessBlock => {
            let setting = |name: &str| flag(planned.get(name));
            expect(
                "PutPublicAccessBlock",
                &what,
                cloud
                    .s3
                    .put_public_access_block()
                    .bucket(bucket)
                    .public_access_block_configuration(
                        PublicAccessBlockConfiguration::builder()
                            .set_block_public_acls(setting("block_public_acls"))
                            .set_block_public_policy(setting("block_public_policy"))
                            .set_ignore_public_acls(setting("ignore_public_acls"))
                            .set_restrict_public_buckets(setting("restrict_public_buckets"))
                            .build(),
                    )
                    .send()
                    .await,
            )?;
        }
        _ => return Err(CloudError::Unsupported(kind.label().into())),
    }
    Ok(())
}

pub async fn read(cloud: &AwsCloud, kind: Kind, id: &str) -> Result<Option<Attrs>, CloudError> {
    let what = format!("reading {} ({id})", kind.label());
    let mut attrs = Attrs::new();
    attrs.string("id", Some(id)).string("bucket", Some(id));
    match kind {
        Kind::S3Bucket => {
            let Some(head) = found(
                "HeadBucket",
                &what,
                cloud.s3.head_bucket().bucket(id).send().await,
            )?
            else {
                return Ok(None);
            };
            let region = head.bucket_region().unwrap_or(&cloud.region).to_owned();
            let tags = found(
                "GetBucketTagging",
                &what,
                cloud.s3.get_bucket_tagging().bucket(id).send().await,
            )?
            .map(|t| {
                t.tag_set()
                    .iter()
                    .map(|t| (t.key().to_owned(), t.value().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
            attrs
                .set("arn", string(format!("arn:aws:s3:::{id}")))
                .set(
                    "bucket_domain_name",
                    string(format!("{id}.s3.amazonaws.com")),
                )
                .set(
                    "bucket_regional_domain_name",
                    string(format!("{id}.s3.{region}.amazonaws.com")),
                )
                .string("hosted_zone_id", hosted_zone_id(&region))
                .set("bucket_region", string(region))
                .set("force_destroy", Value::Bool(false))
                .set("object_lock_enabled", Value::Bool(false))
                .set("request_payer", string("BucketOwner"));
            cloud.tag_attributes(&tags, &mut attrs);
        }
        Kind::S3BucketVersioning => {
            // moto (5.2.5) answers GetBucketVersioning under a `GetBucketVersioningResponse`
            // root where S3 has `VersioningConfiguration`, which the SDK's parser refuses:
            // the setting is read by its REST call, its `Status` wherever it stands.
            let Some(versioning) = super::transport::found(
                cloud
                    .transport
                    .rest_get("s3", &cloud.region, &format!("/{id}?versioning"))
                    .await,
                &what,
            )?
            else {
                return Ok(None);
            };
            // A bucket whose versioning was never set has none to manage.
            let Some(status) = versioning
                .find("Status")
                .map(|s| s.text.trim().to_owned())
                .filter(|s| !s.is_empty())
            else {
                return Ok(None);
            };
            let mfa_delete = versioning
                .find("MfaDelete")
                .map_or("Disabled".to_owned(), |m| m.text.trim().to_owned());
            attrs.set(
                "versioning_configuration",
                Value::List(vec![object(vec![
                    ("status", string(status)),
                    ("mfa_delete", string(mfa_delete)),
                ])]),
            );
        }
        Kind::S3BucketEncryption => {
            let Some(encryption) = found(
                "GetBucketEncryption",
                &what,
                cloud.s3.get_bucket_encryption().bucket(id).send().await,
            )?
            else {
                return Ok(None);
            };
            let rules = encryption
                .server_side_encryption_configuration()
                .map(|c| c.rules())
                .unwrap_or_default();
            attrs.set(
                "rule",
                Value::List(
                    rules
                        .iter()
                        .map(|rule| {
                            let default = rule.apply_server_side_encryption_by_default();
                            object(vec![
                                (
                                    "bucket_key_enabled",
                                    Value::Bool(rule.bucket_key_enabled().unwrap_or(false)),
                                ),
                                ("blocked_encryption_types", Value::List(vec![])),
                                (
                                    "apply_server_side_encryption_by_default",
                                    Value::List(
                                        default
                                            .map(|d| {
                                                object(vec![
                                                    (
                                                        "sse_algorithm",
                                                        string(d.sse_algorithm().as_str()),
                                                    ),
                                                    (
                                                        "kms_master_key_id",
                                                        string(d.kms_master_key_id().unwrap_or("")),
                                                    ),
                                                ])
                                            })
                                            .into_iter()
                                            .collect(),
                                    ),
                                ),
                            ])
                        })
                        .collect(),
                ),
            );
        }
        Kind::S3BucketPublicAccessBlock => {
            let Some(answer) = found(
                "GetPublicAccessBlock",
                &what,
                cloud.s3.get_public_access_block().bucket(id).send().await,
            )?
            else {
                return Ok(None);
            };
            let config = answer.public_access_block_configuration();
            let setting = |get: fn(&PublicAccessBlockConfiguration) -> Option<bool>| {
                Value::Bool(config.and_then(get).unwrap_or(false))
            };
            attrs
                .set("block_public_acls", setting(|c| c.block_public_acls()))
                .set("block_public_policy", setting(|c| c.block_public_policy()))
                .set("ignore_public_acls", setting(|c| c.ignore_public_acls()))
                .set(
                    "restrict_public_buckets",
                    setting(|c| c.restrict_public_buckets()),
                )
                .set("skip_destroy", Value::Bool(false));
        }
        _ => return Err(CloudError::Unsupported(kind.label().into())),
    }
    Ok(Some(attrs))
}

pub async fn update(
    cloud: &AwsCloud,
    kind: Kind,
    id: &str,
    planned: &Value,
) -> Result<(), CloudError> {
    match kind {
        Kind::S3Bucket => {
            let what = format!("updating S3 Bucket ({id}) tags");
            let current = read(cloud, kind, id)
                .await?
                .map(|a| string_map(a.0.get("tags_all").unwrap_or(&Value::Null)))
                .unwrap_or_default();
            let wanted = cloud.tags_all(planned);
            // S3 replaces a bucket's whole tag set at once.
            if tag_changes(&current, &wanted) != Default::default() {
                put_tags(cloud, id, &wanted, &what).await?;
            }
            Ok(())
        }
        _ => put_setting(cloud, kind, id, planned).await,
    }
}

pub async fn delete(
    cloud: &AwsCloud,
    kind: Kind,
    id: &str,
    state: &Value,
) -> Result<(), CloudError> {
    let what = format!("deleting {} ({id})", kind.label());
    match kind {
        Kind::S3Bucket => {
            if flag(state.get("force_destroy")) == Some(true) {
                empty_bucket(cloud, id, &what).await?;
            }
            found(
                "DeleteBucket",
                &what,
                cloud.s3.delete_bucket().bucket(id).send().await,
            )?;
        }
        Kind::S3BucketVersioning => {
            // Versioning cannot be switched off, only suspended, as the real provider does.
            let enabled = read(cloud, kind, id).await?.is_some_and(|a| {
                block(&a.into_value(), "versioning_configuration").str_attr("status")
                    == Some("Enabled")
            });
            if enabled {
                found(
                    "PutBucketVersioning",
                    &what,
                    cloud
                        .s3
                        .put_bucket_versioning()
                        .bucket(id)
                        .versioning_configuration(
                            VersioningConfiguration::builder()
                                .status(BucketVersioningStatus::Suspended)
                                .build(),
                        )
                        .send()
                        .await,
                )?;
            }
        }
        Kind::S3BucketEncryption => {
            found(
                "DeleteBucketEncryption",
                &what,
                cloud.s3.delete_bucket_encryption().bucket(id).send().await,
            )?;
        }
        Kind::S3BucketPublicAccessBlock => {
            found(
                "DeletePublicAccessBlock",
                &what,
                cloud
                    .s3
                    .delete_public_access_block()
                    .bucket(id)
                    .send()
                    .await,
            )?;
        }
        _ => return Err(CloudError::Unsupported(kind.label().into())),
    }
    Ok(())
}

/// Deletes every object version and delete marker (`force_destroy`).
async fn empty_bucket(cloud: &AwsCloud, bucket: &str, what: &str) -> Result<(), CloudError> {
    loop {
        let Some(listing) = found(
            "ListObjectVersions",
            what,
            cloud.s3.list_object_versions().bucket(bucket).send().await,
        )?
        else {
            return Ok(());
        };
        let objects: Vec<ObjectIdentifier> = listing
            .versions()
            .iter()
            .filter_map(|v| {
                ObjectIdentifier::builder()
                    .set_key(v.key().map(str::to_owned))
                    .set_version_id(v.version_id().map(str::to_owned))
                    .build()
                    .ok()
            })
            .chain(listing.delete_markers().iter().filter_map(|m| {
                ObjectIdentifier::builder()
                    .set_key(m.key().map(str::to_owned))
                    .set_version_id(m.version_id().map(str::to_owned))
                    .build()
                    .ok()
            }))
            .collect();
        if objects.is_empty() {
            return Ok(());
        }
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| CloudError::Refused(format!("{what}: {e}")))?;
        expect(
            "DeleteObjects",
            what,
            cloud
                .s3
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await,
        )?;
    }
}
