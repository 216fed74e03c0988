//! Sessions revoked on another replica, as this one last read them (see
//! [`shared`](crate::shared)); the [`Recorder`](super::Recorder) consults them on every call.

use std::collections::HashSet;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The sessions revoked on any replica, as this replica last read them: checked on every call
/// without a round trip to the database, and refusing to answer once it is older than its
/// allowance (the database has not been read for that long).
#[derive(Debug)]
pub struct Revoked {
    sessions: RwLock<HashSet<String>>,
    fresh_until_ms: AtomicU64,
    allowance: Duration,
}

/// The revocations could not be read recently enough to say a session is not revoked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the shared store has not answered for over {0:?}, so revocations may be missing; calls are refused until it answers"
)]
pub struct Stale(pub Duration);

impl Revoked {
    /// Empty and stale until the first [`Revoked::refreshed`]; stale again `allowance` after
    /// the last one.
    pub fn new(allowance: Duration) -> Self {
        Revoked {
            sessions: RwLock::new(HashSet::new()),
            fresh_until_ms: AtomicU64::new(0),
            allowance,
        }
    }

    /// Adds a revoked session.
    pub fn insert(&self, session: &str) {
        self.sessions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(session.to_string());
    }

    /// Says the set is current as of now.
    pub fn refreshed(&self) {
        self.fresh_until_ms.store(
            unix_millis() + self.allowance.as_millis() as u64,
            Ordering::Release,
        );
    }

    /// Whether the set is current (read within its allowance).
    pub fn is_fresh(&self) -> bool {
        unix_millis() < self.fresh_until_ms.load(Ordering::Acquire)
    }

    /// Whether `session` is revoked; an error while the set is stale.
    pub fn contains(&self, session: &str) -> Result<bool, Stale> {
        let revoked = self
            .sessions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(session);
        // A known revocation is known, stale or not.
        if revoked {
            return Ok(true);
        }
        if !self.is_fresh() {
            return Err(Stale(self.allowance));
        }
        Ok(false)
    }
}
