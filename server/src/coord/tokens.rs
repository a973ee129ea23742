//! A short-lived, bounded in-process cache of token lookups, so that an authenticated request
//! usually costs no database round trip. Correctness never depends on it: entries live a few
//! seconds, and every revocation (logout, password change, user deletion) drops the affected
//! entries on every replica through the coordinator's events.
//!
//! A lookup that raced with a revocation must not re-insert what was just revoked: callers
//! read [`TokenCache::generation`] before querying the database and [`TokenCache::insert`]
//! ignores results older than the last revocation.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::jf::JfId;
use crate::store::users::TokenOwner;

/// How long a cached lookup is trusted.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(5);

/// Most entries kept; beyond it expired entries are dropped, then everything.
pub const TOKEN_CACHE_CAPACITY: usize = 10_000;

/// Which cached lookups a revocation drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Revocation {
    /// One token (logout).
    Token(JfId),
    /// Every token of a user (password change, deletion, disabling, a new login replacing
    /// the device's token).
    User(JfId),
    /// Everything (events may have been missed while Redis was away).
    All,
}

#[derive(Debug)]
struct Entry {
    owner: TokenOwner,
    stored: Instant,
}

/// The cache. Keys are token hashes, never tokens.
#[derive(Debug)]
pub struct TokenCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<String, Entry>>,
    generation: AtomicU64,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache::new(TOKEN_CACHE_TTL, TOKEN_CACHE_CAPACITY)
    }
}

impl TokenCache {
    /// An empty cache.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        TokenCache {
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::default(),
            generation: AtomicU64::new(0),
        }
    }

    fn with_entries<R>(&self, f: impl FnOnce(&mut HashMap<String, Entry>) -> R) -> R {
        let mut guard = match self.entries.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Read before a database lookup; pass to [`TokenCache::insert`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The cached owner of a token hash, if fresh.
    pub fn get(&self, token_hash: &str) -> Option<TokenOwner> {
        self.with_entries(|entries| match entries.get(token_hash) {
            Some(e) if e.stored.elapsed() < self.ttl => Some(e.owner.clone()),
            Some(_) => {
                entries.remove(token_hash);
                None
            }
            None => None,
        })
    }

    /// Caches a lookup made after reading `generation`; ignored if a revocation came since.
    pub fn insert(&self, token_hash: &str, owner: TokenOwner, generation: u64) {
        self.with_entries(|entries| {
            // Checked under the lock that `revoke` also takes, so a revocation cannot slip
            // between the check and the insert.
            if self.generation.load(Ordering::Acquire) != generation {
                return;
            }
            if entries.len() >= self.capacity {
                let ttl = self.ttl;
                entries.retain(|_, e| e.stored.elapsed() < ttl);
                if entries.len() >= self.capacity {
                    entries.clear();
                }
            }
            entries.insert(
                token_hash.to_owned(),
                Entry {
                    owner,
                    stored: Instant::now(),
                },
            );
        });
    }

    /// Records that a cached token's activity was just written, so the cached copy does not
    /// ask for the same write again.
    pub fn mark_used(&self, token_hash: &str, at_ms: i64) {
        self.with_entries(|entries| {
            if let Some(e) = entries.get_mut(token_hash) {
                e.owner.last_used_at = at_ms;
            }
        });
    }

    /// Drops what `revocation` names.
    pub fn revoke(&self, revocation: Revocation) {
        self.with_entries(|entries| {
            self.generation.fetch_add(1, Ordering::AcqRel);
            match revocation {
                Revocation::Token(id) => entries.retain(|_, e| e.owner.token_id != id),
                Revocation::User(id) => entries.retain(|_, e| e.owner.user_id != id),
                Revocation::All => entries.clear(),
            }
        });
    }

    /// Entries held (tests, metrics).
    pub fn len(&self) -> usize {
        self.with_entries(|entries| entries.len())
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::users::DeviceInfo;

    fn owner(user: JfId) -> TokenOwner {
        TokenOwner {
            token_id: JfId::random(),
            user_id: user,
            user_name: "cached-user".into(),
            is_admin: false,
            is_disabled: false,
            device: DeviceInfo {
                device_id: "d".into(),
                device_name: "n".into(),
                client: "c".into(),
                app_version: "1".into(),
            },
            last_used_at: 0,
        }
    }

    #[test]
    fn a_revocation_drops_entries_and_refuses_lookups_that_raced_with_it() {
        let cache = TokenCache::default();
        let user = JfId::random();
        let g = cache.generation();
        cache.insert("h1", owner(user), g);
        assert!(cache.get("h1").is_some());
        let before = cache.generation();
        cache.revoke(Revocation::User(user));
        assert!(cache.get("h1").is_none());
        cache.insert("h1", owner(user), before);
        assert!(cache.get("h1").is_none(), "a stale lookup came back");
    }

    #[test]
    fn entries_expire_and_the_size_stays_bounded() {
        let cache = TokenCache::new(Duration::ZERO, 3);
        cache.insert("h", owner(JfId::random()), cache.generation());
        assert!(cache.get("h").is_none());
        let cache = TokenCache::new(Duration::from_secs(60), 3);
        for i in 0..10 {
            cache.insert(&format!("h{i}"), owner(JfId::random()), cache.generation());
        }
        assert!(cache.len() <= 3);
    }
}
