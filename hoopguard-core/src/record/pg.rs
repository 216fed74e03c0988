//! Session recordings in the shared PostgreSQL database (feature `postgres`), so that the
//! replicas of one gateway write every session into one chain, whichever replica a call lands
//! on, and any replica reads, verifies and replays it.
//!
//! Each event is one row holding its exact JSON line (what the chain hashes) beside the
//! session's head row (last sequence number and line hash, ended, revoked). Appends are
//! committed in groups: a writer takes every append waiting, locks the heads of their sessions
//! (`SELECT … FOR UPDATE`, in session order, so two replicas never deadlock), numbers and chains
//! the events from those heads, inserts them and moves the heads, in one transaction; only then
//! does any of those appends hear it is recorded. Two replicas appending to one session at once
//! queue on the head row, and the chain stays one.
//!
//! ```no_run
//! use std::sync::Arc;
//! use hoopguard_core::record::{PgStore, Recorder};
//!
//! let store = PgStore::connect("postgres://hoopguard@db.internal/hoopguard", None).unwrap();
//! let rec = Recorder::new(Arc::new(store));
//! rec.append("s-1", "call", serde_json::json!({"action": "sts:GetCallerIdentity"})).unwrap();
//! assert_eq!(rec.verify("s-1").unwrap(), 1);
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::sync::{Notify, mpsc};

use super::query::like;
use super::store::Links;
use super::{
    Done, Event, GENESIS, Query, RecordError, Removed, Retention, SessionState, SessionSummary,
    Store, call_target, check_session_id, digest, line_hash, now_ms,
};
use crate::shared::{Database, SharedError};

/// How long a caller waits for the database before the append or read fails.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// How long a call waits to learn where a session it has not seen stands.
const STATE_WITHIN: Duration = Duration::from_secs(2);
/// The most appends committed in one transaction.
const BATCH: usize = 512;
/// Attempts at a transaction PostgreSQL aborted to break a deadlock or a serialization conflict.
const ATTEMPTS: usize = 5;

fn store_error(e: impl std::fmt::Display) -> RecordError {
    RecordError::Store(e.to_string())
}

/// A query's error with the server's message (tokio-postgres alone says "db error").
fn pg_error(e: tokio_postgres::Error) -> RecordError {
    match e.as_db_error() {
        Some(db) => RecordError::Store(format!("{}: {}", db.code().code(), db.message())),
        None => RecordError::Store(e.to_string()),
    }
}

type Job = Box<
    dyn FnOnce(Database) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send,
>;

struct Pending {
    session: String,
    kind: String,
    data: Value,
    done: Done,
}

struct Inner {
    waiting: Mutex<Vec<Pending>>,
    wake: Notify,
    /// Where the sessions this replica has written or looked up stand, as of its last commit
    /// or read (another replica's later appends are not seen here; revocations made elsewhere
    /// reach the data paths through the shared revocations instead).
    known: Mutex<HashMap<String, SessionState>>,
    jobs: mpsc::UnboundedSender<Job>,
    /// Set when the store is dropped: the writer commits what waits, then stops.
    closing: AtomicBool,
}

/// Session recordings in PostgreSQL. See the [module docs](self).
///
/// It runs its own thread and Tokio runtime with its own connections, so its blocking methods
/// ([`Store::append`], [`Store::read`], …) can be called from anywhere, async workers included,
/// without starving the connections they wait on.
pub struct PgStore {
    inner: Arc<Inner>,
    thread: Option<std::thread::JoinHandle<()>>,
    stop: Arc<Notify>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to `url` (in `schema`, if given), brings the schema up to date
    /// ([`Database::connect`]) and starts the writer.
    pub fn connect(url: &str, schema: Option<&str>) -> Result<PgStore, SharedError> {
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        let inner = Arc::new(Inner {
            waiting: Mutex::new(Vec::new()),
            wake: Notify::new(),
            known: Mutex::new(HashMap::new()),
            jobs,
            closing: AtomicBool::new(false),
        });
        let stop = Arc::new(Notify::new());
        let (i, s) = (inner.clone(), stop.clone());
        let (url, schema) = (url.to_string(), schema.map(str::to_string));
        // The runtime and its connections live on the writer's thread (connecting there too,
        // so this works from inside another runtime).
        let (ready, connected) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("hoopguard-record-pg".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready.send(Err(SharedError(format!(
                            "cannot start the recordings' runtime: {e}"
                        ))));
                        return;
                    }
                };
                rt.block_on(async move {
                    let db = match Database::connect(&url, schema.as_deref()).await {
                        Ok(db) => {
                            let _ = ready.send(Ok(()));
                            db
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    let committer = tokio::spawn(commit_loop(i.clone(), db.clone()));
                    loop {
                        tokio::select! {
                            job = queue.recv() => match job {
                                Some(job) => {
                                    tokio::spawn(job(db.clone()));
                                }
                                None => break,
                            },
                            _ = s.notified() => break,
                        }
                    }
                    // What is waiting still gets committed (or its error) before the end.
                    i.closing.store(true, Ordering::SeqCst);
                    i.wake.notify_one();
                    let _ = committer.await;
                });
            })
            .map_err(|e| SharedError(format!("cannot start the recordings' writer: {e}")))?;
        let started = connected
            .recv()
            .unwrap_or_else(|_| Err(SharedError("the recordings' writer stopped".into())));
        if let Err(e) = started {
            let _ = thread.join();
            return Err(e);
        }
        Ok(PgStore {
            inner,
            thread: Some(thread),
            stop,
        })
    }

    /// Runs `f` on the store's runtime and waits for its answer.
    fn run<T, F, Fut>(&self, f: F) -> Result<T, RecordError>
    where
        T: Send + 'static,
        F: FnOnce(Database) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, RecordError>> + Send + 'static,
    {
        self.run_within(ANSWER_WITHIN, f)
    }

    /// [`PgStore::run`], waiting at most `within`.
    fn run_within<T, F, Fut>(&self, within: Duration, f: F) -> Result<T, RecordError>
    where
        T: Send + 'static,
        F: FnOnce(Database) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, RecordError>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let job: Job = Box::new(move |db| {
            Box::pin(async move {
                let _ = tx.send(f(db).await);
            })
        });
        self.inner
            .jobs
            .send(job)
            .map_err(|_| store_error("the recordings' writer has stopped"))?;
        rx.recv_timeout(within).unwrap_or_else(|_| {
            Err(store_error(format!(
                "no answer from the database within {}s",
                within.as_secs_f32()
            )))
        })
    }

    fn head(&self, session: &str) -> Result<Option<HeadRow>, RecordError> {
        self.head_within(session, ANSWER_WITHIN)
    }

    fn head_within(&self, session: &str, within: Duration) -> Result<Option<HeadRow>, RecordError> {
        let session = session.to_string();
        self.run_within(within, move |db| async move {
            let c = db.client().await.map_err(store_error)?;
            let row = c
                .query_opt(
                    "SELECT seq, hash, ended, revoked, first_seq, first_prev
                     FROM record_sessions WHERE session = $1",
                    &[&session],
                )
                .await
                .map_err(pg_error)?;
            Ok(row.map(|r| HeadRow {
                seq: r.get::<_, i64>(0) as u64,
                hash: r.get(1),
                ended: r.get(2),
                revoked: r.get(3),
                first_seq: r.get::<_, i64>(4) as u64,
                first_prev: r.get(5),
            }))
        })
    }

    fn lines(&self, session: &str) -> Result<Vec<String>, RecordError> {
        let session = session.to_string();
        self.run(move |db| async move {
            let c = db.client().await.map_err(store_error)?;
            let rows = c
                .query(
                    "SELECT line FROM record_events WHERE session = $1 ORDER BY seq",
                    &[&session],
                )
                .await
                .map_err(pg_error)?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.stop.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A session's head row.
struct HeadRow {
    seq: u64,
    hash: String,
    ended: bool,
    revoked: bool,
    first_seq: u64,
    first_prev: String,
}

/// Commits what is waiting, batch after batch, until the runtime stops.
async fn commit_loop(inner: Arc<Inner>, db: Database) {
    loop {
        let batch = {
            let mut waiting = lock(&inner.waiting);
            let n = waiting.len().min(BATCH);
            waiting.drain(..n).collect::<Vec<_>>()
        };
        if batch.is_empty() {
            if inner.closing.load(Ordering::SeqCst) {
                return;
            }
            inner.wake.notified().await;
            continue;
        }
        commit(&inner, &db, batch).await;
    }
}

/// Commits `batch` in one transaction (retrying one PostgreSQL aborted to break a deadlock),
/// then tells each append its outcome.
async fn commit(inner: &Inner, db: &Database, batch: Vec<Pending>) {
    let items: Vec<Item<'_>> = batch
        .iter()
        .map(|p| Item {
            session: &p.session,
            kind: &p.kind,
            data: &p.data,
        })
        .collect();
    let mut outcome = Err(Retry::Failed("not tried".into()));
    for _ in 0..ATTEMPTS {
        outcome = try_commit(db, &items).await;
        match &outcome {
            Err(Retry::Conflict(_)) => continue,
            _ => break,
        }
    }
    match outcome {
        Ok((events, heads)) => {
            {
                let mut known = lock(&inner.known);
                for (session, state) in heads {
                    known.insert(session, state);
                }
            }
            for (p, event) in batch.into_iter().zip(events) {
                (p.done)(Ok(event));
            }
        }
        Err(e) => {
            let e = match e {
                Retry::Conflict(e) | Retry::Failed(e) => e,
            };
            tracing::error!(error = %e, events = batch.len(), "cannot commit recorded events to the database");
            for p in batch {
                (p.done)(Err(store_error(&e)));
            }
        }
    }
}

enum Retry {
    /// Aborted by PostgreSQL to break a deadlock or a serialization conflict: try again.
    Conflict(String),
    Failed(String),
}

impl From<tokio_postgres::Error> for Retry {
    fn from(e: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        let conflict = e.code().is_some_and(|c| {
            *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
        });
        let text = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        };
        if conflict {
            Retry::Conflict(text)
        } else {
            Retry::Failed(text)
        }
    }
}

impl From<SharedError> for Retry {
    fn from(e: SharedError) -> Self {
        Retry::Failed(e.to_string())
    }
}

type Committed = (Vec<Event>, Vec<(String, SessionState)>);

/// What a transaction needs of an append (not its callback, which is not `Sync`).
struct Item<'a> {
    session: &'a str,
    kind: &'a str,
    data: &'a Value,
}

/// A head as a transaction moves it.
struct Moving {
    seq: u64,
    hash: String,
    ended: bool,
    revoked: bool,
    /// Why it ended, when the batch ended it.
    reason: Option<String>,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

async fn try_commit(db: &Database, batch: &[Item<'_>]) -> Result<Committed, Retry> {
    let mut sessions: Vec<&str> = batch.iter().map(|p| p.session).collect();
    sessions.sort_unstable();
    sessions.dedup();
    let mut c = db.client().await?;
    let tx = c.transaction().await?;
    // New sessions get a head row, then every head in the batch is locked, in session order.
    tx.execute(
        "INSERT INTO record_sessions (session) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
        &[&sessions],
    )
    .await?;
    let rows = tx
        .query(
            "SELECT session, seq, hash, ended, revoked FROM record_sessions
             WHERE session = ANY($1) ORDER BY session FOR UPDATE",
            &[&sessions],
        )
        .await?;
    let mut heads: HashMap<String, Moving> = rows
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                Moving {
                    seq: r.get::<_, i64>(1) as u64,
                    hash: r.get(2),
                    ended: r.get(3),
                    revoked: r.get(4),
                    reason: None,
                },
            )
        })
        .collect();
    let at = now_ms();
    let mut events = Vec::with_capacity(batch.len());
    let mut col = Columns::default();
    let mut starts = Vec::new();
    for p in batch {
        let head = heads
            .get_mut(p.session)
            .ok_or_else(|| Retry::Failed(format!("session {} has no head row", p.session)))?;
        let event = Event {
            seq: head.seq + 1,
            at,
            session: p.session.to_string(),
            kind: p.kind.to_string(),
            prev: head.hash.clone(),
            data: p.data.clone(),
        };
        let line = serde_json::to_string(&event).map_err(|e| Retry::Failed(e.to_string()))?;
        let d = &event.data;
        head.seq = event.seq;
        head.hash = line_hash(line.as_bytes());
        head.ended = event.kind == "end";
        head.revoked |= super::store::is_revocation(&event.kind, d);
        head.reason = head
            .ended
            .then(|| text(d, "reason").unwrap_or_else(|| "ended".into()));
        if event.kind == "start" {
            starts.push((
                p.session,
                [
                    text(d, "subject"),
                    d.get("groups").map(Value::to_string),
                    text(d, "connection").or_else(|| text(d, "transport")),
                    text(d, "client"),
                    text(d, "user_agent"),
                ],
            ));
        }
        let call = event.kind == "call";
        col.session.push(p.session);
        col.seq.push(event.seq as i64);
        col.kind.push(p.kind);
        col.target.push(
            call.then(|| text(d, "action").map(|a| call_target(&a)))
                .flatten(),
        );
        col.decision
            .push(call.then(|| text(d, "decision")).flatten());
        col.line.push(line);
        events.push(event);
    }
    tx.execute(
        "INSERT INTO record_events (session, seq, at, kind, target, decision, line)
         SELECT s, q, $3, k, t, d, l
         FROM unnest($1::text[], $2::int8[], $4::text[], $5::text[], $6::text[], $7::text[])
           AS u(s, q, k, t, d, l)",
        &[
            &col.session,
            &col.seq,
            &(at as i64),
            &col.kind,
            &col.target,
            &col.decision,
            &col.line,
        ],
    )
    .await?;
    for (session, [subject, groups, origin, client, agent]) in &starts {
        tx.execute(
            "UPDATE record_sessions SET subject = $2, groups = $3, origin = $4, client = $5,
                 user_agent = $6 WHERE session = $1",
            &[session, subject, groups, origin, client, agent],
        )
        .await?;
    }
    let (mut hs, mut hq, mut hh, mut he, mut hr, mut hw) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for (s, m) in &heads {
        hs.push(s.as_str());
        hq.push(m.seq as i64);
        hh.push(m.hash.as_str());
        he.push(m.ended);
        hr.push(m.revoked);
        hw.push(m.reason.as_deref());
    }
    tx.execute(
        "UPDATE record_sessions AS h SET seq = u.q, hash = u.h, ended = u.e, revoked = u.r,
             ended_reason = u.w, updated_at = $7,
             first_at = CASE WHEN h.first_at = 0 THEN $7 ELSE h.first_at END
         FROM unnest($1::text[], $2::int8[], $3::text[], $4::bool[], $5::bool[], $6::text[])
           AS u(s, q, h, e, r, w)
         WHERE h.session = u.s",
        &[&hs, &hq, &hh, &he, &hr, &hw, &(at as i64)],
    )
    .await?;
    tx.commit().await?;
    let states = heads
        .into_iter()
        .map(|(s, m)| {
            (
                s,
                SessionState {
                    events: m.seq,
                    ended: m.ended,
                    revoked: m.revoked,
                },
            )
        })
        .collect();
    Ok((events, states))
}

/// The event rows of one transaction, column by column.
#[derive(Default)]
struct Columns<'a> {
    session: Vec<&'a str>,
    seq: Vec<i64>,
    kind: Vec<&'a str>,
    target: Vec<Option<String>>,
    decision: Vec<Option<String>>,
    line: Vec<String>,
}

impl PgStore {
    /// The sessions that match `q`, oldest first, as the index of the embedded store finds
    /// them ([`Index::search`](super::Index)), from the columns each commit fills beside the
    /// events.
    pub fn search(&self, q: &Query, now: SystemTime) -> Result<Vec<SessionSummary>, RecordError> {
        let since = q.since_ms(now);
        let subject = q.subject.as_deref().map(like);
        let action = q.action.as_deref().map(like);
        let decision = q.decision.clone();
        let limit = q.limit.unwrap_or(1000) as i64;
        self.run(move |db| async move {
            let c = db.client().await.map_err(store_error)?;
            let rows = c
                .query(
                    "SELECT * FROM (
                       SELECT s.session, s.subject, s.groups, s.origin, s.client, s.user_agent,
                         s.first_at, s.updated_at, s.seq, CASE WHEN s.ended THEN s.ended_reason END,
                         (SELECT COUNT(*) FROM record_events c
                            WHERE c.session = s.session AND c.kind = 'call'),
                         (SELECT COUNT(*) FROM record_events c
                            WHERE c.session = s.session AND c.kind = 'call'
                              AND c.decision <> 'allow')
                       FROM record_sessions s
                       WHERE s.seq > 0
                         AND ($1::text IS NULL OR s.subject ILIKE $1)
                         AND ($2::int8 IS NULL OR s.updated_at >= $2)
                         AND (($3::text IS NULL AND $4::text IS NULL) OR EXISTS (
                           SELECT 1 FROM record_events c
                           WHERE c.session = s.session AND c.kind = 'call'
                             AND ($3::text IS NULL OR c.target ILIKE $3)
                             AND ($4::text IS NULL OR c.decision = $4)))
                       ORDER BY s.updated_at DESC, s.session LIMIT $5) AS found
                     ORDER BY first_at, session",
                    &[&subject, &since, &action, &decision, &limit],
                )
                .await
                .map_err(pg_error)?;
            Ok(rows
                .iter()
                .map(|r| {
                    let groups: Option<String> = r.get(2);
                    SessionSummary {
                        id: r.get(0),
                        subject: r.get(1),
                        groups: groups
                            .and_then(|g| serde_json::from_str(&g).ok())
                            .unwrap_or_default(),
                        origin: r.get(3),
                        client: r.get(4),
                        user_agent: r.get(5),
                        first_at: r.get::<_, i64>(6) as u64,
                        last_at: r.get::<_, i64>(7) as u64,
                        events: r.get::<_, i64>(8) as u64,
                        ended: r.get(9),
                        calls: r.get::<_, i64>(10) as u64,
                        refused: r.get::<_, i64>(11) as u64,
                    }
                })
                .collect())
        })
    }
}

impl Store for PgStore {
    fn submit(&self, session: &str, kind: &str, data: Value, done: Done) {
        if let Err(e) = check_session_id(session) {
            return done(Err(e));
        }
        lock(&self.inner.waiting).push(Pending {
            session: session.to_string(),
            kind: kind.to_string(),
            data,
            done,
        });
        self.inner.wake.notify_one();
    }

    /// Nothing to do: an append is acknowledged once its transaction has committed.
    fn sync(&self) -> Result<(), RecordError> {
        Ok(())
    }

    fn state(&self, session: &str) -> Option<SessionState> {
        check_session_id(session).ok()?;
        if let Some(s) = lock(&self.inner.known).get(session) {
            return Some(*s);
        }
        // On the call path (a call's thread waits): a short wait, then the call is refused
        // when its event cannot be committed either.
        let head = match self.head_within(session, STATE_WITHIN) {
            Ok(h) => h?,
            Err(e) => {
                tracing::error!(session, error = %e, "cannot read a recording's head from the database");
                return None;
            }
        };
        let state = SessionState {
            events: head.seq,
            ended: head.ended,
            revoked: head.revoked,
        };
        if head.seq == 0 {
            return None;
        }
        lock(&self.inner.known).insert(session.to_string(), state);
        Some(state)
    }

    fn open_sessions(&self) -> Vec<String> {
        lock(&self.inner.known)
            .iter()
            .filter(|(_, s)| !s.ended)
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn sessions(&self) -> Result<Vec<String>, RecordError> {
        self.run(|db| async move {
            let c = db.client().await.map_err(store_error)?;
            let rows = c
                .query(
                    "SELECT session FROM record_sessions WHERE seq > 0 ORDER BY session",
                    &[],
                )
                .await
                .map_err(pg_error)?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn read(&self, session: &str) -> Result<Vec<Event>, RecordError> {
        check_session_id(session)?;
        let lines = self.lines(session)?;
        if lines.is_empty() && self.head(session)?.is_none_or(|h| h.seq == 0) {
            return Err(RecordError::NotFound(session.to_string()));
        }
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| RecordError::Broken {
                    session: session.to_string(),
                    line: i + 1,
                    problem: format!("is not a valid event ({e})"),
                })
            })
            .collect()
    }

    fn verify(&self, session: &str) -> Result<usize, RecordError> {
        check_session_id(session)?;
        let head = self.head(session)?;
        let lines = self.lines(session)?;
        let Some(head) = head else {
            if lines.is_empty() {
                return Err(RecordError::NotFound(session.to_string()));
            }
            let mut links = Links::new(session, 0, GENESIS, 0);
            for l in &lines {
                links.line(Some(l.as_bytes()))?;
            }
            return links.finish(None).map(|w| w.count);
        };
        let mut links = Links::new(session, head.first_seq - 1, &head.first_prev, 0);
        for l in &lines {
            links.line(Some(l.as_bytes()))?;
        }
        links
            .finish(Some((head.seq, head.hash.as_str())))
            .map(|w| w.count)
    }

    fn summary(&self, session: &str) -> Result<Option<digest::Summary>, RecordError> {
        Ok(self
            .head(session)?
            .filter(|h| h.seq > 0)
            .map(|h| digest::Summary {
                events: h.seq,
                last: h.hash,
                first_seq: h.first_seq,
                first_prev: h.first_prev,
                ended: h.ended,
            }))
    }

    fn shared(&self) -> bool {
        true
    }

    /// Removes whole sessions that ended and were last written longer ago than
    /// `policy.max_age` (in [`Removed`], `segments` counts their events). `max_size` does not
    /// apply to the database (PostgreSQL's own limits and monitoring do).
    fn retain(&self, policy: &Retention, now: SystemTime) -> Result<Removed, RecordError> {
        let Some(age) = policy.max_age else {
            return Ok(Removed::default());
        };
        let cutoff = now
            .checked_sub(age)
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64);
        let removed = self.run(move |db| async move {
            let mut c = db.client().await.map_err(store_error)?;
            let tx = c.transaction().await.map_err(pg_error)?;
            let rows = tx
                .query(
                    "DELETE FROM record_sessions WHERE ended AND updated_at < $1 RETURNING session",
                    &[&cutoff],
                )
                .await
                .map_err(pg_error)?;
            let sessions: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            let gone = tx
                .query_one(
                    "WITH d AS (DELETE FROM record_events WHERE session = ANY($1)
                                RETURNING octet_length(line) AS n)
                     SELECT COUNT(*), COALESCE(SUM(n), 0)::int8 FROM d",
                    &[&sessions],
                )
                .await
                .map_err(pg_error)?;
            tx.commit().await.map_err(pg_error)?;
            Ok(Removed {
                segments: gone.get::<_, i64>(0) as usize,
                bytes: gone.get::<_, i64>(1) as u64,
                sessions,
            })
        })?;
        let mut known = lock(&self.inner.known);
        for s in &removed.sessions {
            known.remove(s);
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests;
