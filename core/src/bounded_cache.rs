//! A map that forgets: at most `capacity` entries, the least recently used going first,
//! and none kept longer than `idle` after its last use. For per-tenant clients, whose
//! number grows with the customers a worker has ever served: a worker that served ten
//! thousand tenants over a month holds the clients of the ones it serves now.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

pub struct BoundedCache<K, V> {
    entries: HashMap<K, (V, Instant)>,
    capacity: usize,
    idle: Duration,
}

impl<K: Eq + Hash + Clone, V: Clone> BoundedCache<K, V> {
    pub fn new(capacity: usize, idle: Duration) -> Self {
        Self {
            entries: HashMap::new(),
            capacity: capacity.max(1),
            idle,
        }
    }

    /// The value for `key`, marking it used now; `None` if absent or idle too long.
    pub fn get(&mut self, key: &K, now: Instant) -> Option<V> {
        let idle = self.idle;
        match self.entries.get_mut(key) {
            Some((value, used)) if now.saturating_duration_since(*used) < idle => {
                *used = now;
                Some(value.clone())
            }
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `value` for `key`, dropping what is idle too long and then, while full, the
    /// least recently used.
    pub fn insert(&mut self, key: K, value: V, now: Instant) {
        let idle = self.idle;
        self.entries
            .retain(|_, (_, used)| now.saturating_duration_since(*used) < idle);
        while self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.entries.remove(&oldest);
        }
        self.entries.insert(key, (value, now));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_cache_forgets_the_least_recently_used() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut cache = BoundedCache::new(2, Duration::from_secs(3600));
        cache.insert("a", 1, at(0));
        cache.insert("b", 2, at(1));
        assert_eq!(cache.get(&"a", at(2)), Some(1));
        cache.insert("c", 3, at(3));
        assert_eq!(cache.len(), 2);
        assert_eq!(
            cache.get(&"b", at(4)),
            None,
            "b was the least recently used"
        );
        assert_eq!(cache.get(&"a", at(4)), Some(1));
        assert_eq!(cache.get(&"c", at(4)), Some(3));
    }

    #[test]
    fn an_idle_entry_is_forgotten() {
        let start = Instant::now();
        let mut cache = BoundedCache::new(10, Duration::from_secs(60));
        cache.insert("a", 1, start);
        assert_eq!(cache.get(&"a", start + Duration::from_secs(59)), Some(1));
        assert_eq!(cache.get(&"a", start + Duration::from_secs(120)), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn ten_thousand_tenants_leave_at_most_the_capacity() {
        let start = Instant::now();
        let mut cache = BoundedCache::new(256, Duration::from_secs(1800));
        for tenant in 0..10_000u32 {
            cache.insert(tenant, tenant, start + Duration::from_millis(tenant.into()));
        }
        assert_eq!(cache.len(), 256);
        assert_eq!(
            cache.get(&9_999, start + Duration::from_secs(11)),
            Some(9_999)
        );
    }
}
