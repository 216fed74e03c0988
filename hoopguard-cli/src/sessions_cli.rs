//! `hoopguard sessions list|show|verify|export|replay`: reading recordings as an auditor.
//!
//! Works on the data directory's `recordings/` folder directly and never changes a recording
//! (`list` updates the index beside them). The admin API serves the same reads.

use std::path::Path;
use std::time::Duration;

use hoopguard_core::record::{self, Event, Query, RecordError};
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

/// The sessions that match `q` (through the recordings index, brought up to date first),
/// with their event counts, first and last times, subject, how many calls were refused and how
/// the session ended.
pub fn list(dir: &Path, q: &Query) -> Result<String, RecordError> {
    let found = record::search(dir, q)?;
    if found.is_empty() {
        return Ok("no recorded sessions match\n".into());
    }
    let mut out = format!(
        "{:<30} {:>6} {:>8} {:<25} {:<25} {:<16} {}\n",
        "SESSION", "EVENTS", "REFUSED", "FIRST", "LAST", "SUBJECT", "ENDED"
    );
    for s in found {
        out.push_str(&format!(
            "{:<30} {:>6} {:>8} {:<25} {:<25} {:<16} {}\n",
            s.id,
            s.events,
            s.refused,
            time(s.first_at),
            time(s.last_at),
            s.subject.as_deref().unwrap_or("-"),
            s.ended.as_deref().unwrap_or("-"),
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
