//! Approvals in PostgreSQL, shared by every replica (feature `postgres`).
//!
//! The same semantics as the embedded [`SqliteStore`](super::SqliteStore), across processes:
//!
//! * opening an approval takes a transaction-scoped advisory lock on (requester, digest, rule),
//!   so two replicas asked the same thing at once open one approval (and one webhook goes out);
//! * a vote locks the approval's row (`SELECT … FOR UPDATE`), so votes are serialised per
//!   approval and settled by [`apply_vote`](super::apply_vote) like the embedded store's;
//! * a `once` grant is taken under the row lock and marked used in the same transaction: of two
//!   calls racing on two replicas, the second waits for the first, then no longer finds it.

use super::{
    Approval, ApprovalStore, NewApproval, Status, StoreError, Vote, VoteError, decode, grant_name,
};
use crate::shared::Database;

/// The approvals table of a shared [`Database`].
#[derive(Debug, Clone)]
pub struct PgStore {
    db: Database,
}

impl PgStore {
    /// Approvals in `db` (its migrations have created the table).
    pub fn new(db: Database) -> Self {
        PgStore { db }
    }
}

fn store_err(e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("shared store (PostgreSQL): {e}"))
}

fn secs(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

async fn save(
    tx: &tokio_postgres::Transaction<'_>,
    a: &Approval,
    insert: bool,
) -> Result<(), StoreError> {
    let doc = serde_json::to_string(a).map_err(store_err)?;
    let sql = if insert {
        "INSERT INTO approvals (id, status, requester, digest, rule, grant_kind, created_at,
         expires_at, window_ends_at, doc) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    } else {
        "UPDATE approvals SET status = $2, requester = $3, digest = $4, rule = $5,
         grant_kind = $6, created_at = $7, expires_at = $8, window_ends_at = $9, doc = $10
         WHERE id = $1"
    };
    tx.execute(
        sql,
        &[
            &a.id,
            &a.status.as_str(),
            &a.requester,
            &a.digest,
            &a.rule,
            &grant_name(a.grant),
            &secs(a.created_at),
            &secs(a.expires_at),
            &a.window_ends_at.map(secs),
            &doc,
        ],
    )
    .await
    .map_err(store_err)?;
    Ok(())
}

#[async_trait::async_trait]
impl ApprovalStore for PgStore {
    async fn open(&self, new: NewApproval, now: u64) -> Result<(Approval, bool), StoreError> {
        let mut client = self.db.client().await?;
        let tx = client.transaction().await.map_err(store_err)?;
        let a = new.approval;
        // One opener at a time per request, across replicas.
        let key = format!("approval\n{}\n{}\n{}", a.requester, a.digest, a.rule);
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&key],
        )
        .await
        .map_err(store_err)?;
        let existing = tx
            .query_opt(
                "SELECT doc FROM approvals WHERE requester = $1 AND digest = $2 AND rule = $3
                 AND status = 'pending' AND expires_at > $4 ORDER BY created_at DESC LIMIT 1",
                &[&a.requester, &a.digest, &a.rule, &secs(now)],
            )
            .await
            .map_err(store_err)?;
        if let Some(row) = existing {
            return Ok((decode(row.get(0))?, false));
        }
        save(&tx, &a, true).await?;
        tx.commit().await.map_err(store_err)?;
        Ok((a, true))
    }

    async fn get(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        let client = self.db.client().await?;
        client
            .query_opt("SELECT doc FROM approvals WHERE id = $1", &[&id])
            .await
            .map_err(store_err)?
            .map(|r| decode(r.get(0)))
            .transpose()
    }

    async fn list(
        &self,
        status: Option<Status>,
        now: u64,
        limit: usize,
    ) -> Result<Vec<Approval>, StoreError> {
        let client = self.db.client().await?;
        let rows = client
            .query(
                "SELECT doc FROM approvals ORDER BY created_at DESC, id LIMIT $1",
                &[&(i64::try_from(limit).unwrap_or(i64::MAX).saturating_mul(4))],
            )
            .await
            .map_err(store_err)?;
        let mut out = Vec::new();
        for row in rows {
            let a = decode(row.get(0))?;
            if status.is_none_or(|s| a.status_at(now) == s) {
                out.push(a);
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    async fn vote(&self, id: &str, vote: Vote, now: u64) -> Result<Approval, VoteError> {
        let mut client = self.db.client().await.map_err(StoreError::from)?;
        let tx = client.transaction().await.map_err(store_err)?;
        let row = tx
            .query_opt("SELECT doc FROM approvals WHERE id = $1 FOR UPDATE", &[&id])
            .await
            .map_err(store_err)?
            .ok_or_else(|| VoteError::NotFound(id.to_string()))?;
        let mut a = decode(row.get(0))?;
        let before = a.status;
        if let Err(refused) = super::apply_vote(&mut a, vote, now) {
            if a.status != before {
                save(&tx, &a, false).await?;
                tx.commit().await.map_err(store_err)?;
            }
            return Err(refused);
        }
        save(&tx, &a, false).await?;
        tx.commit().await.map_err(store_err)?;
        Ok(a)
    }

    async fn take_grant(
        &self,
        requester: &str,
        digest: &str,
        rule: &str,
        now: u64,
    ) -> Result<Option<Approval>, StoreError> {
        let mut client = self.db.client().await?;
        let tx = client.transaction().await.map_err(store_err)?;
        // Under READ COMMITTED a row another transaction is marking used is waited for and then
        // re-checked against the WHERE clause: the loser of a race finds nothing.
        let once = tx
            .query_opt(
                "SELECT doc FROM approvals WHERE requester = $1 AND digest = $2 AND rule = $3
                 AND status = 'approved' AND grant_kind = 'once' AND expires_at > $4
                 ORDER BY created_at LIMIT 1 FOR UPDATE",
                &[&requester, &digest, &rule, &secs(now)],
            )
            .await
            .map_err(store_err)?;
        if let Some(row) = once {
            let mut a = decode(row.get(0))?;
            a.status = Status::Used;
            a.used_at = Some(now);
            save(&tx, &a, false).await?;
            tx.commit().await.map_err(store_err)?;
            return Ok(Some(a));
        }
        let window = tx
            .query_opt(
                "SELECT doc FROM approvals WHERE requester = $1 AND rule = $2
                 AND status = 'approved' AND grant_kind = 'window' AND window_ends_at > $3
                 ORDER BY window_ends_at DESC LIMIT 1",
                &[&requester, &rule, &secs(now)],
            )
            .await
            .map_err(store_err)?;
        window.map(|r| decode(r.get(0))).transpose()
    }
}
