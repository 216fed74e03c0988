//! What a search of the recordings asks ([`Query`]) and finds ([`SessionSummary`]), whichever
//! store answers it: the SQLite index beside the embedded recordings, or the shared database.

use std::time::Duration;

use serde::Serialize;

/// What to find. Every field narrows the search; none finds every session.
#[derive(Debug, Default, Clone)]
pub struct Query {
    /// The subject (`*` wildcards, case-insensitive).
    pub subject: Option<String>,
    /// Only sessions with an event at most this old.
    pub since: Option<Duration>,
    /// Sessions with a call to this action or tool (`ec2:*`, `get-sum`; `*` wildcards).
    pub action: Option<String>,
    /// Sessions with a call decided so (`allow`, `deny`, `approve`, `error`); with
    /// `action`, the same call must match both.
    pub decision: Option<String>,
    /// At most this many sessions, the most recent ones (default 1000).
    pub limit: Option<usize>,
}

impl Query {
    /// The earliest last-event time `since` allows at `now`, in milliseconds since the epoch.
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    pub(super) fn since_ms(&self, now: std::time::SystemTime) -> Option<i64> {
        self.since.map(|s| {
            now.duration_since(std::time::SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .saturating_sub(s)
                .as_millis() as i64
        })
    }
}

/// One session as the index knows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionSummary {
    /// The session (recording) id.
    pub id: String,
    /// Who.
    pub subject: Option<String>,
    /// Their groups at the start.
    pub groups: Vec<String>,
    /// The AWS connection or MCP transport.
    pub origin: Option<String>,
    /// The client's address.
    pub client: Option<String>,
    /// The client's user agent.
    pub user_agent: Option<String>,
    /// First event, milliseconds since the epoch.
    pub first_at: u64,
    /// Last event.
    pub last_at: u64,
    /// Events recorded.
    pub events: u64,
    /// Calls decided.
    pub calls: u64,
    /// Calls not allowed.
    pub refused: u64,
    /// Why the session ended, if its last event is its end.
    pub ended: Option<String>,
}

/// The action or tool a call names: `ec2:TerminateInstances` from `ec2:TerminateInstances in
/// us-east-1`, `get-sum` from ``tool `get-sum` ``.
pub fn call_target(action: &str) -> String {
    for kind in ["tool `", "resource `", "prompt `"] {
        if let Some(rest) = action.strip_prefix(kind) {
            return rest.strip_suffix('`').unwrap_or(rest).to_string();
        }
    }
    action
        .split_whitespace()
        .next()
        .unwrap_or("")
        .trim_end_matches(';')
        .to_string()
}

/// `*` → `%`; `%`, `_` and `\` taken literally.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(super) fn like(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len());
    for c in glob.chars() {
        match c {
            '*' => out.push('%'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}
