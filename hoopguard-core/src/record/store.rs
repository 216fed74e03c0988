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
use std::sync::Mutex;
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
    file: File,
    /// Bytes in the current segment.
    size: u64,
    head: Head,
    /// The head record, rewritten in place after every event (no new file per event: creating
    /// and renaming one made the filesystem flush on every call).
    head_file: Option<File>,
}

/// Session recordings as JSON Lines files in one directory. See the [module docs](self).
pub struct JsonlStore {
    dir: PathBuf,
    durability: Durability,
    segment_size: u64,
    open: Mutex<HashMap<String, Open>>,
}

impl std::fmt::Debug for JsonlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonlStore")
            .field("dir", &self.dir)
            .field("durability", &self.durability)
            .field("segment_size", &self.segment_size)
            .finish_non_exhaustive()
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
    let broken = |line: u64, problem: String| RecordError::Broken {
        session: session.to_string(),
        line: line as usize,
        problem,
    };
    let (mut seq, mut prev) = match head.as_ref().and_then(|h| h.trim.as_ref()) {
        Some(t) => (t.seq, t.hash.clone()),
        None => (0, GENESIS.to_string()),
    };
    let (first_seq, first_prev) = (seq + 1, prev.clone());
    let mut count = 0usize;
    let mut hash_at = None;
    for_each_line(dir, session, head.as_ref(), |line| {
        let expected = seq + 1;
        let Some(body) = line else {
            return Err(broken(expected, "is cut off (no newline)".into()));
        };
        let ev: Event = serde_json::from_slice(body)
            .map_err(|e| broken(expected, format!("is not a valid event ({e})")))?;
        if ev.prev != prev {
            return Err(broken(
                expected,
                "does not follow the event before it (altered, removed or reordered events)".into(),
            ));
        }
        if ev.seq != expected {
            return Err(broken(
                expected,
                format!("has sequence number {} instead of {expected}", ev.seq),
            ));
        }
        if ev.session != session {
            return Err(broken(expected, "belongs to another session".into()));
        }
        prev = line_hash(body);
        seq = expected;
        if seq == at {
            hash_at = Some(prev.clone());
        }
        count += 1;
        Ok(())
    })?;
    let walked = Walk {
        count,
        first_seq,
        first_prev,
        last_seq: seq,
        hash_at,
    };
    match head {
        Some(head) if head.seq == seq && head.hash == prev => Ok(walked),
        Some(head) if head.seq > seq => Err(broken(
            seq + 1,
            format!("is missing: the session had {} events", head.seq),
        )),
        Some(head) if head.seq < seq => Err(broken(
            head.seq + 1,
            format!(
                "was added after the session's last recorded event ({})",
                head.seq
            ),
        )),
        Some(_) => Err(broken(seq, "was altered after it was recorded".into())),
        None => Err(broken(
            seq,
            "has no head record to check the last event against".into(),
        )),
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
fn is_revocation(kind: &str, data: &Value) -> bool {
    kind == "end" && data.get("reason").and_then(Value::as_str) == Some("revoked")
}

/// Cuts a torn last line (no newline, left by a crash) off a session's last segment, and makes
/// the head agree with the last complete line when a crash left it one event behind.
fn recover(dir: &Path, session: &str) -> Result<(), RecordError> {
    let head = match read_head(dir, session) {
        Ok(h) => Some(h),
        Err(RecordError::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    let Some(&last_segment) = segment_numbers(dir, session, head.as_ref()).last() else {
        return Ok(());
    };
    let path = segment_path(dir, session, last_segment);
    let mut file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(&path)(e)),
    };
    let mut reader = BufReader::new(&file);
    let mut good_len = 0u64;
    let mut last: Option<(u64, String, bool, bool)> = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(io(&path))?;
        if n == 0 || line.last() != Some(&b'\n') {
            break; // the end, or a torn tail
        }
        let body = &line[..line.len() - 1];
        let Ok(ev) = serde_json::from_slice::<Event>(body) else {
            // Not our crash: leave it for `verify` to report.
            return Ok(());
        };
        good_len += n as u64;
        last = Some((
            ev.seq,
            line_hash(body),
            ev.kind == "end",
            is_revocation(&ev.kind, &ev.data),
        ));
    }
    let len = file.metadata().map_err(io(&path))?.len();
    if len != good_len {
        tracing::warn!(file = %path.display(), cut = len - good_len, "recording had a torn last line; truncated it");
        file.set_len(good_len).map_err(io(&path))?;
        file.seek(SeekFrom::End(0)).map_err(io(&path))?;
        file.sync_data().map_err(io(&path))?;
    }
    // A crash between writing a line and writing the head leaves the head exactly one event
    // behind; only that is repaired. Anything else is left for `verify` to report, so lines
    // appended by hand are not blessed by a restart.
    if let Some((seq, hash, ended, revoked)) = last {
        let one_behind = match &head {
            Some(h) => h.seq + 1 == seq,
            None => seq == 1,
        };
        if one_behind {
            let mut h = head.unwrap_or_else(Head::new);
            h.seq = seq;
            h.hash = hash;
            h.segment = last_segment;
            h.ended = ended;
            h.revoked |= revoked;
            write_head(dir, session, &h)?;
        }
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
        Ok(JsonlStore {
            dir: dir.to_path_buf(),
            durability,
            segment_size: DEFAULT_SEGMENT_SIZE,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Starts a session's next segment when the current one would pass `bytes` (at least
    /// 4 KiB). Default [`DEFAULT_SEGMENT_SIZE`].
    pub fn with_segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes.max(4096);
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
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
                    file,
                    size,
                    head,
                    head_file: None,
                },
            );
        }
        Ok(open.get_mut(session).expect("inserted above"))
    }

    fn write_head(&self, slot: &mut Open, session: &str) -> Result<(), RecordError> {
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
        Ok(())
    }
}

impl Store for JsonlStore {
    fn append(&self, session: &str, kind: &str, data: Value) -> Result<Event, RecordError> {
        check_session_id(session)?;
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let slot = self.slot(&mut open, session)?;
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
        if slot.size > 0 && slot.size + line.len() as u64 > self.segment_size {
            // Rotate: the full segment is flushed and closed; the head names the new one once
            // the event is in it (a crash in between is found by `recover`).
            let old = segment_path(&self.dir, session, slot.head.segment);
            slot.file.sync_data().map_err(io(&old))?;
            let path = segment_path(&self.dir, session, slot.head.segment + 1);
            slot.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io(&path))?;
            slot.size = 0;
            slot.head.segment += 1;
        }
        let path = segment_path(&self.dir, session, slot.head.segment);
        slot.file.write_all(&line).map_err(io(&path))?;
        if self.durability == Durability::EveryEvent {
            slot.file.sync_data().map_err(io(&path))?;
        }
        slot.size += line.len() as u64;
        slot.head.seq = event.seq;
        slot.head.hash = line_hash(&line[..line.len() - 1]);
        slot.head.ended = kind == "end";
        slot.head.revoked |= revoking;
        self.write_head(slot, session)?;
        Ok(event)
    }

    fn sync(&self) -> Result<(), RecordError> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        for (session, slot) in open.iter() {
            let path = segment_path(&self.dir, session, slot.head.segment);
            slot.file.sync_data().map_err(io(&path))?;
            if let Some(h) = &slot.head_file {
                h.sync_data().map_err(io(&head_path(&self.dir, session)))?;
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
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        match open.get(session) {
            Some(slot) => Some(of(&slot.head)),
            None => read_head(&self.dir, session).ok().map(|h| of(&h)),
        }
    }

    fn open_sessions(&self) -> Vec<String> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.iter()
            .filter(|(_, slot)| !slot.head.ended)
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn sessions(&self) -> Result<Vec<String>, RecordError> {
        session_ids(&self.dir)
    }

    fn read(&self, session: &str) -> Result<Vec<Event>, RecordError> {
        read(&self.dir, session)
    }

    fn verify(&self, session: &str) -> Result<usize, RecordError> {
        verify(&self.dir, session)
    }

    fn summary(&self, session: &str) -> Result<Option<super::digest::Summary>, RecordError> {
        let head = {
            let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            open.get(session).map(|slot| slot.head.clone())
        };
        let head = match head {
            Some(h) => h,
            None => match read_head(&self.dir, session) {
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
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        // Every kept segment: (modified, size, session, number), per session oldest first.
        struct Seg {
            modified: SystemTime,
            size: u64,
            n: u32,
        }
        // Per session: its head, the segments that may go, and whether its current one stays.
        let mut all: HashMap<String, (Head, Vec<Seg>, bool)> = HashMap::new();
        let mut total = 0u64;
        for session in session_ids(&self.dir)? {
            let head = match open.get(&session) {
                Some(slot) => slot.head.clone(),
                None => match read_head(&self.dir, &session) {
                    Ok(h) => h,
                    // No head (yet, or a broken one): not ours to remove.
                    Err(_) => continue,
                },
            };
            let mut segs = Vec::new();
            for n in head.first..=head.segment {
                let path = segment_path(&self.dir, &session, n);
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
                let first = read_first_event(&self.dir, &session, next)?;
                let mut h = head.clone();
                h.first = next;
                h.trim = first.map(|e| Trim {
                    seq: e.seq - 1,
                    hash: e.prev,
                });
                match open.get_mut(&session) {
                    Some(slot) => {
                        slot.head = h;
                        self.write_head(slot, &session)?;
                    }
                    None => write_head(&self.dir, &session, &h)?,
                }
            }
            for s in &segs[..n] {
                let path = segment_path(&self.dir, &session, s.n);
                std::fs::remove_file(&path).map_err(io(&path))?;
                removed.segments += 1;
                removed.bytes += s.size;
            }
            if whole {
                // Nothing left of it; the head goes last.
                open.remove(&session);
                let hp = head_path(&self.dir, &session);
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
