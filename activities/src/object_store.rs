//! The few object-storage operations cluster state needs, over Azure Blob containers and
//! S3 buckets alike: read with a version tag, write, create-if-absent and delete-if-
//! unchanged (the compare-and-swap a state lock is made of).

use bytes::Bytes;

/// An object's content and the version tag (ETag) it was read at.
#[derive(Debug, Clone)]
pub struct VersionedObject {
    pub content: Bytes,
    pub etag: String,
}

/// A storage failure; messages never carry URLs' query strings (SAS) or credentials.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    pub message: String,
    pub retryable: bool,
}

#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync {
    /// Where the objects are, for logs and errors (no credential).
    fn describe(&self) -> String;
    /// Makes the container exist where the store has containers (Blob); buckets are made
    /// by the cluster's bootstrap, so the default does nothing.
    async fn ensure_exists(&self) -> Result<(), StoreError> {
        Ok(())
    }
    async fn get(&self, key: &str) -> Result<Option<VersionedObject>, StoreError>;
    async fn put(&self, key: &str, content: Vec<u8>) -> Result<(), StoreError>;
    /// Writes only if no such object exists; `false` when one does.
    async fn create_if_absent(&self, key: &str, content: Vec<u8>) -> Result<bool, StoreError>;
    /// Deletes the object if it is still at `etag`; `false` if it changed or is gone.
    async fn delete_if_unchanged(&self, key: &str, etag: &str) -> Result<bool, StoreError>;
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
}

#[async_trait::async_trait]
impl ObjectStore for crate::azure::BlobContainer {
    fn describe(&self) -> String {
        format!("blob container {}", self.name())
    }

    async fn ensure_exists(&self) -> Result<(), StoreError> {
        crate::azure::BlobContainer::ensure_exists(self)
            .await
            .map_err(azure)
    }

    async fn get(&self, key: &str) -> Result<Option<VersionedObject>, StoreError> {
        Ok(crate::azure::BlobContainer::get(self, key)
            .await
            .map_err(azure)?
            .map(|b| VersionedObject {
                content: b.content,
                etag: b.etag,
            }))
    }

    async fn put(&self, key: &str, content: Vec<u8>) -> Result<(), StoreError> {
        crate::azure::BlobContainer::put(self, key, content)
            .await
            .map_err(azure)
    }

    async fn create_if_absent(&self, key: &str, content: Vec<u8>) -> Result<bool, StoreError> {
        crate::azure::BlobContainer::create_if_absent(self, key, content)
            .await
            .map_err(azure)
    }

    async fn delete_if_unchanged(&self, key: &str, etag: &str) -> Result<bool, StoreError> {
        crate::azure::BlobContainer::delete_if_unchanged(self, key, etag)
            .await
            .map_err(azure)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        crate::azure::BlobContainer::delete(self, key)
            .await
            .map_err(azure)
    }
}

fn azure(e: crate::azure::AzureError) -> StoreError {
    StoreError {
        retryable: !matches!(e.retry(), crate::azure::Retry::Never),
        message: e.to_string(),
    }
}

impl crate::error::StepError for StoreError {
    fn verdict(&self) -> crate::error::Verdict {
        crate::error::Verdict::retry_if(self.retryable)
    }

    fn failure_code(&self) -> crate::error::FailureCode {
        if self.retryable {
            crate::error::FailureCode::StorageUnavailable
        } else {
            crate::error::FailureCode::StorageRefused
        }
    }
}
