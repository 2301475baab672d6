//! The payload codec's keys: one key line per organisation (and the platform's line, for
//! work that belongs to no organisation and for payloads sealed before lines existed),
//! each versioned, fetched from a [`PayloadKeySource`] on first use and cached.
//!
//! A shared worker and the API read every line from the key ring; a placed worker gets
//! only its organisation's line (from the API, with its placement credential), so it
//! cannot open another organisation's payloads, nor the platform's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use uuid::Uuid;
use windlass_core::bounded_cache::BoundedCache;
use windlass_core::crypto::DataKey;
use windlass_core::keys::{KeyRing, TEMPORAL_PAYLOADS};

/// Whose key seals a payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyLine {
    /// The platform's `temporal_payloads` key: work of no organisation, and every payload
    /// sealed before per-organisation lines (format 1).
    Platform,
    Organization(Uuid),
}

impl KeyLine {
    /// As written in a payload's `windlass-key-line` metadata.
    pub fn label(&self) -> String {
        match self {
            KeyLine::Platform => "platform".to_owned(),
            KeyLine::Organization(id) => format!("organization:{id}"),
        }
    }

    pub fn parse(label: &str) -> Option<Self> {
        match label {
            "platform" => Some(KeyLine::Platform),
            other => other
                .strip_prefix("organization:")
                .and_then(|id| id.parse().ok())
                .map(KeyLine::Organization),
        }
    }

    /// The key ring's `organization_id` column for this line.
    pub fn key_ring_owner(&self) -> String {
        match self {
            KeyLine::Platform => String::new(),
            KeyLine::Organization(id) => id.to_string(),
        }
    }
}

/// Where a line's keys come from. `create` is true only for sealing: a line that does not
/// exist yet starts at version 1, while opening never creates one (a forged line name must
/// not make rows).
pub trait PayloadKeySource: Send + Sync + 'static {
    /// Every version of `line`, newest first; an error if this process may not hold it.
    fn versions(
        &self,
        line: &KeyLine,
        create: bool,
    ) -> BoxFuture<'static, Result<Vec<(u32, DataKey)>, String>>;
}

/// The key ring as a source: every line (API and shared workers).
pub struct KeyRingSource(pub Arc<KeyRing>);

impl PayloadKeySource for KeyRingSource {
    fn versions(
        &self,
        line: &KeyLine,
        create: bool,
    ) -> BoxFuture<'static, Result<Vec<(u32, DataKey)>, String>> {
        let keys = self.0.clone();
        let owner = line.key_ring_owner();
        Box::pin(async move {
            let versions = if create {
                keys.all_versions(TEMPORAL_PAYLOADS, &owner).await
            } else {
                keys.existing_versions(TEMPORAL_PAYLOADS, &owner).await
            };
            versions.map_err(|e| e.to_string())
        })
    }
}

/// Fixed lines held in memory (tests, and a placed worker's single line once fetched).
pub struct FixedSource(pub HashMap<KeyLine, Vec<(u32, DataKey)>>);

impl PayloadKeySource for FixedSource {
    fn versions(
        &self,
        line: &KeyLine,
        _create: bool,
    ) -> BoxFuture<'static, Result<Vec<(u32, DataKey)>, String>> {
        let found = self
            .0
            .get(line)
            .cloned()
            .ok_or_else(|| format!("no payload key for {}", line.label()));
        Box::pin(async move { found })
    }
}

/// One line's versions: the newest seals, all open.
#[derive(Clone)]
pub(crate) struct LineKeys {
    pub(crate) current: u32,
    pub(crate) keys: Arc<HashMap<u32, DataKey>>,
}

/// Lines kept at once: the organisations a process serves now, not every one it ever served
/// (the key ring below keeps its own bounded cache of unwrapped keys).
const CACHED_LINES: usize = 1024;
/// A line unused this long is read from its source again when next needed.
const CACHED_LINE_IDLE: Duration = Duration::from_secs(3600);

/// The codec's keys: a source, the line that seals when the caller names none, and a cache.
/// Debug never shows key material.
#[derive(Clone)]
pub struct PayloadKeys {
    source: Arc<dyn PayloadKeySource>,
    sealing: KeyLine,
    cache: Arc<Mutex<BoundedCache<KeyLine, LineKeys>>>,
}

impl std::fmt::Debug for PayloadKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayloadKeys")
            .field("sealing", &self.sealing.label())
            .finish_non_exhaustive()
    }
}

impl PayloadKeys {
    /// Every line from the key ring; payloads no caller scoped are sealed by the platform.
    pub fn from_key_ring(keys: Arc<KeyRing>) -> Self {
        Self::new(Arc::new(KeyRingSource(keys)), KeyLine::Platform)
    }

    pub fn new(source: Arc<dyn PayloadKeySource>, sealing: KeyLine) -> Self {
        Self {
            source,
            sealing,
            cache: Arc::new(Mutex::new(BoundedCache::new(
                CACHED_LINES,
                CACHED_LINE_IDLE,
            ))),
        }
    }

    pub fn sealing_line(&self) -> &KeyLine {
        &self.sealing
    }

    /// The line's keys, from the cache unless `need` (a version) is missing from it.
    pub(crate) async fn line(
        &self,
        line: &KeyLine,
        create: bool,
        need: Option<u32>,
    ) -> Result<LineKeys, String> {
        if let Some(cached) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(line, Instant::now())
            .filter(|c| need.is_none_or(|v| c.keys.contains_key(&v)))
        {
            return Ok(cached.clone());
        }
        let versions = self.source.versions(line, create).await?;
        let current = versions
            .first()
            .map(|(v, _)| *v)
            .ok_or_else(|| format!("no payload key for {}", line.label()))?;
        let keys = LineKeys {
            current,
            keys: Arc::new(versions.into_iter().collect()),
        };
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(
            line.clone(),
            keys.clone(),
            Instant::now(),
        );
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that gives every organisation's line one key, as the key ring would.
    struct EveryLine;

    impl PayloadKeySource for EveryLine {
        fn versions(
            &self,
            _line: &KeyLine,
            _create: bool,
        ) -> BoxFuture<'static, Result<Vec<(u32, DataKey)>, String>> {
            Box::pin(async { Ok(vec![(1, DataKey::generate().unwrap())]) })
        }
    }

    #[tokio::test]
    async fn lines_of_organisations_served_long_ago_are_let_go() {
        let keys = PayloadKeys::new(Arc::new(EveryLine), KeyLine::Platform);
        for _ in 0..CACHED_LINES + 100 {
            let line = KeyLine::Organization(Uuid::new_v4());
            keys.line(&line, true, None).await.unwrap();
        }
        let held = keys.cache.lock().unwrap().len();
        assert!(held <= CACHED_LINES, "{held} lines held");
    }
}
