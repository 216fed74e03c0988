//! State that replicas share: one PostgreSQL database (feature `postgres`).
//!
//! Several `hoopguard serve` processes behind one load balancer are one gateway when they share
//! a [`Database`]: approvals ([`PgStore`](crate::approvals::PgStore): asked on one replica,
//! decided on another, a `once` grant used by exactly one call) and session revocations
//! ([`Database::revoke`], watched by every replica with [`Database::watch_revocations`]) and
//! MCP tool pins ([`Database::sync_pins`]: the first pin of a tool on any replica is its pin). The
//! embedded default (SQLite in the data directory) stays what a single process uses.
//!
//! [`Database::connect`] runs the embedded, versioned migrations ([`MIGRATIONS`]) under a
//! PostgreSQL advisory lock, so two replicas starting at once apply each migration once, and a
//! database already at the latest version is left alone.
//!
//! ```no_run
//! # async fn f() -> Result<(), hoopguard_core::shared::SharedError> {
//! use std::sync::Arc;
//! use hoopguard_core::approvals::{Approvals, PgStore};
//! use hoopguard_core::shared::Database;
//!
//! let db = Database::connect("postgres://hoopguard@db.internal/hoopguard", None).await?;
//! let approvals = Approvals::new(Arc::new(PgStore::new(db.clone())));
//! # let _ = approvals; Ok(()) }
//! ```

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::record::{Recorder, Revoked};

/// The shared store failed: unreachable, refused the credentials, or a query failed. Calls that
/// need it are refused (fail closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shared store (PostgreSQL): {0}")]
pub struct SharedError(pub String);

impl From<SharedError> for crate::approvals::StoreError {
    fn from(e: SharedError) -> Self {
        crate::approvals::StoreError(e.to_string())
    }
}

/// The error and what caused it: tokio-postgres says only "db error" itself, the server's
/// message is its source.
fn err(e: impl std::error::Error) -> SharedError {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    SharedError(text)
}

/// One schema migration: applied once, in version order, inside one transaction.
#[derive(Debug)]
pub struct Migration {
    /// Its version; versions only grow.
    pub version: i32,
    /// What it does, in words.
    pub name: &'static str,
    /// The SQL.
    pub sql: &'static str,
}

/// The schema, as migrations. A release only appends to this list.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "approvals",
        sql: "
CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    requester TEXT NOT NULL,
    digest TEXT NOT NULL,
    rule TEXT NOT NULL,
    grant_kind TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    window_ends_at BIGINT,
    doc TEXT NOT NULL
);
CREATE INDEX approvals_by_digest ON approvals (requester, digest, status);
CREATE INDEX approvals_by_rule ON approvals (requester, rule, status);
CREATE INDEX approvals_by_time ON approvals (created_at);
",
    },
    Migration {
        version: 2,
        name: "revocations",
        sql: "
CREATE TABLE revocations (
    seq BIGSERIAL PRIMARY KEY,
    session TEXT NOT NULL UNIQUE,
    revoked_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    revoked_at BIGINT NOT NULL
);
",
    },
    Migration {
        version: 3,
        name: "tool pins",
        sql: "
CREATE TABLE tool_pins (
    server TEXT NOT NULL,
    tool TEXT NOT NULL,
    digest TEXT NOT NULL,
    changed BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (server, tool)
);
",
    },
    Migration {
        version: 4,
        name: "recordings",
        sql: "
CREATE TABLE record_sessions (
    session TEXT PRIMARY KEY,
    seq BIGINT NOT NULL DEFAULT 0,
    hash TEXT NOT NULL DEFAULT '0000000000000000000000000000000000000000000000000000000000000000',
    ended BOOLEAN NOT NULL DEFAULT false,
    revoked BOOLEAN NOT NULL DEFAULT false,
    first_seq BIGINT NOT NULL DEFAULT 1,
    first_prev TEXT NOT NULL DEFAULT '0000000000000000000000000000000000000000000000000000000000000000',
    first_at BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL DEFAULT 0,
    ended_reason TEXT,
    subject TEXT,
    groups TEXT,
    origin TEXT,
    client TEXT,
    user_agent TEXT
);
CREATE TABLE record_events (
    session TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    target TEXT,
    decision TEXT,
    line TEXT NOT NULL,
    PRIMARY KEY (session, seq)
);
CREATE INDEX record_events_by_target ON record_events (target) WHERE target IS NOT NULL;
CREATE INDEX record_sessions_by_time ON record_sessions (updated_at);
",
    },
    Migration {
        version: 5,
        name: "rate limits",
        sql: "
CREATE TABLE rate_limits (
    limit_name TEXT NOT NULL,
    principal TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    window_ms BIGINT NOT NULL,
    calls INTEGER NOT NULL,
    PRIMARY KEY (limit_name, principal)
);
",
    },
];

/// An arbitrary constant: the advisory lock migrations run under.
const MIGRATION_LOCK: i64 = 0x686f_6f70_6775_6172; // "hoopguar"
/// Another: the one revocations are written under, one at a time.
const REVOCATION_LOCK: i64 = 0x686f_6f70_7265_766b; // "hooprevk"
/// The most revocations read in one query.
const REVOCATION_PAGE: i64 = 10_000;

/// A pool of connections to the shared PostgreSQL database.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    schema: Option<String>,
}

impl std::fmt::Debug for Database {
    // Never the URL: it may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// Whether `s` is a plain SQL identifier (what a schema name may be here).
fn plain_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl Database {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/database[?options]`, or the
    /// `key=value` form), optionally inside `schema` (created if missing; lowercase letters,
    /// digits and `_`), and brings the schema up to date.
    ///
    /// TLS is not supported yet: connect over a private network or a local socket.
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<Database, SharedError> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| {
            SharedError(format!(
                "the database URL is not one PostgreSQL understands ({e}); write it as postgres://user@host:5432/database"
            ))
        })?;
        if let Some(s) = schema {
            if !plain_identifier(s) {
                return Err(SharedError(format!(
                    "schema `{s}`: use lowercase letters, digits and `_` (at most 63)"
                )));
            }
            config.options(format!("-c search_path=\"{s}\" -c statement_timeout=5000"));
        } else {
            config.options("-c statement_timeout=5000");
        }
        // A connection to a host that vanished is noticed in seconds, not at the kernel's
        // retransmission timeout.
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(2))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(10));
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.application_name("hoopguard");
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(err)?;
        let db = Database {
            pool,
            schema: schema.map(str::to_string),
        };
        db.migrate().await?;
        Ok(db)
    }

    /// A connection from the pool.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, SharedError> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => err(e),
            e => SharedError(format!("no connection to the database: {e}")),
        })
    }

    /// Checks that the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), SharedError> {
        self.client()
            .await?
            .simple_query("SELECT 1")
            .await
            .map(drop)
            .map_err(err)
    }

    /// The schema version the database is at.
    pub async fn version(&self) -> Result<i32, SharedError> {
        let c = self.client().await?;
        let row = c
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM hoopguard_migrations",
                &[],
            )
            .await
            .map_err(err)?;
        Ok(row.get(0))
    }

    async fn migrate(&self) -> Result<(), SharedError> {
        let mut c = self.client().await?;
        // One migrating replica at a time; the others wait, then find nothing to do. (Even
        // `CREATE SCHEMA IF NOT EXISTS` fails when two run at once, so it waits too.)
        c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(err)?;
        let done = match &self.schema {
            // Checked to be a plain identifier in `connect`.
            Some(s) => c
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{s}\""))
                .await
                .map_err(err),
            None => Ok(()),
        };
        let done = match done {
            Ok(()) => self.apply(&mut c).await,
            e => e,
        };
        let unlocked = c
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(err);
        done?;
        unlocked.map(drop)
    }

    async fn apply(&self, c: &mut deadpool_postgres::Object) -> Result<(), SharedError> {
        c.batch_execute(
            "CREATE TABLE IF NOT EXISTS hoopguard_migrations (
                 version INTEGER PRIMARY KEY,
                 name TEXT NOT NULL,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(err)?;
        let at: i32 = c
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM hoopguard_migrations",
                &[],
            )
            .await
            .map_err(err)?
            .get(0);
        let latest = MIGRATIONS.last().map_or(0, |m| m.version);
        if at > latest {
            return Err(SharedError(format!(
                "the database is at schema version {at}, newer than this hoopguard knows ({latest}); upgrade hoopguard"
            )));
        }
        for m in MIGRATIONS.iter().filter(|m| m.version > at) {
            let tx = c.transaction().await.map_err(err)?;
            tx.batch_execute(m.sql).await.map_err(|e| {
                SharedError(format!(
                    "migration {} ({}): {}",
                    m.version,
                    m.name,
                    err(e).0
                ))
            })?;
            tx.execute(
                "INSERT INTO hoopguard_migrations (version, name) VALUES ($1, $2)",
                &[&m.version, &m.name],
            )
            .await
            .map_err(err)?;
            tx.commit().await.map_err(err)?;
            tracing::info!(
                version = m.version,
                name = m.name,
                "applied a database migration"
            );
        }
        Ok(())
    }

    /// Records that `session` is revoked, by whom and why. `Ok(false)` if it was already.
    ///
    /// Revocations are written one at a time (a transaction-scoped advisory lock held until
    /// commit), so their `seq` numbers become visible in order and a replica reading "after
    /// the last one it saw" never steps over one committed late.
    pub async fn revoke(&self, session: &str, by: &str, why: &str) -> Result<bool, SharedError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&REVOCATION_LOCK])
            .await
            .map_err(err)?;
        let n = tx
            .execute(
                "INSERT INTO revocations (session, revoked_by, reason, revoked_at)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (session) DO NOTHING",
                &[&session, &by, &why, &(unix_secs() as i64)],
            )
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(n == 1)
    }

    /// Reads every revocation after `seq` into `revoked` (page by page, each query bounded by a
    /// timeout), recording the `revoked` end of the sessions `recorder` has; returns the last
    /// `seq` read.
    async fn read_revocations(
        &self,
        mut seq: i64,
        revoked: &Revoked,
        recorder: &Arc<Recorder>,
    ) -> Result<i64, SharedError> {
        loop {
            let page = tokio::time::timeout(Duration::from_secs(5), self.revocations_after(seq))
                .await
                .map_err(|_| SharedError("no answer within 5s".into()))??;
            let full = page.len() as i64 >= REVOCATION_PAGE;
            for r in &page {
                seq = seq.max(r.seq);
                revoked.insert(&r.session);
            }
            // The ends this replica records, off the async workers, once per page. (Recordings
            // in the shared store got theirs from the replica that revoked.)
            if recorder.is_shared() {
                if !full {
                    return Ok(seq);
                }
                continue;
            }
            let rec = recorder.clone();
            let _ = tokio::task::spawn_blocking(move || {
                for r in page {
                    if rec.state(&r.session).is_some_and(|s| !s.revoked) {
                        if let Err(e) = rec.revoke(&r.session, &r.by, &r.why) {
                            tracing::error!(session = %r.session, error = %e,
                                "cannot record a revocation made on another replica");
                        }
                    }
                }
            })
            .await;
            if !full {
                return Ok(seq);
            }
        }
    }

    /// The revocations after `seq`, in order: (seq, session, by, why).
    pub async fn revocations_after(&self, seq: i64) -> Result<Vec<Revocation>, SharedError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT seq, session, revoked_by, reason FROM revocations WHERE seq > $1
                 ORDER BY seq LIMIT $2",
                &[&seq, &REVOCATION_PAGE],
            )
            .await
            .map_err(err)?;
        Ok(rows
            .iter()
            .map(|r| Revocation {
                seq: r.get(0),
                session: r.get(1),
                by: r.get(2),
                why: r.get(3),
            })
            .collect())
    }

    /// Keeps `revoked` current with the database's revocations, every `every`, until the
    /// runtime stops; a session revoked elsewhere that this replica recorded gets its `revoked`
    /// end in `recorder` too. While the database cannot be read, `revoked` goes stale after
    /// its allowance and the data paths refuse calls (fail closed) until it answers again.
    pub fn watch_revocations(
        &self,
        revoked: Arc<Revoked>,
        recorder: Arc<Recorder>,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let db = self.clone();
        let seq = Arc::new(std::sync::atomic::AtomicI64::new(0));
        poll(every, "the revocations", move || {
            let (db, seq, revoked, recorder) =
                (db.clone(), seq.clone(), revoked.clone(), recorder.clone());
            async move {
                // Fresh as of the moment the read began, once every page of it is in.
                let began = std::time::Instant::now();
                let after = seq.load(std::sync::atomic::Ordering::Relaxed);
                let last = db.read_revocations(after, &revoked, &recorder).await?;
                seq.store(last, std::sync::atomic::Ordering::Relaxed);
                revoked.refreshed_at(began);
                Ok(())
            }
        })
    }
}

impl Database {
    /// Shares `pins` with the other replicas: this replica's pins are offered (the first pin of
    /// a tool anywhere stays its pin; a `changed` mark is kept once any replica set it), then
    /// every shared pin is taken in ([`Pins::adopt`](crate::mcp::Pins::adopt)). Two statements,
    /// whatever the number of pins.
    pub async fn sync_pins(&self, pins: &crate::mcp::Pins) -> Result<(), SharedError> {
        let mine = pins.entries();
        let c = self.client().await?;
        if !mine.is_empty() {
            let col = |f: fn(&crate::mcp::PinEntry) -> &str| -> Vec<&str> {
                mine.iter().map(f).collect()
            };
            let (servers, tools, digests) = (
                col(|e| e.server.as_str()),
                col(|e| e.tool.as_str()),
                col(|e| e.digest.as_str()),
            );
            let changed: Vec<bool> = mine.iter().map(|e| e.changed).collect();
            c.execute(
                "INSERT INTO tool_pins (server, tool, digest, changed)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[])
                 ON CONFLICT (server, tool)
                 DO UPDATE SET changed = tool_pins.changed OR EXCLUDED.changed",
                &[&servers, &tools, &digests, &changed],
            )
            .await
            .map_err(err)?;
        }
        let rows = c
            .query("SELECT server, tool, digest, changed FROM tool_pins", &[])
            .await
            .map_err(err)?;
        for r in rows {
            let e = crate::mcp::PinEntry {
                server: r.get(0),
                tool: r.get(1),
                digest: r.get(2),
                changed: r.get(3),
            };
            pins.adopt(&e)
                .map_err(|e| SharedError(format!("cannot keep a shared tool pin: {e}")))?;
        }
        Ok(())
    }

    /// [`Database::sync_pins`] every `every`, until the runtime stops.
    pub fn watch_pins(
        &self,
        pins: Arc<crate::mcp::Pins>,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let db = self.clone();
        poll(every, "the MCP tool pins", move || {
            let (db, pins) = (db.clone(), pins.clone());
            async move { db.sync_pins(&pins).await }
        })
    }
}

/// Runs `step` every `every` until the runtime stops, logging the first failure of a run of
/// them and the recovery (not every failed poll).
fn poll<F, Fut>(every: Duration, what: &'static str, mut step: F) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), SharedError>> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            match step().await {
                Ok(()) if failing => {
                    tracing::info!("the shared store answers again: {what} are current");
                    failing = false;
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    tracing::error!(error = %e, "cannot read {what} from the shared store (calls are refused once revocations are stale)");
                    failing = true;
                }
                Err(_) => {}
            }
        }
    })
}

/// Rate limits counted across replicas: one row per limit and caller holding the current
/// window's count. The rows of one call are locked in (limit, caller) order, so two calls
/// counting against the same limits never deadlock, and a call counts against all its limits or
/// none.
#[async_trait::async_trait]
impl crate::policy::LimitStore for Database {
    async fn take(
        &self,
        keys: &[crate::policy::LimitKey],
        now_ms: u64,
        mode: crate::policy::Take,
    ) -> Result<Option<crate::policy::LimitHit>, crate::policy::LimitError> {
        if keys.is_empty() {
            return Ok(None);
        }
        tokio::time::timeout(Duration::from_secs(5), self.take_limits(keys, now_ms, mode))
            .await
            .map_err(|_| SharedError("no answer within 5s".into()))
            .and_then(|r| r)
            .map_err(|e| crate::policy::LimitError(e.0))
    }
}

impl Database {
    async fn take_limits(
        &self,
        keys: &[crate::policy::LimitKey],
        now_ms: u64,
        mode: crate::policy::Take,
    ) -> Result<Option<crate::policy::LimitHit>, SharedError> {
        use crate::policy::{LimitHit, Take};
        // Rows are keyed (limit_name, principal): the column holds `LimitKey::scope` (the
        // caller's principal unless the limit's `by` says otherwise).
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by(|&a, &b| {
            (&keys[a].limit, &keys[a].scope).cmp(&(&keys[b].limit, &keys[b].scope))
        });
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(err)?;
        let mut used = vec![0u32; keys.len()];
        // The window each count is in: this replica's, or a later one another replica whose
        // clock runs ahead already started (counted against, never reset to an earlier one).
        let mut windows: Vec<i64> = keys.iter().map(|k| k.window(now_ms) as i64).collect();
        for &i in &order {
            let k = &keys[i];
            let window = k.window(now_ms) as i64;
            let per = k.per_ms as i64;
            // Creates the row if missing and locks it either way.
            let row = tx
                .query_one(
                    "INSERT INTO rate_limits (limit_name, principal, window_start, window_ms, calls)
                     VALUES ($1, $2, $3, $4, 0)
                     ON CONFLICT (limit_name, principal) DO UPDATE SET limit_name = EXCLUDED.limit_name
                     RETURNING window_start, window_ms, calls",
                    &[&k.limit, &k.scope, &window, &per],
                )
                .await
                .map_err(err)?;
            let (w, p, n): (i64, i64, i32) = (row.get(0), row.get(1), row.get(2));
            if p == per && w >= window {
                used[i] = n.max(0) as u32;
                windows[i] = w;
            }
        }
        if mode != Take::Always {
            // The first full one in the caller's order, as the embedded store answers.
            if let Some(i) = (0..keys.len()).find(|&i| used[i] >= keys[i].calls) {
                tx.rollback().await.map_err(err)?;
                let k = &keys[i];
                let end = windows[i].max(0) as u64 + k.per_ms;
                return Ok(Some(LimitHit {
                    limit: k.limit.clone(),
                    retry_after: Duration::from_millis(end.saturating_sub(now_ms)),
                    reason: k.reason.clone(),
                }));
            }
        }
        if mode == Take::Peek {
            tx.rollback().await.map_err(err)?;
            return Ok(None);
        }
        for &i in &order {
            let (k, n) = (&keys[i], used[i]);
            let count = i32::try_from(n.saturating_add(1)).unwrap_or(i32::MAX);
            tx.execute(
                "UPDATE rate_limits SET window_start = $3, window_ms = $4, calls = $5
                 WHERE limit_name = $1 AND principal = $2",
                &[&k.limit, &k.scope, &windows[i], &(k.per_ms as i64), &count],
            )
            .await
            .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(None)
    }
}

/// One revoked session, as the database holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// Its order among revocations.
    pub seq: i64,
    /// The recording session id.
    pub session: String,
    /// Who revoked it.
    pub by: String,
    /// Why.
    pub why: String,
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The PostgreSQL the tests use: `HOOPGUARD_TEST_DATABASE_URL`, else the one on
/// 127.0.0.1:5432 (`bash scripts/test.sh` finds or starts one and sets the variable).
#[cfg(test)]
pub(crate) fn test_database_url() -> String {
    std::env::var("HOOPGUARD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh schema in the test database, and `n` pools on it (replicas of one gateway). Schemas
/// of earlier runs older than an hour are dropped. Never skips: without a database the test
/// fails and says how to get one.
#[cfg(test)]
pub(crate) async fn test_databases(n: usize) -> Vec<Database> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let url = test_database_url();
    let now = unix_secs();
    let schema = format!(
        "hg_test_{now}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let first = Database::connect(&url, Some(&schema)).await.unwrap_or_else(|e| {
        panic!(
            "these tests need PostgreSQL: {e}. Set HOOPGUARD_TEST_DATABASE_URL, or run `bash scripts/test.sh`, which finds or starts one"
        )
    });
    if let Ok(c) = first.client().await {
        if let Ok(rows) = c
            .query(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'hg\\_test\\_%'",
                &[],
            )
            .await
        {
            for r in rows {
                let name: String = r.get(0);
                let born = name.split('_').nth(2).and_then(|t| t.parse::<u64>().ok());
                if born.is_some_and(|b| b + 3600 < now) && plain_identifier(&name) {
                    let _ = c
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .await;
                }
            }
        }
    }
    let mut all = vec![first];
    for _ in 1..n {
        all.push(Database::connect(&url, Some(&schema)).await.unwrap());
    }
    all
}

/// One pool on a fresh test schema.
#[cfg(test)]
pub(crate) async fn test_database() -> Database {
    test_databases(1).await.remove(0)
}

#[cfg(test)]
mod tests;
