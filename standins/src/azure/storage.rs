//! Storage accounts (Microsoft.Storage/storageAccounts) in the ARM stand-in.
//!
//! Creation answers 202 with a `Location` monitor, as the storage resource provider does.
//! The account's blob endpoint is an Azurite instance (the real Blob storage emulator)
//! when the stand-in was given one, and `listAccountSas` signs a real account SAS with
//! Azurite's key, so the data plane that follows is the real protocol.

use aws_lc_rs::hmac;
use axum::{
    http::{Method, StatusCode},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Value, json};

use super::{
    Shared,
    arm_common::{location_url, method_not_allowed, new_operation, parse_body, rg_key},
    reply::{arm_error, json, with_headers},
};

/// The Blob storage every stand-in storage account is backed by.
#[derive(Debug, Clone)]
pub struct BlobBackend {
    /// Path-style account URL, e.g. `http://127.0.0.1:10000/devstoreaccount1`.
    pub endpoint: String,
    pub account: String,
    /// Base64 account key (Azurite's well-known development key).
    pub key: String,
}

pub(crate) fn handle(shared: &Shared, method: &Method, segs: &[&str], body: &[u8]) -> Response {
    let (sub, rg, name) = (segs[1], segs[3], segs[7]);
    let id = format!(
        "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Storage/storageAccounts/{name}"
    );
    let key = id.to_ascii_lowercase();
    let action = segs.get(8).map(|a| a.to_ascii_lowercase());
    match (method, action.as_deref()) {
        (&Method::PUT, None) => match parse_body(body) {
            Ok(body) => put(shared, sub, rg, name, &id, &key, &body),
            Err(response) => response,
        },
        (&Method::GET, None) => match shared.with_state(|s| s.resources.get(&key).cloned()) {
            Some(doc) => json(StatusCode::OK, doc),
            None => not_found(name),
        },
        (&Method::POST, Some("listaccountsas")) => match parse_body(body) {
            Ok(body) => list_account_sas(shared, &key, name, &body),
            Err(response) => response,
        },
        (&Method::DELETE, None) => {
            let removed = shared.mutate(|s| {
                let removed = s.resources.remove(&key).is_some();
                if removed {
                    s.record_deletion(&key);
                }
                removed
            });
            if removed {
                StatusCode::OK.into_response()
            } else {
                StatusCode::NO_CONTENT.into_response()
            }
        }
        _ => method_not_allowed(),
    }
}

fn put(
    shared: &Shared,
    sub: &str,
    rg: &str,
    name: &str,
    id: &str,
    key: &str,
    body: &Value,
) -> Response {
    if !(3..=24).contains(&name.len())
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "AccountNameInvalid",
            format!(
                "{name} is not a valid storage account name. Storage account name must be between 3 and 24 characters in length and use numbers and lower-case letters only."
            ),
        );
    }
    let (Some(location), Some(sku), Some(kind)) = (
        body["location"].as_str(),
        body["sku"]["name"].as_str(),
        body["kind"].as_str(),
    ) else {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            "location, sku.name and kind are required.",
        );
    };
    let blob_endpoint = shared
        .blob
        .as_ref()
        .map(|b| format!("{}/", b.endpoint.trim_end_matches('/')))
        .unwrap_or_else(|| format!("https://{name}.blob.core.windows.net/"));
    let base = shared.base_url.clone();
    shared.mutate(|s| {
        // Account names are global across Azure: another customer may hold this one.
        if !s.resources.contains_key(key)
            && s.taken_storage_account_names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name))
        {
            return arm_error(
                StatusCode::CONFLICT,
                "StorageAccountAlreadyTaken",
                format!("The storage account named {name} is already taken."),
            );
        }
        if !s.resource_groups.contains_key(&rg_key(sub, rg)) {
            return arm_error(
                StatusCode::NOT_FOUND,
                "ResourceGroupNotFound",
                format!("Resource group '{rg}' could not be found."),
            );
        }
        let doc = json!({
            "id": id,
            "name": name,
            "type": "Microsoft.Storage/storageAccounts",
            "location": location,
            "kind": kind,
            "sku": {"name": sku},
            "tags": body.get("tags").cloned().unwrap_or_else(|| json!({})),
            "properties": {
                "provisioningState": "Creating",
                "minimumTlsVersion": body["properties"]["minimumTlsVersion"],
                "allowBlobPublicAccess": body["properties"]["allowBlobPublicAccess"],
                "primaryEndpoints": {"blob": blob_endpoint},
            },
        });
        if let Some(existing) = s.resources.get(key).cloned() {
            // Re-PUT of an existing account: update in place, synchronously.
            let mut updated = doc;
            updated["properties"]["provisioningState"] =
                existing["properties"]["provisioningState"].clone();
            if existing != updated {
                s.resources.insert(key.to_owned(), updated.clone());
                s.record_change(key);
            }
            return json(StatusCode::OK, updated);
        }
        s.resources.insert(key.to_owned(), doc);
        s.record_creation(key);
        let op = new_operation(s, sub, "PUT", key);
        let mut headers = vec![("location", location_url(&base, &op))];
        if let Some(r) = s.faults.lro_retry_after_secs {
            headers.push(("retry-after", r.to_string()));
        }
        with_headers(StatusCode::ACCEPTED.into_response(), &headers)
    })
}

fn not_found(name: &str) -> Response {
    arm_error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!("The Resource 'Microsoft.Storage/storageAccounts/{name}' was not found."),
    )
}

/// An account SAS, signed as the Blob service verifies it (string-to-sign of version
/// 2020-12-06 and later).
fn list_account_sas(shared: &Shared, key: &str, name: &str, body: &Value) -> Response {
    let exists = shared.with_state(|s| {
        s.resources
            .get(key)
            .is_some_and(|d| d["properties"]["provisioningState"] == "Succeeded")
    });
    if !exists {
        return not_found(name);
    }
    let Some(blob) = &shared.blob else {
        return arm_error(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "This stand-in has no Blob storage behind it; start it with a BlobBackend.",
        );
    };
    let field = |f: &str| body[f].as_str().unwrap_or_default().to_owned();
    let (services, types, permissions, expiry) = (
        field("signedServices"),
        field("signedResourceTypes"),
        field("signedPermission"),
        field("signedExpiry"),
    );
    if services.is_empty() || types.is_empty() || permissions.is_empty() || expiry.is_empty() {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidValuesForRequestParameters",
            "signedServices, signedResourceTypes, signedPermission and signedExpiry are required.",
        );
    }
    let protocol = match field("signedProtocol") {
        p if p.is_empty() => "https,http".to_owned(),
        p => p,
    };
    let start = field("signedStart");
    match account_sas(
        blob,
        &AccountSas {
            services: &services,
            types: &types,
            permissions: &permissions,
            start: &start,
            expiry: &expiry,
            protocol: &protocol,
        },
    ) {
        Some(token) => json(StatusCode::OK, json!({ "accountSasToken": token })),
        None => arm_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "bad key",
        ),
    }
}

/// What an account SAS grants.
pub(crate) struct AccountSas<'a> {
    pub services: &'a str,
    pub types: &'a str,
    pub permissions: &'a str,
    pub start: &'a str,
    pub expiry: &'a str,
    pub protocol: &'a str,
}

/// An account SAS token signed with the backend's key, as `listAccountSas` returns it;
/// `None` if the key is not base64.
pub(crate) fn account_sas(blob: &BlobBackend, sas: &AccountSas<'_>) -> Option<String> {
    const VERSION: &str = "2021-08-06";
    let AccountSas {
        services,
        types,
        permissions,
        start,
        expiry,
        protocol,
    } = sas;
    let to_sign = format!(
        "{}\n{permissions}\n{services}\n{types}\n{start}\n{expiry}\n\n{protocol}\n{VERSION}\n\n",
        blob.account
    );
    let account_key = STANDARD.decode(&blob.key).ok()?;
    let signature = STANDARD.encode(hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &account_key),
        to_sign.as_bytes(),
    ));
    let mut token = format!(
        "sv={VERSION}&ss={services}&srt={types}&sp={permissions}&se={}&spr={}",
        encode(expiry),
        encode(protocol)
    );
    if !start.is_empty() {
        token.push_str(&format!("&st={}", encode(start)));
    }
    token.push_str(&format!("&sig={}", encode(&signature)));
    Some(token)
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
