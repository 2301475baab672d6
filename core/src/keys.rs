//! The key ring: data keys per purpose (an organisation's secrets, Temporal payloads),
//! versioned, stored wrapped by the current key-encryption key and unwrapped on demand.
//!
//! KEK rotation is online: configure the new KEK as current and the old one as previous,
//! run [`KeyRing::rewrap_all`], then drop the old KEK. During the rewrap every process can
//! unwrap keys wrapped by either, so nothing stops working.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::bounded_cache::BoundedCache;
use crate::crypto::{DataKey, KeyEncryptionKey, from_hex, to_hex};
use crate::store::WrappedKeyRow;
use crate::{Error, Result, Store};

pub const ORGANIZATION: &str = "organization";
pub const TEMPORAL_PAYLOADS: &str = "temporal_payloads";

pub struct KeyRing {
    store: Store,
    /// The first wraps new keys; all can unwrap.
    keks: Vec<Arc<dyn KeyEncryptionKey>>,
    /// Unwrapped keys by (purpose, organisation, version): the organisations served now,
    /// not every one ever served, and none held in memory long after its last use.
    cache: Mutex<BoundedCache<(String, String, u32), DataKey>>,
}

/// Unwrapped data keys kept at once.
const CACHED_KEYS: usize = 4096;
/// A key unused this long is unwrapped again (by the KMS) when next needed.
const CACHED_KEY_IDLE: Duration = Duration::from_secs(3600);

impl KeyRing {
    pub fn new(store: Store, current: Arc<dyn KeyEncryptionKey>) -> Self {
        Self {
            store,
            keks: vec![current],
            cache: Mutex::new(BoundedCache::new(CACHED_KEYS, CACHED_KEY_IDLE)),
        }
    }

    /// A KEK being rotated away from: still used to unwrap, never to wrap.
    pub fn with_previous(mut self, previous: Arc<dyn KeyEncryptionKey>) -> Self {
        self.keks.push(previous);
        self
    }

    fn context(purpose: &str, organization_id: &str) -> String {
        format!("windlass:{purpose}:{organization_id}")
    }

    async fn unwrap_row(&self, row: &WrappedKeyRow) -> Result<DataKey> {
        let cache_key = (
            row.purpose.clone(),
            row.organization_id.clone(),
            row.version,
        );
        if let Some(key) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&cache_key, Instant::now())
        {
            return Ok(key);
        }
        let kek = self
            .keks
            .iter()
            .find(|k| k.id() == row.kek_id)
            .ok_or_else(|| {
                Error::Crypto(crate::crypto::CryptoError::KekUnavailable(format!(
                    "{} key v{} is wrapped by {}, which is not configured",
                    row.purpose, row.version, row.kek_id
                )))
            })?;
        let key = kek
            .unwrap(
                &from_hex(&row.wrapped_key)?,
                &Self::context(&row.purpose, &row.organization_id),
            )
            .await?;
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(
            cache_key,
            key.clone(),
            Instant::now(),
        );
        Ok(key)
    }

    async fn create(&self, purpose: &str, organization_id: &str, version: u32) -> Result<()> {
        let key = DataKey::generate()?;
        let kek = &self.keks[0];
        let wrapped = kek
            .wrap(&key, &Self::context(purpose, organization_id))
            .await?;
        // Losing the race to another process is fine: its key is the one stored.
        self.store
            .insert_data_key(&WrappedKeyRow {
                purpose: purpose.to_owned(),
                organization_id: organization_id.to_owned(),
                version,
                kek_id: kek.id(),
                wrapped_key: to_hex(&wrapped),
            })
            .await?;
        Ok(())
    }

    /// The newest key of a purpose, created on first use.
    pub async fn current(&self, purpose: &str, organization_id: &str) -> Result<(u32, DataKey)> {
        let row = match self.store.data_key(purpose, organization_id, None).await? {
            Some(row) => row,
            None => {
                self.create(purpose, organization_id, 1).await?;
                self.store
                    .data_key(purpose, organization_id, None)
                    .await?
                    .ok_or_else(|| Error::not_found("data key", purpose))?
            }
        };
        Ok((row.version, self.unwrap_row(&row).await?))
    }

    /// An older version, to read what was sealed before a rotation.
    pub async fn version(
        &self,
        purpose: &str,
        organization_id: &str,
        version: u32,
    ) -> Result<DataKey> {
        let row = self
            .store
            .data_key(purpose, organization_id, Some(version))
            .await?
            .ok_or_else(|| Error::not_found("data key version", version))?;
        self.unwrap_row(&row).await
    }

    /// Starts a new version for new writes; old versions stay readable.
    pub async fn rotate(&self, purpose: &str, organization_id: &str) -> Result<u32> {
        let (current, _) = self.current(purpose, organization_id).await?;
        self.create(purpose, organization_id, current + 1).await?;
        Ok(self.current(purpose, organization_id).await?.0)
    }

    /// Rotates the organisation's key if its newest version is older than `max_age` at
    /// `now` (creating the first version if there is none). Returns the current version
    /// and whether this call rotated. Safe to run concurrently: a version made by another
    /// caller first is the one used.
    pub async fn rotate_organization_key_if_older_than(
        &self,
        organization_id: Uuid,
        max_age: chrono::Duration,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(u32, bool)> {
        let org = organization_id.to_string();
        match self.store.newest_data_key_age(ORGANIZATION, &org).await? {
            Some((_, created)) if now - created > max_age => {
                Ok((self.rotate(ORGANIZATION, &org).await?, true))
            }
            Some((version, _)) => Ok((version, false)),
            None => Ok((self.current(ORGANIZATION, &org).await?.0, false)),
        }
    }

    pub async fn organization_key(&self, organization_id: Uuid) -> Result<(u32, DataKey)> {
        self.current(ORGANIZATION, &organization_id.to_string())
            .await
    }

    pub async fn organization_key_version(
        &self,
        organization_id: Uuid,
        version: u32,
    ) -> Result<DataKey> {
        self.version(ORGANIZATION, &organization_id.to_string(), version)
            .await
    }

    /// Re-wraps every data key not wrapped by the current KEK. Returns how many changed.
    pub async fn rewrap_all(&self) -> Result<usize> {
        let current = &self.keks[0];
        let mut rewrapped = 0;
        for row in self.store.all_data_keys().await? {
            if row.kek_id == current.id() {
                continue;
            }
            let key = self.unwrap_row(&row).await?;
            let wrapped = current
                .wrap(&key, &Self::context(&row.purpose, &row.organization_id))
                .await?;
            self.store
                .rewrap_data_key(&row, &current.id(), &to_hex(&wrapped))
                .await?;
            rewrapped += 1;
        }
        Ok(rewrapped)
    }
}

impl KeyRing {
    /// Every version of a purpose's key, newest first, creating version 1 if none exists:
    /// what a codec needs to write with the newest and read anything older.
    pub async fn all_versions(
        &self,
        purpose: &str,
        organization_id: &str,
    ) -> Result<Vec<(u32, DataKey)>> {
        self.current(purpose, organization_id).await?;
        let mut keys = Vec::new();
        for row in self.store.all_data_keys().await? {
            if row.purpose == purpose && row.organization_id == organization_id {
                keys.push((row.version, self.unwrap_row(&row).await?));
            }
        }
        keys.sort_by_key(|k| std::cmp::Reverse(k.0));
        Ok(keys)
    }

    /// Every version that exists, newest first, creating none (empty if the line has none).
    pub async fn existing_versions(
        &self,
        purpose: &str,
        organization_id: &str,
    ) -> Result<Vec<(u32, DataKey)>> {
        let mut keys = Vec::new();
        for row in self.store.all_data_keys().await? {
            if row.purpose == purpose && row.organization_id == organization_id {
                keys.push((row.version, self.unwrap_row(&row).await?));
            }
        }
        keys.sort_by_key(|k| std::cmp::Reverse(k.0));
        Ok(keys)
    }
}
