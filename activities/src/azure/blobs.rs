//! One blob container of a cluster's storage account, on `azure_storage_blob`. Access is by
//! an account SAS from ARM (see `storage_accounts`); conditional writes (ETags) give the
//! compare-and-swap that terraform state locking needs.

use azure_core::http::{Etag, RequestContent, StatusCode, Url};
use azure_storage_blob::BlobContainerClient;
use azure_storage_blob::models::{BlobClientDeleteOptions, BlobClientUploadOptions};
use bytes::Bytes;

use super::AzureError;

/// A blob's content and the ETag it was read at.
#[derive(Debug, Clone)]
pub struct VersionedBlob {
    pub content: Bytes,
    pub etag: String,
}

#[derive(Clone)]
pub struct BlobContainer {
    client: std::sync::Arc<BlobContainerClient>,
    name: String,
}

impl std::fmt::Debug for BlobContainer {
    // The URL carries the SAS token: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobContainer")
            .field("name", &self.name)
            .finish()
    }
}

impl BlobContainer {
    /// `blob_endpoint` as ARM reports it (`https://acct.blob.core.windows.net/`, or
    /// Azurite's path-style URL), `sas` without the leading `?`.
    pub fn with_sas(blob_endpoint: &str, container: &str, sas: &str) -> Result<Self, AzureError> {
        let raw = format!("{}/{container}?{sas}", blob_endpoint.trim_end_matches('/'));
        let url = Url::parse(&raw)
            .map_err(|e| AzureError::Config(format!("blob container URL for {container}: {e}")))?;
        let client = BlobContainerClient::new(url, None, None).map_err(storage_error)?;
        Ok(Self {
            client: std::sync::Arc::new(client),
            name: container.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates the container unless it exists.
    pub async fn ensure_exists(&self) -> Result<(), AzureError> {
        match self.client.create(None).await {
            Ok(_) => Ok(()),
            Err(e) if e.http_status() == Some(StatusCode::Conflict) => Ok(()),
            Err(e) => Err(storage_error(e)),
        }
    }

    pub async fn get(&self, blob: &str) -> Result<Option<VersionedBlob>, AzureError> {
        match self.client.blob_client(blob).download(None).await {
            Ok(result) => {
                let etag = result
                    .properties
                    .etag
                    .as_ref()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                let content = result.body.collect().await.map_err(storage_error)?;
                Ok(Some(VersionedBlob { content, etag }))
            }
            Err(e) if e.http_status() == Some(StatusCode::NotFound) => Ok(None),
            Err(e) => Err(storage_error(e)),
        }
    }

    /// Writes unconditionally.
    pub async fn put(&self, blob: &str, content: Vec<u8>) -> Result<(), AzureError> {
        self.client
            .blob_client(blob)
            .upload(RequestContent::from(content), None)
            .await
            .map(|_| ())
            .map_err(storage_error)
    }

    /// Writes only if no such blob exists; `false` when one does.
    pub async fn create_if_absent(&self, blob: &str, content: Vec<u8>) -> Result<bool, AzureError> {
        let options = BlobClientUploadOptions {
            if_none_match: Some(Etag::from("*")),
            ..Default::default()
        };
        match self
            .client
            .blob_client(blob)
            .upload(RequestContent::from(content), Some(options))
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.http_status(),
                    Some(StatusCode::Conflict | StatusCode::PreconditionFailed)
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(storage_error(e)),
        }
    }

    /// Deletes the blob if it is still at `etag`; `false` if it changed or is gone.
    pub async fn delete_if_unchanged(&self, blob: &str, etag: &str) -> Result<bool, AzureError> {
        let options = BlobClientDeleteOptions {
            if_match: Some(Etag::from(etag.to_owned())),
            ..Default::default()
        };
        match self.client.blob_client(blob).delete(Some(options)).await {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.http_status(),
                    Some(StatusCode::NotFound | StatusCode::PreconditionFailed)
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(storage_error(e)),
        }
    }

    pub async fn delete(&self, blob: &str) -> Result<(), AzureError> {
        match self.client.blob_client(blob).delete(None).await {
            Ok(_) => Ok(()),
            Err(e) if e.http_status() == Some(StatusCode::NotFound) => Ok(()),
            Err(e) => Err(storage_error(e)),
        }
    }
}

fn storage_error(e: azure_core::Error) -> AzureError {
    // azure_core errors name the operation and status, not the URL's query (the SAS).
    match e.http_status() {
        Some(status) => AzureError::Api {
            method: "blob".into(),
            path: String::new(),
            status: u16::from(status),
            code: status.canonical_reason().into_owned(),
            message: e.to_string(),
            retry_after: None,
        },
        None => AzureError::Transport {
            message: format!("blob storage: {e}"),
        },
    }
}
