//! The SQLite index of the recordings, for listing and search: one row per session (who,
//! from where, when, how many events, how it ended) and one per call (what, decided how).
//!
//! The index is derived: the recordings are the record, the index only finds them. It is kept
//! current by the recorder (off the call path, in batches), and [`Index::reconcile`] brings it
//! back in line with the files after a crash or when it lags, so nothing found by a search is
//! missing from it for long. Writes are idempotent, so two writers (the gateway and an auditor's
//! `sessions list`) cannot disagree.

use std::path::Path;
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::query::like;
use super::{Event, Query, RecordError, SessionSummary, call_target, store};

/// The file name of the index in the recordings directory.
pub const INDEX_FILE: &str = "index.sqlite";

/// The index. See the [module docs](self).
pub struct Index {
    conn: Connection,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").finish_non_exhaustive()
    }
}

/// The part of an event the index keeps.
#[derive(Debug, Clone)]
pub(super) struct Row {
    session: String,
    seq: i64,
    at: i64,
    kind: String,
    /// For `start`: subject, groups (JSON), origin, client, user agent.
    start: Option<[Option<String>; 5]>,
    /// For `call`: target, decision, rule, approval id.
    call: Option<[Option<String>; 4]>,
    /// For `end`: the reason.
    reason: Option<String>,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

impl Row {
    pub(super) fn of(e: &Event) -> Row {
        let d = &e.data;
        Row {
            session: e.session.clone(),
            seq: e.seq as i64,
            at: e.at as i64,
            kind: e.kind.clone(),
            start: (e.kind == "start").then(|| {
                [
                    text(d, "subject"),
                    d.get("groups").map(Value::to_string),
                    text(d, "connection").or_else(|| text(d, "transport")),
                    text(d, "client"),
                    text(d, "user_agent"),
                ]
            }),
            call: (e.kind == "call").then(|| {
                [
                    text(d, "action").map(|a| call_target(&a)),
                    text(d, "decision"),
                    text(d, "rule"),
                    text(d, "approval_id"),
                ]
            }),
            reason: (e.kind == "end").then(|| text(d, "reason")).flatten(),
        }
    }
}

fn sql(e: rusqlite::Error) -> RecordError {
    RecordError::Index(e.to_string())
}

impl Index {
    /// Opens (creating) the index at `path`.
    pub fn open(path: &Path) -> Result<Index, RecordError> {
        // An index deleted to be rebuilt may leave its `-wal` and `-shm` behind: they belong
        // to no database any more, and SQLite would refuse the new one ("disk I/O error").
        if !path.exists() {
            for suffix in ["-wal", "-shm"] {
                let mut side = path.as_os_str().to_owned();
                side.push(suffix);
                let _ = std::fs::remove_file(side);
            }
        }
        let conn = Connection::open(path).map_err(sql)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS sessions (
                id TEXT PRIMARY KEY, subject TEXT, groups TEXT, origin TEXT, client TEXT,
                user_agent TEXT, first_at INTEGER NOT NULL, last_at INTEGER NOT NULL,
                events INTEGER NOT NULL, ended TEXT, ended_seq INTEGER);
             CREATE TABLE IF NOT EXISTS calls (
                session TEXT NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL, target TEXT,
                decision TEXT, rule TEXT, approval_id TEXT, PRIMARY KEY (session, seq));
             CREATE INDEX IF NOT EXISTS sessions_last ON sessions (last_at);
             CREATE INDEX IF NOT EXISTS sessions_subject ON sessions (subject);
             CREATE INDEX IF NOT EXISTS calls_target ON calls (target);",
        )
        .map_err(sql)?;
        Ok(Index { conn })
    }

    /// Adds events (in one transaction). Adding one twice changes nothing.
    pub(super) fn apply(&mut self, rows: &[Row]) -> Result<(), RecordError> {
        let tx = self.conn.transaction().map_err(sql)?;
        for r in rows {
            apply(&tx, r).map_err(sql)?;
        }
        tx.commit().map_err(sql)
    }

    /// Forgets a session (removed by retention).
    pub(super) fn remove(&mut self, session: &str) -> Result<(), RecordError> {
        let tx = self.conn.transaction().map_err(sql)?;
        tx.execute("DELETE FROM sessions WHERE id = ?1", [session])
            .map_err(sql)?;
        tx.execute("DELETE FROM calls WHERE session = ?1", [session])
            .map_err(sql)?;
        tx.commit().map_err(sql)
    }

    /// Brings the index in line with the recordings in `dir`: sessions whose event count differs
    /// from their head are indexed again from their files, sessions that are gone are
    /// forgotten. Reads the recordings, never changes them. Returns how many were re-indexed.
    pub fn reconcile(&mut self, dir: &Path) -> Result<usize, RecordError> {
        let ids = store::session_ids(dir)?;
        let mut redone = 0;
        for id in &ids {
            let want = match store::read_head(dir, id) {
                Ok(h) => h.seq,
                Err(_) => continue, // unreadable: `verify` reports it
            };
            let have: Option<i64> = self
                .conn
                .query_row("SELECT events FROM sessions WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(sql)?;
            if have == Some(want as i64) {
                continue;
            }
            let Ok(events) = store::read(dir, id) else {
                continue;
            };
            let rows: Vec<Row> = events.iter().map(Row::of).collect();
            self.remove(id)?;
            self.apply(&rows)?;
            redone += 1;
        }
        let known: Vec<String> = {
            let mut stmt = self.conn.prepare("SELECT id FROM sessions").map_err(sql)?;
            stmt.query_map([], |r| r.get(0))
                .map_err(sql)?
                .collect::<Result<_, _>>()
                .map_err(sql)?
        };
        for id in known {
            if ids.binary_search(&id).is_err() {
                self.remove(&id)?;
            }
        }
        Ok(redone)
    }

    /// The sessions that match `q`, oldest first.
    pub fn search(&self, q: &Query, now: SystemTime) -> Result<Vec<SessionSummary>, RecordError> {
        let since = q.since_ms(now);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT * FROM (
                   SELECT id, subject, groups, origin, client, user_agent, first_at, last_at,
                     events, CASE WHEN ended_seq = events THEN ended END,
                     (SELECT COUNT(*) FROM calls c WHERE c.session = s.id),
                     (SELECT COUNT(*) FROM calls c WHERE c.session = s.id AND c.decision != 'allow')
                   FROM sessions s
                   WHERE (?1 IS NULL OR s.subject LIKE ?1 ESCAPE '\\')
                     AND (?2 IS NULL OR s.last_at >= ?2)
                     AND ((?3 IS NULL AND ?4 IS NULL) OR EXISTS (
                       SELECT 1 FROM calls c WHERE c.session = s.id
                         AND (?3 IS NULL OR c.target LIKE ?3 ESCAPE '\\')
                         AND (?4 IS NULL OR c.decision = ?4)))
                   ORDER BY last_at DESC, id LIMIT ?5)
                 ORDER BY first_at, id",
            )
            .map_err(sql)?;
        let rows = stmt
            .query_map(
                params![
                    q.subject.as_deref().map(like),
                    since,
                    q.action.as_deref().map(like),
                    q.decision,
                    q.limit.unwrap_or(1000) as i64,
                ],
                |r| {
                    let groups: Option<String> = r.get(2)?;
                    Ok(SessionSummary {
                        id: r.get(0)?,
                        subject: r.get(1)?,
                        groups: groups
                            .and_then(|g| serde_json::from_str(&g).ok())
                            .unwrap_or_default(),
                        origin: r.get(3)?,
                        client: r.get(4)?,
                        user_agent: r.get(5)?,
                        first_at: r.get::<_, i64>(6)? as u64,
                        last_at: r.get::<_, i64>(7)? as u64,
                        events: r.get::<_, i64>(8)? as u64,
                        ended: r.get(9)?,
                        calls: r.get::<_, i64>(10)? as u64,
                        refused: r.get::<_, i64>(11)? as u64,
                    })
                },
            )
            .map_err(sql)?;
        rows.collect::<Result<_, _>>().map_err(sql)
    }
}

/// Statements are prepared once per connection (rusqlite's statement cache): parsing the SQL
/// for every row was most of the index writer's time under load.
fn apply(tx: &rusqlite::Transaction<'_>, r: &Row) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO sessions (id, first_at, last_at, events) VALUES (?1, ?2, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET first_at = MIN(first_at, excluded.first_at),
           last_at = MAX(last_at, excluded.last_at), events = MAX(events, excluded.events)",
    )?
    .execute(params![r.session, r.at, r.seq])?;
    if let Some([subject, groups, origin, client, agent]) = &r.start {
        tx.prepare_cached(
            "UPDATE sessions SET subject = ?2, groups = ?3, origin = ?4, client = ?5,
               user_agent = ?6 WHERE id = ?1",
        )?
        .execute(params![r.session, subject, groups, origin, client, agent])?;
    }
    if let Some([target, decision, rule, approval]) = &r.call {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO calls (session, seq, at, target, decision, rule, approval_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            r.session, r.seq, r.at, target, decision, rule, approval
        ])?;
    }
    if r.kind == "end" {
        tx.prepare_cached(
            "UPDATE sessions SET ended = ?2, ended_seq = ?3
             WHERE id = ?1 AND (ended_seq IS NULL OR ended_seq < ?3)",
        )?
        .execute(params![
            r.session,
            r.reason.as_deref().unwrap_or("ended"),
            r.seq
        ])?;
    }
    Ok(())
}
