//! Session recordings: append-only JSON Lines, one file per session, hash-chained.
//!
//! Every event line carries `prev`, the SHA-256 of the line before it (64 zeros for the first),
//! so [`verify`] finds a flipped byte, a deleted event or a reordered pair and names the first
//! broken event. The store keeps each session's head (the hash of its last line and its event
//! count) beside the files, so removing or altering the last event is caught too.
//!
//! A crash mid-write leaves at most a torn last line; [`Recorder::open`] truncates it (and only
//! it), and the session still verifies. Writing is fail-closed: [`Recorder::append`] returns an
//! error the caller must turn into a refusal.
//!
//! Not built yet (issue #6): the tower `RecordLayer`, segment rotation and retention, and the
//! SQLite index for listing and search. Bodies must be masked before they are recorded; this
//! module stores what it is given.
//!
//! # Example
//!
//! ```
//! use hoopguard_core::record::{Durability, Recorder, verify};
//! use serde_json::json;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let rec = Recorder::open(dir.path(), Durability::EveryEvent).unwrap();
//! rec.append("s-1", "start", json!({"subject": "alice"})).unwrap();
//! rec.append("s-1", "call", json!({"action": "ec2:DescribeInstances", "decision": "allow"})).unwrap();
//! assert_eq!(verify(dir.path(), "s-1").unwrap(), 2);
//! ```

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The `prev` of a session's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// When appended events reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `fsync` after every event: nothing acknowledged is lost.
    EveryEvent,
    /// Written at once, `fsync`ed only by [`Recorder::sync`] (call it on an interval): a crash
    /// may lose the last events, never corrupt earlier ones.
    Batched,
}

/// Why recording failed or a recording does not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The disk said no.
    #[error("recording {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A session id that is not safe as a file name.
    #[error("`{0}` is not a valid session id (letters, digits, `-` and `_`, at most 128)")]
    BadSessionId(String),
    /// No such session.
    #[error("no recording of session `{0}`")]
    NotFound(String),
    /// The chain is broken at this event (1-based line number).
    #[error("session `{session}`: event {line} {problem}")]
    Broken {
        /// The session.
        session: String,
        /// The first broken event, counting from 1.
        line: usize,
        /// What is wrong with it.
        problem: String,
    },
}

/// One event line as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the session, from 1.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at: u64,
    /// The session id.
    pub session: String,
    /// `start`, `call`, `end`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// SHA-256 (hex) of the previous line.
    pub prev: String,
    /// What happened.
    pub data: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Head {
    seq: u64,
    hash: String,
}

struct Open {
    file: File,
    head: Head,
    /// The head record, rewritten in place after every event (no new file per event: creating
    /// and renaming one made the filesystem flush on every call).
    head_file: Option<File>,
}

/// Appends events to session recordings under one directory.
pub struct Recorder {
    dir: PathBuf,
    durability: Durability,
    open: Mutex<HashMap<String, Open>>,
    best_effort: bool,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("dir", &self.dir)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RecordError + '_ {
    move |source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn check_id(id: &str) -> Result<(), RecordError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(RecordError::BadSessionId(id.chars().take(40).collect()))
    }
}

fn line_hash(line: &[u8]) -> String {
    hex::encode(Sha256::digest(line))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Recorder {
    /// Opens (creating) the recordings directory; torn last lines left by a crash are cut off.
    pub fn open(dir: &Path, durability: Durability) -> Result<Recorder, RecordError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let entries = std::fs::read_dir(dir).map_err(io(dir))?;
        for entry in entries {
            let path = entry.map_err(io(dir))?.path();
            if path.extension().is_some_and(|e| e == "jsonl") {
                recover(&path)?;
            }
        }
        Ok(Recorder {
            dir: dir.to_path_buf(),
            durability,
            open: Mutex::new(HashMap::new()),
            best_effort: false,
        })
    }

    /// With `yes`, callers let calls through when recording fails (each gap is logged) instead
    /// of refusing them. Off by default: an unrecorded call is a refused call.
    pub fn with_best_effort(mut self, yes: bool) -> Self {
        self.best_effort = yes;
        self
    }

    /// Appends like [`Recorder::append`]; when that fails and best effort is on, logs the gap
    /// (session, event kind and error, never the data) and returns `Ok`. Data paths call this.
    pub fn record(&self, session: &str, kind: &str, data: Value) -> Result<(), RecordError> {
        match self.append(session, kind, data) {
            Ok(_) => Ok(()),
            Err(e) if self.best_effort => {
                tracing::error!(session, kind, error = %e, "recording gap: the call went on unrecorded (record.on_failure = best_effort)");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn path(&self, session: &str) -> PathBuf {
        self.dir.join(format!("{session}.jsonl"))
    }

    /// Appends one event to `session` (creating it), chained to the one before.
    pub fn append(&self, session: &str, kind: &str, data: Value) -> Result<Event, RecordError> {
        check_id(session)?;
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if !open.contains_key(session) {
            let path = self.path(session);
            let head = match read_head(&self.dir, session) {
                Ok(h) => h,
                Err(RecordError::NotFound(_)) => Head {
                    seq: 0,
                    hash: GENESIS.to_string(),
                },
                Err(e) => return Err(e),
            };
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io(&path))?;
            open.insert(
                session.to_string(),
                Open {
                    file,
                    head,
                    head_file: None,
                },
            );
        }
        let path = self.path(session);
        let slot = open.get_mut(session).expect("inserted above");
        let event = Event {
            seq: slot.head.seq + 1,
            at: now_ms(),
            session: session.to_string(),
            kind: kind.to_string(),
            prev: slot.head.hash.clone(),
            data,
        };
        let mut line = serde_json::to_vec(&event).map_err(|e| RecordError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        slot.file.write_all(&line).map_err(io(&path))?;
        if self.durability == Durability::EveryEvent {
            slot.file.sync_data().map_err(io(&path))?;
        }
        slot.head = Head {
            seq: event.seq,
            hash: line_hash(&line[..line.len() - 1]),
        };
        let head_path = head_path(&self.dir, session);
        if slot.head_file.is_none() {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&head_path)
                .map_err(io(&head_path))?;
            slot.head_file = Some(f);
        }
        let head_file = slot.head_file.as_ref().expect("opened above");
        write_head_in_place(head_file, &slot.head).map_err(io(&head_path))?;
        if self.durability == Durability::EveryEvent {
            head_file.sync_data().map_err(io(&head_path))?;
        }
        Ok(event)
    }

    /// Ends every session recorded by this recorder with an `end` event naming `reason`
    /// (`gateway shutdown`), and flushes them. Returns how many were ended.
    pub fn end_all(&self, reason: &str) -> Result<usize, RecordError> {
        let sessions: Vec<String> = self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        for s in &sessions {
            self.append(s, "end", serde_json::json!({ "reason": reason }))?;
        }
        self.sync()?;
        Ok(sessions.len())
    }

    /// Forces everything appended so far to disk (for [`Durability::Batched`]).
    pub fn sync(&self) -> Result<(), RecordError> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        for (session, slot) in open.iter() {
            slot.file.sync_data().map_err(io(&self.path(session)))?;
        }
        Ok(())
    }

    /// Whether `session` has been recorded before.
    pub fn exists(&self, session: &str) -> bool {
        check_id(session).is_ok()
            && (self
                .open
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(session)
                || self.path(session).exists())
    }

    /// The sessions recorded, by id.
    pub fn sessions(&self) -> Result<Vec<String>, RecordError> {
        sessions(&self.dir)
    }
}

/// The sessions recorded in `dir`, by id, without touching any file (for auditors: nothing is
/// repaired on the way).
pub fn sessions(dir: &Path) -> Result<Vec<String>, RecordError> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(io(dir))?.path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                out.push(stem.to_string());
            }
        }
    }
    out.sort();
    Ok(out)
}

fn head_path(dir: &Path, session: &str) -> PathBuf {
    dir.join(format!("{session}.head"))
}

fn read_head(dir: &Path, session: &str) -> Result<Head, RecordError> {
    let path = head_path(dir, session);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| RecordError::Broken {
            session: session.to_string(),
            line: 0,
            problem: format!("has an unreadable head record: {e}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(RecordError::NotFound(session.to_string()))
        }
        Err(e) => Err(io(&path)(e)),
    }
}

/// The size every head record is padded to, so rewriting it in place never leaves old bytes
/// behind (JSON allows the trailing spaces).
const HEAD_LEN: usize = 128;

/// Rewrites the head record in place: one write of [`HEAD_LEN`] bytes at offset 0.
fn write_head_in_place(file: &File, head: &Head) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut bytes = serde_json::to_vec(head).map_err(std::io::Error::other)?;
    if bytes.len() < HEAD_LEN {
        bytes.resize(HEAD_LEN, b' ');
    }
    // Every head is padded to the same length, and the record is at most that long, so one
    // write covers whatever was there before.
    file.write_all_at(&bytes, 0)
}

/// Replaces the head record atomically (write a temporary file, rename).
fn write_head(
    dir: &Path,
    session: &str,
    head: &Head,
    durability: Durability,
) -> Result<(), RecordError> {
    let path = head_path(dir, session);
    let tmp = dir.join(format!("{session}.head.tmp"));
    let bytes = serde_json::to_vec(head).map_err(|e| RecordError::Io {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(&bytes).map_err(io(&tmp))?;
    if durability == Durability::EveryEvent {
        f.sync_data().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, &path).map_err(io(&path))
}

/// Cuts a torn last line (no newline, left by a crash) off a recording, and makes the head
/// record agree with the last complete line.
fn recover(path: &Path) -> Result<(), RecordError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io(path))?;
    let mut reader = BufReader::new(&file);
    let mut good_len = 0u64;
    let mut last: Option<(u64, String)> = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(io(path))?;
        if n == 0 {
            break;
        }
        if line.last() != Some(&b'\n') {
            break; // torn tail
        }
        let body = &line[..line.len() - 1];
        let Ok(ev) = serde_json::from_slice::<Event>(body) else {
            // Not our crash: leave it for `verify` to report.
            return Ok(());
        };
        good_len += n as u64;
        last = Some((ev.seq, line_hash(body)));
    }
    let len = file.metadata().map_err(io(path))?.len();
    if len != good_len {
        tracing::warn!(file = %path.display(), cut = len - good_len, "recording had a torn last line; truncated it");
        file.set_len(good_len).map_err(io(path))?;
        file.seek(SeekFrom::End(0)).map_err(io(path))?;
        file.sync_data().map_err(io(path))?;
    }
    if let (Some((seq, hash)), Some(dir), Some(session)) = (
        last,
        path.parent(),
        path.file_stem().and_then(|s| s.to_str()),
    ) {
        // A crash between writing a line and writing the head leaves the head exactly one
        // event behind; only that is repaired. Anything else is left for `verify` to report, so
        // lines appended by hand are not blessed by a restart.
        let head = read_head(dir, session).ok();
        let one_behind = match &head {
            Some(h) => h.seq + 1 == seq,
            None => seq == 1,
        };
        if one_behind {
            write_head(dir, session, &Head { seq, hash }, Durability::EveryEvent)?;
        }
    }
    Ok(())
}

/// Checks the chain of `session` and its head; returns the number of events.
pub fn verify(dir: &Path, session: &str) -> Result<usize, RecordError> {
    check_id(session)?;
    let path = dir.join(format!("{session}.jsonl"));
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(RecordError::NotFound(session.to_string()));
        }
        Err(e) => return Err(io(&path)(e)),
    };
    let broken = |line: usize, problem: String| RecordError::Broken {
        session: session.to_string(),
        line,
        problem,
    };
    let mut prev = GENESIS.to_string();
    let mut count = 0usize;
    let mut buf = Vec::new();
    let mut reader = BufReader::new(file);
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(io(&path))?;
        if n == 0 {
            break;
        }
        let line_no = count + 1;
        if buf.last() != Some(&b'\n') {
            return Err(broken(line_no, "is cut off (no newline)".into()));
        }
        let body = &buf[..buf.len() - 1];
        let ev: Event = serde_json::from_slice(body)
            .map_err(|e| broken(line_no, format!("is not a valid event ({e})")))?;
        if ev.prev != prev {
            return Err(broken(
                line_no,
                "does not follow the event before it (altered, removed or reordered events)".into(),
            ));
        }
        if ev.seq != line_no as u64 {
            return Err(broken(
                line_no,
                format!("has sequence number {} instead of {line_no}", ev.seq),
            ));
        }
        if ev.session != session {
            return Err(broken(line_no, "belongs to another session".into()));
        }
        prev = line_hash(body);
        count += 1;
    }
    match read_head(dir, session) {
        Ok(head) if head.seq == count as u64 && head.hash == prev => Ok(count),
        Ok(head) if head.seq > count as u64 => Err(broken(
            count + 1,
            format!("is missing: the session had {} events", head.seq),
        )),
        Ok(head) if head.seq < count as u64 => Err(broken(
            head.seq as usize + 1,
            format!(
                "was added after the session's last recorded event ({})",
                head.seq
            ),
        )),
        Ok(_) => Err(broken(count, "was altered after it was recorded".into())),
        Err(RecordError::NotFound(_)) => Err(broken(
            count,
            "has no head record to check the last event against".into(),
        )),
        Err(e) => Err(e),
    }
}

/// Reads every event of `session` (after [`verify`], for showing or exporting).
pub fn read_session(dir: &Path, session: &str) -> Result<Vec<Event>, RecordError> {
    check_id(session)?;
    let path = dir.join(format!("{session}.jsonl"));
    let file = File::open(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            RecordError::NotFound(session.to_string())
        } else {
            io(&path)(e)
        }
    })?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io(&path))?;
        out.push(
            serde_json::from_str(&line).map_err(|e| RecordError::Broken {
                session: session.to_string(),
                line: i + 1,
                problem: format!("is not a valid event ({e})"),
            })?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
