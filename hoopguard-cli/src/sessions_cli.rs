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

/// The sessions with their event counts and first/last times.
pub fn list(dir: &Path) -> Result<String, RecordError> {
    let mut out = format!(
        "{:<40} {:>7} {:<25} {:<25} {}\n",
        "SESSION", "EVENTS", "FIRST", "LAST", "SUBJECT"
    );
    let sessions = record::sessions(dir)?;
    if sessions.is_empty() {
        return Ok("no recorded sessions\n".into());
    }
    for s in sessions {
        let events = record::read_session(dir, &s)?;
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
