//! The control plane and its managed node groups, through aws-sdk-eks. The cluster's
//! endpoint, certificate authority and OIDC issuer are what EKS (moto) answers.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_eks::config::http::HttpResponse;
use aws_sdk_eks::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_eks::types::{
    AuthenticationMode, Cluster, CreateAccessConfigRequest, Nodegroup, NodegroupScalingConfig,
    NodegroupUpdateConfig, SupportType, Taint, TaintEffect, UpgradePolicyRequest, VpcConfigRequest,
};

use super::kinds::Kind;
use super::transport::ApiError;
use super::{
    Attrs, AwsCloud, block, flag, map_value, number, object, required, string, string_list_value,
    string_map, strings, tag_changes,
};
use crate::cloud::CloudError;
use crate::value::Value;

/// How long a cluster or node group may take to become active or to go (the real
/// provider's default create timeouts are 30 and 60 minutes).
const SETTLE_WAIT: Duration = Duration::from_secs(3600);

/// An SDK failure as the API's refusal (its code and message) for the shared handling.
fn api_error<E>(operation: &str, error: &SdkError<E, HttpResponse>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    ApiError {
        service: "EKS".into(),
        operation: operation.into(),
        status: error.raw_response().map_or(0, |r| r.status().as_u16()),
        code: error.code().unwrap_or("(no code)").to_owned(),
        message: error.message().map_or_else(
            || aws_sdk_eks::error::DisplayErrorContext(error).to_string(),
            str::to_owned,
        ),
    }
}

/// The cluster and node group of a node group's id, `cluster:nodegroup`.
fn node_group_id(id: &str) -> Result<(&str, &str), CloudError> {
    id.split_once(':').ok_or_else(|| {
        CloudError::Refused(format!(
            "unexpected format for ID ({id}), expected cluster-name:node-group-name"
        ))
    })
}

fn tags_map(tags: std::collections::BTreeMap<String, String>) -> HashMap<String, String> {
    tags.into_iter().collect()
}

pub async fn create(cloud: &AwsCloud, kind: Kind, planned: &Value) -> Result<String, CloudError> {
    match kind {
        Kind::EksCluster => {
            let name = required(kind, planned, "name")?;
            let vpc = block(planned, "vpc_config");
            let mut request = cloud
                .eks
                .create_cluster()
                .name(name)
                .role_arn(required(kind, planned, "role_arn")?)
                .set_version(planned.str_attr("version").map(str::to_owned))
                .resources_vpc_config(vpc_config(vpc))
                .set_tags(Some(tags_map(cloud.tags_all(planned))))
                .set_bootstrap_self_managed_addons(flag(
                    planned.get("bootstrap_self_managed_addons"),
                ));
            let access = block(planned, "access_config");
            if !access.is_null() {
                request = request.access_config(
                    CreateAccessConfigRequest::builder()
                        .set_authentication_mode(
                            access
                                .str_attr("authentication_mode")
                                .map(AuthenticationMode::from),
                        )
                        .set_bootstrap_cluster_creator_admin_permissions(flag(
                            access.get("bootstrap_cluster_creator_admin_permissions"),
                        ))
                        .build(),
                );
            }
            let upgrade = block(planned, "upgrade_policy");
            if let Some(support) = upgrade.str_attr("support_type") {
                request = request.upgrade_policy(
                    UpgradePolicyRequest::builder()
                        .support_type(SupportType::from(support))
                        .build(),
                );
            }
            let enabled_logs = strings(planned.get("enabled_cluster_log_types"));
            if !enabled_logs.is_empty() {
                request = request.logging(
                    aws_sdk_eks::types::Logging::builder()
                        .cluster_logging(
                            aws_sdk_eks::types::LogSetup::builder()
                                .enabled(true)
                                .set_types(Some(
                                    enabled_logs
                                        .iter()
                                        .map(|t| aws_sdk_eks::types::LogType::from(t.as_str()))
                                        .collect(),
                                ))
                                .build(),
                        )
                        .build(),
                );
            }
            request.send().await.map_err(|e| {
                api_error("CreateCluster", &e).refused(&format!("creating EKS Cluster ({name})"))
            })?;
            wait_for_cluster(cloud, name, "ACTIVE").await?;
            Ok(name.to_owned())
        }
        Kind::EksNodeGroup => {
            let cluster = required(kind, planned, "cluster_name")?;
            let name = required(kind, planned, "node_group_name")?;
            let id = format!("{cluster}:{name}");
            let scaling = block(planned, "scaling_config");
            let update = block(planned, "update_config");
            let request = cloud
                .eks
                .create_nodegroup()
                .cluster_name(cluster)
                .nodegroup_name(name)
                .node_role(required(kind, planned, "node_role_arn")?)
                .set_subnets(Some(strings(planned.get("subnet_ids"))))
                .set_instance_types(
                    Some(strings(planned.get("instance_types"))).filter(|t| !t.is_empty()),
                )
                .set_version(planned.str_attr("version").map(str::to_owned))
                .set_release_version(planned.str_attr("release_version").map(str::to_owned))
                .set_ami_type(planned.str_attr("ami_type").map(Into::into))
                .set_capacity_type(planned.str_attr("capacity_type").map(Into::into))
                .set_disk_size(number(planned.get("disk_size")).map(|n| n as i32))
                .set_labels(
                    Some(string_map(planned.get("labels")).into_iter().collect())
                        .filter(|l: &HashMap<_, _>| !l.is_empty()),
                )
                .set_taints(Some(taints(planned)).filter(|t| !t.is_empty()))
                .set_tags(Some(tags_map(cloud.tags_all(planned))))
                .scaling_config(scaling_config(scaling))
                .set_update_config(update_config(update));
            request.send().await.map_err(|e| {
                api_error("CreateNodegroup", &e).refused(&format!("creating EKS Node Group ({id})"))
            })?;
            wait_for_node_group(cloud, cluster, name, Some("ACTIVE")).await?;
            Ok(id)
        }
        _ => Err(CloudError::Unsupported(kind.label().into())),
    }
}

fn vpc_config(vpc: &Value) -> VpcConfigRequest {
    let list = |name: &str| match vpc.get(name) {
        Value::List(_) => Some(strings(vpc.get(name))),
        _ => None,
    };
    VpcConfigRequest::builder()
        .set_subnet_ids(list("subnet_ids"))
        .set_security_group_ids(list("security_group_ids"))
        .set_public_access_cidrs(list("public_access_cidrs"))
        .set_endpoint_private_access(flag(vpc.get("endpoint_private_access")))
        .set_endpoint_public_access(flag(vpc.get("endpoint_public_access")))
        .build()
}

fn scaling_config(scaling: &Value) -> NodegroupScalingConfig {
    let size = |name: &str| number(scaling.get(name)).map(|n| n as i32);
    NodegroupScalingConfig::builder()
        .set_desired_size(size("desired_size"))
        .set_min_size(size("min_size"))
        .set_max_size(size("max_size"))
        .build()
}

fn update_config(update: &Value) -> Option<NodegroupUpdateConfig> {
    let unavailable = number(update.get("max_unavailable")).map(|n| n as i32);
    let percentage = number(update.get("max_unavailable_percentage")).map(|n| n as i32);
    (unavailable.is_some() || percentage.is_some()).then(|| {
        NodegroupUpdateConfig::builder()
            .set_max_unavailable(unavailable)
            .set_max_unavailable_percentage(percentage)
            .build()
    })
}

fn taints(planned: &Value) -> Vec<Taint> {
    let Value::List(items) = planned.get("taint") else {
        return vec![];
    };
    items
        .iter()
        .map(|t| {
            Taint::builder()
                .set_key(t.str_attr("key").map(str::to_owned))
                .set_value(t.str_attr("value").map(str::to_owned))
                .set_effect(t.str_attr("effect").map(TaintEffect::from))
                .build()
        })
        .collect()
}

/// The cluster, None when EKS does not know it.
async fn describe_cluster(cloud: &AwsCloud, name: &str) -> Result<Option<Cluster>, CloudError> {
    match cloud.eks.describe_cluster().name(name).send().await {
        Ok(answer) => Ok(answer.cluster),
        Err(e) => {
            let error = api_error("DescribeCluster", &e);
            if error.is_not_found() {
                Ok(None)
            } else {
                Err(error.refused(&format!("reading EKS Cluster ({name})")))
            }
        }
    }
}

async fn describe_node_group(
    cloud: &AwsCloud,
    cluster: &str,
    name: &str,
) -> Result<Option<Nodegroup>, CloudError> {
    match cloud
        .eks
        .describe_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name(name)
        .send()
        .await
    {
        Ok(answer) => Ok(answer.nodegroup),
        Err(e) => {
            let error = api_error("DescribeNodegroup", &e);
            if error.is_not_found() {
                Ok(None)
            } else {
                Err(error.refused(&format!("reading EKS Node Group ({cluster}:{name})")))
            }
        }
    }
}

async fn wait_for_cluster(cloud: &AwsCloud, name: &str, status: &str) -> Result<(), CloudError> {
    cloud
        .wait_until(
            &format!("EKS Cluster ({name}) to be {status}"),
            SETTLE_WAIT,
            || async {
                let cluster = describe_cluster(cloud, name).await?;
                match cluster
                    .as_ref()
                    .and_then(|c| c.status())
                    .map(|s| s.as_str())
                {
                    Some("FAILED") => {
                        Err(CloudError::Refused(format!("EKS Cluster ({name}) failed")))
                    }
                    Some(now) => Ok(now == status),
                    None => Ok(false),
                }
            },
        )
        .await
}

/// Waits for the node group's `status`, or (None) for it to be gone.
async fn wait_for_node_group(
    cloud: &AwsCloud,
    cluster: &str,
    name: &str,
    status: Option<&str>,
) -> Result<(), CloudError> {
    let what = format!(
        "EKS Node Group ({cluster}:{name}) to be {}",
        status.unwrap_or("deleted")
    );
    cloud
        .wait_until(&what, SETTLE_WAIT, || async {
            let group = describe_node_group(cloud, cluster, name).await?;
            let now = group
                .as_ref()
                .and_then(|g| g.status())
                .map(|s| s.as_str().to_owned());
            match (now.as_deref(), status) {
                (Some("CREATE_FAILED" | "DEGRADED"), Some(_)) => Err(CloudError::Refused(format!(
                    "EKS Node Group ({cluster}:{name}) is {}",
                    now.unwrap_or_default()
                ))),
                (None, None) => Ok(true),
                (Some(now), Some(wanted)) => Ok(now == wanted),
                _ => Ok(false),
            }
        })
        .await
}

pub async fn read(cloud: &AwsCloud, kind: Kind, id: &str) -> Result<Option<Attrs>, CloudError> {
    let mut attrs = Attrs::new();
    attrs.string("id", Some(id));
    match kind {
        Kind::EksCluster => {
            let Some(cluster) = describe_cluster(cloud, id).await? else {
                return Ok(None);
            };
            // A cluster being deleted is gone for terraform.
            if cluster.status().map(|s| s.as_str()) == Some("DELETING") {
                return Ok(None);
            }
            let vpc = cluster.resources_vpc_config();
            attrs
                .string("name", cluster.name())
                .string("arn", cluster.arn())
                .string("role_arn", cluster.role_arn())
                .string("version", cluster.version())
                .string("endpoint", cluster.endpoint())
                .string("platform_version", cluster.platform_version())
                .string("status", cluster.status().map(|s| s.as_str()))
                .string(
                    "created_at",
                    cluster.created_at().map(|t| t.to_string()).as_deref(),
                )
                .set(
                    "certificate_authority",
                    Value::List(vec![object(vec![(
                        "data",
                        cluster
                            .certificate_authority()
                            .and_then(|c| c.data())
                            .map_or(Value::Null, string),
                    )])]),
                )
                .set(
                    "identity",
                    Value::List(vec![object(vec![(
                        "oidc",
                        Value::List(vec![object(vec![(
                            "issuer",
                            cluster
                                .identity()
                                .and_then(|i| i.oidc())
                                .and_then(|o| o.issuer())
                                .map_or(Value::Null, string),
                        )])]),
                    )])]),
                )
                .set(
                    "vpc_config",
                    Value::List(vec![object(vec![
                        (
                            "subnet_ids",
                            string_list_value(vpc.map(|v| v.subnet_ids()).unwrap_or_default()),
                        ),
                        (
                            "security_group_ids",
                            string_list_value(
                                vpc.map(|v| v.security_group_ids()).unwrap_or_default(),
                            ),
                        ),
                        (
                            "public_access_cidrs",
                            string_list_value(
                                vpc.map(|v| v.public_access_cidrs()).unwrap_or_default(),
                            ),
                        ),
                        (
                            "cluster_security_group_id",
                            vpc.and_then(|v| v.cluster_security_group_id())
                                .map_or(Value::Null, string),
                        ),
                        (
                            "vpc_id",
                            vpc.and_then(|v| v.vpc_id()).map_or(Value::Null, string),
                        ),
                        (
                            "endpoint_private_access",
                            Value::Bool(vpc.is_some_and(|v| v.endpoint_private_access())),
                        ),
                        (
                            "endpoint_public_access",
                            Value::Bool(vpc.is_some_and(|v| v.endpoint_public_access())),
                        ),
                    ])]),
                )
                .set(
                    "enabled_cluster_log_types",
                    string_list_value(
                        &cluster
                            .logging()
                            .map(|l| l.cluster_logging())
                            .unwrap_or_default()
                            .iter()
                            .filter(|s| s.enabled() == Some(true))
                            .flat_map(|s| s.types().iter().map(|t| t.as_str().to_owned()))
                            .collect::<Vec<_>>(),
                    ),
                )
                .set("bootstrap_self_managed_addons", Value::Bool(true))
                .set(
                    "deletion_protection",
                    Value::Bool(cluster.deletion_protection().unwrap_or(false)),
                );
            if let Some(network) = cluster.kubernetes_network_config() {
                attrs.set(
                    "kubernetes_network_config",
                    Value::List(vec![object(vec![
                        (
                            "service_ipv4_cidr",
                            network.service_ipv4_cidr().map_or(Value::Null, string),
                        ),
                        (
                            "service_ipv6_cidr",
                            network.service_ipv6_cidr().map_or(Value::Null, string),
                        ),
                        (
                            "ip_family",
                            string(network.ip_family().map_or("ipv4", |f| f.as_str())),
                        ),
                        ("elastic_load_balancing", Value::List(vec![])),
                    ])]),
                );
            }
            if let Some(access) = cluster.access_config() {
                attrs.set(
                    "access_config",
                    Value::List(vec![object(vec![
                        (
                            "authentication_mode",
                            access
                                .authentication_mode()
                                .map_or(Value::Null, |m| string(m.as_str())),
                        ),
                        (
                            "bootstrap_cluster_creator_admin_permissions",
                            access
                                .bootstrap_cluster_creator_admin_permissions()
                                .map_or(Value::Null, Value::Bool),
                        ),
                    ])]),
                );
            }
            if let Some(support) = cluster.upgrade_policy().and_then(|u| u.support_type()) {
                attrs.set(
                    "upgrade_policy",
                    Value::List(vec![object(vec![(
                        "support_type",
                        string(support.as_str()),
                    )])]),
                );
            }
            cloud.tag_attributes(
                &cluster
                    .tags()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
                &mut attrs,
            );
        }
        Kind::EksNodeGroup => {
            let (cluster, name) = node_group_id(id)?;
            let Some(group) = describe_node_group(cloud, cluster, name).await? else {
                return Ok(None);
            };
            if group.status().map(|s| s.as_str()) == Some("DELETING") {
                return Ok(None);
            }
            let scaling = group.scaling_config();
            let size = |n: Option<i32>| n.map_or(Value::Null, |n| Value::Number(f64::from(n)));
            let resources = group.resources();
            attrs
                .string("cluster_name", group.cluster_name())
                .string("node_group_name", group.nodegroup_name())
                .string("arn", group.nodegroup_arn())
                .string("node_role_arn", group.node_role())
                .string("status", group.status().map(|s| s.as_str()))
                .string("version", group.version())
                .string("release_version", group.release_version())
                .string("ami_type", group.ami_type().map(|t| t.as_str()))
                .string("capacity_type", group.capacity_type().map(|t| t.as_str()))
                .set("disk_size", size(group.disk_size()))
                .set("instance_types", string_list_value(group.instance_types()))
                .set("subnet_ids", string_list_value(group.subnets()))
                .set(
                    "labels",
                    map_value(
                        &group
                            .labels()
                            .cloned()
                            .unwrap_or_default()
                            .into_iter()
                            .collect(),
                    ),
                )
                .set(
                    "scaling_config",
                    Value::List(vec![object(vec![
                        ("desired_size", size(scaling.and_then(|s| s.desired_size()))),
                        ("min_size", size(scaling.and_then(|s| s.min_size()))),
                        ("max_size", size(scaling.and_then(|s| s.max_size()))),
                    ])]),
                )
                .set(
                    "resources",
                    Value::List(vec![object(vec![
                        (
                            "autoscaling_groups",
                            Value::List(
                                resources
                                    .map(|r| r.auto_scaling_groups())
                                    .unwrap_or_default()
                                    .iter()
                                    .map(|g| {
                                        object(vec![("name", g.name().map_or(Value::Null, string))])
                                    })
                                    .collect(),
                            ),
                        ),
                        (
                            "remote_access_security_group_id",
                            resources
                                .and_then(|r| r.remote_access_security_group())
                                .map_or(Value::Null, string),
                        ),
                    ])]),
                )
                .set(
                    "taint",
                    Value::List(
                        group
                            .taints()
                            .iter()
                            .map(|t| {
                                object(vec![
                                    ("key", t.key().map_or(Value::Null, string)),
                                    ("value", t.value().map_or(Value::Null, string)),
                                    (
                                        "effect",
                                        t.effect().map_or(Value::Null, |e| string(e.as_str())),
                                    ),
                                ])
                            })
                            .collect(),
                    ),
                );
            if let Some(update) = group.update_config() {
                attrs.set(
                    "update_config",
                    Value::List(vec![object(vec![
                        ("max_unavailable", size(update.max_unavailable())),
                        (
                            "max_unavailable_percentage",
                            size(update.max_unavailable_percentage()),
                        ),
                    ])]),
                );
            }
            cloud.tag_attributes(
                &group
                    .tags()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
                &mut attrs,
            );
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
    let what = format!("updating {} ({id})", kind.label());
    let current = read(cloud, kind, id)
        .await?
        .ok_or_else(|| CloudError::Refused(format!("{what}: it does not exist")))?
        .into_value();
    let arn = current.str_attr("arn").unwrap_or_default().to_owned();
    match kind {
        Kind::EksCluster => {
            if let Some(version) = planned.str_attr("version")
                && current.str_attr("version") != Some(version)
            {
                cloud
                    .eks
                    .update_cluster_version()
                    .name(id)
                    .version(version)
                    .send()
                    .await
                    .map_err(|e| api_error("UpdateClusterVersion", &e).refused(&what))?;
                wait_for_cluster(cloud, id, "ACTIVE").await?;
            }
            let vpc = block(planned, "vpc_config");
            let was = block(&current, "vpc_config");
            let access_changed = ["endpoint_private_access", "endpoint_public_access"]
                .iter()
                .any(|a| flag(vpc.get(a)).is_some_and(|on| flag(was.get(a)) != Some(on)));
            if access_changed {
                cloud
                    .eks
                    .update_cluster_config()
                    .name(id)
                    .resources_vpc_config(
                        VpcConfigRequest::builder()
                            .set_endpoint_private_access(flag(vpc.get("endpoint_private_access")))
                            .set_endpoint_public_access(flag(vpc.get("endpoint_public_access")))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| api_error("UpdateClusterConfig", &e).refused(&what))?;
                wait_for_cluster(cloud, id, "ACTIVE").await?;
            }
        }
        Kind::EksNodeGroup => {
            let (cluster, name) = node_group_id(id)?;
            let scaling = block(planned, "scaling_config");
            let update = block(planned, "update_config");
            let scaling_changed = scaling != block(&current, "scaling_config");
            let update_changed = !update.is_null()
                && ["max_unavailable", "max_unavailable_percentage"]
                    .iter()
                    .any(|a| {
                        number(update.get(a)).is_some()
                            && update.get(a) != block(&current, "update_config").get(a)
                    });
            if scaling_changed || update_changed {
                cloud
                    .eks
                    .update_nodegroup_config()
                    .cluster_name(cluster)
                    .nodegroup_name(name)
                    .set_scaling_config(scaling_changed.then(|| scaling_config(scaling)))
                    .set_update_config(if update_changed {
                        update_config(update)
                    } else {
                        None
                    })
                    .send()
                    .await
                    .map_err(|e| api_error("UpdateNodegroupConfig", &e).refused(&what))?;
                wait_for_node_group(cloud, cluster, name, Some("ACTIVE")).await?;
            }
            if let Some(version) = planned.str_attr("version")
                && current.str_attr("version") != Some(version)
            {
                cloud
                    .eks
                    .update_nodegroup_version()
                    .cluster_name(cluster)
                    .nodegroup_name(name)
                    .version(version)
                    .send()
                    .await
                    .map_err(|e| api_error("UpdateNodegroupVersion", &e).refused(&what))?;
                wait_for_node_group(cloud, cluster, name, Some("ACTIVE")).await?;
            }
        }
        _ => return Err(CloudError::Unsupported(kind.label().into())),
    }
    let (set, removed) = tag_changes(
        &string_map(current.get("tags_all")),
        &cloud.tags_all(planned),
    );
    if !removed.is_empty() {
        cloud
            .eks
            .untag_resource()
            .resource_arn(&arn)
            .set_tag_keys(Some(removed))
            .send()
            .await
            .map_err(|e| api_error("UntagResource", &e).refused(&what))?;
    }
    if !set.is_empty() {
        cloud
            .eks
            .tag_resource()
            .resource_arn(&arn)
            .set_tags(Some(tags_map(set)))
            .send()
            .await
            .map_err(|e| api_error("TagResource", &e).refused(&what))?;
    }
    Ok(())
}

pub async fn delete(
    cloud: &AwsCloud,
    kind: Kind,
    id: &str,
    _state: &Value,
) -> Result<(), CloudError> {
    let what = format!("deleting {} ({id})", kind.label());
    let refused = |error: ApiError| {
        if error.is_not_found() {
            Ok(())
        } else {
            Err(error.refused(&what))
        }
    };
    match kind {
        Kind::EksCluster => {
            if let Err(e) = cloud.eks.delete_cluster().name(id).send().await {
                return refused(api_error("DeleteCluster", &e));
            }
            cloud
                .wait_until(
                    &format!("EKS Cluster ({id}) delete"),
                    SETTLE_WAIT,
                    || async { Ok(describe_cluster(cloud, id).await?.is_none()) },
                )
                .await
        }
        Kind::EksNodeGroup => {
            let (cluster, name) = node_group_id(id)?;
            if let Err(e) = cloud
                .eks
                .delete_nodegroup()
                .cluster_name(cluster)
                .nodegroup_name(name)
                .send()
                .await
            {
                return refused(api_error("DeleteNodegroup", &e));
            }
            wait_for_node_group(cloud, cluster, name, None).await
        }
        _ => Err(CloudError::Unsupported(kind.label().into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_group_ids_are_cluster_colon_group() {
        assert_eq!(node_group_id("prod:system").unwrap(), ("prod", "system"));
        assert!(node_group_id("prod").is_err());
    }
}
