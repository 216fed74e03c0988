//! The audit stream: every decision as one JSON line, for a SIEM.
//!
//! Independent of the debug log (its own file or stdout, its own versioned schema) and of the
//! recordings (which hold what was asked and answered, hash-chained, for replay): one line per
//! decision — allowed, denied, waiting for approval, throttled or refused because a store
//! failed — with who asked, through which connection, what, and which rule decided. No tokens,
//! credentials, bodies or tool arguments are in it; resources and reasons pass the masker.
//!
//! Lines are written by one thread of their own through a bounded queue, so a slow disk or
//! pipe never holds a call; a line the queue cannot take (the writer is [`CAPACITY`] lines
//! behind) or the writer cannot write is counted in [`AuditLog::dropped`] and logged, never
//! silently lost. The recordings stay the authoritative, verifiable record.
//!
//! # Schema `hoopguard.decision.v1`
//!
//! | field | |
//! |---|---|
//! | `schema` | `"hoopguard.decision.v1"`; a later incompatible change gets a new name |
//! | `time` | when it was decided, RFC 3339 UTC with milliseconds |
//! | `protocol` | `aws`, `mcp`, `admin` (`POST /v1/authorize`) or `http` (a [`PolicyLayer`]-guarded service) |
//! | `connection` | the AWS connection or MCP server the call was for; absent when none |
//! | `session` | the recording the call is in; absent when none |
//! | `subject`, `issuer`, `groups` | the caller, as the token said |
//! | `client` | the caller's address, when known |
//! | `call` | `{"kind": "aws", "actions": [{"action", "resources", "access"}], "region"}`, `{"kind": "tool", "name"}`, `{"kind": "resource", "uri"}` or `{"kind": "prompt", "name"}` |
//! | `decision` | `allow`, `deny`, `approve` (waiting for an approver), `throttle` or `error` (refused because a store failed: approvals, rate limits, revocations, or the call's recording) |
//! | `rule` | the rule or limit that decided; absent when none did (nothing matched) |
//! | `approval_id` | the approval that was asked for, or whose grant let the call through |
//! | `reason` | why, in words (as the caller was told) |
//! | `retry_after_secs` | for `throttle`: when the limit's window ends |
//!
//! Fields are added to `v1` only as optional ones; a consumer ignores what it does not know.
//!
//! [`PolicyLayer`]: https://docs.rs/hoopguard-tower
//!
//! # Example
//!
//! ```
//! use hoopguard_core::audit::{AuditLog, Line};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("audit.jsonl");
//! let log = AuditLog::to_file(&path).unwrap();
//! log.write(&Line {
//!     protocol: "mcp",
//!     subject: "alice".into(),
//!     decision: "deny",
//!     reason: Some("no rule allows it".into()),
//!     call: serde_json::json!({"kind": "tool", "name": "drop_table"}),
//!     ..Line::default()
//! });
//! log.close(); // waits for the writer
//! let text = std::fs::read_to_string(&path).unwrap();
//! let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
//! assert_eq!(line["schema"], "hoopguard.decision.v1");
//! assert_eq!(line["call"]["name"], "drop_table");
//! ```

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

/// The schema every line names.
pub const SCHEMA: &str = "hoopguard.decision.v1";

/// Lines the queue holds before the writer must catch up (later ones are dropped and counted).
pub const CAPACITY: usize = 65_536;

/// One decision, as written (see the [module docs](self) for each field).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Line {
    /// Set by [`AuditLog::write`] when empty.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub schema: &'static str,
    /// RFC 3339; set by [`AuditLog::write`] when empty.
    pub time: String,
    /// `aws`, `mcp`, `admin` or `http`.
    pub protocol: &'static str,
    /// The AWS connection or MCP server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// The recording the call is in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The caller's subject.
    pub subject: String,
    /// The caller's token issuer.
    pub issuer: String,
    /// The caller's groups.
    pub groups: Vec<String>,
    /// The caller's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// What was called (no arguments or bodies).
    pub call: Value,
    /// `allow`, `deny`, `approve`, `throttle`, `error`.
    pub decision: &'static str,
    /// The deciding rule or limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The approval asked for or used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// Why, as the caller was told.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For `throttle`: seconds until the limit's window ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

/// Where lines go: a file (appended to; safe with `logrotate`'s `copytruncate`) or stdout.
/// Cheap to share; [`AuditLog::close`] (or dropping it) writes out what is queued.
#[derive(Debug)]
pub struct AuditLog {
    tx: Mutex<Option<SyncSender<Vec<u8>>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    counts: std::sync::Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    written: AtomicU64,
    dropped: AtomicU64,
}

impl AuditLog {
    /// Appends lines to the file at `path` (created if missing, with mode 0600 on Unix).
    pub fn to_file(path: &Path) -> std::io::Result<AuditLog> {
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path)?;
        Ok(Self::to_writer(Box::new(file)))
    }

    /// Writes lines to the process's standard output.
    pub fn to_stdout() -> AuditLog {
        Self::to_writer(Box::new(std::io::stdout()))
    }

    /// Writes lines to `out`, from a thread of its own.
    pub fn to_writer(out: Box<dyn Write + Send>) -> AuditLog {
        let (tx, rx) = sync_channel(CAPACITY);
        let counts = std::sync::Arc::new(Counts::default());
        let c = counts.clone();
        let writer = std::thread::Builder::new()
            .name("hoopguard-audit".into())
            .spawn(move || write_lines(rx, out, &c))
            .ok();
        if writer.is_none() {
            tracing::error!("cannot start the audit writer thread; audit lines will be dropped");
        }
        AuditLog {
            tx: Mutex::new(writer.is_some().then_some(tx)),
            writer: Mutex::new(writer),
            counts,
        }
    }

    /// Queues one line (never waits for the disk). Fills in `schema` and `time` when empty.
    pub fn write(&self, line: &Line) {
        let mut owned;
        let line = if line.schema.is_empty() || line.time.is_empty() {
            owned = line.clone();
            owned.schema = SCHEMA;
            if owned.time.is_empty() {
                owned.time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
            }
            &owned
        } else {
            line
        };
        let mut bytes = match serde_json::to_vec(line) {
            Ok(b) => b,
            Err(e) => {
                // Every field is a string, number or JSON value: cannot happen; counted if it does.
                tracing::error!(error = %e, "cannot encode an audit line");
                self.drop_one();
                return;
            }
        };
        bytes.push(b'\n');
        let sent = match self.tx.lock() {
            Ok(tx) => match tx.as_ref() {
                Some(tx) => tx.try_send(bytes),
                None => Err(TrySendError::Disconnected(bytes)),
            },
            Err(_) => Err(TrySendError::Disconnected(bytes)),
        };
        if let Err(e) = sent {
            let why = match e {
                TrySendError::Full(_) => "the audit writer is behind",
                TrySendError::Disconnected(_) => "the audit log is closed",
            };
            tracing::error!("dropped an audit line: {why}");
            self.drop_one();
        }
    }

    fn drop_one(&self) {
        self.counts.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Lines written so far.
    pub fn written(&self) -> u64 {
        self.counts.written.load(Ordering::Relaxed)
    }

    /// Lines dropped so far (queue full, write failed, log closed).
    pub fn dropped(&self) -> u64 {
        self.counts.dropped.load(Ordering::Relaxed)
    }

    /// Stops taking lines and waits until every queued one is written and flushed — at most
    /// [`CLOSE_WAIT`]: a writer stuck on a stalled pipe is left behind (and logged), not waited
    /// for forever.
    pub fn close(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let handle = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(h) = handle {
            let deadline = std::time::Instant::now() + CLOSE_WAIT;
            while !h.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            if h.is_finished() {
                let _ = h.join();
            } else {
                tracing::error!(
                    "the audit writer did not finish within 5 s; lines still queued may be lost"
                );
            }
        }
    }
}

/// How long [`AuditLog::close`] waits for the writer.
pub const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer thread: writes what is queued, flushing whenever the queue is empty (so a reader
/// tailing the file sees a line as soon as the writer is not busy).
fn write_lines(rx: Receiver<Vec<u8>>, out: Box<dyn Write + Send>, counts: &Counts) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut failing = false;
    while let Ok(first) = rx.recv() {
        let mut batch = 0u64;
        let mut lost = 0u64;
        for line in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
            match out.write_all(&line) {
                Ok(()) => batch += 1,
                Err(e) => {
                    lost += 1;
                    if !std::mem::replace(&mut failing, true) {
                        tracing::error!(error = %e, "cannot write the audit log; lines are dropped until it works again");
                    }
                }
            }
        }
        match out.flush() {
            Ok(()) => {
                counts.written.fetch_add(batch, Ordering::Relaxed);
                if lost == 0 && std::mem::replace(&mut failing, false) {
                    tracing::info!("the audit log is written again");
                }
            }
            Err(e) => {
                lost += batch;
                if !std::mem::replace(&mut failing, true) {
                    tracing::error!(error = %e, "cannot write the audit log; lines are dropped until it works again");
                }
                // What a failed flush left in the buffer is dropped (counted), not retried.
                out = std::io::BufWriter::with_capacity(64 * 1024, out.into_parts().0);
            }
        }
        counts.dropped.fetch_add(lost, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A writer that fails (a full disk): the real file system cannot be made to fail on
    /// demand here.
    struct Failing;
    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::Error::other("disk full"))
        }
    }

    fn line(n: usize) -> Line {
        Line {
            protocol: "aws",
            subject: format!("user{n}"),
            decision: "allow",
            call: serde_json::json!({"kind": "aws", "actions": [{"action": "s3:GetObject"}]}),
            ..Line::default()
        }
    }

    #[test]
    fn every_line_is_written_in_order_and_parses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let log = Arc::new(AuditLog::to_file(&path).unwrap());
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        log.write(&line(t * 1000 + i));
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        log.close();
        assert_eq!((log.written(), log.dropped()), (2000, 0));
        let text = std::fs::read_to_string(&path).unwrap();
        let mut per_writer = [0usize; 4];
        for l in text.lines() {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["schema"], SCHEMA);
            assert!(v["time"].as_str().unwrap().ends_with('Z'));
            let n: usize = v["subject"].as_str().unwrap()[4..].parse().unwrap();
            // Each writer's lines stay in its order.
            assert_eq!(n % 1000, per_writer[n / 1000]);
            per_writer[n / 1000] += 1;
            assert!(v.get("rule").is_none(), "absent fields are left out");
        }
        assert_eq!(per_writer, [500; 4]);
    }

    #[test]
    fn a_failing_writer_counts_what_it_drops_and_never_blocks() {
        let log = AuditLog::to_writer(Box::new(Failing));
        for i in 0..10 {
            log.write(&line(i));
        }
        log.close();
        assert_eq!((log.written(), log.dropped()), (0, 10));
        // Closed: later lines are counted as dropped, not lost silently.
        log.write(&line(11));
        assert_eq!(log.dropped(), 11);
    }

    #[test]
    fn lines_reopened_by_append_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        for i in 0..2 {
            let log = AuditLog::to_file(&path).unwrap();
            log.write(&line(i));
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
