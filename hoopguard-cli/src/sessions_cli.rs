//! `hoopguard sessions list|show|verify|export|replay`: reading recordings as an auditor.
//!
//! Works on the data directory's `recordings/` folder directly, or on the shared database when
//! the recordings are kept there (`record.store`), and never changes a recording (`list`
//! updates the index beside local ones). The admin API serves the same reads.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hoopguard_core::record::{self, Event, PgStore, Query, RecordError, SessionSummary, Store};
use serde_json::Value;

/// Where the recordings an auditor reads are.
#[derive(Debug, Clone)]
pub enum Recordings {
    /// The embedded store: `<data_dir>/recordings`.
    Dir(PathBuf),
    /// The shared database (`record.store`, `[store] url`).
    Database(Arc<PgStore>),
}

impl Recordings {
    /// The recordings `cfg` keeps: in its shared database when `record.store` says so
    /// (connecting to it), else in its data directory.
    pub fn open(cfg: &crate::config::Config) -> Result<Recordings, String> {
        match cfg.records_in_database()? {
            Some(url) => PgStore::connect(&url, cfg.store.schema.as_deref())
                .map(|s| Recordings::Database(Arc::new(s)))
                .map_err(|e| format!("store: {e}")),
            None => Ok(Recordings::Dir(cfg.data_dir.join("recordings"))),
        }
    }

    /// The sessions that match `q` (local ones through the index, brought up to date first).
    pub fn search(&self, q: &Query) -> Result<Vec<SessionSummary>, RecordError> {
        match self {
            Recordings::Dir(dir) => record::search(dir, q),
            Recordings::Database(db) => db.search(q, std::time::SystemTime::now()),
        }
    }

    /// A session's kept events.
    pub fn read(&self, session: &str) -> Result<Vec<Event>, RecordError> {
        match self {
            Recordings::Dir(dir) => record::read_session(dir, session),
            Recordings::Database(db) => db.read(session),
        }
    }

    /// Checks a session's chain; the number of events kept.
    pub fn verify(&self, session: &str) -> Result<usize, RecordError> {
        match self {
            Recordings::Dir(dir) => record::verify(dir, session),
            Recordings::Database(db) => db.verify(session),
        }
    }

    /// Every recorded session.
    pub fn sessions(&self) -> Result<Vec<String>, RecordError> {
        match self {
            Recordings::Dir(dir) => record::sessions(dir),
            Recordings::Database(db) => db.sessions(),
        }
    }

    /// The directory, for what only local recordings have (signed digests).
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Recordings::Dir(dir) => Some(dir),
            Recordings::Database(_) => None,
        }
    }
}

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
pub fn list(rec: &Recordings, q: &Query) -> Result<String, RecordError> {
    let found = rec.search(q)?;
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
pub fn show(rec: &Recordings, session: &str) -> Result<String, RecordError> {
    let events = rec.read(session)?;
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
pub fn verify(rec: &Recordings, session: Option<&str>) -> Result<(String, bool), RecordError> {
    let sessions = match session {
        Some(s) => vec![s.to_string()],
        None => rec.sessions()?,
    };
    let mut out = String::new();
    let mut all_ok = true;
    for s in sessions {
        match rec.verify(&s) {
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

/// Checks the signed digests with the public key in `key_file` (and every session against them,
/// or only `session`); the text, and whether nothing was found.
pub fn verify_digests(
    dir: &Path,
    key_file: &Path,
    session: Option<&str>,
) -> Result<(String, bool), String> {
    use hoopguard_core::record::digest::{PublicKey, verify_digests};
    let key = PublicKey::load(key_file).map_err(|e| e.to_string())?;
    let report = verify_digests(dir, &key).map_err(|e| e.to_string())?;
    let mut out = String::new();
    let about = |m: &str| session.is_none_or(|s| m.contains(&format!("`{s}`")));
    let problems: Vec<&String> = report
        .problems
        .iter()
        .filter(|m| about(m) || m.starts_with("digest "))
        .collect();
    if report.digests == 0 {
        out.push_str(
            "BROKEN  no signed digests: nothing proves these recordings were not rewritten\n",
        );
        return Ok((out, false));
    }
    let newest = report.newest_at.map_or("?".into(), |t| {
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(t),
        )
        .to_string()
    });
    for p in &problems {
        out.push_str(&format!("BROKEN  {p}\n"));
    }
    for n in report.notes.iter().filter(|m| about(m)) {
        out.push_str(&format!("note    {n}\n"));
    }
    if problems.is_empty() {
        out.push_str(&format!(
            "ok      {} signed digests (key {}), newest {newest}: {} sessions as signed\n",
            report.digests,
            key.key_id(),
            report.sessions
        ));
    }
    Ok((out, problems.is_empty()))
}

/// Writes a new digest signing key to `out` (0600) and its public key to `out.pub`.
pub fn keygen(out: &Path) -> Result<String, String> {
    use std::io::Write;
    let (pkcs8, key) =
        hoopguard_core::record::digest::SigningKey::generate().map_err(|e| e.to_string())?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(out).map_err(|e| {
        format!(
            "cannot create {}: {e} (an existing key is never overwritten)",
            out.display()
        )
    })?;
    f.write_all(&pkcs8)
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    let public = key.public_key().to_base64();
    let pub_path = std::path::PathBuf::from(format!("{}.pub", out.display()));
    std::fs::write(&pub_path, format!("{public}\n"))
        .map_err(|e| format!("cannot write {}: {e}", pub_path.display()))?;
    Ok(format!(
        "wrote the signing key to {} and its public key to {}\npublic key: {public}\nset `record.signing_key_file = {:?}` and give auditors the public key\n",
        out.display(),
        pub_path.display(),
        out.display()
    ))
}

/// The session as a JSON array of events.
pub fn export(rec: &Recordings, session: &str) -> Result<String, RecordError> {
    let events = rec.read(session)?;
    Ok(format!(
        "{:#}\n",
        serde_json::to_value(events).unwrap_or_default()
    ))
}

/// Prints the events with their original timing, `speed` times faster (gaps capped at 10 s).
pub fn replay(
    rec: &Recordings,
    session: &str,
    speed: f64,
    out: &mut dyn std::io::Write,
) -> Result<(), RecordError> {
    let events = rec.read(session)?;
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
