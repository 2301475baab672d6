//! EKS bearer tokens, minted by the worker as `aws eks get-token` mints them, from the
//! organisation's assumed-role credentials.
//!
//! An EKS kubeconfig (the blueprint's, the one users get) runs `aws eks get-token` as
//! whoever uses it. A worker must not: the CLI would sign with the worker's own identity,
//! not the customer's role, and workers do not ship the AWS CLI. So the worker reads the
//! kubeconfig and replaces that exec plugin with a token it signs itself: an STS
//! GetCallerIdentity URL presigned (SigV4, query string, 60 s) with the cluster's name in
//! the signed `x-k8s-aws-id` header, base64url'd behind `k8s-aws-v1.`. EKS accepts it for
//! 15 minutes; the rewritten kubeconfig lives in memory for one step.

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine as _;
use zeroize::Zeroizing;

use super::AssumedCredentials;

/// The header EKS's authenticator expects the cluster's name in.
const CLUSTER_HEADER: &str = "x-k8s-aws-id";

/// How long the presigned URL says it is valid (what the AWS CLI uses; STS ignores it for
/// GetCallerIdentity, and EKS accepts the token for 15 minutes from its signing).
const PRESIGN_EXPIRY: Duration = Duration::from_secs(60);

/// The STS endpoint a region's tokens are signed for: `endpoint_url` when Windlass's AWS is
/// elsewhere (a stand-in), else the regional STS endpoint EKS verifies against.
pub fn sts_endpoint(endpoint_url: Option<&str>, region: &str) -> String {
    match endpoint_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => format!("https://sts.{region}.amazonaws.com"),
    }
}

/// A token for `cluster_name`, signed with `credentials` for `sts_endpoint` in `region`.
pub fn mint(
    credentials: &AssumedCredentials,
    sts_endpoint: &str,
    region: &str,
    cluster_name: &str,
) -> Result<Zeroizing<String>, String> {
    let identity: Identity = aws_sdk_sts::config::Credentials::new(
        credentials.access_key_id.clone(),
        credentials.secret_access_key.to_string(),
        Some(credentials.session_token.to_string()),
        Some(credentials.expires_at.into()),
        "windlass-assumed-role",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(PRESIGN_EXPIRY);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|e| format!("signing an EKS token: {e}"))?
        .into();
    let mut url = url::Url::parse(&format!(
        "{sts_endpoint}/?Action=GetCallerIdentity&Version=2011-06-15"
    ))
    .map_err(|e| format!("the STS endpoint {sts_endpoint}: {e}"))?;
    let signable = SignableRequest::new(
        "GET",
        url.as_str(),
        std::iter::once((CLUSTER_HEADER, cluster_name)),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| format!("signing an EKS token: {e}"))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| format!("signing an EKS token: {e}"))?
        .into_parts();
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in instructions.params() {
            query.append_pair(name, value);
        }
    }
    Ok(Zeroizing::new(format!(
        "k8s-aws-v1.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url.as_str())
    )))
}

/// Whether an exec plugin is `aws eks get-token`, and for which cluster and region.
fn get_token_cluster(exec: &serde_json::Value) -> Option<(String, Option<String>)> {
    let command = exec["command"].as_str()?;
    let args: Vec<&str> = exec["args"]
        .as_array()?
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    let is_get_token = (command == "aws" || command.ends_with("/aws"))
        && args.windows(2).any(|w| w == ["eks", "get-token"]);
    if !is_get_token {
        return None;
    }
    let after = |flag: &str| {
        args.windows(2)
            .find(|w| w[0] == flag)
            .map(|w| w[1].to_owned())
    };
    let cluster = after("--cluster-name").or_else(|| after("--cluster-id"))?;
    Some((cluster, after("--region")))
}

/// The kubeconfig with every `aws eks get-token` user replaced by a token from `mint`
/// (given the cluster's name and the plugin's region), as JSON (which is YAML, for kube-rs and helm alike); the
/// text unchanged when it has no such user.
pub fn with_minted_tokens(
    kubeconfig: &str,
    mut mint: impl FnMut(&str, Option<&str>) -> Result<Zeroizing<String>, String>,
) -> Result<Zeroizing<String>, String> {
    let parsed = kube::config::Kubeconfig::from_yaml(kubeconfig)
        .map_err(|e| format!("the cluster's kubeconfig is not readable: {e}"))?;
    let mut value =
        serde_json::to_value(&parsed).map_err(|e| format!("the cluster's kubeconfig: {e}"))?;
    let mut replaced = false;
    if let Some(users) = value["users"].as_array_mut() {
        for user in users {
            let Some(auth) = user.get_mut("user").and_then(|u| u.as_object_mut()) else {
                continue;
            };
            let Some((cluster, region)) = auth.get("exec").and_then(get_token_cluster) else {
                continue;
            };
            let token = mint(&cluster, region.as_deref())?;
            auth.remove("exec");
            auth.insert("token".into(), serde_json::Value::String(token.to_string()));
            replaced = true;
        }
    }
    if !replaced {
        return Ok(Zeroizing::new(kubeconfig.to_owned()));
    }
    let text = Zeroizing::new(
        serde_json::to_string(&value).map_err(|e| format!("the cluster's kubeconfig: {e}"))?,
    );
    // The Value held the token too.
    drop(value);
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials() -> AssumedCredentials {
        AssumedCredentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: Zeroizing::new("secret".into()),
            session_token: Zeroizing::new("session".into()),
            expires_at: chrono::Utc::now() + chrono::Duration::minutes(15),
        }
    }

    #[test]
    fn a_token_is_a_presigned_get_caller_identity_signing_the_cluster_name() {
        let token = mint(
            &credentials(),
            "https://sts.eu-west-3.amazonaws.com",
            "eu-west-3",
            "prod",
        )
        .unwrap();
        let encoded = token.strip_prefix("k8s-aws-v1.").unwrap();
        let url = String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(encoded)
                .unwrap(),
        )
        .unwrap();
        let url = url::Url::parse(&url).unwrap();
        assert_eq!(url.host_str(), Some("sts.eu-west-3.amazonaws.com"));
        let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(query["Action"], "GetCallerIdentity");
        assert_eq!(query["X-Amz-Expires"], "60");
        assert_eq!(query["X-Amz-Security-Token"], "session");
        assert!(
            query["X-Amz-SignedHeaders"]
                .split(';')
                .any(|h| h == "x-k8s-aws-id"),
            "{query:?}"
        );
        assert!(query["X-Amz-Credential"].starts_with("ASIAEXAMPLE/"));
        assert!(!url.as_str().contains("secret"));
    }

    #[test]
    fn the_get_token_plugin_is_replaced_by_a_token_and_nothing_else_changes() {
        let kubeconfig = r#"
apiVersion: v1
kind: Config
current-context: prod
clusters:
- name: prod
  cluster:
    server: https://example.eks.amazonaws.com
    certificate-authority-data: Q0E=
users:
- name: prod
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: aws
      args: ["eks", "get-token", "--cluster-name", "prod-cluster", "--region", "eu-west-3", "--output", "json"]
contexts:
- name: prod
  context: {cluster: prod, user: prod}
"#;
        let mut asked = Vec::new();
        let rewritten = with_minted_tokens(kubeconfig, |cluster, region| {
            asked.push(format!("{cluster} in {}", region.unwrap()));
            Ok(Zeroizing::new("k8s-aws-v1.minted".into()))
        })
        .unwrap();
        assert_eq!(asked, ["prod-cluster in eu-west-3"]);
        let parsed = kube::config::Kubeconfig::from_yaml(&rewritten).unwrap();
        let user = parsed.auth_infos[0].auth_info.as_ref().unwrap();
        assert!(user.exec.is_none());
        assert_eq!(
            parsed.clusters[0]
                .cluster
                .as_ref()
                .unwrap()
                .server
                .as_deref(),
            Some("https://example.eks.amazonaws.com")
        );
        assert!(rewritten.contains("k8s-aws-v1.minted"));
    }

    #[test]
    fn a_kubeconfig_without_the_plugin_is_left_as_it_is() {
        let kubeconfig = "apiVersion: v1\nkind: Config\nusers:\n- name: a\n  user:\n    token: t\n";
        let same = with_minted_tokens(kubeconfig, |_, _| panic!("nothing to mint")).unwrap();
        assert_eq!(same.as_str(), kubeconfig);
    }
}
