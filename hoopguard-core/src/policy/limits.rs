//! Rate limits and budgets: at most `calls` calls per `per` for each caller, counted over the
//! calls a limit matches.
//!
//! A [`LimitConfig`] matches calls the way a deny rule does (subjects, groups, AWS actions,
//! access levels, resources and regions, or MCP tools, arguments, URIs and prompts; what cannot
//! be derived counts), so "every destructive call" is `access = ["Write"]` and "this agent's
//! S3 deletes" is `actions = ["s3:DeleteObject*"]`. [`Policy::limits_for`](super::Policy::limits_for)
//! names the limits a call counts against; a [`LimitStore`] keeps the counts, per limit and
//! caller, in fixed windows aligned to the Unix epoch (a `1d` window is a UTC day): within one
//! window at most `calls` calls pass, and a refused call is told when the window ends. The count
//! lives outside the policy, so a reloaded policy keeps it.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::time::Duration;
//! use hoopguard_core::policy::{Call, LimitConfig, LimitStore, MemoryLimits, Policy, Take};
//! # use hoopguard_core::identity::Identity;
//! # let agent = Identity::new("agent-7", vec![], "i", std::time::SystemTime::now());
//!
//! let limits: Vec<LimitConfig> = serde_json::from_value(serde_json::json!([
//!     {"name": "deletes-per-day", "actions": ["s3:DeleteObject*"], "calls": 2, "per": "1d"}
//! ])).unwrap();
//! let policy = Policy::compile_with_limits(&[], &limits).unwrap();
//! let store = MemoryLimits::default();
//! let delete = Call::aws("s3:DeleteObject", &["arn:aws:s3:::b/k"], None);
//! let keys = policy.limits_for(&agent, &delete, None);
//! let now = 1_700_000_000_000;
//! assert!(store.take(&keys, now, Take::IfRoom).await.unwrap().is_none());
//! assert!(store.take(&keys, now + 1, Take::IfRoom).await.unwrap().is_none());
//! let hit = store.take(&keys, now + 2, Take::IfRoom).await.unwrap().unwrap();
//! assert_eq!(hit.limit, "deletes-per-day");
//! assert!(hit.retry_after <= Duration::from_secs(86_400));
//! # }
//! ```

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;

use super::{ArgCondition, Effect, GrantKind, RuleConfig};

/// One limit as written in the configuration (`[[policy.limits]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// A unique name among the limits, shown in refusals and recordings.
    pub name: String,
    /// Counted only for these subjects (wildcards, `NAME:subject` as in rules). Empty: anyone.
    #[serde(default)]
    pub subjects: Vec<String>,
    /// Counted only for members of one of these groups. Empty: anyone.
    #[serde(default)]
    pub groups: Vec<String>,
    /// AWS actions counted (IAM style).
    #[serde(default)]
    pub actions: Vec<String>,
    /// AWS resource ARN patterns; a call whose resources cannot be derived counts.
    #[serde(default)]
    pub resources: Vec<String>,
    /// AWS regions.
    #[serde(default)]
    pub regions: Vec<String>,
    /// AWS access levels (`Write` for "destructive"); an action of unknown level counts.
    #[serde(default)]
    pub access: Vec<String>,
    /// MCP tools counted.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Conditions on the tool arguments.
    #[serde(default)]
    pub args: Vec<ArgCondition>,
    /// MCP resource URIs counted.
    #[serde(default)]
    pub uris: Vec<String>,
    /// MCP prompts counted.
    #[serde(default)]
    pub prompts: Vec<String>,
    /// Counted only for calls through these connections (AWS connections and MCP servers by
    /// their configured names; wildcards). Empty: any. A call whose connection is not known
    /// (a guard embedded without one, `policy explain` without `--connection`) counts.
    #[serde(default)]
    pub connections: Vec<String>,
    /// Whose count a call goes to ([`CountBy`]): `["caller"]` (each caller its own, the
    /// default), `["connection"]` (one count for every caller through a connection: protects
    /// an upstream), `["caller", "connection"]` (each caller its own per connection), or `[]`
    /// (one count for every call the limit matches).
    #[serde(default = "default_by")]
    pub by: Vec<CountBy>,
    /// The most calls counted in one window (for each caller, by default).
    pub calls: u32,
    /// The window: `1s`, `1m`, `1h`, `1d`.
    #[serde(with = "crate::duration::serde")]
    pub per: Duration,
    /// What the caller is told; default names the limit.
    #[serde(default)]
    pub reason: Option<String>,
}

/// One part of whose count a call goes to (a [`LimitConfig`]'s `by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CountBy {
    /// The caller (issuer-qualified principal).
    Caller,
    /// The AWS connection or MCP server the call goes through.
    Connection,
}

fn default_by() -> Vec<CountBy> {
    vec![CountBy::Caller]
}

impl LimitConfig {
    /// The matching part, as a deny rule (deny rules count what cannot be derived).
    pub(super) fn as_rule(&self) -> RuleConfig {
        RuleConfig {
            name: self.name.clone(),
            effect: Effect::Deny,
            subjects: self.subjects.clone(),
            groups: self.groups.clone(),
            actions: self.actions.clone(),
            resources: self.resources.clone(),
            regions: self.regions.clone(),
            access: self.access.clone(),
            tools: self.tools.clone(),
            args: self.args.clone(),
            uris: self.uris.clone(),
            prompts: self.prompts.clone(),
            reason: self.reason.clone(),
            approvers: Vec::new(),
            quorum: 1,
            grant: GrantKind::default(),
            window: None,
            expires: super::default_approval_ttl(),
            hold: None,
        }
    }

    /// Checks the counting part: `Err((key, message))`.
    pub(super) fn check(&self) -> Result<(), (&'static str, String)> {
        if self.calls == 0 {
            return Err((
                "calls",
                "must be at least 1 (to refuse calls, write a deny rule)".into(),
            ));
        }
        if self.calls > MAX_CALLS {
            return Err(("calls", format!("must be at most {MAX_CALLS}")));
        }
        if self.by.len() == 2 && self.by[0] == self.by[1] || self.by.len() > 2 {
            return Err((
                "by",
                "names `caller` and `connection` at most once each".into(),
            ));
        }
        if self.per < Duration::from_secs(1) {
            return Err(("per", "must be at least 1s".into()));
        }
        if self.per > Duration::from_secs(366 * 86_400) {
            return Err(("per", "must be at most 366d".into()));
        }
        Ok(())
    }
}

/// The largest `calls` a limit may have (the shared store counts in 32 bits).
pub const MAX_CALLS: u32 = 1_000_000_000;

/// A call's count against one limit: which limit, whose count, and the limit's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitKey {
    /// The limit's name.
    pub limit: String,
    /// Whose count, as the limit's `by` says ([`LimitKey::scope_of`]): the caller
    /// ([`Identity::principal`](crate::identity::Identity::principal)) by default.
    pub scope: String,
    /// Calls per window.
    pub calls: u32,
    /// The window, in milliseconds.
    pub per_ms: u64,
    /// What the caller is told when it is reached.
    pub reason: String,
}

impl LimitKey {
    /// Whose count a call by `principal` through `connection` goes to, counted `by` these
    /// parts: the principal alone by default (so counts kept before `by` existed carry on),
    /// else `connection=NAME` and/or `caller=PRINCIPAL` on lines of their own (the principal
    /// last, the only part a caller's token shapes), or `*` for one count of everything.
    pub fn scope_of(by: &[CountBy], principal: &str, connection: Option<&str>) -> String {
        match by {
            [CountBy::Caller] => principal.to_string(),
            [] => "*".to_string(),
            _ => {
                let mut parts = Vec::with_capacity(2);
                if by.contains(&CountBy::Connection) {
                    parts.push(format!("connection={}", connection.unwrap_or("")));
                }
                if by.contains(&CountBy::Caller) {
                    parts.push(format!("caller={principal}"));
                }
                parts.join("\n")
            }
        }
    }

    /// The start of the window holding `now_ms`.
    pub fn window(&self, now_ms: u64) -> u64 {
        now_ms - now_ms % self.per_ms
    }

    fn retry_after(&self, now_ms: u64) -> Duration {
        Duration::from_millis(self.window(now_ms) + self.per_ms - now_ms)
    }
}

/// A limit a call ran into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitHit {
    /// The limit's name.
    pub limit: String,
    /// Until its window ends.
    pub retry_after: Duration,
    /// What the caller is told.
    pub reason: String,
}

/// How [`LimitStore::take`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Count the call against every key if each has room; else count nothing and say which is
    /// full.
    IfRoom,
    /// Only say whether each key has room; count nothing.
    Peek,
    /// Count the call against every key whatever (a call already let through).
    Always,
}

/// A failure of the store that keeps the counts (the call is then refused).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the rate-limit store failed: {0}")]
pub struct LimitError(pub String);

/// Keeps the counts of [`LimitKey`]s. The embedded [`MemoryLimits`] counts per process; the
/// shared store counts across replicas.
#[async_trait::async_trait]
pub trait LimitStore: Send + Sync + std::fmt::Debug {
    /// Counts one call at `now_ms` against all `keys` as `mode` says; `Some` names the first key
    /// without room (in `keys` order).
    async fn take(
        &self,
        keys: &[LimitKey],
        now_ms: u64,
        mode: Take,
    ) -> Result<Option<LimitHit>, LimitError>;
}

/// Counts in this process's memory. Windows that ended are dropped as new ones start, so memory
/// holds one entry per limit and caller active in the current window.
#[derive(Debug, Default)]
pub struct MemoryLimits {
    counts: Mutex<Counts>,
    /// When ended windows were last swept (ms).
    swept_at: std::sync::atomic::AtomicU64,
}

/// (limit, scope) → (window start, window length, calls counted), in milliseconds.
type Counts = HashMap<(String, String), (u64, u64, u32)>;

/// Past this many entries, ended windows are swept before a new entry is added (at most once
/// a second, so a crowd of active callers does not make every call scan them all).
const SWEEP_AT: usize = 4096;

#[async_trait::async_trait]
impl LimitStore for MemoryLimits {
    async fn take(
        &self,
        keys: &[LimitKey],
        now_ms: u64,
        mode: Take,
    ) -> Result<Option<LimitHit>, LimitError> {
        if keys.is_empty() {
            return Ok(None);
        }
        let mut counts = self
            .counts
            .lock()
            .map_err(|_| LimitError("a thread panicked while counting".into()))?;
        let used =
            |counts: &Counts, k: &LimitKey| match counts.get(&(k.limit.clone(), k.scope.clone())) {
                Some(&(window, per, n)) if window == k.window(now_ms) && per == k.per_ms => n,
                _ => 0,
            };
        if mode != Take::Always {
            if let Some(k) = keys.iter().find(|k| used(&counts, k) >= k.calls) {
                return Ok(Some(LimitHit {
                    limit: k.limit.clone(),
                    retry_after: k.retry_after(now_ms),
                    reason: k.reason.clone(),
                }));
            }
        }
        if mode == Take::Peek {
            return Ok(None);
        }
        let swept = self.swept_at.load(std::sync::atomic::Ordering::Relaxed);
        if counts.len() >= SWEEP_AT
            && now_ms >= swept.saturating_add(1000)
            && keys
                .iter()
                .any(|k| !counts.contains_key(&(k.limit.clone(), k.scope.clone())))
        {
            counts.retain(|_, (window, per, _)| *window + *per > now_ms);
            self.swept_at
                .store(now_ms, std::sync::atomic::Ordering::Relaxed);
        }
        for k in keys {
            let window = k.window(now_ms);
            let e = counts
                .entry((k.limit.clone(), k.scope.clone()))
                .or_insert((window, k.per_ms, 0));
            if (e.0, e.1) != (window, k.per_ms) {
                *e = (window, k.per_ms, 0);
            }
            e.2 = e.2.saturating_add(1);
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(limit: &str, who: &str, calls: u32, per_ms: u64) -> LimitKey {
        LimitKey {
            limit: limit.into(),
            scope: who.into(),
            calls,
            per_ms,
            reason: format!("limit {limit}"),
        }
    }

    #[tokio::test]
    async fn at_most_calls_per_window_then_the_next_window() {
        let s = MemoryLimits::default();
        let k = [key("l", "alice", 3, 1000)];
        for t in [10_000, 10_100, 10_999] {
            assert_eq!(s.take(&k, t, Take::IfRoom).await.unwrap(), None, "{t}");
        }
        let hit = s.take(&k, 10_999, Take::IfRoom).await.unwrap().unwrap();
        assert_eq!(hit.retry_after, Duration::from_millis(1));
        assert_eq!(hit.limit, "l");
        // Refused calls do not count: the next window starts empty.
        for t in [11_000, 11_001, 11_002] {
            assert_eq!(s.take(&k, t, Take::IfRoom).await.unwrap(), None, "{t}");
        }
        let hit = s.take(&k, 11_500, Take::IfRoom).await.unwrap().unwrap();
        assert_eq!(hit.retry_after, Duration::from_millis(500));
    }

    #[tokio::test]
    async fn callers_and_limits_count_apart() {
        let s = MemoryLimits::default();
        let a = [key("l", "alice", 1, 60_000)];
        let b = [key("l", "bob", 1, 60_000)];
        let other = [key("m", "alice", 1, 60_000)];
        assert!(s.take(&a, 0, Take::IfRoom).await.unwrap().is_none());
        assert!(s.take(&a, 1, Take::IfRoom).await.unwrap().is_some());
        assert!(s.take(&b, 1, Take::IfRoom).await.unwrap().is_none());
        assert!(s.take(&other, 1, Take::IfRoom).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn several_limits_count_all_or_nothing() {
        let s = MemoryLimits::default();
        let small = key("small", "alice", 1, 60_000);
        let big = key("big", "alice", 10, 60_000);
        let both = [big.clone(), small.clone()];
        assert!(s.take(&both, 0, Take::IfRoom).await.unwrap().is_none());
        let hit = s.take(&both, 1, Take::IfRoom).await.unwrap().unwrap();
        assert_eq!(hit.limit, "small");
        // The refused call did not count against `big`: nine more fit.
        for t in 2..11 {
            assert!(
                s.take(std::slice::from_ref(&big), t, Take::IfRoom)
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        assert!(s.take(&[big], 11, Take::IfRoom).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn peek_counts_nothing_and_always_counts_past_the_limit() {
        let s = MemoryLimits::default();
        let k = [key("l", "alice", 2, 60_000)];
        for _ in 0..5 {
            assert!(s.take(&k, 0, Take::Peek).await.unwrap().is_none());
        }
        s.take(&k, 0, Take::Always).await.unwrap();
        s.take(&k, 0, Take::Always).await.unwrap();
        s.take(&k, 0, Take::Always).await.unwrap();
        assert!(s.take(&k, 0, Take::Peek).await.unwrap().is_some());
        assert!(s.take(&k, 0, Take::IfRoom).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn ended_windows_are_swept() {
        let s = MemoryLimits::default();
        for i in 0..SWEEP_AT {
            s.take(&[key("l", &format!("u{i}"), 5, 1000)], 0, Take::IfRoom)
                .await
                .unwrap();
        }
        assert_eq!(s.counts.lock().unwrap().len(), SWEEP_AT);
        s.take(&[key("l", "late", 5, 1000)], 1000, Take::IfRoom)
            .await
            .unwrap();
        assert_eq!(s.counts.lock().unwrap().len(), 1);
    }
}
