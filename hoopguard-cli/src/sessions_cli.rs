//! `hoopguard sessions list|show|verify|export|replay`: reading recordings as an auditor.
//!
//! Works on the data directory's `recordings/` folder directly and never changes a file (the
//! admin API reads come with the rest of issue #6).

use std::path::Path;
use std::time::Duration;

use hoopguard_core::record::{self, Event, RecordError};
use serde_json::Value;

fn time(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// A one-line summary of an event's data.
fn summary(e: &Event) -> String {
    let d = &e.data;
    if e.kind == "response" {
        let mut s = format!(
            "{} · {} bytes · {} ms",
            d["status"], d["bytes"], d["latency_ms"]
        );
        if let Some(body) = d.get("body").and_then(Value::as_str) {
            let one_line: String = body
                .chars()
                .take(120)
                .map(|c| if c == '\n' { ' ' } else { c })
                .collect();
            s.push_str(&format!(" · {one_line}"));
        }
        return s;
    }
    let pick = |k: &str| d.get(k).and_then(Value::as_str);
    let what = pick("action")
        .or(pick("tool"))
        .or(pick("method"))
        .or(pick("subject"))
        .or(pick("reason"))
        .unwrap_or("");
    match pick("decision") {
        Some(dec) => format!("{what} → {dec}"),
        None => what.to_string(),
    }
}

/// What `sessions list` keeps. Every recording is read (there is no index yet).
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// The subject (`*` wildcards).
    pub subject: Option<String>,
    /// Only sessions with an event at most this old.
    pub since: Option<Duration>,
    /// A call's action or tool (`*` wildcards, case-insensitive).
    pub action: Option<String>,
    /// A call's decision.
    pub decision: Option<String>,
}

/// `*` matches any run of characters; nothing else is special. Case-insensitive.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.to_ascii_lowercase(), text.to_ascii_lowercase());
    let parts: Vec<&str> = p.split('*').collect();
    if parts.len() == 1 {
        return p == t;
    }
    let mut rest = t.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else {
                return false;
            };
            rest = &rest[at + part.len()..];
        }
    }
    true
}

/// The action or tool a `call` event names: `ec2:TerminateInstances` (AWS) or the tool name.
fn call_target(e: &Event) -> Option<String> {
    let action = e.data.get("action").and_then(Value::as_str)?;
    if let Some(tool) = action.strip_prefix("tool `") {
        return tool.strip_suffix('`').map(str::to_string);
    }
    action.split_whitespace().next().map(str::to_string)
}

impl Filter {
    fn keeps(&self, events: &[Event], now_ms: u64) -> bool {
        let subject = events
            .first()
            .and_then(|e| e.data.get("subject"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if self.subject.as_deref().is_some_and(|p| !glob(p, subject)) {
            return false;
        }
        if let Some(since) = self.since {
            let from = now_ms.saturating_sub(since.as_millis() as u64);
            if !events.iter().any(|e| e.at >= from) {
                return false;
            }
        }
        if self.action.is_none() && self.decision.is_none() {
            return true;
        }
        events.iter().filter(|e| e.kind == "call").any(|e| {
            let action_ok = self
                .action
                .as_deref()
                .is_none_or(|p| call_target(e).is_some_and(|t| glob(p, &t)));
            let decision_ok = self
                .decision
                .as_deref()
                .is_none_or(|d| e.data.get("decision").and_then(Value::as_str) == Some(d));
            action_ok && decision_ok
        })
    }
}

/// The sessions with their event counts and first/last times.
pub fn list(dir: &Path, filter: &Filter) -> Result<String, RecordError> {
    let mut out = format!(
        "{:<40} {:>7} {:<25} {:<25} {}\n",
        "SESSION", "EVENTS", "FIRST", "LAST", "SUBJECT"
    );
    let sessions = record::sessions(dir)?;
    if sessions.is_empty() {
        return Ok("no recorded sessions\n".into());
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    for s in sessions {
        let events = record::read_session(dir, &s)?;
        if !filter.keeps(&events, now_ms) {
            continue;
        }
        let subject = events
            .first()
            .and_then(|e| e.data.get("subject"))
            .and_then(Value::as_str)
            .unwrap_or("-");
        out.push_str(&format!(
            "{:<40} {:>7} {:<25} {:<25} {}\n",
            s,
            events.len(),
            events.first().map(|e| time(e.at)).unwrap_or_default(),
            events.last().map(|e| time(e.at)).unwrap_or_default(),
            subject
        ));
    }
    Ok(out)
}

/// A session's timeline.
pub fn show(dir: &Path, session: &str) -> Result<String, RecordError> {
    let events = record::read_session(dir, session)?;
    let mut out = format!("{:>5} {:<25} {:<6} {}\n", "SEQ", "TIME", "TYPE", "WHAT");
    for e in &events {
        out.push_str(&format!(
            "{:>5} {:<25} {:<6} {}\n",
            e.seq,
            time(e.at),
            e.kind,
            summary(e)
        ));
    }
    Ok(out)
}

/// Verifies one session, or all; the text, and whether everything verified.
pub fn verify(dir: &Path, session: Option<&str>) -> Result<(String, bool), RecordError> {
    let sessions = match session {
        Some(s) => vec![s.to_string()],
        None => record::sessions(dir)?,
    };
    let mut out = String::new();
    let mut all_ok = true;
    for s in sessions {
        match record::verify(dir, &s) {
            Ok(n) => out.push_str(&format!("ok      {s}: {n} events, chain intact\n")),
            Err(e @ RecordError::Broken { .. }) => {
                all_ok = false;
                out.push_str(&format!("BROKEN  {e}\n"));
            }
            Err(e) => return Err(e),
        }
    }
    Ok((out, all_ok))
}

/// The session as a JSON array of events.
pub fn export(dir: &Path, session: &str) -> Result<String, RecordError> {
    let events = record::read_session(dir, session)?;
    Ok(format!(
        "{:#}\n",
        serde_json::to_value(events).unwrap_or_default()
    ))
}

/// Prints the events with their original timing, `speed` times faster (gaps capped at 10 s).
pub fn replay(
    dir: &Path,
    session: &str,
    speed: f64,
    out: &mut dyn std::io::Write,
) -> Result<(), RecordError> {
    let events = record::read_session(dir, session)?;
    let mut last: Option<u64> = None;
    for e in &events {
        if let Some(prev) = last {
            let gap = Duration::from_millis(e.at.saturating_sub(prev)).div_f64(speed.max(0.001));
            std::thread::sleep(gap.min(Duration::from_secs(10)));
        }
        last = Some(e.at);
        let line = format!(
            "{:>5} {} {:<6} {} {}\n",
            e.seq,
            time(e.at),
            e.kind,
            summary(e),
            e.data
        );
        if out
            .write_all(line.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    #[test]
    fn globs_and_call_targets() {
        assert!(glob("ec2:*", "EC2:TerminateInstances"));
        assert!(glob("*Instances", "ec2:TerminateInstances"));
        assert!(glob("ec2:*Inst*s", "ec2:TerminateInstances"));
        assert!(!glob("ec2:*", "s3:GetObject"));
        assert!(glob("alice", "alice") && !glob("alice", "alice2"));
        let call = |action: &str| Event {
            seq: 1,
            at: 0,
            session: "s".into(),
            kind: "call".into(),
            prev: String::new(),
            data: serde_json::json!({"action": action}),
        };
        assert_eq!(
            call_target(&call("ec2:TerminateInstances in us-east-1")).as_deref(),
            Some("ec2:TerminateInstances")
        );
        assert_eq!(
            call_target(&call("tool `get-sum`")).as_deref(),
            Some("get-sum")
        );
    }
}
