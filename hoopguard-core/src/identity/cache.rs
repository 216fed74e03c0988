//! A bounded cache of verified tokens, keyed by the token's SHA-256 (never the token itself).

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use lru::LruCache;
use sha2::{Digest, Sha256};

use super::Identity;

pub(crate) type TokenDigest = [u8; 32];

pub(crate) fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

struct Entry {
    identity: Arc<Identity>,
    valid_until: SystemTime,
}

pub(crate) struct TokenCache {
    inner: Option<Mutex<LruCache<TokenDigest, Entry>>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache").finish_non_exhaustive()
    }
}

impl TokenCache {
    pub(crate) fn new(capacity: usize) -> Self {
        TokenCache {
            inner: NonZeroUsize::new(capacity).map(|c| Mutex::new(LruCache::new(c))),
        }
    }

    /// The cached identity, if the token was verified before and has not expired since.
    pub(crate) fn get(&self, key: &TokenDigest) -> Option<Arc<Identity>> {
        let mut cache = self
            .inner
            .as_ref()?
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let entry = cache.get(key)?;
        if SystemTime::now() <= entry.valid_until {
            return Some(entry.identity.clone());
        }
        cache.pop(key);
        None
    }

    pub(crate) fn insert(&self, key: TokenDigest, identity: Arc<Identity>, leeway_secs: u64) {
        let Some(inner) = &self.inner else { return };
        let valid_until = identity.expires_at + Duration::from_secs(leeway_secs);
        inner.lock().unwrap_or_else(|e| e.into_inner()).put(
            key,
            Entry {
                identity,
                valid_until,
            },
        );
    }
}
