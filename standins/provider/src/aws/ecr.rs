//! The image repository, through ECR's JSON 1.1 protocol.

use serde_json::json;

use super::kinds::Kind;
use super::transport::{expect, found, gone};
use super::{Attrs, AwsCloud, block, flag, object, required, string, tag_changes};
use crate::cloud::CloudError;
use crate::value::Value;

fn tag_list(tags: &std::collections::BTreeMap<String, String>) -> serde_json::Value {
    tags.iter()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect()
}

pub async fn create(cloud: &AwsCloud, kind: Kind, planned: &Value) -> Result<String, CloudError> {
    let name = required(kind, planned, "name")?;
    let mut body = json!({
        "repositoryName": name,
        "tags": tag_list(&cloud.tags_all(planned)),
    });
    if let Some(mutability) = planned.str_attr("image_tag_mutability") {
        body["imageTagMutability"] = json!(mutability);
    }
    if let Some(scan) = flag(block(planned, "image_scanning_configuration").get("scan_on_push")) {
        body["imageScanningConfiguration"] = json!({"scanOnPush": scan});
    }
    let encryption = block(planned, "encryption_configuration");
    if let Some(kind) = encryption.str_attr("encryption_type") {
        body["encryptionConfiguration"] = json!({"encryptionType": kind});
        if let Some(key) = encryption.str_attr("kms_key") {
            body["encryptionConfiguration"]["kmsKey"] = json!(key);
        }
    }
    expect(
        cloud.ecr("CreateRepository", body).await,
        &format!("creating ECR Repository ({name})"),
    )?;
    Ok(name.to_owned())
}

pub async fn read(cloud: &AwsCloud, _kind: Kind, id: &str) -> Result<Option<Attrs>, CloudError> {
    let what = format!("reading ECR Repository ({id})");
    let Some(answer) = found(
        cloud
            .ecr("DescribeRepositories", json!({"repositoryNames": [id]}))
            .await,
        &what,
    )?
    else {
        return Ok(None);
    };
    let Some(repository) = answer["repositories"].get(0) else {
        return Ok(None);
    };
    let arn = repository["repositoryArn"].as_str().unwrap_or_default();
    let tags = expect(
        cloud
            .ecr("ListTagsForResource", json!({"resourceArn": arn}))
            .await,
        &what,
    )?;
    let text = |v: &serde_json::Value| v.as_str().map_or(Value::Null, string);
    let mut attrs = Attrs::new();
    attrs
        .string("id", Some(id))
        .set("name", text(&repository["repositoryName"]))
        .set("arn", text(&repository["repositoryArn"]))
        .set("registry_id", text(&repository["registryId"]))
        .set("repository_url", text(&repository["repositoryUri"]))
        .set(
            "image_tag_mutability",
            text(&repository["imageTagMutability"]),
        )
        .set("force_delete", Value::Bool(false))
        .set(
            "image_scanning_configuration",
            Value::List(vec![object(vec![(
                "scan_on_push",
                Value::Bool(
                    repository["imageScanningConfiguration"]["scanOnPush"]
                        .as_bool()
                        .unwrap_or(false),
                ),
            )])]),
        )
        .set(
            "encryption_configuration",
            Value::List(vec![object(vec![
                (
                    "encryption_type",
                    string(
                        repository["encryptionConfiguration"]["encryptionType"]
                            .as_str()
                            .unwrap_or("AES256"),
                    ),
                ),
                (
                    "kms_key",
                    string(
                        repository["encryptionConfiguration"]["kmsKey"]
                            .as_str()
                            .unwrap_or(""),
                    ),
                ),
            ])]),
        );
    let tags = tags["tags"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|t| {
                    Some((
                        t["Key"].as_str()?.to_owned(),
                        t["Value"].as_str().unwrap_or_default().to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    cloud.tag_attributes(&tags, &mut attrs);
    Ok(Some(attrs))
}

pub async fn update(
    cloud: &AwsCloud,
    kind: Kind,
    id: &str,
    planned: &Value,
) -> Result<(), CloudError> {
    let what = format!("updating ECR Repository ({id})");
    let current = read(cloud, kind, id)
        .await?
        .ok_or_else(|| CloudError::Refused(format!("{what}: it does not exist")))?
        .into_value();
    if let Some(mutability) = planned.str_attr("image_tag_mutability")
        && current.str_attr("image_tag_mutability") != Some(mutability)
    {
        expect(
            cloud
                .ecr(
                    "PutImageTagMutability",
                    json!({"repositoryName": id, "imageTagMutability": mutability}),
                )
                .await,
            &what,
        )?;
    }
    let scan = flag(block(planned, "image_scanning_configuration").get("scan_on_push"));
    if scan.is_some()
        && scan != flag(block(&current, "image_scanning_configuration").get("scan_on_push"))
    {
        expect(
            cloud
                .ecr(
                    "PutImageScanningConfiguration",
                    json!({"repositoryName": id, "imageScanningConfiguration": {"scanOnPush": scan}}),
                )
                .await,
            &what,
        )?;
    }
    let arn = current.str_attr("arn").unwrap_or_default();
    let (set, removed) = tag_changes(
        &super::string_map(current.get("tags_all")),
        &cloud.tags_all(planned),
    );
    if !removed.is_empty() {
        expect(
            cloud
                .ecr(
                    "UntagResource",
                    json!({"resourceArn": arn, "tagKeys": removed}),
                )
                .await,
            &what,
        )?;
    }
    if !set.is_empty() {
        expect(
            cloud
                .ecr(
                    "TagResource",
                    json!({"resourceArn": arn, "tags": tag_list(&set)}),
                )
                .await,
            &what,
        )?;
    }
    Ok(())
}

pub async fn delete(
    cloud: &AwsCloud,
    _kind: Kind,
    id: &str,
    state: &Value,
) -> Result<(), CloudError> {
    // `force_delete` deletes the images with the repository; without it, a repository
    // holding images is refused (RepositoryNotEmptyException), as by the real provider.
    let force = flag(state.get("force_delete")).unwrap_or(false);
    gone(
        cloud
            .ecr(
                "DeleteRepository",
                json!({"repositoryName": id, "force": force}),
            )
            .await,
        &format!("deleting ECR Repository ({id})"),
    )
}
