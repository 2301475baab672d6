//! Blob containers are one thing seen from two planes, as in Azure: a container created
//! through ARM (`.../blobServices/default/containers/{name}`, as terraform's azurerm
//! creates it) exists for the Blob API, and one created through the Blob API (as the
//! bootstrap step and Windlass's state sync do) exists for ARM. The stand-in keeps ARM's
//! documents and Azurite keeps the data, so ARM writes of a container are carried to
//! Azurite and ARM reads of one ARM never saw ask Azurite.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use chrono::Utc;
use serde_json::json;

use super::Shared;
use super::reply::json;
use super::storage::{AccountSas, BlobBackend, account_sas};

/// `(storage account, container)` when `path` names a blob container through ARM.
fn container_of(path: &str) -> Option<(String, String)> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let is = |i: usize, name: &str| segs.get(i).is_some_and(|s| s.eq_ignore_ascii_case(name));
    (segs.len() == 12
        && is(4, "providers")
        && is(5, "Microsoft.Storage")
        && is(6, "storageAccounts")
        && is(8, "blobServices")
        && is(9, "default")
        && is(10, "containers"))
    .then(|| (segs[7].to_owned(), segs[11].to_owned()))
}

/// Carries an ARM write of a container to Azurite once ARM accepted it.
pub(crate) async fn after_arm_write(
    shared: &Shared,
    method: &Method,
    path: &str,
    status: StatusCode,
) {
    let (Some(blob), Some((_, container))) = (&shared.blob, container_of(path)) else {
        return;
    };
    if !status.is_success() {
        return;
    }
    let result = match *method {
        Method::PUT => call(blob, Method::PUT, &container).await,
        Method::DELETE => call(blob, Method::DELETE, &container).await,
        _ => return,
    };
    if let Err(error) = result {
        tracing::warn!(%error, container, "Azurite did not follow an ARM write of a container");
    }
}

/// ARM's answer for a container ARM has no document of but Azurite holds (made through
/// the Blob API); `None` when ARM's own answer stands.
pub(crate) async fn read_through(shared: &Shared, method: &Method, path: &str) -> Option<Response> {
    if *method != Method::GET {
        return None;
    }
    let (blob, (account, container)) = (shared.blob.as_ref()?, container_of(path)?);
    let key = path.to_ascii_lowercase();
    let account_key = key[..key.find("/blobservices/")?].to_owned();
    let known = shared
        .with_state(|s| s.resources.contains_key(&key) || !s.resources.contains_key(&account_key));
    if known {
        return None;
    }
    let exists = call(blob, Method::GET, &container).await.ok()?;
    exists.then(|| {
        json(
            StatusCode::OK,
            json!({
                "id": path,
                "name": container,
                "type": "Microsoft.Storage/storageAccounts/blobServices/containers",
                "properties": {
                    "publicAccess": "None",
                    "hasImmutabilityPolicy": false,
                    "hasLegalHold": false,
                    "deleted": false,
                    "remainingRetentionDays": 0
                },
                "etag": format!("\"{account}-{container}\"")
            }),
        )
    })
}

/// Creates, deletes or reads a container in Azurite; for a read, whether it exists.
async fn call(blob: &BlobBackend, method: Method, container: &str) -> Result<bool, String> {
    let expiry = (Utc::now() + chrono::Duration::minutes(5))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let sas = account_sas(
        blob,
        &AccountSas {
            services: "b",
            types: "c",
            permissions: "rwdl",
            start: "",
            expiry: &expiry,
            protocol: "https,http",
        },
    )
    .ok_or("the backend's key is not base64")?;
    let url = format!(
        "{}/{container}?restype=container&{sas}",
        blob.endpoint.trim_end_matches('/')
    );
    let response = reqwest::Client::new()
        .request(method.clone(), url)
        .header("x-ms-version", "2021-08-06")
        .header("content-length", "0")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    match method {
        Method::GET => Ok(status.is_success()),
        // Already there, or already gone: what the write wanted.
        _ if status.is_success()
            || status == StatusCode::CONFLICT
            || status == StatusCode::NOT_FOUND =>
        {
            Ok(true)
        }
        _ => Err(format!("{method} container {container}: {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths_are_recognised() {
        assert_eq!(
            container_of(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct/blobServices/default/containers/tfstate"
            ),
            Some(("acct".into(), "tfstate".into()))
        );
        assert_eq!(
            container_of(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct"
            ),
            None
        );
    }
}
