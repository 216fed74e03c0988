//! The embedded approval store: one SQLite file in the data directory.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{
    Approval, ApprovalStore, NewApproval, Status, StoreError, Vote, VoteError, decode, grant_name,
};

/// Approvals in SQLite (WAL, synchronous writes). Every method runs in one immediate
/// transaction, so concurrent votes and grant uses are serialised: one wins, the other is told.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS approvals (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    requester TEXT NOT NULL,
    digest TEXT NOT NULL,
    rule TEXT NOT NULL,
    grant_kind TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    window_ends_at INTEGER,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS approvals_by_digest ON approvals(requester, digest, status);
CREATE INDEX IF NOT EXISTS approvals_by_rule ON approvals(requester, rule, status);
CREATE INDEX IF NOT EXISTS approvals_by_time ON approvals(created_at);
";

fn store_err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)
            .map_err(|e| StoreError(format!("cannot open {}: {e}", path.display())))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(store_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(store_err)?;
        Self::init(conn)
    }

    /// A store that lives in memory only (tests, examples).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(store_err)?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(store_err)?;
        conn.execute_batch(SCHEMA).map_err(store_err)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with<T, E>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| E::from(StoreError(format!("store task failed: {e}"))))?
    }
}

fn save(tx: &rusqlite::Transaction<'_>, a: &Approval, insert: bool) -> Result<(), StoreError> {
    let doc = serde_json::to_string(a).map_err(store_err)?;
    let sql = if insert {
        "INSERT INTO approvals (id, status, requester, digest, rule, grant_kind, created_at, expires_at, window_ends_at, doc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    } else {
        "UPDATE approvals SET status = ?2, requester = ?3, digest = ?4, rule = ?5, grant_kind = ?6,
         created_at = ?7, expires_at = ?8, window_ends_at = ?9, doc = ?10 WHERE id = ?1"
    };
    tx.execute(
        sql,
        params![
            a.id,
            a.status.as_str(),
            a.requester,
            a.digest,
            a.rule,
            grant_name(a.grant),
            a.created_at as i64,
            a.expires_at as i64,
            a.window_ends_at.map(|w| w as i64),
            doc
        ],
    )
    .map_err(store_err)?;
    Ok(())
}

fn load(tx: &rusqlite::Transaction<'_>, id: &str) -> Result<Option<Approval>, StoreError> {
    tx.query_row("SELECT doc FROM approvals WHERE id = ?1", [id], |r| {
        r.get::<_, String>(0)
    })
    .optional()
    .map_err(store_err)?
    .map(|d| decode(&d))
    .transpose()
}

#[async_trait::async_trait]
impl ApprovalStore for SqliteStore {
    async fn open(&self, new: NewApproval, now: u64) -> Result<(Approval, bool), StoreError> {
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(store_err)?;
            let a = new.approval;
            let existing: Option<String> = tx
                .query_row(
                    "SELECT doc FROM approvals WHERE requester = ?1 AND digest = ?2 AND rule = ?3
                     AND status = 'pending' AND expires_at > ?4 ORDER BY created_at DESC LIMIT 1",
                    params![a.requester, a.digest, a.rule, now as i64],
                    |r| r.get(0),
                )
                .optional()
                .map_err(store_err)?;
            if let Some(doc) = existing {
                return Ok((decode(&doc)?, false));
            }
            save(&tx, &a, true)?;
            tx.commit().map_err(store_err)?;
            Ok((a, true))
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        let id = id.to_string();
        self.with(move |c| {
            let tx = c.transaction().map_err(store_err)?;
            load(&tx, &id)
        })
        .await
    }

    async fn list(
        &self,
        status: Option<Status>,
        now: u64,
        limit: usize,
    ) -> Result<Vec<Approval>, StoreError> {
        self.with(move |c| {
            let mut stmt = c
                .prepare("SELECT doc FROM approvals ORDER BY created_at DESC, id LIMIT ?1")
                .map_err(store_err)?;
            let rows = stmt
                .query_map([limit as i64 * 4], |r| r.get::<_, String>(0))
                .map_err(store_err)?;
            let mut out = Vec::new();
            for doc in rows {
                let a = decode(&doc.map_err(store_err)?)?;
                if status.is_none_or(|s| a.status_at(now) == s) {
                    out.push(a);
                }
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }

    async fn vote(&self, id: &str, vote: Vote, now: u64) -> Result<Approval, VoteError> {
        let id = id.to_string();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(store_err)?;
            let mut a = load(&tx, &id)?.ok_or_else(|| VoteError::NotFound(id.clone()))?;
            let before = a.status;
            if let Err(refused) = super::apply_vote(&mut a, vote, now) {
                if a.status != before {
                    save(&tx, &a, false)?;
                    tx.commit().map_err(store_err)?;
                }
                return Err(refused);
            }
            save(&tx, &a, false)?;
            tx.commit().map_err(store_err)?;
            Ok(a)
        })
        .await
    }

    async fn take_grant(
        &self,
        requester: &str,
        digest: &str,
        rule: &str,
        now: u64,
    ) -> Result<Option<Approval>, StoreError> {
        let (requester, digest, rule) =
            (requester.to_string(), digest.to_string(), rule.to_string());
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(store_err)?;
            let once: Option<String> = tx
                .query_row(
                    "SELECT doc FROM approvals WHERE requester = ?1 AND digest = ?2 AND rule = ?3
                     AND status = 'approved' AND grant_kind = 'once' AND expires_at > ?4
                     ORDER BY created_at LIMIT 1",
                    params![requester, digest, rule, now as i64],
                    |r| r.get(0),
                )
                .optional()
                .map_err(store_err)?;
            if let Some(doc) = once {
                let mut a = decode(&doc)?;
                a.status = Status::Used;
                a.used_at = Some(now);
                save(&tx, &a, false)?;
                tx.commit().map_err(store_err)?;
                return Ok(Some(a));
            }
            let window: Option<String> = tx
                .query_row(
                    "SELECT doc FROM approvals WHERE requester = ?1 AND rule = ?2
                     AND status = 'approved' AND grant_kind = 'window' AND window_ends_at > ?3
                     ORDER BY window_ends_at DESC LIMIT 1",
                    params![requester, rule, now as i64],
                    |r| r.get(0),
                )
                .optional()
                .map_err(store_err)?;
            window.map(|d| decode(&d)).transpose()
        })
        .await
    }
}
