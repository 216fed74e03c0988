//! Shared by the AWS and MCP bench supports: a `hoopguard serve` run inside the bench process,
//! and a closed-loop load driver for the examples.

use std::time::{Duration, Instant};

use hoopguard_cli::config::{Config, Source};
use hoopguard_core::identity::dev::DevIssuer;
use hoopguard_core::record::{Event, RecordError, Removed, Retention, SessionState, Store};

/// A store that keeps nothing: the same path without recording, for the ratio of what recording
/// costs. The events are still built (and their bodies masked); only storing them is skipped.
#[derive(Debug)]
#[allow(dead_code)] // used by the AWS bench only
pub struct Unrecorded;

impl Store for Unrecorded {
    fn submit(
        &self,
        session: &str,
        kind: &str,
        data: serde_json::Value,
        done: hoopguard_core::record::Done,
    ) {
        done(Ok(Event {
            seq: 1,
            at: 0,
            session: session.to_string(),
            kind: kind.to_string(),
            prev: String::new(),
            data,
        }))
    }
    fn sync(&self) -> Result<(), RecordError> {
        Ok(())
    }
    fn state(&self, _: &str) -> Option<SessionState> {
        // Every session is already started, so no per-call start event or expiry timer.
        Some(SessionState {
            events: 1,
            ended: false,
            revoked: false,
        })
    }
    fn open_sessions(&self) -> Vec<String> {
        Vec::new()
    }
    fn sessions(&self) -> Result<Vec<String>, RecordError> {
        Ok(Vec::new())
    }
    fn summary(
        &self,
        _: &str,
    ) -> Result<Option<hoopguard_core::record::digest::Summary>, RecordError> {
        Ok(None)
    }
    fn read(&self, _: &str) -> Result<Vec<Event>, RecordError> {
        Ok(Vec::new())
    }
    fn verify(&self, _: &str) -> Result<usize, RecordError> {
        Ok(0)
    }
    fn retain(&self, _: &Retention, _: std::time::SystemTime) -> Result<Removed, RecordError> {
        Ok(Removed::default())
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `hoopguard serve` in this process on the config `rest` (everything but the data
/// directory, the admin listener and the development issuer, which are added); returns the
/// development issuer to mint tokens with.
#[allow(dead_code)] // the AWS support uses `serve_recording_into`
pub fn serve(dir: &std::path::Path, rest: &str) -> DevIssuer {
    serve_recording_into(dir, rest, None)
}

/// [`serve`], recording into `store` when one is given.
pub fn serve_recording_into(
    dir: &std::path::Path,
    rest: &str,
    store: Option<std::sync::Arc<dyn Store>>,
) -> DevIssuer {
    let text = format!(
        "data_dir = \"{}\"\n[listeners.admin]\nbind = \"127.0.0.1:{}\"\n[identity.dev_issuer]\nenabled = true\n{rest}",
        dir.display(),
        free_port()
    );
    let cfg = Config::parse(&text, "bench", &|_| None).unwrap();
    let dev = hoopguard_cli::serve::dev_issuer(&cfg).unwrap().unwrap();
    tokio::spawn(async move {
        hoopguard_cli::serve::run_recording_into(
            cfg,
            Source::Quickstart,
            std::future::pending(),
            store,
        )
        .await
        .unwrap()
    });
    dev
}

/// `concurrency` clients calling `call(n)` back to back for `seconds`; returns calls per second
/// and the p50 and p99 latency.
#[allow(dead_code)] // used by the examples, not the benches
pub async fn load<F, Fut>(concurrency: usize, seconds: u64, call: F) -> (f64, Duration, Duration)
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for worker in 0..concurrency as u64 {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut n = worker << 32;
            while Instant::now() < end {
                let t = Instant::now();
                call(n).await;
                lat.push(t.elapsed());
                n += 1;
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    (all.len() as f64 / seconds as f64, pct(0.5), pct(0.99))
}
