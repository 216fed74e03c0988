//! Recording throughput: appending a typical call event (about 400 bytes of JSON) to a
//! hash-chained recording (with its index kept current) with an fsync per event and batched, and
//! batched without the index, against the baseline of writing
//! the same serialized bytes to a plain file (no chain, no head record, no fsync) — same run.
//!
//! `cargo bench --bench record`

use std::io::Write;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hoopguard::core::record::{Durability, JsonlStore, Recorder};
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

criterion_group!(benches, bench);
criterion_main!(benches);
