use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{Patch, PatchParams};
use zeroize::Zeroizing;

use super::KubeError;

const FIELD_MANAGER: &str = "windlass";

/// Server-side applies the namespace with its labels: creating it, or leaving it as is.
pub async fn ensure_namespace(
    client: &kube::Client,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> Result<(), KubeError> {
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    let api = Api::<Namespace>::all(client.clone());
    super::retry::bounded("apply namespace", || async {
        api.patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&namespace),
        )
        .await
        .map_err(KubeError::from)
    })
    .await?;
    Ok(())
}

/// Server-side applies an Opaque Secret whose keys are exactly `data`'s (keys applied
/// earlier and no longer given are removed: Windlass owns every field it applied).
pub async fn apply_secret(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
    data: &BTreeMap<String, Zeroizing<String>>,
) -> Result<(), KubeError> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.clone(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Secret::default()
    };
    let api = Api::<Secret>::namespaced(client.clone(), namespace);
    let result = super::retry::bounded("apply secret", || async {
        api.patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await
        .map_err(KubeError::from)
    })
    .await;
    // The request body held the values; drop our copy of them now.
    drop(secret);
    result?;
    Ok(())
}
