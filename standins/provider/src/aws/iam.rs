//! Identity: roles, their inline policies and managed policy attachments, and the OIDC
//! provider IRSA trusts, through IAM's Query protocol (a global service, signed for
//! us-east-1).

use super::kinds::Kind;
use super::transport::{expect, found, gone};
use super::{
    Attrs, AwsCloud, Params, Xml, number, required, string, string_list_value, strings, tag_changes,
};
use crate::cloud::CloudError;
use crate::value::Value;

/// The tags of an IAM answer (`Tags/member/Key|Value`).
fn tags(xml: &Xml) -> std::collections::BTreeMap<String, String> {
    xml.tags("Tags")
}

/// IAM answers policy documents URL-encoded; the real provider records them decoded.
fn decoded_policy(document: &str) -> String {
    if document.trim_start().starts_with('{') {
        return document.to_owned();
    }
    url::form_urlencoded::parse(format!("d={}", document.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| document.to_owned())
}

/// The role and policy of a two-part id: `role:policy` (inline), `role/arn` (attached).
fn two_parts(kind: Kind, id: &str, separator: char) -> Result<(&str, &str), CloudError> {
    id.split_once(separator).ok_or_else(|| {
        CloudError::Refused(format!(
            "unexpected format of ID ({id}) for {}, expected ROLE{separator}POLICY",
            kind.label()
        ))
    })
}

pub async fn create(cloud: &AwsCloud, kind: Kind, planned: &Value) -> Result<String, CloudError> {
    let what = format!("creating {}", kind.label());
    match kind {
        Kind::IamRole => {
            let name = required(kind, planned, "name")?;
            // The role's own policy arguments (deprecated in aws 6) are not simulated:
            // refused rather than silently left out.
            let inline = matches!(planned.get("inline_policy"), Value::List(l) if !l.is_empty());
            if inline || !strings(planned.get("managed_policy_arns")).is_empty() {
                return Err(CloudError::Unsupported(
                    "aws_iam_role's inline_policy and managed_policy_arns (aws_iam_role_policy and aws_iam_role_policy_attachment are)"
                        .into(),
                ));
            }
            let mut params = Params::new()
                .set("RoleName", name)
                .set(
                    "AssumeRolePolicyDocument",
                    required(kind, planned, "assume_role_policy")?,
                )
                .set_opt("Path", planned.str_attr("path"))
                .set_opt("Description", planned.str_attr("description"))
                .set_opt(
                    "PermissionsBoundary",
                    planned.str_attr("permissions_boundary"),
                )
                .tags("Tags.member", &cloud.tags_all(planned));
            if let Some(seconds) = number(planned.get("max_session_duration")) {
                params = params.set("MaxSessionDuration", (seconds as i64).to_string());
            }
            expect(
                cloud.iam("CreateRole", params).await,
                &format!("{what} ({name})"),
            )?;
            Ok(name.to_owned())
        }
        Kind::IamRolePolicy => {
            let role = required(kind, planned, "role")?;
            let name = required(kind, planned, "name")?;
            put_role_policy(cloud, role, name, planned).await?;
            Ok(format!("{role}:{name}"))
        }
        Kind::IamRolePolicyAttachment => {
            let role = required(kind, planned, "role")?;
            let arn = required(kind, planned, "policy_arn")?;
            expect(
                cloud
                    .iam(
                        "AttachRolePolicy",
                        Params::new().set("RoleName", role).set("PolicyArn", arn),
                    )
                    .await,
                &format!("attaching IAM Policy ({arn}) to IAM Role ({role})"),
            )?;
            Ok(format!("{role}/{arn}"))
        }
        Kind::OidcProvider => {
            let params = Params::new()
                .set("Url", required(kind, planned, "url")?)
                .list(
                    "ClientIDList.member",
                    &strings(planned.get("client_id_list")),
                )
                .list(
                    "ThumbprintList.member",
                    &strings(planned.get("thumbprint_list")),
                )
                .tags("Tags.member", &cloud.tags_all(planned));
            let xml = expect(
                cloud.iam("CreateOpenIDConnectProvider", params).await,
                &what,
            )?;
            xml.find("OpenIDConnectProviderArn")
                .map(|a| a.text.trim().to_owned())
                .filter(|a| !a.is_empty())
                .ok_or_else(|| CloudError::Refused(format!("{what}: the answer names no ARN")))
        }
        _ => Err(CloudError::Unsupported(kind.label().into())),
    }
}

async fn put_role_policy(
    cloud: &AwsCloud,
    role: &str,
    name: &str,
    planned: &Value,
) -> Result<(), CloudError> {
    expect(
        cloud
            .iam(
                "PutRolePolicy",
                Params::new()
                    .set("RoleName", role)
                    .set("PolicyName", name)
                    .set(
                        "PolicyDocument",
                        required(Kind::IamRolePolicy, planned, "policy")?,
                    ),
            )
            .await,
        &format!("putting IAM Role ({role}) Policy ({name})"),
    )
    .map(|_| ())
}

pub async fn read(cloud: &AwsCloud, kind: Kind, id: &str) -> Result<Option<Attrs>, CloudError> {
    let what = format!("reading {} ({id})", kind.label());
    let mut attrs = Attrs::new();
    attrs.string("id", Some(id));
    match kind {
        Kind::IamRole => {
            let Some(xml) = found(
                cloud
                    .iam("GetRole", Params::new().set("RoleName", id))
                    .await,
                &what,
            )?
            else {
                return Ok(None);
            };
            let Some(role) = xml.find("Role") else {
                return Ok(None);
            };
            let attached = attached_policies(cloud, id).await?.unwrap_or_default();
            attrs
                .string("name", role.text_of("RoleName"))
                .string("arn", role.text_of("Arn"))
                .string("unique_id", role.text_of("RoleId"))
                .string("path", role.text_of("Path"))
                .string("create_date", role.text_of("CreateDate"))
                .string("description", role.text_of("Description"))
                .string(
                    "permissions_boundary",
                    role.text_at(&["PermissionsBoundary", "PermissionsBoundaryArn"]),
                )
                .set(
                    "assume_role_policy",
                    role.text_of("AssumeRolePolicyDocument")
                        .map_or(Value::Null, |d| string(decoded_policy(d))),
                )
                .set(
                    "max_session_duration",
                    role.text_of("MaxSessionDuration")
                        .and_then(|s| s.parse::<f64>().ok())
                        .map_or(Value::Number(3600.0), Value::Number),
                )
                .set("force_detach_policies", Value::Bool(false))
                .set("managed_policy_arns", string_list_value(&attached));
            cloud.tag_attributes(&tags(role), &mut attrs);
        }
        Kind::IamRolePolicy => {
            let (role, name) = two_parts(kind, id, ':')?;
            let Some(xml) = found(
                cloud
                    .iam(
                        "GetRolePolicy",
                        Params::new().set("RoleName", role).set("PolicyName", name),
                    )
                    .await,
                &what,
            )?
            else {
                return Ok(None);
            };
            attrs
                .string("role", Some(role))
                .string("name", Some(name))
                .set(
                    "policy",
                    xml.find("PolicyDocument")
                        .map_or(Value::Null, |d| string(decoded_policy(d.text.trim()))),
                );
        }
        Kind::IamRolePolicyAttachment => {
            let (role, arn) = two_parts(kind, id, '/')?;
            let attached = attached_policies(cloud, role).await?.unwrap_or_default();
            if !attached.iter().any(|a| a == arn) {
                return Ok(None);
            }
            attrs
                .string("role", Some(role))
                .string("policy_arn", Some(arn));
        }
        Kind::OidcProvider => {
            let Some(xml) = found(
                cloud
                    .iam(
                        "GetOpenIDConnectProvider",
                        Params::new().set("OpenIDConnectProviderArn", id),
                    )
                    .await,
                &what,
            )?
            else {
                return Ok(None);
            };
            let Some(provider) = xml.find("GetOpenIDConnectProviderResult") else {
                return Ok(None);
            };
            let members = |name: &str| {
                provider
                    .list(name)
                    .iter()
                    .map(|m| m.text.trim().to_owned())
                    .collect::<Vec<_>>()
            };
            // IAM keeps the issuer without its scheme.
            let url = provider.text_of("Url").map(|u| {
                if u.starts_with("https://") {
                    u.to_owned()
                } else {
                    format!("https://{u}")
                }
            });
            attrs
                .string("arn", Some(id))
                .string("url", url.as_deref())
                .set(
                    "client_id_list",
                    string_list_value(&members("ClientIDList")),
                )
                .set(
                    "thumbprint_list",
                    string_list_value(&members("ThumbprintList")),
                );
            cloud.tag_attributes(&tags(provider), &mut attrs);
        }
        _ => return Err(CloudError::Unsupported(kind.label().into())),
    }
    Ok(Some(attrs))
}

/// The ARNs of the managed policies attached to `role`; None when the role is gone.
async fn attached_policies(
    cloud: &AwsCloud,
    role: &str,
) -> Result<Option<Vec<String>>, CloudError> {
    let Some(xml) = found(
        cloud
            .iam(
                "ListAttachedRolePolicies",
                Params::new().set("RoleName", role),
            )
            .await,
        &format!("listing IAM Role ({role}) attached policies"),
    )?
    else {
        return Ok(None);
    };
    Ok(Some(
        xml.find("AttachedPolicies")
            .map(|list| {
                list.children
                    .iter()
                    .filter_map(|m| m.text_of("PolicyArn").map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    ))
}

pub async fn update(
    cloud: &AwsCloud,
    kind: Kind,
    id: &str,
    planned: &Value,
) -> Result<(), CloudError> {
    let what = format!("updating {} ({id})", kind.label());
    match kind {
        Kind::IamRole => {
            expect(
                cloud
                    .iam(
                        "UpdateAssumeRolePolicy",
                        Params::new().set("RoleName", id).set(
                            "PolicyDocument",
                            required(kind, planned, "assume_role_policy")?,
                        ),
                    )
                    .await,
                &what,
            )?;
            let mut params = Params::new()
                .set("RoleName", id)
                .set_opt("Description", planned.str_attr("description"));
            if let Some(seconds) = number(planned.get("max_session_duration")) {
                params = params.set("MaxSessionDuration", (seconds as i64).to_string());
            }
            expect(cloud.iam("UpdateRole", params).await, &what)?;
            let current = read(cloud, kind, id)
                .await?
                .map(|a| super::string_map(a.0.get("tags_all").unwrap_or(&Value::Null)))
                .unwrap_or_default();
            retag(cloud, ("Role", "RoleName", id), &current, planned).await?;
        }
        Kind::IamRolePolicy => {
            let (role, name) = two_parts(kind, id, ':')?;
            put_role_policy(cloud, role, name, planned).await?;
        }
        Kind::OidcProvider => {
            let current = read(cloud, kind, id)
                .await?
                .ok_or_else(|| CloudError::Refused(format!("{what}: it does not exist")))?;
            let field = |name: &str| current.0.get(name).cloned().unwrap_or(Value::Null);
            let thumbprints = planned.get("thumbprint_list");
            if matches!(thumbprints, Value::List(_)) && *thumbprints != field("thumbprint_list") {
                expect(
                    cloud
                        .iam(
                            "UpdateOpenIDConnectProviderThumbprint",
                            Params::new()
                                .set("OpenIDConnectProviderArn", id)
                                .list("ThumbprintList.member", &strings(thumbprints)),
                        )
                        .await,
                    &what,
                )?;
            }
            let had = strings(&field("client_id_list"));
            let wanted = strings(planned.get("client_id_list"));
            for client in wanted.iter().filter(|c| !had.contains(c)) {
                expect(
                    cloud
                        .iam(
                            "AddClientIDToOpenIDConnectProvider",
                            Params::new()
                                .set("OpenIDConnectProviderArn", id)
                                .set("ClientID", client.clone()),
                        )
                        .await,
                    &what,
                )?;
            }
            for client in had.iter().filter(|c| !wanted.contains(c)) {
                expect(
                    cloud
                        .iam(
                            "RemoveClientIDFromOpenIDConnectProvider",
                            Params::new()
                                .set("OpenIDConnectProviderArn", id)
                                .set("ClientID", client.clone()),
                        )
                        .await,
                    &what,
                )?;
            }
            let tags = super::string_map(&field("tags_all"));
            retag(
                cloud,
                ("OpenIDConnectProvider", "OpenIDConnectProviderArn", id),
                &tags,
                planned,
            )
            .await?;
        }
        // An attachment changes only by replacement.
        _ => {}
    }
    Ok(())
}

/// Tags `(noun, id parameter, id)` as `planned` wants them (`Tag<noun>` / `Untag<noun>`).
async fn retag(
    cloud: &AwsCloud,
    (noun, parameter, id): (&str, &str, &str),
    current: &std::collections::BTreeMap<String, String>,
    planned: &Value,
) -> Result<(), CloudError> {
    let what = format!("updating tags of IAM {noun} ({id})");
    let (set, removed) = tag_changes(current, &cloud.tags_all(planned));
    if !removed.is_empty() {
        expect(
            cloud
                .iam(
                    &format!("Untag{noun}"),
                    Params::new()
                        .set(parameter, id)
                        .list("TagKeys.member", &removed),
                )
                .await,
            &what,
        )?;
    }
    if !set.is_empty() {
        expect(
            cloud
                .iam(
                    &format!("Tag{noun}"),
                    Params::new().set(parameter, id).tags("Tags.member", &set),
                )
                .await,
            &what,
        )?;
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
    let (action, params) = match kind {
        Kind::IamRole => ("DeleteRole", Params::new().set("RoleName", id)),
        Kind::IamRolePolicy => {
            let (role, name) = two_parts(kind, id, ':')?;
            (
                "DeleteRolePolicy",
                Params::new().set("RoleName", role).set("PolicyName", name),
            )
        }
        Kind::IamRolePolicyAttachment => {
            let (role, arn) = two_parts(kind, id, '/')?;
            (
                "DetachRolePolicy",
                Params::new().set("RoleName", role).set("PolicyArn", arn),
            )
        }
        Kind::OidcProvider => (
            "DeleteOpenIDConnectProvider",
            Params::new().set("OpenIDConnectProviderArn", id),
        ),
        _ => return Err(CloudError::Unsupported(kind.label().into())),
    };
    gone(cloud.iam(action, params).await, &what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_are_recorded_decoded() {
        assert_eq!(
            decoded_policy("%7B%22Version%22%3A%222012-10-17%22%7D"),
            r#"{"Version":"2012-10-17"}"#
        );
        assert_eq!(decoded_policy(r#"{"a": 1}"#), r#"{"a": 1}"#);
    }

    #[test]
    fn two_part_ids_split_at_the_first_separator() {
        assert_eq!(
            two_parts(
                Kind::IamRolePolicyAttachment,
                "node/arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
                '/'
            )
            .unwrap(),
            ("node", "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy")
        );
        assert!(two_parts(Kind::IamRolePolicy, "no-separator", ':').is_err());
    }
}
