//! Sessions revoked on another replica, as this one last read them (see
//! [`shared`](crate::shared)); the [`Recorder`](super::Recorder) consults them on every call.

use std::collections::HashSet;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The sessions revoked on any replica, as this replica last read them: checked on every call
/// without a round trip to the database, and refusing to answer once it is older than its
/// allowance (the database has not been read for that long).
#[derive(Debug)]
pub struct Revoked {
    sessions: RwLock<HashSet<String>>,
    /// Milliseconds after `base` (a monotonic clock: a step of the wall clock changes nothing)
    /// until which the set is current; 0: never read.
    fresh_until_ms: AtomicU64,
    base: Instant,
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
            base: Instant::now(),
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
        self.refreshed_at(Instant::now());
    }

    /// Says the set holds every revocation made before `read_began` (when the read that
    /// brought it up to date started): it stays current for the allowance from then.
    pub fn refreshed_at(&self, read_began: Instant) {
        let until = read_began.saturating_duration_since(self.base) + self.allowance;
        self.fresh_until_ms
            .fetch_max(until.as_millis() as u64 + 1, Ordering::AcqRel);
    }

    /// Whether the set is current (read within its allowance).
    pub fn is_fresh(&self) -> bool {
        (self.base.elapsed().as_millis() as u64) < self.fresh_until_ms.load(Ordering::Acquire)
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
