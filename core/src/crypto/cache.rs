//! A bounded, time-limited cache of unwrapped key material.
//!
//! Entries expire after a fixed time and the oldest entry is evicted when the cache is full;
//! evicted and expired material is zeroized. The cache never decides whether a key may be used:
//! key state (enabled, disabled, pending deletion) is checked on every operation before the
//! cache is consulted.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use zeroize::Zeroizing;

/// Cache of unwrapped key material, keyed by an identifier string.
#[derive(Debug)]
pub struct KeyCache {
    inner: Mutex<HashMap<String, Entry>>,
    capacity: usize,
    ttl_millis: i64,
}

struct Entry {
    material: Zeroizing<Vec<u8>>,
    inserted: i64,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("inserted", &self.inserted)
            .finish_non_exhaustive()
    }
}

impl KeyCache {
    /// A cache holding at most `capacity` entries for at most `ttl_millis` each.
    pub fn new(capacity: usize, ttl_millis: i64) -> Self {
        KeyCache {
            inner: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            ttl_millis,
        }
    }

    /// The material cached under `id`, if present and fresh at `now`.
    pub fn get(&self, id: &str, now: i64) -> Option<Zeroizing<Vec<u8>>> {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get(id) {
            Some(e) if now.saturating_sub(e.inserted) < self.ttl_millis && now >= e.inserted => {
                Some(e.material.clone())
            }
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    /// Caches `material` under `id` at time `now`.
    pub fn insert(&self, id: &str, material: Zeroizing<Vec<u8>>, now: i64) {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, e| now.saturating_sub(e.inserted) < self.ttl_millis);
        if map.len() >= self.capacity && !map.contains_key(id) {
            let oldest = map
                .iter()
                .min_by_key(|(_, e)| e.inserted)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
        map.insert(
            id.to_owned(),
            Entry {
                material,
                inserted: now,
            },
        );
    }

    /// Drops every entry whose id starts with `prefix` (a key that was disabled or deleted).
    pub fn evict_prefix(&self, prefix: &str) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|k, _| !k.starts_with(prefix));
    }

    /// Number of cached entries.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_expiring() {
        let c = KeyCache::new(2, 1000);
        c.insert("a", Zeroizing::new(vec![1]), 0);
        c.insert("b", Zeroizing::new(vec![2]), 1);
        c.insert("c", Zeroizing::new(vec![3]), 2);
        assert_eq!(c.len(), 2);
        assert!(c.get("a", 3).is_none(), "oldest evicted");
        assert_eq!(c.get("c", 3).unwrap().as_slice(), &[3]);
        assert!(c.get("c", 5000).is_none(), "expired");
        c.insert("k1/v1", Zeroizing::new(vec![1]), 10);
        c.evict_prefix("k1/");
        assert!(c.get("k1/v1", 11).is_none());
    }
}
