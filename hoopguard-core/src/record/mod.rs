//! Session recordings: who did what, when, under which decision, and what came back.
//!
//! A [`Recorder`] appends events to a [`Store`]. The embedded store, [`JsonlStore`], keeps
//! append-only JSON Lines per session in the data directory: every event line carries `prev`,
//! the SHA-256 of the line before it (64 zeros for the first), so [`verify`] finds a flipped
//! byte, a deleted event or a reordered pair and names the first broken event; each session's
//! head (the hash of its last line and its event count) sits beside its files, so removing or
//! altering the last event is caught too. Sessions are split into segments of a set size, and
//! [`Recorder::retain`] removes the oldest segments by age and total size. A SQLite [`Index`]
//! beside them (feature `sqlite`) finds sessions by subject, time, action and decision.
//!
//! A crash mid-write leaves at most a torn last line; opening the store truncates it (and only
//! it), and the session still verifies. Writing is fail-closed: [`Recorder::append`] returns an
//! error the caller must turn into a refusal ([`Recorder::record`] lets the call through only
//! when best effort was chosen, and logs the gap).
//!
//! Bodies must be masked before they are recorded: [`Recorder::mask_body`] and
//! [`Recorder::mask_value`] do it with the gateway's masking engine; without one they record
//! nothing of the body.
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

pub mod digest;
#[cfg(feature = "sqlite")]
mod index;
#[cfg(feature = "postgres")]
mod pg;
mod query;
mod revoked;
mod store;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

#[cfg(feature = "sqlite")]
pub use index::{INDEX_FILE, Index};
#[cfg(feature = "postgres")]
pub use pg::PgStore;
pub use query::{Query, SessionSummary, call_target};
pub use revoked::{Revoked, Stale};
pub use store::{DEFAULT_SEGMENT_SIZE, Done, JsonlStore};

use crate::mask::Engine;

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
    /// The chain is broken at this event (its sequence number).
    #[error("session `{session}`: event {line} {problem}")]
    Broken {
        /// The session.
        session: String,
        /// The first broken event, counting from 1.
        line: usize,
        /// What is wrong with it.
        problem: String,
    },
    /// The index could not be read or written.
    #[error("the recordings index: {0}")]
    Index(String),
    /// A shared store (a database, object storage) could not be reached or refused.
    #[error("the recordings store: {0}")]
    Store(String),
}

/// What an append whose store dropped it without an answer gets.
fn unanswered() -> RecordError {
    RecordError::Store("the store dropped an event without an answer".into())
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

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionState {
    /// Events recorded so far.
    pub events: u64,
    /// Whether the last event is the session's `end`.
    pub ended: bool,
    /// Whether it was revoked ([`Recorder::revoke`]): the data paths refuse its calls.
    pub revoked: bool,
}

/// How much of the recordings to keep. Only whole segments are removed, oldest first; the
/// segment an open session is writing is never removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Remove segments last written longer ago than this.
    pub max_age: Option<Duration>,
    /// Then remove the oldest segments until all of them together take at most this many bytes.
    pub max_size: Option<u64>,
}

/// What [`Recorder::retain`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// Segment files.
    pub segments: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Sessions of which nothing is left.
    pub sessions: Vec<String>,
}

/// Where recordings are kept. [`JsonlStore`] is the embedded one; a shared database or object
/// storage can take its place.
///
/// Appending is asynchronous: [`Store::submit`] hands the event over and calls `done` once it is
/// as durable as the store promises — on whichever thread gets it there, never blocking the
/// caller on the disk or the network — so concurrent appends can share one flush or commit.
/// [`Store::append`] waits for it on the calling thread; [`Recorder::append_async`] awaits it.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Appends one event to `session` (creating it), chained to the one before, and calls
    /// `done` exactly once with the event as stored, or the error that kept it from being stored.
    fn submit(&self, session: &str, kind: &str, data: Value, done: Done);
    /// Appends like [`Store::submit`] and waits for the outcome.
    fn append(&self, session: &str, kind: &str, data: Value) -> Result<Event, RecordError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(
            session,
            kind,
            data,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.recv().unwrap_or_else(|_| Err(unanswered()))
    }
    /// Forces everything appended so far to durable storage.
    fn sync(&self) -> Result<(), RecordError>;
    /// Where `session` stands; `None` if it was never recorded.
    fn state(&self, session: &str) -> Option<SessionState>;
    /// The sessions this store has written to since it was opened and not ended.
    fn open_sessions(&self) -> Vec<String>;
    /// Every recorded session, by id.
    fn sessions(&self) -> Result<Vec<String>, RecordError>;
    /// The kept events of `session`.
    fn read(&self, session: &str) -> Result<Vec<Event>, RecordError>;
    /// Checks the chain of `session`; the number of events kept.
    fn verify(&self, session: &str) -> Result<usize, RecordError>;
    /// Where `session` stands, for a signed digest: its last event and hash, its first kept
    /// event; `None` if it holds no event.
    fn summary(&self, session: &str) -> Result<Option<digest::Summary>, RecordError>;
    /// Removes what `policy` no longer keeps.
    fn retain(&self, policy: &Retention, now: SystemTime) -> Result<Removed, RecordError>;
    /// Whether every replica writes to and reads from this same store (then one replica's
    /// records, such as a revocation's end, are already every replica's).
    fn shared(&self) -> bool {
        false
    }
}

// Without the `sqlite` feature no index writer exists and nothing is ever sent.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
enum IndexOp {
    #[cfg(feature = "sqlite")]
    Row(Box<index::Row>),
    Remove(String),
    Flush(mpsc::Sender<()>),
}

/// Appends events to session recordings, keeps the index current, and masks bodies.
pub struct Recorder {
    store: Arc<dyn Store>,
    index: Option<mpsc::Sender<IndexOp>>,
    best_effort: bool,
    masker: Option<Arc<Engine>>,
    body_cap: usize,
    ending: Mutex<()>,
    digests: Option<(Arc<digest::Digester>, Arc<tokio::sync::Notify>)>,
    revoked: Option<Arc<Revoked>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("store", &self.store)
            .field("indexed", &self.index.is_some())
            .field("best_effort", &self.best_effort)
            .finish_non_exhaustive()
    }
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RecordError + '_ {
    move |source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether `id` can name a session (letters, digits, `-` and `_`, at most 128): what the data
/// paths make and the admin API accepts.
pub fn check_session_id(id: &str) -> Result<(), RecordError> {
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

pub(crate) fn line_hash(line: &[u8]) -> String {
    hex::encode(Sha256::digest(line))
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(feature = "sqlite")]
/// How often the index writer takes what has arrived and writes it in one transaction.
const INDEX_BATCH: Duration = Duration::from_millis(20);

#[cfg(feature = "sqlite")]
/// Keeps the index current off the call path: events arrive on a channel and are written in
/// batches, every [`INDEX_BATCH`], one transaction each.
fn index_writer(mut index: Index, rx: mpsc::Receiver<IndexOp>) {
    let flush = |index: &mut Index, rows: &mut Vec<index::Row>| {
        if !rows.is_empty() {
            if let Err(e) = index.apply(rows) {
                tracing::error!(error = %e, "cannot update the recordings index; `sessions list` re-indexes from the recordings");
            }
            rows.clear();
        }
    };
    let mut rows = Vec::new();
    let mut open = true;
    while open {
        // Poll rather than wait on the channel: a sender never has to wake this thread, so a
        // call pays only for the hand-over; one transaction per interval.
        std::thread::sleep(INDEX_BATCH);
        let mut ops = Vec::new();
        loop {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        let mut acks = Vec::new();
        for op in ops {
            match op {
                IndexOp::Row(r) => rows.push(*r),
                IndexOp::Remove(s) => {
                    flush(&mut index, &mut rows);
                    if let Err(e) = index.remove(&s) {
                        tracing::error!(error = %e, "cannot update the recordings index");
                    }
                }
                IndexOp::Flush(ack) => acks.push(ack),
            }
        }
        flush(&mut index, &mut rows);
        for a in acks {
            let _ = a.send(());
        }
    }
}

impl Recorder {
    /// Opens (creating) the embedded store in `dir` with its index; torn last lines left by a
    /// crash are cut off and the index brought up to date.
    #[cfg(feature = "sqlite")]
    pub fn open(dir: &Path, durability: Durability) -> Result<Recorder, RecordError> {
        Recorder::new(Arc::new(JsonlStore::open(dir, durability)?)).with_index(dir)
    }

    /// Opens (creating) the embedded store in `dir`; torn last lines left by a crash are cut
    /// off. Without the `sqlite` feature there is no index.
    #[cfg(not(feature = "sqlite"))]
    pub fn open(dir: &Path, durability: Durability) -> Result<Recorder, RecordError> {
        Ok(Recorder::new(Arc::new(JsonlStore::open(dir, durability)?)))
    }

    /// Records into `store`, without an index.
    pub fn new(store: Arc<dyn Store>) -> Recorder {
        Recorder {
            store,
            index: None,
            best_effort: false,
            masker: None,
            body_cap: 64 * 1024,
            ending: Mutex::new(()),
            digests: None,
            revoked: None,
        }
    }

    /// Keeps the index in `dir` ([`INDEX_FILE`]) current, after bringing it in line with the
    /// recordings there.
    #[cfg(feature = "sqlite")]
    pub fn with_index(mut self, dir: &Path) -> Result<Recorder, RecordError> {
        let mut index = Index::open(&dir.join(INDEX_FILE))?;
        let redone = index.reconcile(dir)?;
        if redone > 0 {
            tracing::info!(
                sessions = redone,
                "re-indexed recordings the index did not have"
            );
        }
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("hoopguard-record-index".into())
            .spawn(move || index_writer(index, rx))
            .map_err(|e| RecordError::Index(format!("cannot start the index writer: {e}")))?;
        self.index = Some(tx);
        Ok(self)
    }

    /// With `yes`, callers let calls through when recording fails (each gap is logged) instead
    /// of refusing them. Off by default: an unrecorded call is a refused call.
    pub fn with_best_effort(mut self, yes: bool) -> Self {
        self.best_effort = yes;
        self
    }

    /// Masks bodies with `engine` before they are recorded, keeping at most `cap` bytes of each.
    /// Without a masker no body is recorded.
    pub fn with_masker(mut self, engine: Arc<Engine>, cap: usize) -> Self {
        self.masker = Some(engine);
        self.body_cap = cap;
        self
    }

    /// Also refuses the sessions in `revoked` — those revoked on other replicas, kept current
    /// from the shared store ([`Database::watch_revocations`](crate::shared::Database::watch_revocations)).
    pub fn with_revoked(mut self, revoked: Arc<Revoked>) -> Self {
        self.revoked = Some(revoked);
        self
    }

    /// The shared revocations this recorder consults, if any.
    pub fn revoked(&self) -> Option<&Arc<Revoked>> {
        self.revoked.as_ref()
    }

    /// Whether the data paths must refuse `session`'s calls: it was revoked here or (with
    /// [`Recorder::with_revoked`]) on any replica. An error when the shared revocations are
    /// stale: then nobody can say, and the call is refused too.
    pub fn is_revoked(&self, session: &str) -> Result<bool, Stale> {
        if self.state(session).is_some_and(|s| s.revoked) {
            return Ok(true);
        }
        match &self.revoked {
            Some(r) => r.contains(session),
            None => Ok(false),
        }
    }

    /// How many bytes of each body are recorded.
    pub fn body_cap(&self) -> usize {
        self.body_cap
    }

    /// Signs digests of the recordings with `digester` ([`digest`]): [`Recorder::digest`]
    /// makes one; the end of a session or a retention pass asks for one at once
    /// ([`Recorder::digest_wanted`]).
    pub fn with_digester(mut self, digester: Arc<digest::Digester>) -> Self {
        self.digests = Some((digester, Arc::new(tokio::sync::Notify::new())));
        self
    }

    /// Writes a signed digest of what changed since the last one (`None`: no digester, or
    /// nothing changed).
    pub fn digest(&self) -> Result<Option<digest::Made>, RecordError> {
        match &self.digests {
            Some((d, _)) => d.digest(&*self.store),
            None => Ok(None),
        }
    }

    /// The public key digests are signed with, if they are.
    pub fn digest_public_key(&self) -> Option<digest::PublicKey> {
        self.digests.as_ref().map(|(d, _)| d.public_key())
    }

    /// Notified when a digest should be made now (a session ended, retention removed events).
    pub fn digest_wanted(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.digests.as_ref().map(|(_, n)| n.clone())
    }

    fn want_digest(&self) {
        if let Some((_, n)) = &self.digests {
            n.notify_one();
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn to_index(&self, op: IndexOp) {
        if let Some(tx) = &self.index {
            let _ = tx.send(op);
        }
    }

    /// Waits until the index has everything appended so far (for tests and tools).
    pub fn flush_index(&self) {
        let (ack, done) = mpsc::channel();
        self.to_index(IndexOp::Flush(ack));
        let _ = done.recv_timeout(Duration::from_secs(10));
    }

    /// Appends one event to `session` (creating it), chained to the one before.
    pub fn append(&self, session: &str, kind: &str, data: Value) -> Result<Event, RecordError> {
        let event = self.store.append(session, kind, data)?;
        self.indexed(&event);
        Ok(event)
    }

    /// Appends like [`Recorder::append`], awaiting the store instead of blocking the thread:
    /// concurrent appends share the store's flushes.
    pub async fn append_async(
        &self,
        session: &str,
        kind: &str,
        data: Value,
    ) -> Result<Event, RecordError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.store.submit(
            session,
            kind,
            data,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        let event = rx.await.unwrap_or_else(|_| Err(unanswered()))?;
        self.indexed(&event);
        Ok(event)
    }

    /// Appends without waiting: `done` hears the outcome (for events after the fact, such as an
    /// answer recorded when its body ends).
    pub fn submit(
        self: &Arc<Self>,
        session: &str,
        kind: &str,
        data: Value,
        done: impl FnOnce(Result<(), RecordError>) + Send + 'static,
    ) {
        let rec = self.clone();
        self.store.submit(
            session,
            kind,
            data,
            Box::new(move |r| {
                done(r.map(|event| rec.indexed(&event)));
            }),
        );
    }

    fn indexed(&self, _event: &Event) {
        #[cfg(feature = "sqlite")]
        if self.index.is_some() {
            self.to_index(IndexOp::Row(Box::new(index::Row::of(_event))));
        }
    }

    /// Appends like [`Recorder::append_async`]; when that fails and best effort is on, logs the
    /// gap (session, event kind and error, never the data) and returns `Ok`. Data paths call
    /// this.
    pub async fn record(&self, session: &str, kind: &str, data: Value) -> Result<(), RecordError> {
        let outcome = self.append_async(session, kind, data).await;
        self.gap(session, kind, outcome.map(drop))
    }

    fn gap(
        &self,
        session: &str,
        kind: &str,
        r: Result<(), RecordError>,
    ) -> Result<(), RecordError> {
        match r {
            Err(e) if self.best_effort => {
                tracing::error!(session, kind, error = %e, "recording gap: the call went on unrecorded (record.on_failure = best_effort)");
                Ok(())
            }
            r => r,
        }
    }

    /// Where `session` stands; `None` if it was never recorded.
    pub fn state(&self, session: &str) -> Option<SessionState> {
        self.store.state(session)
    }

    /// Whether the store is the one every replica shares ([`Store::shared`]).
    pub fn is_shared(&self) -> bool {
        self.store.shared()
    }

    /// Whether `session` has been recorded before.
    pub fn exists(&self, session: &str) -> bool {
        self.state(session).is_some()
    }

    /// Records the end of `session` with `reason`, unless it was never recorded or has ended
    /// already. Says whether it recorded one.
    pub fn end(&self, session: &str, reason: &str) -> Result<bool, RecordError> {
        // One end at a time, so two causes at once (a timer and a closing stream) record one.
        let _one = self.ending.lock().unwrap_or_else(|e| e.into_inner());
        match self.state(session) {
            Some(s) if !s.ended => {
                self.append(session, "end", serde_json::json!({ "reason": reason }))?;
                self.want_digest();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Records the end of `session` with `reason` at `at` — the expiry of the credentials or
    /// token behind it — unless it has ended by then. Needs a Tokio runtime; without one nothing
    /// is scheduled (and a warning says so).
    pub fn end_at(self: &Arc<Self>, session: &str, at: SystemTime, reason: &'static str) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                session,
                "no async runtime: the session's end at expiry is not scheduled"
            );
            return;
        };
        let (rec, session) = (self.clone(), session.to_string());
        rt.spawn(async move {
            let left = at.duration_since(SystemTime::now()).unwrap_or_default();
            tokio::time::sleep(left).await;
            // `end` waits for the store: off the async threads.
            let ended = tokio::task::spawn_blocking(move || {
                let r = rec.end(&session, reason);
                (session, r)
            })
            .await;
            if let Ok((session, Err(e))) = ended {
                tracing::error!(session, error = %e, "cannot record the end of a session");
            }
        });
    }

    /// Revokes `session`: records its end with reason `revoked`, who revoked it and why; from
    /// then on the data paths refuse its calls (a restart does not bring it back). `Ok(false)` if
    /// it was revoked already.
    pub fn revoke(&self, session: &str, by: &str, why: &str) -> Result<bool, RecordError> {
        let _one = self.ending.lock().unwrap_or_else(|e| e.into_inner());
        match self.state(session) {
            None => Err(RecordError::NotFound(session.to_string())),
            Some(s) if s.revoked => Ok(false),
            Some(_) => {
                self.append(
                    session,
                    "end",
                    serde_json::json!({ "reason": "revoked", "by": by, "why": why }),
                )?;
                self.want_digest();
                Ok(true)
            }
        }
    }

    /// Ends every session this recorder has written to and not ended, with `reason`
    /// (`gateway shutdown`), and flushes them. Returns how many were ended.
    pub fn end_all(&self, reason: &str) -> Result<usize, RecordError> {
        let sessions = self.store.open_sessions();
        for s in &sessions {
            self.append(s, "end", serde_json::json!({ "reason": reason }))?;
        }
        self.sync()?;
        self.flush_index();
        Ok(sessions.len())
    }

    /// Forces everything appended so far to disk (for [`Durability::Batched`]).
    pub fn sync(&self) -> Result<(), RecordError> {
        self.store.sync()
    }

    /// The sessions recorded, by id.
    pub fn sessions(&self) -> Result<Vec<String>, RecordError> {
        self.store.sessions()
    }

    /// The kept events of `session`, from the store.
    pub fn read(&self, session: &str) -> Result<Vec<Event>, RecordError> {
        self.store.read(session)
    }

    /// Checks the chain of `session` in the store; the number of events kept.
    pub fn verify(&self, session: &str) -> Result<usize, RecordError> {
        self.store.verify(session)
    }

    /// Removes the segments `policy` no longer keeps, and forgets sessions of which nothing is
    /// left.
    pub fn retain(&self, policy: &Retention) -> Result<Removed, RecordError> {
        let removed = self.store.retain(policy, SystemTime::now())?;
        for s in &removed.sessions {
            self.to_index(IndexOp::Remove(s.clone()));
        }
        if removed.segments > 0 {
            self.want_digest();
        }
        Ok(removed)
    }

    /// A body of `content_type` as it may be recorded: masked (form bodies field by field too),
    /// cut to the cap, as text; `None` without a masker, and for binary bodies.
    pub fn mask_body(&self, body: &[u8], content_type: &str) -> Option<String> {
        let engine = self.masker.as_ref()?;
        if body.is_empty() {
            return Some(String::new());
        }
        let form = content_type
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded");
        let masked = if form {
            engine.mask_form(body).0
        } else {
            // Streamed, and only as far as the cap needs: what a stream emits is what masking
            // the whole body gives, so a large body is not masked to the end to keep its start.
            let mut stream = engine.stream();
            let mut out = Vec::new();
            let mut fed = 0;
            while out.len() < self.body_cap && fed < body.len() {
                let n = (body.len() - fed).min(64 * 1024);
                stream.push(&body[fed..fed + n], &mut out);
                fed += n;
            }
            if fed == body.len() {
                stream.finish(&mut out);
            }
            out
        };
        let kept = &masked[..masked.len().min(self.body_cap)];
        let text = match std::str::from_utf8(kept) {
            Ok(t) => t,
            // Cut inside a character by the cap: keep what is whole.
            Err(e) if e.error_len().is_none() => {
                std::str::from_utf8(&kept[..e.valid_up_to()]).unwrap_or_default()
            }
            Err(_) => return None,
        };
        if text.contains('\0') {
            return None;
        }
        Some(text.to_string())
    }

    /// A JSON value (tool arguments, parameters, headers) as it may be recorded: masked (field
    /// names and values) by the configured engine, or the default rules without one.
    pub fn mask_value(&self, v: &Value) -> Value {
        match &self.masker {
            Some(engine) => engine.mask_json(v),
            None => crate::mask::default_engine().mask_json(v),
        }
    }

    /// Text as it may be recorded (a summary, a reason), masked like [`Recorder::mask_value`].
    pub fn mask_text(&self, s: &str) -> String {
        match &self.masker {
            Some(engine) => engine.mask_text(s),
            None => crate::mask::default_engine().mask_text(s),
        }
    }
}

/// The sessions recorded in `dir`, by id, without touching any file (for auditors: nothing is
/// repaired on the way).
pub fn sessions(dir: &Path) -> Result<Vec<String>, RecordError> {
    store::session_ids(dir)
}

/// Checks the chain of `session` in the embedded store in `dir` and its head; returns the
/// number of events kept.
pub fn verify(dir: &Path, session: &str) -> Result<usize, RecordError> {
    store::verify(dir, session)
}

/// Reads every kept event of `session` (after [`verify`], for showing or exporting).
pub fn read_session(dir: &Path, session: &str) -> Result<Vec<Event>, RecordError> {
    store::read(dir, session)
}

#[cfg(feature = "sqlite")]
/// Finds sessions in `dir` through its index, which is first brought in line with the
/// recordings (the index is written; the recordings are only read).
pub fn search(dir: &Path, q: &Query) -> Result<Vec<SessionSummary>, RecordError> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut index = Index::open(&dir.join(INDEX_FILE))?;
    index.reconcile(dir)?;
    index.search(q, SystemTime::now())
}

#[cfg(test)]
mod tests;
