//! The embedded store: hash-chained JSON Lines segments, one series per session, in one
//! directory.
//!
//! Layout: `ID.jsonl` is a session's first segment, `ID.2.jsonl`, `ID.3.jsonl`, … the ones
//! after it (a new one starts when the current one would pass the segment size); `ID.head`
//! holds the session's head: the last event's sequence number and hash, the current and first
//! kept segment, whether the session has ended, and — once retention has removed its oldest
//! segments — the last removed event, so the kept events still verify from there.

use std::collections::{BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    Durability, Event, GENESIS, RecordError, Removed, Retention, SessionState, Store,
    check_session_id, io, line_hash, now_ms,
};

/// The last event retention removed from the front of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Trim {
    pub(super) seq: u64,
    pub(super) hash: String,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Head {
    pub(super) seq: u64,
    pub(super) hash: String,
    /// The segment being written.
    #[serde(default = "one")]
    pub(super) segment: u32,
    /// The oldest segment kept.
    #[serde(default = "one")]
    pub(super) first: u32,
    #[serde(default)]
    pub(super) ended: bool,
    /// Ended by revocation: stays so, whatever is appended after.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) revoked: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) trim: Option<Trim>,
}

impl Head {
    fn new() -> Head {
        Head {
            seq: 0,
            hash: GENESIS.to_string(),
            segment: 1,
            first: 1,
            ended: false,
            revoked: false,
            trim: None,
        }
    }
}

struct Open {
    file: Arc<File>,
    /// Bytes in the current segment.
    size: u64,
    /// The session as written (in the page cache, perhaps not yet on disk).
    head: Head,
    /// The last event known to be on disk with everything before it: what the head record
    /// on disk says. With [`Durability::Batched`] the same as `head`.
    durable: Chain,
    /// The head record, rewritten in place (no new file per event: creating and renaming one
    /// made the filesystem flush on every call).
    head_file: Option<Arc<File>>,
}

/// The part of a head that follows the events: where the chain stands.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Chain {
    seq: u64,
    hash: String,
    segment: u32,
    ended: bool,
    revoked: bool,
}

impl Chain {
    fn of(head: &Head) -> Chain {
        Chain {
            seq: head.seq,
            hash: head.hash.clone(),
            segment: head.segment,
            ended: head.ended,
            revoked: head.revoked,
        }
    }
}

impl Open {
    /// The head record to write: the durable chain, with the current layout (first kept segment
    /// and trim, which retention changes).
    fn disk_head(&self) -> Head {
        Head {
            seq: self.durable.seq,
            hash: self.durable.hash.clone(),
            segment: self.durable.segment,
            ended: self.durable.ended,
            revoked: self.durable.revoked,
            first: self.head.first.min(self.durable.segment),
            trim: self.head.trim.clone(),
        }
    }
}

/// Called once with the outcome of an append ([`Store::submit`]).
pub type Done = Box<dyn FnOnce(Result<Event, RecordError>) + Send>;

/// What the store's lock guards.
#[derive(Default)]
struct State {
    open: HashMap<String, Open>,
    /// Sessions written to since the committer last took them.
    dirty: BTreeSet<String>,
    /// Appends waiting for the next commit, in order.
    waiting: Vec<(Event, Done)>,
    /// Set when a flush to disk failed: nothing written since can be trusted to reach it.
    failed: Option<String>,
    closing: bool,
}

struct Shared {
    dir: PathBuf,
    durability: Durability,
    segment_size: AtomicU64,
    state: Mutex<State>,
    /// Wakes the committer.
    work: Condvar,
}

/// Session recordings as JSON Lines files in one directory. See the [module docs](self).
///
/// With [`Durability::EveryEvent`], appends are committed in groups: each writes its line (and
/// the session's head in memory) at once, and a committer thread flushes every file written
/// since its last flush in one pass, then acknowledges all of them. Concurrent calls share
/// one flush instead of queueing behind each other's, and no caller's thread waits on the disk
/// ([`Store::submit`]).
pub struct JsonlStore {
    shared: Arc<Shared>,
    committer: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for JsonlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonlStore")
            .field("dir", &self.shared.dir)
            .field("durability", &self.shared.durability)
            .field("segment_size", &self.shared.segment_size)
            .finish_non_exhaustive()
    }
}

impl Drop for JsonlStore {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.work.notify_all();
        if let Some(t) = self.committer.take() {
            let _ = t.join();
        }
    }
}

/// The default size at which a session's segment is closed and the next one started.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 * 1024 * 1024;

pub(super) fn segment_path(dir: &Path, session: &str, n: u32) -> PathBuf {
    if n <= 1 {
        dir.join(format!("{session}.jsonl"))
    } else {
        dir.join(format!("{session}.{n}.jsonl"))
    }
}

pub(super) fn head_path(dir: &Path, session: &str) -> PathBuf {
    dir.join(format!("{session}.head"))
}

pub(super) fn read_head(dir: &Path, session: &str) -> Result<Head, RecordError> {
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
const HEAD_LEN: usize = 320;

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
fn write_head(dir: &Path, session: &str, head: &Head) -> Result<(), RecordError> {
    let path = head_path(dir, session);
    let tmp = dir.join(format!("{session}.head.tmp"));
    let mut bytes = serde_json::to_vec(head).map_err(|e| io(&path)(std::io::Error::other(e)))?;
    if bytes.len() < HEAD_LEN {
        bytes.resize(HEAD_LEN, b' ');
    }
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(&bytes).map_err(io(&tmp))?;
    f.sync_data().map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))
}

/// The session ids in `dir`: every head record, and first segments whose head a crash kept
/// from being written.
pub(super) fn session_ids(dir: &Path) -> Result<Vec<String>, RecordError> {
    let mut out = BTreeSet::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir)(e)),
    };
    for entry in entries {
        let name = entry.map_err(io(dir))?.file_name();
        let Some(name) = name.to_str() else { continue };
        let id = name
            .strip_suffix(".head")
            .or_else(|| name.strip_suffix(".jsonl"));
        if let Some(id) = id.filter(|id| check_session_id(id).is_ok()) {
            out.insert(id.to_string());
        }
    }
    Ok(out.into_iter().collect())
}

/// The segment numbers of a session, oldest first, from its head (segment 1 without one). A
/// segment after the head's current one — written just before a crash, or by hand — is
/// included, so verification sees it.
fn segment_numbers(dir: &Path, session: &str, head: Option<&Head>) -> Vec<u32> {
    let (first, last) = head.map_or((1, 1), |h| (h.first, h.segment));
    let mut out: Vec<u32> = (first..=last).collect();
    if segment_path(dir, session, last + 1).exists() {
        out.push(last + 1);
    }
    out
}

/// Calls `each` with every line (without its newline; `None` for a last line cut off without
/// one) of the session's kept segments, in order.
fn for_each_line(
    dir: &Path,
    session: &str,
    head: Option<&Head>,
    mut each: impl FnMut(Option<&[u8]>) -> Result<(), RecordError>,
) -> Result<(), RecordError> {
    let mut any = false;
    for n in segment_numbers(dir, session, head) {
        let path = segment_path(dir, session, n);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&path)(e)),
        };
        any = true;
        let mut reader = BufReader::new(file);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf).map_err(io(&path))?;
            if n == 0 {
                break;
            }
            if buf.last() == Some(&b'\n') {
                each(Some(&buf[..buf.len() - 1]))?;
            } else {
                each(None)?;
            }
        }
    }
    if !any && head.is_none() {
        return Err(RecordError::NotFound(session.to_string()));
    }
    Ok(())
}

/// What walking a session's chain found (it verified).
pub(super) struct Walk {
    /// Events kept.
    pub(super) count: usize,
    /// The sequence number and `prev` of the first kept event (the next one's, when none is).
    pub(super) first_seq: u64,
    pub(super) first_prev: String,
    /// The last event's sequence number.
    pub(super) last_seq: u64,
    /// The hash of the line of the event asked for, if it is kept.
    pub(super) hash_at: Option<String>,
}

/// Checks the chain of `session` and its head; returns the number of events kept.
pub(super) fn verify(dir: &Path, session: &str) -> Result<usize, RecordError> {
    walk(dir, session, 0).map(|w| w.count)
}

/// Checks the chain of `session` and its head, noting the hash of event `at` on the way.
pub(super) fn walk(dir: &Path, session: &str, at: u64) -> Result<Walk, RecordError> {
    check_session_id(session)?;
    let head = match read_head(dir, session) {
        Ok(h) => Some(h),
        Err(RecordError::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    let mut links = match head.as_ref().and_then(|h| h.trim.as_ref()) {
        Some(t) => Links::new(session, t.seq, &t.hash, at),
        None => Links::new(session, 0, GENESIS, at),
    };
    for_each_line(dir, session, head.as_ref(), |line| links.line(line))?;
    links.finish(head.as_ref().map(|h| (h.seq, h.hash.as_str())))
}

/// Checks a session's lines, in order, against each other and then against its head: the
/// chain check every store shares.
pub(super) struct Links<'a> {
    session: &'a str,
    seq: u64,
    prev: String,
    first_seq: u64,
    first_prev: String,
    count: usize,
    at: u64,
    hash_at: Option<String>,
}

impl<'a> Links<'a> {
    /// Starts after event `seq`, whose line hashes to `prev` (0 and [`GENESIS`] for a session
    /// kept whole), noting the hash of event `at` on the way.
    pub(super) fn new(session: &'a str, seq: u64, prev: &str, at: u64) -> Links<'a> {
        Links {
            session,
            seq,
            prev: prev.to_string(),
            first_seq: seq + 1,
            first_prev: prev.to_string(),
            count: 0,
            at,
            hash_at: None,
        }
    }

    fn broken(&self, line: u64, problem: String) -> RecordError {
        RecordError::Broken {
            session: self.session.to_string(),
            line: line as usize,
            problem,
        }
    }

    /// The next line (without its newline; `None` for one cut off without it).
    pub(super) fn line(&mut self, line: Option<&[u8]>) -> Result<(), RecordError> {
        let expected = self.seq + 1;
        let Some(body) = line else {
            return Err(self.broken(expected, "is cut off (no newline)".into()));
        };
        let ev: Event = serde_json::from_slice(body)
            .map_err(|e| self.broken(expected, format!("is not a valid event ({e})")))?;
        if ev.prev != self.prev {
            return Err(self.broken(
                expected,
                "does not follow the event before it (altered, removed or reordered events)".into(),
            ));
        }
        if ev.seq != expected {
            return Err(self.broken(
                expected,
                format!("has sequence number {} instead of {expected}", ev.seq),
            ));
        }
        if ev.session != self.session {
            return Err(self.broken(expected, "belongs to another session".into()));
        }
        self.prev = line_hash(body);
        self.seq = expected;
        if self.seq == self.at {
            self.hash_at = Some(self.prev.clone());
        }
        self.count += 1;
        Ok(())
    }

    /// Checks the last line against the head's sequence number and hash.
    pub(super) fn finish(self, head: Option<(u64, &str)>) -> Result<Walk, RecordError> {
        let (seq, prev) = (self.seq, self.prev.clone());
        let problem = match head {
            Some((hs, hh)) if hs == seq && hh == prev => None,
            Some((hs, _)) if hs > seq => {
                Some((seq + 1, format!("is missing: the session had {hs} events")))
            }
            Some((hs, _)) if hs < seq => Some((
                hs + 1,
                format!("was added after the session's last recorded event ({hs})"),
            )),
            Some(_) => Some((seq, "was altered after it was recorded".into())),
            None => Some((
                seq,
                "has no head record to check the last event against".into(),
            )),
        };
        if let Some((line, problem)) = problem {
            return Err(self.broken(line, problem));
        }
        Ok(Walk {
            count: self.count,
            first_seq: self.first_seq,
            first_prev: self.first_prev,
            last_seq: seq,
            hash_at: self.hash_at,
        })
    }
}

/// Reads every kept event of `session`.
pub(super) fn read(dir: &Path, session: &str) -> Result<Vec<Event>, RecordError> {
    check_session_id(session)?;
    let head = match read_head(dir, session) {
        Ok(h) => Some(h),
        Err(RecordError::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for_each_line(dir, session, head.as_ref(), |line| {
        let n = out.len() + 1;
        let broken = |problem: String| RecordError::Broken {
            session: session.to_string(),
            line: n,
            problem,
        };
        let body = line.ok_or_else(|| broken("is cut off (no newline)".into()))?;
        out.push(
            serde_json::from_slice(body)
                .map_err(|e| broken(format!("is not a valid event ({e})")))?,
        );
        Ok(())
    })?;
    Ok(out)
}

/// Whether an event is a session's revocation: an `end` whose reason is `revoked`.
pub(super) fn is_revocation(kind: &str, data: &Value) -> bool {
    kind == "end" && data.get("reason").and_then(Value::as_str) == Some("revoked")
}

/// The length of `file` up to and including its last newline, read from the end.
fn complete_len(file: &mut File, len: u64) -> std::io::Result<u64> {
    use std::io::Read;
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let n = (end.min(buf.len() as u64)) as usize;
        file.seek(SeekFrom::Start(end - n as u64))?;
        file.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(end - n as u64 + i as u64 + 1);
        }
        end -= n as u64;
    }
    Ok(0)
}

/// The file a session's lines set aside at a restart go to (see [`recover`]): beside its
/// segments, never read as one.
pub(super) fn set_aside_path(dir: &Path, session: &str) -> PathBuf {
    dir.join(format!("{session}.unacknowledged"))
}

/// Where, in segment `n`, the lines after the head's event begin: the byte offset after the
/// last line at or before `head.seq`, or `None` when a line cannot be read (not a crash's
/// doing: left in place for `verify` to report).
fn end_of_head(file: File, head: &Head) -> std::io::Result<Option<u64>> {
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut at = 0u64;
    loop {
        line.clear();
        let got = reader.read_until(b'\n', &mut line)?;
        if got == 0 {
            return Ok(Some(at));
        }
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        match serde_json::from_slice::<Event>(body) {
            Ok(ev) if ev.seq <= head.seq => at += got as u64,
            Ok(_) => return Ok(Some(at)),
            Err(_) => return Ok(None),
        }
    }
}

/// Cuts a torn last line (no newline, left by a crash) off a session's last segment, then sets
/// aside every complete line after the head's event: they go, in order, to the session's
/// `.unacknowledged` file (synced before they are cut from the segments) and a warning names it.
///
/// A head is written only after its segments are flushed, and with [`Durability::EveryEvent`]
/// an event is acknowledged only once its head is synced, so the lines after the head are
/// events a crash stopped before anyone was told they were recorded — or lines added by hand.
/// Either way a restart never takes them into the chain (nothing is blessed), and nothing is
/// destroyed. With [`Durability::Batched`] a power loss can also leave acknowledged events of
/// the last interval there, which is what that setting allows.
fn recover(dir: &Path, session: &str) -> Result<(), RecordError> {
    let head = match read_head(dir, session) {
        Ok(h) => h,
        Err(RecordError::NotFound(_)) => Head::new(),
        Err(e) => return Err(e),
    };
    // The torn tail, if any, of the last segment.
    if let Some(&last) = segment_numbers(dir, session, Some(&head)).last() {
        let path = segment_path(dir, session, last);
        match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(mut file) => {
                let len = file.metadata().map_err(io(&path))?.len();
                let good_len = complete_len(&mut file, len).map_err(io(&path))?;
                if len != good_len {
                    tracing::warn!(file = %path.display(), cut = len - good_len, "recording had a torn last line; truncated it");
                    file.set_len(good_len).map_err(io(&path))?;
                    file.sync_data().map_err(io(&path))?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path)(e)),
        }
    }
    // What follows the head's event: the rest of its segment, and any segment after it.
    let current = segment_path(dir, session, head.segment);
    let cut = match File::open(&current) {
        Ok(f) => match end_of_head(f, &head).map_err(io(&current))? {
            Some(at) => Some(at),
            None => return Ok(()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(&current)(e)),
    };
    let mut after: Vec<u8> = Vec::new();
    if let Some(at) = cut {
        let mut f = File::open(&current).map_err(io(&current))?;
        f.seek(SeekFrom::Start(at)).map_err(io(&current))?;
        std::io::Read::read_to_end(&mut f, &mut after).map_err(io(&current))?;
    }
    let mut later = Vec::new();
    let mut n = head.segment + 1;
    loop {
        let path = segment_path(dir, session, n);
        match std::fs::read(&path) {
            Ok(bytes) => {
                after.extend_from_slice(&bytes);
                later.push(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(io(&path)(e)),
        }
        n += 1;
    }
    if after.is_empty() {
        return Ok(());
    }
    let aside = set_aside_path(dir, session);
    let mut out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&aside)
        .map_err(io(&aside))?;
    out.write_all(&after).map_err(io(&aside))?;
    out.sync_data().map_err(io(&aside))?;
    if let Some(at) = cut {
        let f = OpenOptions::new()
            .write(true)
            .open(&current)
            .map_err(io(&current))?;
        f.set_len(at).map_err(io(&current))?;
        f.sync_data().map_err(io(&current))?;
    }
    for path in later {
        std::fs::remove_file(&path).map_err(io(&path))?;
    }
    let lines = after.iter().filter(|&&b| b == b'\n').count();
    tracing::warn!(
        session,
        lines,
        file = %aside.display(),
        "recording had lines after its last acknowledged event (a crash, or added by hand); set them aside, outside the chain"
    );
    Ok(())
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn slot<'a>(
        &self,
        open: &'a mut HashMap<String, Open>,
        session: &str,
    ) -> Result<&'a mut Open, RecordError> {
        if !open.contains_key(session) {
            let head = match read_head(&self.dir, session) {
                Ok(h) => h,
                Err(RecordError::NotFound(_)) => Head::new(),
                Err(e) => return Err(e),
            };
            let path = segment_path(&self.dir, session, head.segment);
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io(&path))?;
            let size = file.metadata().map_err(io(&path))?.len();
            open.insert(
                session.to_string(),
                Open {
                    file: Arc::new(file),
                    size,
                    durable: Chain::of(&head),
                    head,
                    head_file: None,
                },
            );
        }
        Ok(open.get_mut(session).expect("inserted above"))
    }

    /// Rewrites `slot`'s head record in place from its durable chain; returns the file, to be
    /// flushed by the caller when the durability asks for it.
    fn write_head(&self, slot: &mut Open, session: &str) -> Result<Arc<File>, RecordError> {
        let head_path = head_path(&self.dir, session);
        if slot.head_file.is_none() {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&head_path)
                .map_err(io(&head_path))?;
            slot.head_file = Some(Arc::new(f));
        }
        let head_file = slot.head_file.clone().expect("opened above");
        write_head_in_place(&head_file, &slot.disk_head()).map_err(io(&head_path))?;
        Ok(head_file)
    }

    /// Writes one event (its line and, when batched, its head) without waiting for the disk.
    fn write(
        &self,
        state: &mut State,
        session: &str,
        kind: &str,
        data: Value,
    ) -> Result<Event, RecordError> {
        check_session_id(session)?;
        if let Some(why) = &state.failed {
            return Err(io(&self.dir)(std::io::Error::other(format!(
                "an earlier flush to disk failed ({why}); what is written cannot be trusted to reach the disk: fix the disk and restart hoopguard"
            ))));
        }
        let segment_size = self.segment_size.load(Ordering::Relaxed);
        let slot = self.slot(&mut state.open, session)?;
        let revoking = is_revocation(kind, &data);
        let event = Event {
            seq: slot.head.seq + 1,
            at: now_ms(),
            session: session.to_string(),
            kind: kind.to_string(),
            prev: slot.head.hash.clone(),
            data,
        };
        let mut line =
            serde_json::to_vec(&event).map_err(|e| io(&self.dir)(std::io::Error::other(e)))?;
        line.push(b'\n');
        if slot.size > 0 && slot.size + line.len() as u64 > segment_size {
            // Rotate: the full segment is flushed and closed; the head names the new one once
            // an event in it is on disk (a crash in between is found by `recover`).
            let old = segment_path(&self.dir, session, slot.head.segment);
            slot.file.sync_data().map_err(io(&old))?;
            let path = segment_path(&self.dir, session, slot.head.segment + 1);
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io(&path))?;
            slot.file = Arc::new(file);
            slot.size = 0;
            slot.head.segment += 1;
        }
        let path = segment_path(&self.dir, session, slot.head.segment);
        (&*slot.file).write_all(&line).map_err(io(&path))?;
        slot.size += line.len() as u64;
        slot.head.seq = event.seq;
        slot.head.hash = line_hash(&line[..line.len() - 1]);
        slot.head.ended = kind == "end";
        slot.head.revoked |= revoking;
        match self.durability {
            Durability::Batched => {
                slot.durable = Chain::of(&slot.head);
                self.write_head(slot, session)?;
            }
            Durability::EveryEvent => {
                state.dirty.insert(session.to_string());
            }
        }
        Ok(event)
    }

    /// The committer: flushes what was written since the last pass — segments first, then the
    /// heads that name their new last events — and then acknowledges every append of the pass.
    /// A head on disk never runs ahead of its segment, so after a crash the head is at or behind
    /// the last complete line, and [`recover`] catches it up.
    fn commit(&self) {
        loop {
            let (waiting, segments) = {
                let mut state = self.lock();
                while state.waiting.is_empty() && !state.closing {
                    state = self.work.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                if state.waiting.is_empty() {
                    return;
                }
                let waiting = std::mem::take(&mut state.waiting);
                let dirty = std::mem::take(&mut state.dirty);
                let State { open, .. } = &mut *state;
                let segments: Vec<(String, Arc<File>, Chain)> = dirty
                    .into_iter()
                    .filter_map(|s| {
                        let slot = open.get(&s)?;
                        Some((s, slot.file.clone(), Chain::of(&slot.head)))
                    })
                    .collect();
                (waiting, segments)
            };
            let outcome = self.flush(segments);
            let mut state = self.lock();
            if let Err(e) = &outcome {
                tracing::error!(error = %e, "cannot flush the recordings to disk; refusing every call from now on");
                state.failed.get_or_insert_with(|| e.to_string());
            }
            drop(state);
            for (event, done) in waiting {
                done(match &outcome {
                    Ok(()) => Ok(event),
                    Err(e) => Err(io(&self.dir)(std::io::Error::other(e.to_string()))),
                });
            }
        }
    }

    fn flush(&self, segments: Vec<(String, Arc<File>, Chain)>) -> Result<(), RecordError> {
        sync_each(
            segments
                .iter()
                .map(|(session, file, chain)| {
                    (
                        segment_path(&self.dir, session, chain.segment),
                        file.clone(),
                    )
                })
                .collect(),
        )?;
        let mut heads = Vec::with_capacity(segments.len());
        {
            let mut state = self.lock();
            for (session, _, chain) in segments {
                // Retention may have removed the whole session since.
                let Some(slot) = state.open.get_mut(&session) else {
                    continue;
                };
                if chain.seq > slot.durable.seq {
                    slot.durable = chain;
                }
                heads.push((self.write_head(slot, &session)?, session));
            }
        }
        sync_each(
            heads
                .into_iter()
                .map(|(file, session)| (head_path(&self.dir, &session), file))
                .collect(),
        )
    }
}

/// The most files [`sync_each`] syncs at once.
const SYNC_PARALLEL: usize = 16;

/// `fdatasync`s every file, several at once: each session has its own segment and head, and
/// concurrent syncs of different files share the file system's journal commits, where one
/// after the other each waits for its own.
fn sync_each(files: Vec<(PathBuf, Arc<File>)>) -> Result<(), RecordError> {
    if files.len() <= 1 {
        for (path, file) in &files {
            file.sync_data().map_err(io(path))?;
        }
        return Ok(());
    }
    for chunk in files.chunks(SYNC_PARALLEL) {
        std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|(path, file)| s.spawn(move || file.sync_data().map_err(io(path))))
                .collect();
            handles.into_iter().try_for_each(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(io(&chunk[0].0)(std::io::Error::other(
                        "a sync thread panicked",
                    )))
                })
            })
        })?;
    }
    Ok(())
}

impl JsonlStore {
    /// Opens (creating) the recordings directory; torn last lines left by a crash are cut off.
    pub fn open(dir: &Path, durability: Durability) -> Result<JsonlStore, RecordError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        for session in session_ids(dir)? {
            recover(dir, &session)?;
        }
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            durability,
            segment_size: AtomicU64::new(DEFAULT_SEGMENT_SIZE),
            state: Mutex::new(State::default()),
            work: Condvar::new(),
        });
        let committer = match durability {
            Durability::Batched => None,
            Durability::EveryEvent => {
                let s = shared.clone();
                let t = std::thread::Builder::new()
                    .name("hoopguard-record-commit".into())
                    .spawn(move || s.commit())
                    .map_err(io(dir))?;
                Some(t)
            }
        };
        Ok(JsonlStore { shared, committer })
    }

    /// Starts a session's next segment when the current one would pass `bytes` (at least
    /// 4 KiB). Default [`DEFAULT_SEGMENT_SIZE`].
    pub fn with_segment_size(self, bytes: u64) -> Self {
        self.shared
            .segment_size
            .store(bytes.max(4096), Ordering::Relaxed);
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }
}

impl Store for JsonlStore {
    fn submit(&self, session: &str, kind: &str, data: Value, done: Done) {
        let shared = &self.shared;
        let mut state = shared.lock();
        let written = shared.write(&mut state, session, kind, data);
        match (written, shared.durability) {
            (Ok(event), Durability::EveryEvent) => {
                state.waiting.push((event, done));
                drop(state);
                shared.work.notify_one();
            }
            (written, _) => {
                drop(state);
                done(written);
            }
        }
    }

    fn sync(&self) -> Result<(), RecordError> {
        let state = self.shared.lock();
        for (session, slot) in state.open.iter() {
            let path = segment_path(&self.shared.dir, session, slot.head.segment);
            slot.file.sync_data().map_err(io(&path))?;
            if let Some(h) = &slot.head_file {
                h.sync_data()
                    .map_err(io(&head_path(&self.shared.dir, session)))?;
            }
        }
        Ok(())
    }

    fn state(&self, session: &str) -> Option<SessionState> {
        check_session_id(session).ok()?;
        let of = |head: &Head| SessionState {
            events: head.seq,
            ended: head.ended,
            revoked: head.revoked,
        };
        let state = self.shared.lock();
        match state.open.get(session) {
            Some(slot) => Some(of(&slot.head)),
            None => read_head(&self.shared.dir, session).ok().map(|h| of(&h)),
        }
    }

    fn open_sessions(&self) -> Vec<String> {
        let state = self.shared.lock();
        state
            .open
            .iter()
            .filter(|(_, slot)| !slot.head.ended)
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn sessions(&self) -> Result<Vec<String>, RecordError> {
        session_ids(&self.shared.dir)
    }

    fn read(&self, session: &str) -> Result<Vec<Event>, RecordError> {
        read(&self.shared.dir, session)
    }

    fn verify(&self, session: &str) -> Result<usize, RecordError> {
        verify(&self.shared.dir, session)
    }

    fn summary(&self, session: &str) -> Result<Option<super::digest::Summary>, RecordError> {
        let head = {
            let state = self.shared.lock();
            state.open.get(session).map(Open::disk_head)
        };
        let head = match head {
            Some(h) => h,
            None => match read_head(&self.shared.dir, session) {
                Ok(h) => h,
                Err(RecordError::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e),
            },
        };
        if head.seq == 0 {
            return Ok(None);
        }
        let (first_seq, first_prev) = match &head.trim {
            Some(t) => (t.seq + 1, t.hash.clone()),
            None => (1, GENESIS.to_string()),
        };
        Ok(Some(super::digest::Summary {
            events: head.seq,
            last: head.hash,
            first_seq,
            first_prev,
            ended: head.ended,
        }))
    }

    fn retain(&self, policy: &Retention, now: SystemTime) -> Result<Removed, RecordError> {
        let mut state = self.shared.lock();
        let open = &mut state.open;
        // Every kept segment: (modified, size, session, number), per session oldest first.
        struct Seg {
            modified: SystemTime,
            size: u64,
            n: u32,
        }
        // Per session: its head, the segments that may go, and whether its current one stays.
        let mut all: HashMap<String, (Head, Vec<Seg>, bool)> = HashMap::new();
        let mut total = 0u64;
        for session in session_ids(&self.shared.dir)? {
            let head = match open.get(&session) {
                Some(slot) => slot.head.clone(),
                None => match read_head(&self.shared.dir, &session) {
                    Ok(h) => h,
                    // No head (yet, or a broken one): not ours to remove.
                    Err(_) => continue,
                },
            };
            let mut segs = Vec::new();
            for n in head.first..=head.segment {
                let path = segment_path(&self.shared.dir, &session, n);
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue;
                };
                total += meta.len();
                segs.push(Seg {
                    modified: meta.modified().unwrap_or(now),
                    size: meta.len(),
                    n,
                });
            }
            // The segment an open session is writing stays.
            let writing = open.get(&session).is_some_and(|s| !s.head.ended);
            if writing {
                segs.pop();
            }
            all.insert(session, (head, segs, writing));
        }
        // What goes: everything older than the age limit, then the oldest segments until the
        // rest fits the size limit. Per session only from the front, so what is kept is one run.
        let cutoff = policy
            .max_age
            .and_then(|age| now.checked_sub(age))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut drop: HashMap<String, usize> = HashMap::new();
        for (session, (_, segs, _)) in &all {
            let n = segs.iter().take_while(|s| s.modified < cutoff).count();
            if n > 0 {
                drop.insert(session.clone(), n);
                total -= segs[..n].iter().map(|s| s.size).sum::<u64>();
            }
        }
        if let Some(max) = policy.max_size {
            let mut fronts: Vec<(SystemTime, String, usize)> = Vec::new();
            for (session, (_, segs, _)) in &all {
                let from = drop.get(session).copied().unwrap_or(0);
                for (i, s) in segs.iter().enumerate().skip(from) {
                    fronts.push((s.modified, session.clone(), i));
                }
            }
            fronts.sort();
            for (_, session, i) in fronts {
                if total <= max {
                    break;
                }
                let from = drop.get(&session).copied().unwrap_or(0);
                if i != from {
                    continue; // an older segment of this session is kept
                }
                total -= all[&session].1[i].size;
                drop.insert(session, i + 1);
            }
        }
        let mut removed = Removed::default();
        for (session, n) in drop {
            let (head, segs, writing) = &all[&session];
            let next = match segs.get(n) {
                Some(s) => s.n,
                None if *writing => head.segment,
                None => head.segment + 1,
            };
            let whole = next > head.segment;
            if !whole {
                // The head first (a crash before the files go leaves only unread files): the
                // kept events verify from the last removed one.
                let first = read_first_event(&self.shared.dir, &session, next)?;
                let mut h = head.clone();
                h.first = next;
                h.trim = first.map(|e| Trim {
                    seq: e.seq - 1,
                    hash: e.prev,
                });
                match open.get_mut(&session) {
                    Some(slot) => {
                        slot.head = h;
                        self.shared
                            .write_head(slot, &session)?
                            .sync_data()
                            .map_err(io(&head_path(&self.shared.dir, &session)))?;
                    }
                    None => write_head(&self.shared.dir, &session, &h)?,
                }
            }
            for s in &segs[..n] {
                let path = segment_path(&self.shared.dir, &session, s.n);
                std::fs::remove_file(&path).map_err(io(&path))?;
                removed.segments += 1;
                removed.bytes += s.size;
            }
            if whole {
                // Nothing left of it; the head goes last.
                open.remove(&session);
                let aside = set_aside_path(&self.shared.dir, &session);
                match std::fs::remove_file(&aside) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(io(&aside)(e));
                    }
                    _ => {}
                }
                let hp = head_path(&self.shared.dir, &session);
                std::fs::remove_file(&hp).map_err(io(&hp))?;
                removed.sessions.push(session);
            }
        }
        Ok(removed)
    }
}

fn read_first_event(dir: &Path, session: &str, n: u32) -> Result<Option<Event>, RecordError> {
    let path = segment_path(dir, session, n);
    let file = File::open(&path).map_err(io(&path))?;
    let mut line = String::new();
    BufReader::new(file)
        .read_line(&mut line)
        .map_err(io(&path))?;
    Ok(serde_json::from_str(line.trim_end()).ok())
}
