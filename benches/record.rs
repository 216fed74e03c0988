//! Recording throughput: appending a typical call event (about 400 bytes of JSON) to a
//! hash-chained recording (with its index kept current) with an fsync per event and batched, and
//! batched without the index, against the baseline of writing
//! the same serialized bytes to a plain file (no chain, no head record, no fsync) — same run.
//!
//! The concurrent group (`record_append_8_threads`): eight threads appending at once, each to
//! its own session, as calls on the data paths do — where `every_event` commits in groups —
//! for the embedded store and for PostgreSQL (`HOOPGUARD_TEST_DATABASE_URL`, else
//! 127.0.0.1:5432; left out, saying so, when none answers).
//!
//! `cargo bench --bench record`

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hoopguard::core::record::{Durability, JsonlStore, PgStore, Recorder, Store};
use serde_json::json;

fn event() -> serde_json::Value {
    json!({
        "service": "ec2", "region": "us-east-1", "operation": "TerminateInstances",
        "action": "ec2:TerminateInstances in us-east-1", "decision": "allow",
        "rule": "terminate-needs-a-manager", "approval_id": "apr_efods2i4x8t4ks34tgo9",
        "reason": null, "call": {"kind": "aws", "actions": [{"action": "ec2:TerminateInstances",
        "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-0abc123def4567890"]}]},
    })
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("record_append");
    g.throughput(Throughput::Elements(1));
    let data = event();
    let dir = tempfile::tempdir().unwrap();
    let line = serde_json::to_vec(&data).unwrap();
    let mut plain = std::fs::File::create(dir.path().join("plain.jsonl")).unwrap();
    g.bench_function("plain_write_baseline", |b| {
        b.iter(|| {
            plain.write_all(&line).unwrap();
            plain.write_all(b"\n").unwrap();
        })
    });
    for (name, durability) in [
        ("batched", Durability::Batched),
        ("every_event", Durability::EveryEvent),
    ] {
        let rec = Recorder::open(&dir.path().join(name), durability).unwrap();
        g.bench_function(name, |b| {
            b.iter(|| rec.append("bench-session", "call", data.clone()).unwrap())
        });
    }
    // The index's share: the same batched store without it.
    let store = JsonlStore::open(&dir.path().join("unindexed"), Durability::Batched).unwrap();
    let rec = Recorder::new(Arc::new(store));
    g.bench_function("batched_without_index", |b| {
        b.iter(|| rec.append("bench-session", "call", data.clone()).unwrap())
    });
    g.finish();
}

/// `iters` appends shared by eight threads at once (each its own session); the time for all.
fn eight_at_once(store: &Arc<dyn Store>, iters: u64, data: &serde_json::Value) -> Duration {
    let per = iters.div_ceil(8);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..8 {
            let (store, data) = (store.clone(), data.clone());
            s.spawn(move || {
                let session = format!("bench-{t}");
                for _ in 0..per {
                    store.append(&session, "call", data.clone()).unwrap();
                }
            });
        }
    });
    start.elapsed()
}

fn concurrent(c: &mut Criterion) {
    let mut g = c.benchmark_group("record_append_8_threads");
    g.throughput(Throughput::Elements(1));
    let data = event();
    let dir = tempfile::tempdir().unwrap();
    let mut stores: Vec<(&str, Arc<dyn Store>)> = vec![
        (
            "batched",
            Arc::new(JsonlStore::open(&dir.path().join("b"), Durability::Batched).unwrap()),
        ),
        (
            "every_event",
            Arc::new(JsonlStore::open(&dir.path().join("e"), Durability::EveryEvent).unwrap()),
        ),
    ];
    let url = std::env::var("HOOPGUARD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    // Named like the tests' schemas, so a later test run drops it after an hour.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let schema = format!("hg_test_{now}_bench_{}", std::process::id());
    match PgStore::connect(&url, Some(&schema)) {
        Ok(pg) => stores.push(("postgres", Arc::new(pg))),
        Err(e) => eprintln!("record bench: no PostgreSQL ({e}); its row is left out"),
    }
    for (name, store) in &stores {
        g.bench_function(*name, |b| {
            b.iter_custom(|iters| eight_at_once(store, iters, &data))
        });
    }
    g.finish();
}

criterion_group!(benches, bench, concurrent);
criterion_main!(benches);
